"""The environment `make up` runs Airflow with (scripts/local_stack.py `airflow_env`).

Loopback only, LocalExecutor sized to the machine, the plugin from its entry point, and nothing from
TensorFlow or MLflow on a task's stderr: Airflow shows every stderr line of a task as an ERROR.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from tests.fixtures.paths import REPO


@pytest.fixture
def env(local_stack, monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith(("AIRFLOW__", "MLSPEC_TF", "TF_", "MLFLOW_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    return local_stack.airflow_env(18080)


def test_every_port_is_on_loopback_and_the_executor_fits_the_machine(env, local_stack):
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert env["AIRFLOW__API__PORT"] == "18080"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18080/execution/"
    assert env["AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST"] == "127.0.0.1"
    # The log servers bind every interface and have no host setting: they are not started.
    for name in ("scheduler", "triggerer"):
        assert "--skip-serve-logs" in local_stack.COMPONENTS[name]
    assert set(local_stack.COMPONENTS) == {"api-server", "scheduler", "dag-processor", "triggerer"}
    assert env["AIRFLOW__CORE__PARALLELISM"] == str(len(os.sched_getaffinity(0)))
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    # One registration: the entry point; the package source is not a plugins folder.
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] != str(REPO / "plugins")


NOISY_TASK = """
import sys
import numpy as np
import keras
import tensorflow as tf
import mlflow

# What train does: seeds and op determinism, an MLflow run in a fresh SQLite store, a Keras fit.
keras.utils.set_random_seed(42)
tf.config.experimental.enable_op_determinism()
mlflow.set_tracking_uri(f"sqlite:///{sys.argv[1]}/mlflow.db")
with mlflow.start_run():
    x = np.random.default_rng(0).random((64, 8)).astype("float32")
    y = (x[:, 0] > 0.5).astype("int64")
    layers = [keras.Input((8,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2)]
    model = keras.Sequential(layers)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, validation_data=(x[:8], y[:8]), epochs=1, batch_size=16, verbose=0, shuffle=True)
print("trained")
"""


def _start_task(env: dict[str, str], folder) -> subprocess.Popen:
    folder.mkdir()
    # -W ignore: Python warnings reach Airflow's task log through logging (as WARNING), not through stderr.
    return subprocess.Popen(
        [sys.executable, "-W", "ignore", "-c", NOISY_TASK, str(folder)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_tensorflow_and_mlflow_leave_a_tasks_stderr_empty(env, tmp_path):
    # Without the settings, the same task writes what showed as red ERROR lines in every TF task's log.
    plain = {k: v for k, v in env.items() if k not in ("TF_ENABLE_ONEDNN_OPTS", "MLFLOW_LOGGING_LEVEL")}
    plain["TF_CPP_MIN_LOG_LEVEL"] = "2"
    tasks = {"quiet": _start_task(env, tmp_path / "quiet"), "noisy": _start_task(plain, tmp_path / "noisy")}
    out = {name: task.communicate(timeout=600) for name, task in tasks.items()}
    for name, task in tasks.items():
        assert task.returncode == 0, out[name][1][-3000:]
        assert "trained" in out[name][0]
    assert out["quiet"][1] == ""
    noisy = out["noisy"][1]
    assert "absl::InitializeLog" in noisy or "oneDNN" in noisy, noisy
    assert "Creating initial MLflow database tables" in noisy, noisy

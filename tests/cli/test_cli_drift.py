"""`mlspec drift SPEC`: the requests the model server logged for a version, against its training profile.

Real parts in this process: the embedded MLflow registry, a file store under MLSPEC_HOME with a published
version carrying its profile.json, and the server's request log writer (mlspec.server.request_log) writing
real Parquet parts of the answered requests; tests/server/test_request_log.py covers the same writer behind a
real server.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from tests.fixtures.server_testkit import classifier_onnx, classifier_signature
from tests.operators.operations_testkit import spec_for, spec_text

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("MLSPEC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLSPEC_REQUEST_LOG_FLUSH_S", "60")  # parts are written by close()
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def publish_with_profile(env, name: str, extra: str = "", *, with_profile: bool = True):
    """Version 1 of `name` with the profile of 300 training rows (4 named features, N(0, 1)), registered (not
    production); (spec, spec path, store root URI, input schema, version)."""
    import pandas as pd

    from mlspec.ml.columns import Column
    from mlspec.ml.profile import build_profile
    from mlspec.registry import open_registry
    from mlspec.registry.base import RegistrationRequest
    from mlspec.storage import open_store

    spec = spec_for(name, extra)
    store = open_store(spec.storage.uri, spec.storage.connection)
    training = pd.DataFrame(np.random.default_rng(0).normal(size=(300, 4)), columns=list(FEATURES))
    profile = build_profile(training, [Column(feature, "number") for feature in FEATURES])
    schema = {
        "name": "input",
        "datatype": "FP32",
        "shape": [-1, 4],
        "features": [{"name": f, "dtype": "FP32", "mean": 0.0, "std": 1.0} for f in FEATURES],
    }
    version = store.publish_version(
        name,
        {
            "model.onnx": classifier_onnx(1, features=4, classes=3),
            "signature.json": json.dumps(classifier_signature(features=4, classes=3)).encode(),
            "input_schema.json": json.dumps(schema).encode(),
            **({"profile.json": json.dumps(profile).encode()} if with_profile else {}),
        },
        run_id="run-1",
    )
    registry = open_registry(spec.registry.backend, spec.registry.connection)
    registry.register(
        RegistrationRequest(
            model_name=name,
            version=version.version,
            source_uri=version.uri,
            model_uri=f"{version.uri}/model.onnx",
            metrics={"accuracy": 0.9},
            data_source="builtin:iris",
            spec_hash="ab12",
            dag_id=name,
            run_id="run-1",
            onnx_opset=17,
            files=dict(version.files),
        )
    )
    path = env / f"{name}.yaml"
    path.write_text(spec_text(name, extra))
    return spec, str(path), store.root_uri, schema, version.version


def log_requests(
    store_uri: str, name: str, version: int, schema: dict, inputs: np.ndarray, batch: int = 8
) -> None:
    """Answer `inputs` with the version's model and hand each batch to the server's request log writer."""
    import onnxruntime

    from mlspec.request_logs import log_folder_uri
    from mlspec.server.request_log import RequestLogs
    from mlspec.server.sources import StorageRoots

    session = onnxruntime.InferenceSession(
        classifier_onnx(1, features=4, classes=3), providers=["CPUExecutionProvider"]
    )
    logs = RequestLogs(StorageRoots.parse([store_uri]), None)
    logs.configure(name, {"uri": log_folder_uri(store_uri, name), "sample": 1.0, "max_mb_per_hour": 10})
    for start in range(0, len(inputs), batch):
        x = inputs[start : start + batch].astype(np.float32)
        probabilities = session.run(["probabilities"], {"input": x})[0]
        answer = {"probabilities": probabilities, "label": probabilities.argmax(axis=1)}
        logs.offer(name, str(version), f"req-{start}", {"input": x}, answer, input_schema=schema)
    logs.close()


def run(capsys, *argv: str) -> tuple[int, str, str]:
    from mlspec.cli import main

    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_shifted_live_inputs_are_drift_and_exit_1(env, capsys):
    spec, path, store_uri, schema, version = publish_with_profile(env, "drift-shifted")
    live = np.random.default_rng(1).normal(size=(200, 4))
    live[:, 2] += 3.0  # petal_length comes in another unit
    log_requests(store_uri, spec.name, version, schema, live)
    out_dir = env / "report"
    code, out, err = run(
        capsys, "drift", path, "--version", str(version), "--since", "1h", "--out", str(out_dir)
    )
    assert code == 1, out + err
    assert "200 logged rows" in out and "DRIFT: 1 of 4 columns drifted (petal_length)" in out
    assert any(line.split()[:1] == ["petal_length"] and "DRIFTED" in line for line in out.splitlines())
    drift = json.loads((out_dir / "drift.json").read_text())
    assert drift["drifted_columns"] == ["petal_length"] and drift["outcome"] == "drifted"
    assert drift["current"]["rows"] == 200 and drift["reference"] == {"version": version, "rows": 300}
    assert (out_dir / "drift.png").read_bytes().startswith(b"\x89PNG")
    assert f"drift.json and drift.png are in {out_dir}" in out


def test_live_inputs_like_the_training_data_are_no_drift_and_exit_0(env, capsys):
    """Defaults: the registry's production version, the last 24 h, a folder under MLSPEC_HOME."""
    from mlspec.registry import open_registry

    spec, path, store_uri, schema, version = publish_with_profile(env, "drift-steady")
    open_registry(spec.registry.backend, spec.registry.connection).set_production(spec.name, version, "test")
    log_requests(store_uri, spec.name, version, schema, np.random.default_rng(2).normal(size=(200, 4)))
    code, out, err = run(capsys, "drift", path)
    assert code == 0, out + err
    assert "no drift: 0 of 4 columns drifted, 0 schema problem(s)" in out
    folder = env / "home" / "drift" / spec.name
    (report,) = folder.iterdir()
    assert report.name.startswith(f"v{version}-") and (report / "drift.json").is_file()


def test_no_logged_rows_is_exit_2_with_the_next_step(env, capsys):
    _, path, _, _, version = publish_with_profile(env, "drift-silent")
    code, out, err = run(capsys, "drift", path, "--version", str(version))
    assert code == 2
    assert f"no request of drift-silent version {version} was logged since" in err
    assert "serving.log_requests" in err and "--since 7d" in err


def test_no_production_version_names_the_flag(env, capsys):
    _, path, _, _, _ = publish_with_profile(env, "drift-unpromoted")
    code, _, err = run(capsys, "drift", path)
    assert code == 2
    assert "has no production version" in err and "--version N" in err


def test_a_bad_since_is_exit_2(env, capsys):
    _, path, _, _, version = publish_with_profile(env, "drift-since")
    code, _, err = run(capsys, "drift", path, "--version", str(version), "--since", "yesterday")
    assert code == 2 and "--since 'yesterday' is neither a duration" in err


def test_an_unexpected_error_is_exit_2_never_the_drift_code(env, capsys, monkeypatch):
    """Scripts read exit 1 as drift: a registry's own exception must not end the command with Python's 1."""
    import mlspec.cli

    _, path, _, _, version = publish_with_profile(env, "drift-crash")

    def registry_down(*args, **kwargs):
        raise ConnectionResetError("the registry closed the connection")

    monkeypatch.setattr(mlspec.cli, "live_drift", registry_down)
    code, _, err = run(capsys, "drift", path, "--version", str(version))
    assert code == 2 and "ConnectionResetError: the registry closed the connection" in err


def test_the_reader_takes_the_newest_parts_up_to_its_row_limit(env):
    from mlspec.request_logs import read_since
    from mlspec.storage import open_store

    spec, _, store_uri, schema, version = publish_with_profile(env, "drift-parts")
    for seed in range(3):  # each writer writes its part when closed: three parts, oldest first
        log_requests(store_uri, spec.name, version, schema, np.full((8, 4), float(seed)), batch=8)
    store = open_store(spec.storage.uri)
    since = datetime.now(UTC) - timedelta(hours=1)
    every = read_since(store, spec.name, version, since)
    assert len(every.parts) == 3 and len(every.frame) == 24 and every.parts_left_out == 0
    newest = read_since(store, spec.name, version, since, max_rows=8)
    assert newest.parts == every.parts[-1:] and newest.parts_left_out == 2
    assert (newest.frame["petal_width"] == 2.0).all()
    assert read_since(store, spec.name, version, datetime.now(UTC) + timedelta(minutes=1)).frame.empty


def send_live(url: str, name: str, live: np.ndarray, prefix: str) -> None:
    """`live` as requests of 8 rows to the model's own URL (what the server logs), each with its id."""
    import httpx

    with httpx.Client(base_url=url, timeout=30) as client:
        for start in range(0, len(live), 8):
            x = live[start : start + 8].astype(np.float32)
            body = {
                "id": f"{prefix}-{start}",
                "inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}],
            }
            assert client.post(f"/v2/models/{name}/infer", json=body).status_code == 200


def test_a_deployed_version_logs_its_traffic_and_mlspec_drift_finds_the_shift(env, capsys, monkeypatch):
    """The whole path: deploy (the spec's serving.log_requests configures the logging of a real `mlspec serve`),
    live requests over HTTP, the server's Parquet parts, then `mlspec drift SPEC` on production. The server runs
    with another MLSPEC_HOME than the deploy and `mlspec drift`: the spec's relative `file://models` store must
    still be the one both read. A deploy of the spec without serving.log_requests stops the logging."""
    from tests.fixtures.mlspec_serve import model_server_process
    from tests.fixtures.server_testkit import TEST_TOKEN

    from mlspec.operations import deploy_version
    from mlspec.request_logs import read_since
    from mlspec.storage import open_store

    monkeypatch.setenv("MLSPEC_REQUEST_LOG_FLUSH_S", "0.2")
    monkeypatch.setenv("MLSPEC_SERVER_TOKEN", TEST_TOKEN)
    (env / "server-state").mkdir()
    with model_server_process(env / "server-state", {"MLSPEC_HOME": str(env / "server-home")}) as url:
        monkeypatch.setenv("MLSPEC_SERVER_URL", url)
        extra = "serving:\n  log_requests: {sample: 1.0, max_mb_per_hour: 10}\n"
        spec, path, _, _, version = publish_with_profile(env, "drift-deployed", extra)
        deploy_version(spec, version)
        live = np.random.default_rng(3).normal(size=(200, 4))
        live[:, 2] += 3.0
        send_live(url, spec.name, live, "live")
        store, since = open_store(spec.storage.uri), datetime.now(UTC) - timedelta(hours=1)
        deadline = time.monotonic() + 20
        while len(read_since(store, spec.name, version, since).frame) < 200:
            assert time.monotonic() < deadline, "the server did not write the live requests into the spec's store"
            time.sleep(0.1)
        code, out, err = run(capsys, "drift", path)
        # The spec without log_requests, deployed again: the server stops writing the model's requests.
        deploy_version(spec_for(spec.name), version)
        send_live(url, spec.name, live, "after")
        quiet_until = time.monotonic() + 1.0  # five of the writer's flushes
        while time.monotonic() < quiet_until:
            assert len(read_since(store, spec.name, version, since).frame) == 200, "logging went on"
            time.sleep(0.1)
    assert not (env / "server-home" / "models").exists()  # nothing went to a store below the server's own home
    assert code == 1, out + err
    # 200 rows: the deploy's smoke test asked the version's own URL, which is not logged
    assert (
        f"{spec.name} version {version}: 200 logged rows" in out
        and "DRIFT:" in out
        and "(petal_length)" in out
    )


def test_a_version_without_a_profile_is_exit_2_saying_why(env, capsys):
    spec, path, store_uri, schema, version = publish_with_profile(env, "drift-unprofiled", with_profile=False)
    log_requests(store_uri, spec.name, version, schema, np.zeros((8, 4)))
    code, _, err = run(capsys, "drift", path, "--version", str(version))
    assert code == 2 and "was published without profile.json, so there is nothing to compare" in err
    assert "more than 100 values (images)" in err

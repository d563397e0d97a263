"""`mlspec run` from a plain shell (README's first steps, outside make): no AIRFLOW_HOME and no Airflow dags
folder in the environment. The command must point Airflow at ./.airflow and the repository's dags folder before
Airflow reads its configuration (it does once, at import), or the run fails before any task: "the dag is not
serialized", "no such table: task_instance"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.fixtures.paths import SPECS

pytestmark = pytest.mark.e2e


def test_mlspec_run_works_in_a_shell_without_airflow_settings(model_server, tmp_path):
    (tmp_path / "specs").mkdir()
    spec = tmp_path / "specs" / "iris-forest.yaml"
    # A model name of its own: the session's model server already serves other tests' iris-forest versions.
    text = (SPECS / "iris-forest.yaml").read_text().replace("name: iris-forest", "name: fresh-shell")
    spec.write_text(text.replace("n_estimators: 100", "n_estimators: 5"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "MLSPEC_SPECS_DIR"}
    env["MLSPEC_HOME"] = str(tmp_path / "home")

    result = subprocess.run(
        [Path(sys.executable).parent / "mlspec", "run", "specs/iris-forest.yaml"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert f"initialising Airflow's metadata DB in {tmp_path / '.airflow'}" in output
    assert "fresh-shell" in result.stdout and "accuracy" in result.stdout, result.stdout
    assert (tmp_path / ".airflow" / "airflow.db").is_file()

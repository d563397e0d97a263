"""mlspec registers with Airflow exactly once, however Airflow is pointed at it.

Airflow loads plugins from its plugins folder and from the `airflow.plugins` entry points of installed
packages. mlspec is a package with an entry point (pyproject.toml), installed by `make` (editable), by
pip and in the docker image; the docker-compose stack and the test session also point the plugins folder
at the package's source (plugins/), which plugins/.airflowignore hides from that scan. Each case runs in
a fresh interpreter: Airflow caches what it loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.fixtures.paths import REPO

PROBE = """
import json, sys
from airflow import plugins_manager
info = plugins_manager.get_plugin_info()
print(json.dumps({
    "plugins": [[p["name"], str(p["source"])] for p in info],
    "errors": plugins_manager.get_import_errors(),
    # What a scan of plugins/ imports as top-level modules (a module named like a library shadows it).
    "top_level": sorted(m for m in ("plugin", "cli", "compiler", "keras_adapter") if m in sys.modules),
}))
"""


def _probe(tmp_path: Path, **settings: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    env.update(AIRFLOW_HOME=str(tmp_path / "airflow"), AIRFLOW__CORE__LOAD_EXAMPLES="False", **settings)
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=180
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


CASES = {
    # make up, make demo, a pip-installed deployment: Airflow's default plugins folder, the entry point.
    "default-plugins-folder": {},
    # tests/conftest.py and docker-compose.yaml (with PYTHONPATH): the plugins folder is the source.
    "plugins-folder-is-the-source": {"AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins")},
    "same-with-regexp-ignore-syntax": {
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX": "regexp",
    },
}


@pytest.mark.parametrize("case", list(CASES))
def test_mlspec_registers_once_through_its_entry_point(tmp_path, case):
    found = _probe(tmp_path, **CASES[case])
    assert found["errors"] == {}, "a plugin import error would show on the UI's first screen"
    assert [name for name, _ in found["plugins"]] == ["mlspec"]
    assert "mlspec.plugin:MlspecPlugin" in found["plugins"][0][1], found["plugins"]
    assert found["top_level"] == []


def test_the_compose_stack_mounts_the_ignore_file_with_the_source():
    """docker-compose.yaml points the plugins folder at the mounted ./plugins; .airflowignore goes with it."""
    compose = (REPO / "docker-compose.yaml").read_text()
    assert "./plugins:/opt/airflow/plugins" in compose
    assert "AIRFLOW__CORE__PLUGINS_FOLDER: /opt/airflow/plugins" in compose
    assert (REPO / "plugins" / ".airflowignore").read_text().splitlines()[-1] == "mlspec"
    assert 'mlspec = "mlspec.plugin:MlspecPlugin"' in (REPO / "pyproject.toml").read_text()

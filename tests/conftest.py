"""Test-session setup shared by every test: an isolated Airflow home and mlspec home, never the user's.

The fixtures several folders use live in tests/fixtures/ and are registered below (`pytest_plugins`);
tests import helpers from tests.fixtures.* or their folder's *_testkit module, never from a conftest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# tests/fixtures' modules are imported here before pytest loads them as plugins: let it rewrite their asserts.
pytest.register_assert_rewrite("tests.fixtures")

from tests.fixtures.paths import REPO  # noqa: E402

pytest_plugins = [
    "tests.fixtures.paths",
    "tests.fixtures.ports",
    "tests.fixtures.home",
    "tests.fixtures.moto_s3",
    "tests.fixtures.mlflow_server",
    "tests.fixtures.model_server",
    "tests.fixtures.mlspec_serve",
    "tests.fixtures.airflow_stack",
    "tests.fixtures.browser",
    "tests.fixtures.postgres",
]

# Airflow reads its configuration when first imported, so this must happen before any test module imports it.
# Guarded: should this file be imported a second time, a second setup would point the environment at a
# new, unmigrated Airflow home.
if "MLSPEC_TEST_SESSION_DIR" not in os.environ:
    os.environ["MLSPEC_TEST_SESSION_DIR"] = tempfile.mkdtemp(prefix="mlspec-tests-")
_SESSION_DIR = Path(os.environ["MLSPEC_TEST_SESSION_DIR"])
os.environ["AIRFLOW_HOME"] = str(_SESSION_DIR / "airflow")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ["MLSPEC_HOME"] = str(_SESSION_DIR / "mlspec-home")
os.environ["MLSPEC_SPEC_CACHE"] = str(_SESSION_DIR / "spec-cache")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.pop("MLSPEC_SPECS_DIR", None)
os.environ.pop("MLSPEC_SERVER_URL", None)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Airflow's SQLite metadata DB, migrated once per test session (needed by dag.test)."""
    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    airflow = Path(sys.executable).parent / "airflow"
    result = subprocess.run(
        [str(airflow), "db", "migrate"], capture_output=True, text=True, env=os.environ.copy()
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return home


"""`mlspec lint`, `schema` and `status` never build a DAG, so the CLI loads Airflow (about 2 s of imports)
only for `render` and `run`."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_cli_leaves_airflow_out() -> None:
    probe = "import sys, mlspec.cli, mlspec.dagbag; print(sorted(m for m in sys.modules if m.split('.')[0] == 'airflow'))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]", result.stdout

"""DAG parsing stays light: no module-level import of a heavy library anywhere in the package (ruff TID253)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.fixtures.paths import REPO


def test_no_heavy_library_is_imported_at_module_level():
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run(
        [str(ruff), "check", "--select", "TID253,F401,F811,F841", "--no-cache", "plugins", "dags"],
        capture_output=True, text=True, cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr

"""Fixtures for the docker-compose tests: the parsed compose file and every spec in specs/."""

from __future__ import annotations

from pathlib import Path

import compose_stack
import pytest


@pytest.fixture(autouse=True)
def mlspec_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "mlspec-home"
    monkeypatch.setenv("MLSPEC_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def compose() -> dict:
    return compose_stack.load()


@pytest.fixture(scope="session")
def services(compose: dict) -> dict[str, dict]:
    return compose["services"]


@pytest.fixture(scope="session")
def specs() -> dict[str, object]:
    """file name -> ModelSpec for every spec file in specs/ (each must load: `mlspec lint` checks why)."""
    from mlspec.dagbag import spec_files
    from mlspec.spec import load_spec

    return {path.name: load_spec(path) for path in spec_files(compose_stack.SPECS_DIR)}

"""The rollout scenarios: a real model server, real traffic, a real Prometheus."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _own_mlspec_home(mlspec_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test here gets its own MLSPEC_HOME, and no MLSPEC_SERVER_URL from the environment."""
    monkeypatch.delenv("MLSPEC_SERVER_URL", raising=False)

"""Fixtures for the ml tests: a tmp MLSPEC_HOME, a file:// reader and the digits data set."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlspec.storage import resolve_file_uri


@pytest.fixture(autouse=True)
def mlspec_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "mlspec-home"
    home.mkdir()
    monkeypatch.setenv("MLSPEC_HOME", str(home))
    return home


@pytest.fixture
def read_file_uri() -> Callable[[str], bytes]:
    """What an operator passes as read_bytes for file:// sources: the bytes of the resolved path."""

    def read(uri: str) -> bytes:
        return resolve_file_uri(uri).read_bytes()

    return read


@pytest.fixture(scope="session")
def digits_dataset() -> Any:
    from mlspec.ml.data import load_source, split

    def no_reads(uri: str) -> bytes:
        raise AssertionError(f"builtin sources must not be read through read_bytes ({uri})")

    x, y, class_names, feature_names, *_ = load_source(
        "builtin:digits", fmt=None, features=None, label=None, read_bytes=no_reads
    )
    return split(
        x,
        y,
        validation=0.1,
        test=0.2,
        seed=42,
        stratify=True,
        class_names=class_names,
        feature_names=feature_names,
    )

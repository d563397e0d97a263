"""What the tests of the make targets share."""

from __future__ import annotations

import importlib.util

import pytest
from tests.fixtures.paths import REPO


@pytest.fixture(scope="module")
def local_stack():
    """scripts/local_stack.py (what `make up`, `make down` and `make serve-bg` run), imported as a module."""
    spec = importlib.util.spec_from_file_location("local_stack", REPO / "scripts" / "local_stack.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

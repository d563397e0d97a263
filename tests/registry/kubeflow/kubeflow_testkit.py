"""Constants shared by the Kubeflow Model Registry tests and their conftest (import this, never conftest)."""

from __future__ import annotations

TOKEN = "test-bearer-token-1234"

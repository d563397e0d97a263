"""Fixtures for the serving tests: a real mlspec model server on 127.0.0.1 and published versions."""

from __future__ import annotations

import sys
from pathlib import Path


# The ONNX model builders and the in-thread server live beside the server tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from server_fixtures import mlspec_home, publish_classifier, server, start_server, store_root  # noqa: E402,F401



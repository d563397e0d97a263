"""Fixtures for the model server tests: real ONNX models, published version folders, real servers."""

from __future__ import annotations

import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).parent))  # server_testkit, also used by tests/serving

from server_fixtures import mlspec_home, publish_classifier, server, start_server, store_root  # noqa: E402,F401



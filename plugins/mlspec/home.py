"""Where the embedded defaults keep their state: MLSPEC_HOME (default ~/.mlspec)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_SERVER_URL = "http://127.0.0.1:8555"


def mlspec_home() -> Path:
    home = Path(os.environ.get("MLSPEC_HOME") or Path.home() / ".mlspec").expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def local_server_url() -> str:
    """The local model server that `serving.platform: local` deploys to."""
    return os.environ.get("MLSPEC_SERVER_URL", DEFAULT_SERVER_URL).rstrip("/")

"""Where the embedded defaults keep their state: MLSPEC_HOME (default ~/.mlspec)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_SERVER_URL = "http://127.0.0.1:8555"
# The model server's admin (and, with `--auth token`, inference) bearer token.
SERVER_TOKEN_ENV = "MLSPEC_SERVER_TOKEN"
SERVER_TOKEN_FILE = "token"


def mlspec_home() -> Path:
    home = Path(os.environ.get("MLSPEC_HOME") or Path.home() / ".mlspec").expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def local_server_url() -> str:
    """The local model server that `serving.platform: local` deploys to."""
    return os.environ.get("MLSPEC_SERVER_URL", DEFAULT_SERVER_URL).rstrip("/")


def server_state_dir() -> Path:
    """The local model server's state folder (`make serve` uses it): state.json and the token file."""
    return mlspec_home() / "server"


def server_token_file(state_dir: Path | None = None) -> Path:
    return Path(state_dir or server_state_dir()) / SERVER_TOKEN_FILE


def read_server_token(state_dir: Path | None = None) -> str | None:
    """The token the local model server wants: MLSPEC_SERVER_TOKEN, else the token file the server
    wrote into its state folder (MLSPEC_HOME/server/token); None when there is neither."""
    token = os.environ.get(SERVER_TOKEN_ENV, "").strip()
    if token:
        return token
    try:
        return server_token_file(state_dir).read_text().strip() or None
    except OSError:
        return None

"""Fixtures shared by the server and serving tests: published classifier versions and real servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from server_testkit import RunningServer, classifier_onnx, classifier_signature, publish


@pytest.fixture(autouse=True)
def mlspec_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "mlspec-home"
    monkeypatch.setenv("MLSPEC_HOME", str(home))
    monkeypatch.delenv("MLSPEC_SERVER_URL", raising=False)
    return home


@pytest.fixture
def store_root(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture
def publish_classifier(store_root: Path) -> Callable[[str, int], str]:
    counter = iter(range(1000))

    def _publish(name: str, seed: int) -> str:
        run_id = f"run-{next(counter)}"
        return publish(store_root, name, classifier_onnx(seed), classifier_signature(), run_id)

    return _publish


@pytest.fixture
def start_server() -> Iterator[Callable[..., RunningServer]]:
    from mlspec.server.app import create_app

    servers: list[RunningServer] = []

    def _start(state_dir: Path | None = None, app=None, **kwargs) -> RunningServer:
        server = RunningServer(app if app is not None else create_app(state_dir, **kwargs))
        servers.append(server)
        return server

    yield _start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server) -> RunningServer:
    return start_server()

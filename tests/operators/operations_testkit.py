"""Operations against real parts, in this process: the embedded MLflow registry, a file store under
MLSPEC_HOME and the mlspec model server (uvicorn in a thread on 127.0.0.1)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fixtures.paths import SPECS
from tests.fixtures.server_testkit import RunningServer, classifier_onnx, classifier_signature


def spec_text(name: str, extra: str = "") -> str:
    """iris-forest's spec under another name (only its name, store, registry and serving matter here)."""
    return (SPECS / "iris-forest.yaml").read_text().replace("name: iris-forest", f"name: {name}") + extra


def spec_for(name: str, extra: str = ""):
    from mlspec.spec import load_spec_text

    return load_spec_text(spec_text(name, extra), f"{name}.yaml")


@dataclass
class Published:
    """Versions published to the spec's store and registered in its registry, none production yet."""

    spec: Any
    uris: dict[int, str]

    @property
    def name(self) -> str:
        return self.spec.name

    def registry(self):
        from mlspec.registry import open_registry

        return open_registry(self.spec.registry.backend, self.spec.registry.connection)

    def folder(self, version: int) -> Path:
        from mlspec.storage import resolve_file_uri

        return resolve_file_uri(self.uris[version])


def publish_versions(name: str, count: int, extra: str = "") -> Published:
    from mlspec.registry.base import RegistrationRequest
    from mlspec.storage import open_store

    spec = spec_for(name, extra)
    store = open_store(spec.storage.uri, spec.storage.connection)
    published = Published(spec, {})
    for seed in range(1, count + 1):
        version = store.publish_version(
            name,
            {"model.onnx": classifier_onnx(seed), "signature.json": json.dumps(classifier_signature()).encode()},
            run_id=f"run-{seed}",
        )
        published.uris[version.version] = version.uri
        published.registry().register(RegistrationRequest(
            model_name=name, version=version.version, source_uri=version.uri, model_uri=f"{version.uri}/model.onnx",
            metrics={"accuracy": 0.9}, data_source="builtin:iris", spec_hash="ab12", dag_id=name,
            run_id=f"run-{seed}", onnx_opset=17, files=dict(version.files),
        ))
    return published


def start_server(home: Path, monkeypatch, state_dir: Path | None = None) -> RunningServer:
    """A model server that loads from below `home`; MLSPEC_SERVER_URL points at it (the configured server)."""
    from mlspec.server.app import ServerConfig, create_app

    server = RunningServer(create_app(state_dir, config=ServerConfig(allow_roots=(home.as_uri(),))))
    monkeypatch.setenv("MLSPEC_SERVER_URL", server.url)
    return server


def served(spec) -> int | None:
    from mlspec.serving import open_local_serving

    return open_local_serving(spec.serving.url).served_version(spec.name)


def unique(request) -> str:
    """A model name from the test's name (a DNS-1123 label)."""
    return "ops-" + request.node.name.removeprefix("test_").replace("_", "-")[:40].rstrip("-")

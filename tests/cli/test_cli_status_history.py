"""`mlspec status --strict` fails on any disagreement between the registry and serving; `mlspec history`
prints the audit trail of production. In-process: embedded MLflow, a file store, the model server."""

from __future__ import annotations

import hashlib
import json

import pytest
from tests.fixtures.ports import free_port
from tests.fixtures.server_testkit import TEST_TOKEN, RunningServer, classifier_onnx
from tests.operators.operations_testkit import publish_versions, spec_text


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("MLSPEC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLSPEC_SERVER_TOKEN", TEST_TOKEN)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def server(env, monkeypatch):
    from mlspec.server.app import ServerConfig, create_app

    running = RunningServer(create_app(None, config=ServerConfig(allow_roots=(env.as_uri(),))))
    monkeypatch.setenv("MLSPEC_SERVER_URL", running.url)
    yield running
    running.stop()


def production_of(env, name: str, versions: int = 2):
    from mlspec.operations import deploy_version

    model = publish_versions(name, versions)
    deploy_version(model.spec, 1)
    path = env / f"{name}.yaml"
    path.write_text(spec_text(name))
    return model, str(path)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    from mlspec.cli import main

    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_strict_status_passes_when_serving_follows_the_registry(env, server, capsys):
    _, path = production_of(env, "strict-ok")
    code, out, err = run(capsys, "status", path, "--strict")
    assert code == 0, err
    assert "serving follows the registry" in out


def test_strict_status_fails_when_serving_is_unreachable(env, server, capsys, monkeypatch):
    _, path = production_of(env, "strict-down")
    monkeypatch.setenv("MLSPEC_SERVER_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    code, out, err = run(capsys, "status", path, "--strict")
    assert code == 1
    assert "serving could not be asked which version it serves" in err and "mlspec serve" in err
    assert run(capsys, "status", path)[0] == 0  # without --strict it only reports


def test_strict_status_fails_when_production_was_rewritten_with_its_manifest(env, server, capsys):
    """The store's model and manifest rewritten consistently: the server would load them; the registry's
    sha256 says they are not what was published."""
    model, path = production_of(env, "strict-rewritten")
    folder = model.folder(1)
    other = classifier_onnx(99)
    (folder / "model.onnx").write_bytes(other)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["model.onnx"] = hashlib.sha256(other).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    code, out, err = run(capsys, "status", path, "--strict")
    assert code == 1
    assert "model.onnx at" in err and "does not match the sha256 the registry recorded" in err
    assert "FILES:" in out


def test_strict_status_fails_on_drift(env, server, capsys):
    from mlspec.serving import open_local_serving

    model, path = production_of(env, "strict-drift")
    open_local_serving(None).deploy(model.name, 2, model.uris[2])  # by hand, behind the registry's back
    code, out, err = run(capsys, "status", path, "--strict")
    assert code == 1 and "DRIFT" in out
    assert "serving answers with version 2, the registry's production version is 1" in err


def test_history_prints_the_timeline(env, server, capsys):
    from mlspec.operations import Trigger, deploy_version, rollback

    model, path = production_of(env, "history")
    deploy_version(model.spec, 2, trigger=Trigger("alice", "manual__1", "http://localhost:8080/dags/d/runs/manual__1"))
    rollback(model.spec)
    code, out, _ = run(capsys, "history", path)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "history: 3 change(s) of production, oldest first"
    assert "deployed               nothing -> v1  by cli:" in lines[1]
    assert "deployed               v1 -> v2  by alice  run http://localhost:8080/dags/d/runs/manual__1" in lines[3]
    assert "rolled back            v2 -> v1" in lines[5] and lines[6].strip() == "rollback from version 2"
    code, out, _ = run(capsys, "history", path, "--json")
    assert [c["action"] for c in json.loads(out)] == ["deploy", "deploy", "rollback"]


def test_history_on_a_fresh_home_reads_nothing_and_creates_no_registry(env, capsys):
    """A read never creates the embedded MLflow database (the first task does, under its lock)."""
    path = env / "fresh.yaml"
    path.write_text(spec_text("fresh"))
    code, out, err = run(capsys, "history", str(path))
    assert code == 0, err
    assert "no change of production is recorded yet" in out
    assert not (env / "home" / "mlflow" / "mlflow.db").exists()

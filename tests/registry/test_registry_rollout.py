"""A candidate version's rollout record and rollout command on the registry (issue 16): written by
record_rollout / set_rollout_command and read back as VersionRecord.rollout / rollout_command, on the embedded
MLflow registry, a real `mlflow server` and the Kubeflow Model Registry (the fake held to its published contract);
a record too long for a tag is cut (oldest steps' checks and messages first, never the state)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fixtures.paths import contracts_root, require_contract
from tests.registry.kubeflow.fake_model_registry import CONTRACT_FILES, FakeModelRegistry
from tests.registry.kubeflow.kubeflow_testkit import TOKEN
from tests.registry.mlflow.mlflow_testkit import tiny_onnx_model

from mlspec.errors import RegistryError
from mlspec.registry.base import (
    ROLLOUT_COMMAND_TAG,
    ROLLOUT_TAG,
    ROLLOUT_TAG_LIMIT,
    RegistrationRequest,
    json_object_tag,
    rollout_command_json,
    rollout_json,
)
from mlspec.registry.kubeflow import KubeflowRegistry
from mlspec.registry.mlflow_registry import MlflowRegistry
from mlspec.storage import open_store


def a_step(number: int, *, checks: int = 3, message: str = "") -> dict:
    return {
        "kind": "canary", "percent": 10 * number, "traffic": {"2": 100 - 10 * number, "3": 10 * number}, "shadow": 100,
        "started": f"2026-12-07T14:{number:02d}:00Z", "ended": f"2026-12-07T14:{number:02d}:30Z", "outcome": "passed",
        "requests": 240 + number,
        "checks": [{"gate": "p95_ms", "value": 3.1 + i, "limit": 250, "passed": True} for i in range(checks)],
        "message": message or f"step {number} passed",
    }


def a_record(steps: list[dict], state: str = "running") -> dict:
    return {"version": 3, "production": 2, "state": state, "started": "2026-12-07T14:00:00Z",
            "updated": "2026-12-07T14:30:00Z", "on_fail": "rollback", "steps": steps}


# -- the JSON a tag holds ---------------------------------------------------------------------------------
def test_a_record_that_fits_is_written_whole():
    record = a_record([a_step(1), a_step(2)])
    assert json.loads(rollout_json(record)) == record


def test_the_oldest_steps_lose_their_checks_and_messages_first():
    record = a_record([a_step(n, checks=12, message="x" * 200) for n in range(1, 6)], state="rolled_back")
    assert len(json.dumps(record)) > ROLLOUT_TAG_LIMIT
    text = rollout_json(record)
    cut = json.loads(text)
    assert len(text) <= ROLLOUT_TAG_LIMIT and cut["state"] == "rolled_back" and len(cut["steps"]) == 5
    kept = [step for step in cut["steps"] if not step.get("cut")]
    assert kept and kept == record["steps"][-len(kept):]  # the newest steps keep every check
    for step in cut["steps"][: 5 - len(kept)]:
        assert step["cut"] is True and "checks" not in step and "message" not in step
        assert step["outcome"] == "passed" and step["requests"] > 240 and step["traffic"]


def test_many_steps_drop_the_oldest_whole_and_count_them_but_keep_the_state():
    steps = [a_step(n % 10 + 1) | {"by": "alice" * 100} for n in range(60)]
    text = rollout_json(a_record(steps, state="held") | {"note": "y" * 6000})
    cut = json.loads(text)
    assert len(text) <= ROLLOUT_TAG_LIMIT
    assert cut["state"] == "held" and cut["version"] == 3 and cut["production"] == 2
    assert cut["steps_cut"] + len(cut["steps"]) == 60 and cut["steps"]
    assert len(cut["note"]) == 300 and cut["note"].endswith("...") and len(cut["steps"][-1]["by"]) == 300


def test_a_command_is_one_of_the_rollout_commands():
    text = rollout_command_json({"command": "pause", "actor": "cli:alice", "at": "2026-12-07T14:05:00Z"})
    assert json.loads(text) == {"command": "pause", "actor": "cli:alice", "at": "2026-12-07T14:05:00Z"}
    with pytest.raises(ValueError, match="unknown rollout command 'stop'; one of pause, resume, abort"):
        rollout_command_json({"command": "stop", "actor": "bob", "at": ""})


def test_a_tag_that_is_not_a_json_object_reads_as_empty_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="mlspec.registry.base"):
        assert json_object_tag({ROLLOUT_TAG: '{"state": "runn'}, ROLLOUT_TAG, "model m version 3") == {}
        assert json_object_tag({ROLLOUT_TAG: "[1, 2]"}, ROLLOUT_TAG, "model m version 3") == {}
    assert "model m version 3: tag mlspec.rollout is not a JSON object; read as empty" in caplog.text
    assert json_object_tag({}, ROLLOUT_TAG, "model m version 3") == {}


# -- both backends ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def module_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One MLSPEC_HOME for the module: the embedded MLflow database is migrated once."""
    home = tmp_path_factory.mktemp("mlspec-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLSPEC_HOME", str(home))
        for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
                     "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            mp.delenv(name, raising=False)
        yield home


class Backend:
    """A registry with one version of a model registered, and a way to write a raw tag beside mlspec's."""

    def __init__(self, registry, name: str, version: int, write_raw) -> None:
        self.registry, self.name, self.version, self.write_raw = registry, name, version, write_raw


def _mlflow(connection: str | None, home: Path, name: str) -> Backend:
    published = open_store((home / "models").as_uri()).publish_version(
        name, {"model.onnx": tiny_onnx_model(2.0)}, run_id="manual__1"
    )
    registry = MlflowRegistry(connection)
    entry = registry.register(RegistrationRequest(
        model_name=name, version=published.version, source_uri=published.uri, model_uri=f"{published.uri}/model.onnx",
        metrics={"accuracy": 0.97}, data_source="builtin:digits", spec_hash="ab12", dag_id=name,
        run_id=published.run_id, onnx_opset=17, files=dict(published.files),
    ))

    def write_raw(key: str, value: str) -> None:
        registry.client.set_model_version_tag(name, entry.registry_version, key, value)

    return Backend(registry, name, published.version, write_raw)


def _kubeflow(fake: FakeModelRegistry, name: str) -> Backend:
    registry = KubeflowRegistry.from_url(fake.url, token=TOKEN)
    registry.register(RegistrationRequest(
        model_name=name, version=3, source_uri=f"s3://models/{name}/3", model_uri=f"s3://models/{name}/3/model.onnx",
        metrics={"accuracy": 0.97}, data_source="builtin:digits", spec_hash="ab12", dag_id=name,
        run_id="manual__1", onnx_opset=17, files={"model.onnx": "ab" * 32},
    ))

    def write_raw(key: str, value: str) -> None:
        found = registry.client.find("/model_version", {"externalId": f"mlspec:{name}:3"})
        properties = dict(found["customProperties"]) | {key: {"metadataType": "MetadataStringValue", "string_value": value}}
        registry.client.patch(f"/model_versions/{found['id']}", {"customProperties": properties})

    return Backend(registry, name, 3, write_raw)


@pytest.fixture(params=["mlflow-embedded", "mlflow-server", "kubeflow"])
def backend(request: pytest.FixtureRequest, module_home: Path) -> Iterator[Backend]:
    name = f"{request.param}-{request.node.name.split('[')[0][5:35].replace('_', '-')}".rstrip("-")
    if request.param == "kubeflow":
        for contract in CONTRACT_FILES.values():
            require_contract(f"model-registry/{contract}")
        fake = FakeModelRegistry(contracts_root(), versions=("v1",), token=TOKEN).start()
        try:
            yield _kubeflow(fake, name)
        finally:
            fake.stop()
        assert fake.violations == [], fake.violations
        return
    if request.param == "mlflow-server":
        server = request.getfixturevalue("mlflow_server")
        monkeypatch = request.getfixturevalue("monkeypatch")
        monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_ROLLOUT", server.connection_json())
        yield _mlflow("mlflow_rollout", module_home, name)
        return
    yield _mlflow(None, module_home, name)


def test_the_record_and_the_command_read_back(backend: Backend):
    registry, name, version = backend.registry, backend.name, backend.version
    before = registry.version_record(name, version)
    assert (before.rollout, before.rollout_command) == ({}, {})

    first = a_record([a_step(1)])
    registry.record_rollout(name, version, first)
    registry.set_rollout_command(name, version, {"command": "pause", "actor": "cli:alice", "at": "2026-12-07T14:05:00Z"})
    second = a_record([a_step(1), a_step(2)], state="paused")
    registry.record_rollout(name, version, second)  # replaces the record, keeps the command

    record = registry.version_record(name, version)
    assert record.rollout == second
    assert record.rollout_command == {"command": "pause", "actor": "cli:alice", "at": "2026-12-07T14:05:00Z"}
    assert record.state == "candidate" and record.metrics == {"accuracy": 0.97}  # the other fields stay
    (listed,) = [v for v in registry.list_versions(name) if v.version == version]
    assert listed.rollout == second and listed.rollout_command["command"] == "pause"


def test_a_long_record_is_cut_to_fit_and_a_broken_one_reads_empty(backend: Backend, caplog):
    registry, name, version = backend.registry, backend.name, backend.version
    record = a_record([a_step(n, checks=12, message="z" * 300) for n in range(1, 8)], state="rolled_back")
    registry.record_rollout(name, version, record)
    stored = registry.version_record(name, version).rollout
    assert stored == json.loads(rollout_json(record)) and stored["state"] == "rolled_back"
    assert stored["steps"][0]["cut"] is True and stored["steps"][-1] == record["steps"][-1]

    backend.write_raw(ROLLOUT_TAG, "{not json")
    backend.write_raw(ROLLOUT_COMMAND_TAG, '"abort"')
    with caplog.at_level(logging.WARNING, logger="mlspec.registry.base"):
        broken = registry.version_record(name, version)
    assert (broken.rollout, broken.rollout_command) == ({}, {})
    assert "tag mlspec.rollout is not a JSON object" in caplog.text
    assert "tag mlspec.rollout.command is not a JSON object" in caplog.text


def test_writes_name_a_version_the_registry_does_not_have(backend: Backend):
    with pytest.raises(RegistryError, match="version 9"):
        backend.registry.record_rollout(backend.name, 9, a_record([]))
    with pytest.raises(RegistryError, match="version 9"):
        backend.registry.set_rollout_command(backend.name, 9, {"command": "abort", "actor": "bob", "at": ""})
    with pytest.raises(ValueError, match="unknown rollout command"):
        backend.registry.set_rollout_command(backend.name, backend.version, {"command": "halt", "actor": "bob", "at": ""})


def test_kubeflow_writes_the_command_again_when_a_racing_patch_dropped_it(module_home: Path, caplog):
    for contract in CONTRACT_FILES.values():
        require_contract(f"model-registry/{contract}")
    fake = FakeModelRegistry(contracts_root(), versions=("v1",), token=TOKEN).start()
    try:
        backend = _kubeflow(fake, "digits-race")
        registry = backend.registry
        registry.record_rollout("digits-race", 3, a_record([a_step(1)]))
        real_patch, raced = registry.client.patch, []

        def patch_then_race(path: str, body: dict) -> dict:
            stale = registry.client.get(path)["customProperties"]  # what the rollout's writer read before
            answer = real_patch(path, body)
            if not raced:  # the rollout's record, written from the map it read before the command
                raced.append(path)
                real_patch(path, {"customProperties": stale})
            return answer

        registry.client.patch = patch_then_race
        with caplog.at_level(logging.WARNING, logger="mlspec.registry.kubeflow"):
            registry.set_rollout_command("digits-race", 3, {"command": "abort", "actor": "alice", "at": "t"})
        assert raced and "was replaced by another writer's PATCH (try 1 of 5)" in caplog.text
        record = registry.version_record("digits-race", 3)
        assert record.rollout_command == {"command": "abort", "actor": "alice", "at": "t"}
        assert record.rollout["state"] == "running"
    finally:
        fake.stop()
    assert fake.violations == [], fake.violations

"""A rollout's record on the candidate's registry version (mlspec.rollout.record): its steps with traffic
and checks, the commands a person sends, acted on once, and which rollout of a model is active."""

from __future__ import annotations

import pytest
from tests.registry.mlflow.mlflow_testkit import tiny_onnx_model
from tests.rollout.rollout_testkit import gates

from mlspec.errors import RegistryError
from mlspec.registry import RegistrationRequest, open_registry
from mlspec.rollout.gates import step_verdict
from mlspec.rollout.metrics import StepMetrics
from mlspec.rollout.plan import Step, traffic_for
from mlspec.rollout.record import (
    RolloutRecord,
    active_rollout,
    load_record,
    pending_command,
    read_command,
    save_record,
    send_command,
    unfinished_rollouts,
)
from mlspec.storage import open_store


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """mlspec's embedded MLflow registry (SQLite under a module-wide MLSPEC_HOME) and its store."""
    home = tmp_path_factory.mktemp("mlspec-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLSPEC_HOME", str(home))
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            mp.delenv(name, raising=False)
        yield open_registry("mlflow", None), open_store((home / "models").as_uri())


@pytest.fixture
def registry(embedded):
    return embedded[0]


@pytest.fixture
def model(embedded, request) -> str:
    """A model named after the test, with versions 1-3 registered."""
    registry, store = embedded
    name = request.node.name.replace("_", "-")[:60]
    for scale in (1.0, 2.0, 3.0):
        published = store.publish_version(name, {"model.onnx": tiny_onnx_model(scale)}, run_id=f"run-{scale}")
        registry.register(RegistrationRequest(
            model_name=name, version=published.version, source_uri=published.uri,
            model_uri=f"{published.uri}/model.onnx", metrics={"accuracy": 0.9}, data_source="builtin:iris",
            spec_hash="ab12", dag_id=name, run_id=published.run_id, onnx_opset=17, description="", owner="",
            files=dict(published.files)))
    return name


def test_a_step_is_recorded_with_its_traffic_and_checks(registry, model):
    record = RolloutRecord(3, 2, "rollback")
    step = Step("shadow", 100, 5)
    record.add_step(step.kind, percent=step.percent, traffic=traffic_for(step, 2, 3))
    metrics = StepMetrics(240, 0, 3.1, 0.99, 240, 0)
    verdict, checks = step_verdict(metrics, gates(p95_ms=250, agreement=0.95, min_requests=200), 5, 5)
    record.finish_step("passed", metrics=metrics, checks=checks)
    save_record(registry, model, record)

    loaded = load_record(registry, model, 3)
    assert loaded.to_dict() == record.to_dict() and loaded.state == "running"
    [shadow] = loaded.steps
    assert {k: shadow[k] for k in ("kind", "percent", "traffic", "shadow", "outcome", "requests")} == {
        "kind": "shadow", "percent": 100, "traffic": {"2": 100, "3": 0}, "shadow": 100, "outcome": "passed",
        "requests": 240}
    assert shadow["checks"] == [
        {"gate": "min_requests", "value": 240, "limit": 200, "passed": True},
        {"gate": "p95_ms", "value": 3.1, "limit": 250, "passed": True},
        {"gate": "agreement", "value": 0.99, "limit": 0.95, "passed": True},
    ]
    assert shadow["started"] <= shadow["ended"] and verdict == "pass"
    assert load_record(registry, model, 1) is None and load_record(registry, model, 9) is None
    assert registry.version_record(model, 3).rollout == record.to_dict()  # what the Models page reads


def test_states_and_outcomes_are_the_vocabulary():
    record = RolloutRecord(3, 2, "rollback")
    with pytest.raises(ValueError, match="unknown rollout state 'done'"):
        record.state = "done"
    with pytest.raises(ValueError, match="unknown step outcome 'ok'"):
        record.add_step("canary", outcome="ok")
    with pytest.raises(ValueError, match="no step to finish"):
        record.finish_step("passed")
    record.state = "completed"
    assert record.final


def test_a_command_is_acted_on_once(registry, model):
    with pytest.raises(RegistryError, match=f"cannot pause the rollout of {model} version 3: never had a"):
        send_command(registry, model, 3, "pause", "alice")
    record = RolloutRecord(3, 2, "rollback", started="2026-12-07T14:00:00Z")
    save_record(registry, model, record)
    assert read_command(registry, model, 3) is None

    send_command(registry, model, 3, "pause", "alice")
    command = pending_command(registry, model, 3)
    assert command["command"] == "pause" and command["actor"] == "alice"
    assert read_command(registry, model, 3) == "pause"  # read again until the rollout acts on it
    assert record.act_on(command) == "paused"
    save_record(registry, model, record)
    assert read_command(registry, model, 3) is None
    assert record.steps[-1]["kind"] == "command" and record.steps[-1]["by"] == "alice"

    send_command(registry, model, 3, "resume", "bob")
    record.act_on(pending_command(registry, model, 3))
    send_command(registry, model, 3, "abort", "carol")  # sent within the same second: still a new command
    assert read_command(registry, model, 3) == "abort"
    assert record.act_on(pending_command(registry, model, 3)) == "aborted"
    save_record(registry, model, record)
    with pytest.raises(RegistryError, match="its rollout is aborted"):
        send_command(registry, model, 3, "resume", "dave")
    with pytest.raises(ValueError, match="unknown rollout command 'stop'"):
        send_command(registry, model, 3, "stop", "dave")


def test_a_command_older_than_the_rollout_is_not_for_it(registry, model):
    stale = {"command": "abort", "actor": "x", "at": "2026-12-07T13:59:59.900Z"}
    registry.set_rollout_command(model, 3, stale)
    save_record(registry, model, RolloutRecord(3, 2, "rollback", started="2026-12-07T14:00:00Z"))
    assert read_command(registry, model, 3) is None
    registry.set_rollout_command(model, 3, {**stale, "at": "yesterday"})  # hand-edited: no command either
    assert read_command(registry, model, 3) is None


def test_the_active_rollout_is_the_newest_version_whose_rollout_is_not_over(registry, model):
    assert active_rollout(registry, model) is None
    old = RolloutRecord(2, 1, "rollback")  # left running (its worker died), then version 3 rolled out
    save_record(registry, model, old)
    assert active_rollout(registry, model).version == 2
    new = RolloutRecord(3, 2, "hold")
    new.state = "held"
    save_record(registry, model, new)
    assert active_rollout(registry, model).to_dict() == new.to_dict()
    assert [r.version for r in unfinished_rollouts(registry, model)] == [2, 3]
    new.state = "completed"
    save_record(registry, model, new)
    assert active_rollout(registry, model).version == 2  # the abandoned one is still under way until rolled back
    old.state = "aborted"
    save_record(registry, model, old)
    assert active_rollout(registry, model) is None and unfinished_rollouts(registry, model) == []


def test_a_final_record_never_leaves_its_state():
    record = RolloutRecord(3, 2, "rollback")
    record.state = "aborted"
    with pytest.raises(ValueError, match="is aborted; it cannot become running"):
        record.state = "running"
    record.state = "aborted"  # the same state again is no change
    assert record.final and record.state == "aborted"

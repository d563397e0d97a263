"""A rollout's record on the candidate's registry version (mlspec.rollout.record): its steps with traffic
and checks, the commands a person sends, acted on once, and which rollout of a model is active."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from tests.rollout.rollout_testkit import gates

from mlspec.errors import RegistryError
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
)


class MemoryRegistry:
    """The registry's rollout calls, kept in memory (as JSON, as a registry stores them)."""

    def __init__(self, model: str, versions: int) -> None:
        self.tags = {(model, v): {} for v in range(1, versions + 1)}

    def version_record(self, model, version):
        tags = self.tags.get((model, version))
        if tags is None:
            return None
        return SimpleNamespace(version=version, rollout=json.loads(tags.get("rollout", "{}")),
                               rollout_command=json.loads(tags.get("command", "{}")))

    def list_versions(self, model):
        return [self.version_record(m, v) for m, v in sorted(self.tags) if m == model]

    def record_rollout(self, model, version, record):
        self.tags[(model, version)]["rollout"] = json.dumps(record)

    def set_rollout_command(self, model, version, command):
        self.tags[(model, version)]["command"] = json.dumps(command)


@pytest.fixture
def registry():
    return MemoryRegistry("iris", 3)


def test_a_step_is_recorded_with_its_traffic_and_checks(registry):
    record = RolloutRecord(3, 2, "rollback")
    step = Step("shadow", 100, 5)
    record.add_step(step.kind, percent=step.percent, traffic=traffic_for(step, 2, 3))
    metrics = StepMetrics(240, 0, 3.1, 0.99, 240, 0)
    verdict, checks = step_verdict(metrics, gates(p95_ms=250, agreement=0.95, min_requests=200), 5, 5)
    record.finish_step("passed", metrics=metrics, checks=checks)
    save_record(registry, "iris", record)

    loaded = load_record(registry, "iris", 3)
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
    assert load_record(registry, "iris", 1) is None and load_record(registry, "iris", 9) is None


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


def test_a_command_is_acted_on_once(registry):
    with pytest.raises(RegistryError, match="cannot pause the rollout of iris version 3: never had a"):
        send_command(registry, "iris", 3, "pause", "alice")
    record = RolloutRecord(3, 2, "rollback", started="2026-12-07T14:00:00Z")
    save_record(registry, "iris", record)
    assert read_command(registry, "iris", 3) is None

    send_command(registry, "iris", 3, "pause", "alice")
    command = pending_command(registry, "iris", 3)
    assert command["command"] == "pause" and command["actor"] == "alice"
    assert read_command(registry, "iris", 3) == "pause"  # read again until the rollout acts on it
    assert record.act_on(command) == "paused"
    save_record(registry, "iris", record)
    assert read_command(registry, "iris", 3) is None
    assert record.steps[-1]["kind"] == "command" and record.steps[-1]["by"] == "alice"

    send_command(registry, "iris", 3, "resume", "bob")
    record.act_on(pending_command(registry, "iris", 3))
    send_command(registry, "iris", 3, "abort", "carol")  # sent within the same second: still a new command
    assert read_command(registry, "iris", 3) == "abort"
    assert record.act_on(pending_command(registry, "iris", 3)) == "aborted"
    save_record(registry, "iris", record)
    with pytest.raises(RegistryError, match="its rollout is aborted"):
        send_command(registry, "iris", 3, "resume", "dave")
    with pytest.raises(ValueError, match="unknown rollout command 'stop'"):
        send_command(registry, "iris", 3, "stop", "dave")


def test_a_command_older_than_the_rollout_is_not_for_it(registry):
    stale = {"command": "abort", "actor": "x", "at": "2026-12-07T13:59:59.900Z"}
    registry.set_rollout_command("iris", 3, stale)
    save_record(registry, "iris", RolloutRecord(3, 2, "rollback", started="2026-12-07T14:00:00Z"))
    assert read_command(registry, "iris", 3) is None


def test_the_active_rollout_is_the_newest_versions_unless_it_is_over(registry):
    assert active_rollout(registry, "iris") is None
    old = RolloutRecord(2, 1, "rollback")  # left running (its worker died), then version 3 rolled out
    save_record(registry, "iris", old)
    assert active_rollout(registry, "iris").version == 2
    new = RolloutRecord(3, 2, "hold")
    new.state = "held"
    save_record(registry, "iris", new)
    assert active_rollout(registry, "iris").to_dict() == new.to_dict()
    new.state = "completed"
    save_record(registry, "iris", new)
    assert active_rollout(registry, "iris") is None

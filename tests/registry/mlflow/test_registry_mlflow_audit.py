"""The audit trail of production on MLflow: one registered-model tag per change, read back in order."""

from __future__ import annotations

import json

import pytest

from mlspec.errors import RegistryError
from mlspec.registry import base
from mlspec.registry.base import ProductionChange
from mlspec.registry.mlflow_registry import AUDIT_TAG_PREFIX, MlflowRegistry


def change(action: str, before: int | None, after: int | None, **extra: str) -> ProductionChange:
    return ProductionChange(at="2026-12-07T03:45:00Z", actor=extra.pop("actor", "alice"), action=action,
                            from_version=before, to_version=after, reason=extra.pop("reason", action), **extra)


def test_trail_keeps_order_time_actor_and_run(publisher, unique_name) -> None:
    name = unique_name("audit")
    registry = MlflowRegistry(None)
    for run in ("run-a", "run-b"):
        registry.register(publisher.request(publisher.publish(name, run)))
    assert registry.production_changes(name) == []

    steps = [
        change("promote", None, 1, actor="schedule", run_id="scheduled__1", run_url="http://localhost:8080/dags/d/runs/r1"),
        change("deploy", 1, 2, actor="cli:bob"),
        change("rollback", 2, 1, actor="alice", reason="rollback from version 2"),
    ]
    for step in steps:
        registry.set_production(name, step.to_version, reason=step.reason)
        registry.record_production_change(name, step)

    assert registry.production_changes(name) == steps
    # v1 -> v2 -> v1 reads v1 -> v2 -> v1, not the de-duplicated "v2 -> v1"
    assert registry.production_history(name) == [1, 2, 1]
    tags = registry.client.get_registered_model(name).tags
    stored = sorted(k for k in tags if k.startswith(AUDIT_TAG_PREFIX))
    assert len(stored) == 3 and json.loads(tags[stored[0]])["actor"] == "schedule"


def test_long_reasons_fit_a_tag_and_the_trail_is_bounded(publisher, unique_name, monkeypatch) -> None:
    name = unique_name("audit-long")
    registry = MlflowRegistry(None)
    registry.register(publisher.request(publisher.publish(name, "run-a")))
    registry.record_production_change(name, change("deploy", None, 1, reason="x" * 20_000))
    registry.record_production_change(name, change("deploy", None, 1, reason='"\\' * 5000, actor='"' * 500))
    first, escaped = registry.production_changes(name)
    assert first.reason.endswith("...") and len(first.reason) <= 1200
    assert escaped.reason.startswith('"\\"\\') and escaped.reason.endswith("...")

    monkeypatch.setattr("mlspec.registry.mlflow_registry.AUDIT_KEEP", 3)
    for i in range(5):
        registry.record_production_change(name, change("deploy", 1, 1, reason=f"step {i}"))
    assert [c.reason for c in registry.production_changes(name)] == ["step 2", "step 3", "step 4"]


def test_unknown_action_and_unregistered_model_are_refused(unique_name) -> None:
    registry = MlflowRegistry(None)
    with pytest.raises(ValueError, match="unknown production change action 'promoted'"):
        registry.record_production_change(unique_name("x"), change("promoted", None, 1))
    with pytest.raises(RegistryError, match="is not registered"):
        registry.record_production_change(unique_name("nothing"), change("deploy", None, 1))


def test_history_falls_back_to_the_older_tag_without_a_trail() -> None:
    assert base.history_from_changes([]) == []
    assert base.history_from_changes([change("deploy", 3, 4), change("undeploy", 4, None), change("deploy", None, 3)]) == [3, 4, 3]
    assert base.history_from_changes([change("auto_rollback", 5, 4)]) == [4]

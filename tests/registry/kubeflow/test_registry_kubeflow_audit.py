"""The audit trail of production on the Kubeflow Model Registry: one customProperty per change on the
RegisteredModel, every request held to the vendored contract by the fake."""

from __future__ import annotations

import pytest
from kubeflow_testkit import TOKEN

from mlspec.errors import RegistryError
from mlspec.registry.base import ProductionChange
from mlspec.registry.kubeflow import AUDIT_PROPERTY_PREFIX, KubeflowRegistry


def change(action: str, before: int | None, after: int | None, actor: str = "alice", reason: str = "") -> ProductionChange:
    return ProductionChange(at="2026-12-07T03:45:00Z", actor=actor, action=action, from_version=before,
                            to_version=after, reason=reason or action, run_id="manual__1",
                            run_url="http://localhost:8080/dags/mlspec_operations/runs/manual__1")


def test_trail_is_recorded_in_order_on_the_registered_model(fake, make_request) -> None:
    registry = KubeflowRegistry.from_url(fake.url, token=TOKEN)
    for version in (1, 2):
        registry.register(make_request(version=version, source_uri=f"s3://b/digits/{version}"))
    assert registry.production_changes("digits") == []

    steps = [change("promote", None, 1, actor="schedule"), change("deploy", 1, 2, actor="cli:bob"),
             change("rollback", 2, 1, reason="rollback from version 2")]
    for step in steps:
        registry.set_production("digits", step.to_version, reason=step.reason)
        registry.record_production_change("digits", step)

    assert registry.production_changes("digits") == steps
    assert registry.production_history("digits") == [1, 2, 1]
    [model] = fake.entities("RegisteredModel")
    assert len([k for k in model["customProperties"] if k.startswith(AUDIT_PROPERTY_PREFIX)]) == 3
    # the other properties (production version) survive the whole-map PATCH
    assert registry.production_version("digits") == 1
    assert fake.violations == []


def test_trail_is_bounded_and_an_unknown_model_is_refused(fake, make_request, monkeypatch) -> None:
    registry = KubeflowRegistry.from_url(fake.url, token=TOKEN)
    registry.register(make_request(version=1, source_uri="s3://b/digits/1"))
    monkeypatch.setattr("mlspec.registry.kubeflow.AUDIT_KEEP", 2)
    for i in range(4):
        registry.record_production_change("digits", change("deploy", 1, 1, reason=f"step {i}"))
    assert [c.reason for c in registry.production_changes("digits")] == ["step 2", "step 3"]
    with pytest.raises(RegistryError, match="'nothing' is not registered"):
        registry.record_production_change("nothing", change("deploy", None, 1))
    assert fake.violations == []


def test_an_entry_dropped_by_another_writers_patch_is_written_again(fake, make_request, monkeypatch) -> None:
    """Another machine read the customProperties map before our PATCH and PATCHed its own entry after it:
    the server keeps its whole map, which lacks ours. Ours is read back, found missing and written again."""
    from mlspec.registry.base import audit_entry_json
    from mlspec.registry.kubeflow import string_value

    registry = KubeflowRegistry.from_url(fake.url, token=TOKEN)
    registry.register(make_request(version=1, source_uri="s3://b/digits/1"))
    stale = KubeflowRegistry.from_url(fake.url, token=TOKEN).client.find("/registered_model", {"name": "digits"})
    theirs = change("promote", None, 1, actor="schedule")
    client = registry.client
    real_patch = client.patch
    raced: list[str] = []

    def patch_then_the_other_writer(path, body):
        result = real_patch(path, body)
        if path.startswith("/registered_models/") and not raced:
            raced.append(path)
            properties = dict(stale.get("customProperties") or {})
            properties[f"{AUDIT_PROPERTY_PREFIX}000001-0ther0"] = string_value(audit_entry_json(theirs))
            real_patch(path, {"customProperties": properties})
        return result

    monkeypatch.setattr(client, "patch", patch_then_the_other_writer)
    registry.record_production_change("digits", change("deploy", None, 1, actor="cli:bob"))
    assert raced, "the other writer never raced"
    assert sorted(c.actor for c in registry.production_changes("digits")) == ["cli:bob", "schedule"]
    assert fake.violations == []

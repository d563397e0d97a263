"""The pipeline's changes of production land on the audit trail: promote (who triggered the run, from
which version, why, the run's link) and the automatic rollback after a failed smoke test. Its deploy
checks every file the registry recorded, and a run where the champion holds puts serving back on the
registry's production version. Stage methods are called directly, with the parts of an Airflow
context they read; the registry, store and model server are real."""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace

import pytest
from tests.operators.operations_testkit import publish_versions, served, unique


def context(run_id: str = "manual__2026-12-07T03:00:00+00:00", user: str | None = "alice", run_type: str = "manual") -> dict:
    dag_run = SimpleNamespace(dag_id="iris_forest", run_id=run_id, triggering_user_name=user,
                              run_type=SimpleNamespace(value=run_type))
    return {"dag_run": dag_run, "run_id": run_id}


def test_the_actor_is_the_triggering_user_or_the_schedule():
    from mlspec.release import Trigger

    manual = Trigger.from_context(context())
    assert manual.actor == "alice" and manual.run_id.startswith("manual__")
    assert manual.run_url.endswith("/dags/iris_forest/runs/manual__2026-12-07T03%3A00%3A00%2B00%3A00")
    assert manual.run_url.startswith("http")
    assert Trigger.from_context(context("scheduled__1", None, "scheduled")).actor == "schedule"
    assert Trigger.from_context(context("asset_triggered__1", None, "asset_triggered")).actor == "schedule"
    assert Trigger.from_context(context("manual__2", None, "manual")).actor.startswith("unknown (manual run")
    assert Trigger.from_cli().actor.startswith("cli:")
    # `mlspec run` is Airflow's dag.test, whose runs name the user "dag_test": it is the CLI's user
    assert Trigger.from_context(context("manual__3", "dag_test", "manual")).actor == Trigger.from_cli().actor


def pipeline_deploy(spec, version: int, uri: str):
    """The pipeline's deploy task for a stored version (the champion gate off): its Deployment."""
    from mlspec.operators.deploy import DeployModelOperator
    from mlspec.serving import Deployment

    op = DeployModelOperator(task_id="deploy", spec=spec.to_dict(), stored={"version": version, "uri": uri})
    return Deployment.from_xcom(op.run(context()))


def promote_operator(spec, evaluation=None, smoke=None):
    from mlspec.operators.promote import PromoteOperator

    return PromoteOperator(task_id="promote", spec=spec.to_dict(), data={}, evaluation=evaluation or {},
                           stored={}, registration={}, deployment={}, smoke_test=smoke or {})


def test_promote_records_who_from_where_and_why_once(ops_home, ops_server, request):
    from mlspec.serving import open_local_serving

    model = publish_versions(unique(request), 2)
    spec, registry = model.spec, model.registry()
    first = open_local_serving(None).deploy(spec.name, 1, model.uris[1])
    promote_operator(spec, smoke={"agreement": 1.0, "samples": 20}).record_promotion(
        context("scheduled__1", None, "scheduled"), first)
    second = open_local_serving(None).deploy(spec.name, 2, model.uris[2])
    verdict = {"decision": "challenger_wins", "metric": "accuracy", "challenger": 0.98, "champion": 0.95,
               "champion_version": 1, "min_delta": 0.0}
    op = promote_operator(spec, evaluation={"champion": verdict}, smoke={"agreement": 1.0, "samples": 20})
    op.record_promotion(context(), second)
    op.record_promotion(context(), second)  # a retried promote

    changes = registry.production_changes(spec.name)
    assert [(c.action, c.from_version, c.to_version, c.actor) for c in changes] == [
        ("promote", None, 1, "schedule"), ("promote", 1, 2, "alice")]
    assert changes[0].reason.startswith("nothing was in production to compare with; smoke test passed")
    assert changes[1].reason.startswith("beat production v1 on accuracy (0.9800 vs 0.9500")
    assert "/dags/iris_forest/runs/manual__" in changes[1].run_url
    assert registry.production_version(spec.name) == 2


def test_a_failed_smoke_test_records_serving_going_back_not_a_change_of_production(ops_home, ops_server, request):
    """The pipeline's candidate never became production: the entry reads production -> production."""
    from mlspec.operations import deploy_version
    from mlspec.release import Release, Trigger

    model = publish_versions(unique(request), 2)
    spec, registry = model.spec, model.registry()
    release, trigger = Release.open(spec), Trigger.from_context(context())
    assert release.record_serving_went_back(trigger, 2, "version 2 failed its smoke test") == ""
    assert registry.production_changes(spec.name) == []  # nothing production: no "nothing -> nothing" entry
    deploy_version(spec, 1)
    assert release.record_serving_went_back(trigger, 2, "version 2 failed its smoke test: agreement 0.4") == ""
    change = registry.production_changes(spec.name)[-1]
    assert (change.action, change.from_version, change.to_version, change.actor) == ("auto_rollback", 1, 1, "alice")
    assert change.reason.startswith("version 2 failed its smoke test")
    assert "candidate version 2 never became production" in change.reason
    assert registry.production_history(spec.name) == [1]


def smoke_test_operator(spec, stored: dict, deployment, monkeypatch):
    """The pipeline's smoke_test task for `deployment`, with a smoke test that fails (and no dataset needed)."""
    from mlspec.ml import onnx_export
    from mlspec.operators.smoke_test import SmokeTestOperator
    from mlspec.serving import smoke_test

    def failing(**_):
        raise smoke_test.SmokeTestFailed("agreement 0.40 below 0.99", {"agreement": 0.4})

    monkeypatch.setattr(smoke_test, "run_smoke_test", failing)
    monkeypatch.setattr(onnx_export, "onnx_predict", lambda onnx, x: {})
    op = SmokeTestOperator(task_id="smoke_test", spec=spec.to_dict(), data={"data_uri": "unused"}, stored=stored,
                           deployment=deployment.to_xcom())
    monkeypatch.setattr(SmokeTestOperator, "load_dataset", lambda self: SimpleNamespace(x_test=[[0.0] * 4] * 5, columns=()))
    return op


def test_a_failed_smoke_test_restores_what_the_registry_says_now_not_at_deploy_time(ops_home, ops_server, request,
                                                                                       monkeypatch):
    """`mlspec deploy 3` ran between the pipeline's deploy of 2 (production was 1) and its smoke test."""
    from mlspec.operations import deploy_version
    from mlspec.operators.base import GateFailed

    model = publish_versions(unique(request), 3)
    spec, registry = model.spec, model.registry()
    deploy_version(spec, 1)
    candidate = pipeline_deploy(spec, 2, model.uris[2])
    assert candidate.previous_version == 1
    deploy_version(spec, 3)  # the operation in between
    op = smoke_test_operator(spec, {"version": 2, "uri": model.uris[2]}, candidate, monkeypatch)
    with pytest.raises(GateFailed, match="version 2 failed its smoke test.*version 3 is serving again"):
        op.run(context())
    assert registry.production_version(spec.name) == 3 and served(spec) == 3
    last = registry.production_changes(spec.name)[-1]
    assert (last.action, last.from_version, last.to_version) == ("auto_rollback", 3, 3)
    assert registry.version_record(spec.name, 2).state != "production"


def test_promote_checks_serving_under_the_lock(ops_home, ops_server, request, monkeypatch):
    """`mlspec rollback --to-version 1` finished between promote's first look and its lock: promote refuses."""
    from mlspec import operations
    from mlspec.locks import model_lock
    from mlspec.operators import promote
    from mlspec.operators.base import GateFailed
    from mlspec.serving import open_local_serving

    model = publish_versions(unique(request), 3)
    spec, registry = model.spec, model.registry()
    operations.deploy_version(spec, 1)
    operations.deploy_version(spec, 2)
    candidate = open_local_serving(None).deploy(spec.name, 3, model.uris[3])  # deployed and smoke-tested

    def lock_after_a_rollback(name, what, timeout_s=None):
        operations.rollback(spec, 1)  # the operation got the lock first
        return model_lock(name, what, timeout_s)

    monkeypatch.setattr(promote, "model_lock", lock_after_a_rollback)
    op = promote_operator(spec, smoke={"agreement": 1.0, "samples": 20})
    with pytest.raises(GateFailed, match="serving answers with version 1 .*not the deployed and smoke-tested version 3"):
        op.record_promotion(context(), candidate)
    assert registry.production_version(spec.name) == 1 and served(spec) == 1
    assert registry.production_changes(spec.name)[-1].action == "rollback"


def test_a_kserve_deploy_checks_the_recorded_files_under_the_model_lock(ops_home, request, monkeypatch):
    import fcntl
    import os
    from dataclasses import replace

    from mlspec import release
    from mlspec.locks import lock_path
    from mlspec.operators import deploy
    from mlspec.operators.base import GateFailed

    model = publish_versions(unique(request), 2)
    kserve = replace(model.spec, serving=replace(model.spec.serving, platform="kserve", settings=SimpleNamespace(namespace="models")))
    applied: list[tuple[int, bool]] = []

    class FakeKServe:
        platform = "kserve"

        def served_version(self, name):
            return None

        def readiness_trigger(self, state):
            return SimpleNamespace(state=state)

        def apply(self, name, version, uri, *, serve=True):
            fd = os.open(lock_path(name), os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = False
            except BlockingIOError:
                held = True
            finally:
                os.close(fd)
            applied.append((version, held))
            return {"name": name, "namespace": "models", "generation": 1}

    class Deferred(Exception):
        pass

    def defer(self, **kwargs):
        raise Deferred(kwargs)

    monkeypatch.setattr(release, "open_serving", lambda spec, store: FakeKServe())
    monkeypatch.setattr(deploy.DeployModelOperator, "defer", defer)
    op = deploy.DeployModelOperator(task_id="deploy", spec=model.spec.to_dict(), stored={"version": 1, "uri": model.uris[1]})
    op.__dict__["model_spec"] = kserve
    with pytest.raises(Deferred):
        op.run(context())
    assert applied == [(1, True)]  # applied while this deploy held the model's lock

    signature = model.folder(2) / "signature.json"
    signature.write_text(json.dumps({**json.loads(signature.read_text()), "opset": 99}))
    op.stored = {"version": 2, "uri": model.uris[2]}
    with pytest.raises(GateFailed, match="signature.json at .* does not match the sha256 the registry recorded"):
        op.run(context())
    assert applied == [(1, True)]  # version 2 was never applied


def test_pipeline_deploy_refuses_a_version_whose_signature_changed(ops_home, ops_server, request):
    from mlspec.operators.base import GateFailed

    model = publish_versions(unique(request), 1)
    folder = model.folder(1)
    signature = folder / "signature.json"
    signature.write_text(json.dumps({**json.loads(signature.read_text()), "class_names": list("abcdefghij")}))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["signature.json"] = hashlib.sha256(signature.read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(GateFailed, match="signature.json at .* does not match the sha256 the registry recorded"):
        pipeline_deploy(model.spec, 1, model.uris[1])
    assert served(model.spec) is None


def test_when_the_champion_holds_serving_is_put_back_on_production(ops_home, ops_server, request):
    from mlspec.operations import deploy_version
    from mlspec.operators.deploy import DeployModelOperator
    from mlspec.serving import open_local_serving

    model = publish_versions(unique(request), 2)
    deploy_version(model.spec, 1)
    open_local_serving(None).deploy(model.name, 2, model.uris[2])  # a deploy that crashed before its smoke test
    DeployModelOperator(task_id="deploy", spec=model.spec.to_dict(), stored={}).reconcile_serving()
    assert served(model.spec) == 1


@pytest.mark.parametrize("recorded", [(2, 2), (3, 2)], ids=["now", "before-the-fix"])
def test_the_models_page_does_not_read_a_failed_candidate_as_a_change_of_production(recorded):
    """v2 promoted, then candidate v3 failed its smoke test and serving went back to v2: v2 is still the
    promoted version, and the Models list's last change is that promotion."""
    from mlspec.registry.base import ProductionChange
    from mlspec.ui.data import ModelStatus
    from mlspec.ui.pages import _last_change, production_story
    from tests.operators.operations_testkit import spec_for

    def change(action, before, after, at):
        return ProductionChange(at=at, actor="alice", action=action, from_version=before, to_version=after,
                                reason=f"{action} reason", run_id="manual__1", run_url="")

    changes = [change("promote", 1, 2, "2026-12-07T01:00:00Z"),
               change("auto_rollback", *recorded, "2026-12-07T02:00:00Z")]
    status = ModelStatus(spec=spec_for("iris-page"), production=2, changes=changes, changes_ok=True, registry_ok=True)
    story = production_story("/mlspec", status, None, 2)
    assert story.startswith("promoted by the pipeline run") and "restored" not in story
    assert "v1 → v2" in _last_change(status) and "2026-12-07 01:00 UTC" in _last_change(status)
    assert production_story("/mlspec", status, None, 3).startswith("never production")
    # an operation's failed deploy did move production (2 -> 3 -> 2): that restore stays a change
    moved = [*changes[:1], change("deploy", 2, 3, "2026-12-07T03:00:00Z"), change("auto_rollback", 3, 2, "2026-12-07T03:01:00Z")]
    status = ModelStatus(spec=spec_for("iris-page"), production=2, changes=moved, changes_ok=True, registry_ok=True)
    assert production_story("/mlspec", status, None, 2).startswith("restored automatically")
    assert "v3 → v2" in _last_change(status)

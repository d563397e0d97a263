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
    from mlspec.operations import Trigger

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
        context("scheduled__1", None, "scheduled"), registry, first)
    second = open_local_serving(None).deploy(spec.name, 2, model.uris[2])
    verdict = {"decision": "challenger_wins", "metric": "accuracy", "challenger": 0.98, "champion": 0.95,
               "champion_version": 1, "min_delta": 0.0}
    op = promote_operator(spec, evaluation={"champion": verdict}, smoke={"agreement": 1.0, "samples": 20})
    op.record_promotion(context(), registry, second)
    op.record_promotion(context(), registry, second)  # a retried promote

    changes = registry.production_changes(spec.name)
    assert [(c.action, c.from_version, c.to_version, c.actor) for c in changes] == [
        ("promote", None, 1, "schedule"), ("promote", 1, 2, "alice")]
    assert changes[0].reason.startswith("first production version; smoke test passed")
    assert changes[1].reason.startswith("beat production v1 on accuracy (0.9800 vs 0.9500")
    assert "/dags/iris_forest/runs/manual__" in changes[1].run_url
    assert registry.production_version(spec.name) == 2


def test_a_failed_smoke_test_records_the_automatic_rollback(ops_home, ops_server, request):
    from mlspec.operators.smoke_test import record_automatic_rollback

    model = publish_versions(unique(request), 2)
    spec, registry = model.spec, model.registry()
    assert record_automatic_rollback(spec, context(), 2, 1, "version 2 failed its smoke test: agreement 0.4") == ""
    (change,) = registry.production_changes(spec.name)
    assert (change.action, change.from_version, change.to_version, change.actor) == ("auto_rollback", 2, 1, "alice")
    assert change.reason.startswith("version 2 failed its smoke test")


def test_pipeline_deploy_refuses_a_version_whose_signature_changed(ops_home, ops_server, request):
    from mlspec.operators.base import GateFailed
    from mlspec.operators.deploy import deploy_following_the_registry
    from mlspec.serving import open_local_serving
    from mlspec.storage import open_store

    model = publish_versions(unique(request), 1)
    folder = model.folder(1)
    signature = folder / "signature.json"
    signature.write_text(json.dumps({**json.loads(signature.read_text()), "class_names": list("abcdefghij")}))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["signature.json"] = hashlib.sha256(signature.read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    store = open_store(model.spec.storage.uri)
    with pytest.raises(GateFailed, match="signature.json at .* does not match the sha256 the registry recorded"):
        deploy_following_the_registry(model.spec, open_local_serving(None), 1, model.uris[1], store)
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

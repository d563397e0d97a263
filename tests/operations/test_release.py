"""The release service (mlspec.release) step by step, against real parts in this process: the embedded MLflow
registry, a file store under MLSPEC_HOME and the mlspec model server."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from tests.operators.operations_testkit import publish_versions, served, unique


def context(run_id: str = "manual__2026-12-07T05:00:00+00:00") -> dict:
    dag_run = SimpleNamespace(dag_id="iris_forest", run_id=run_id, triggering_user_name="alice",
                              run_type=SimpleNamespace(value="manual"))
    return {"dag_run": dag_run, "run_id": run_id}


def test_recording_a_deployment_never_moves_production_promote_does(ops_home, ops_server, request):
    from mlspec.release import Release, Trigger

    model = publish_versions(unique(request), 1)
    release = Release.open(model.spec)
    deployment = release.await_ready(release.apply(1, model.uris[1]))
    release.registry.record_deployment(model.name, 1, deployment.to_xcom(), "smoke_test_passed")
    assert release.production() is None  # a record of what happened, not a change of production

    change = Trigger.from_context(context()).change("promote", None, 1, "smoke test passed")
    assert release.promote(deployment, change) == ""
    assert release.production() == 1
    record = release.registry.version_record(model.name, 1)
    assert record.state == "production" and record.deployment["outcome"] == "smoke_test_passed"
    assert [(c.action, c.to_version) for c in release.registry.production_changes(model.name)] == [("promote", 1)]


def test_every_caller_takes_the_same_steps_the_registry_is_read_first(ops_home, ops_server, request):
    """A version the registry does not know is refused before serving changes, by the pipeline's deploy and
    by an operation alike, with one message."""
    from mlspec.operations import deploy_version
    from mlspec.operators.base import GateFailed
    from mlspec.operators.deploy import DeployModelOperator
    from mlspec.release import OperationFailed

    model = publish_versions(unique(request), 1)
    with pytest.raises(OperationFailed) as operation:
        deploy_version(model.spec, 5)
    op = DeployModelOperator(task_id="deploy", spec=model.spec.to_dict(), stored={"version": 5, "uri": model.uris[1]})
    with pytest.raises(GateFailed) as pipeline:
        op.run(context())
    expected = f"{model.name} version 5 is not registered (latest registered: 1); nothing changed"
    assert str(operation.value) == str(pipeline.value) == expected
    assert served(model.spec) is None


def test_a_failed_candidate_goes_back_to_the_registry_production_not_to_what_served_before(ops_home, ops_server, request):
    """Production is version 1; the server serves 3 (loaded by hand); candidate 2 fails: serving goes to 1."""
    from mlspec.operations import deploy_version
    from mlspec.release import Release
    from mlspec.serving import open_local_serving

    model = publish_versions(unique(request), 3)
    deploy_version(model.spec, 1)
    open_local_serving(None).deploy(model.name, 3, model.uris[3])
    release = Release.open(model.spec)
    candidate = release.await_ready(release.apply(2, model.uris[2]))
    assert candidate.previous_version == 1  # the registry's production, not the server's 3
    assert release.serve_production(2) == "version 1 is serving again"
    assert served(model.spec) == 1 and release.production() == 1


def test_an_operation_that_fails_restores_the_registry_and_serving_and_says_so(ops_home, ops_server, request):
    from tests.operators.operations_testkit import spec_for

    from mlspec.operations import deploy_version
    from mlspec.release import OperationFailed

    model = publish_versions(unique(request), 2)
    deploy_version(model.spec, 1)
    strict = spec_for(model.name, "smoke_test: {max_latency_ms: 0.0001}\n")  # no endpoint passes it
    with pytest.raises(OperationFailed, match="deploy of .* version 2 failed: .*version 1 is production and serving again"):
        deploy_version(strict, 2)
    registry = model.registry()
    assert registry.production_version(model.name) == 1 and served(model.spec) == 1
    assert registry.version_record(model.name, 2).state == "failed"


def test_status_is_the_registry_serving_and_their_disagreement(ops_home, ops_server, request):
    from mlspec.operations import deploy_version, status
    from mlspec.serving import open_local_serving

    model = publish_versions(unique(request), 2)
    deploy_version(model.spec, 1)
    report = status(model.spec)
    assert (report["production"], report["serving"], report["drift"], report["problems"]) == (1, 1, False, [])
    open_local_serving(None).deploy(model.name, 2, model.uris[2])
    report = status(model.spec)
    assert report["drift"] and report["latest"] == 2 and report["history"] == [1]
    assert "--version 1` puts the registry's production version back" in report["advice"]


def test_list_versions_reads_every_version_with_what_the_registry_keeps(ops_home, ops_server, request):
    from mlspec.operations import deploy_version
    from mlspec.registry.base import ModelRegistry

    model = publish_versions(unique(request), 3)
    deploy_version(model.spec, 2)
    registry = model.registry()
    records = registry.list_versions(model.name)
    assert [r.version for r in records] == [1, 2, 3]
    assert [r.state for r in records] == ["candidate", "production", "candidate"]
    assert records[1].deployment["outcome"] == "smoke_test_passed" and records[1].registry_version == "2"
    assert records[0].metrics == {"accuracy": 0.9} and records[0].source_uri == model.uris[1]
    # the interface's own listing (one lookup per version) agrees with MLflow's single search
    assert ModelRegistry.list_versions(registry, model.name) == records


def test_run_action_names_what_is_missing():
    from mlspec.operations import run_action
    from mlspec.release import OperationFailed

    spec = SimpleNamespace(name="m")
    with pytest.raises(OperationFailed, match="deploy needs a version"):
        run_action(spec, "deploy")
    with pytest.raises(OperationFailed, match="unknown action 'promote'; one of status, deploy, rollback, undeploy"):
        run_action(spec, "promote")


def test_redeploying_the_production_version_that_fails_keeps_it_serving(ops_home, ops_server, request):
    """`mlspec deploy --version N` with N production (status's drift advice) fails: the restore serves N
    again, it does not read "production == failed" as "nothing served before" and unload the model."""
    from tests.operators.operations_testkit import spec_for

    from mlspec.operations import deploy_version
    from mlspec.release import OperationFailed

    model = publish_versions(unique(request), 1)
    deploy_version(model.spec, 1)
    strict = spec_for(model.name, "smoke_test: {max_latency_ms: 0.0001}\n")  # no endpoint passes it
    with pytest.raises(OperationFailed, match="version 1 is production and serving again"):
        deploy_version(strict, 1)
    registry = model.registry()
    assert registry.production_version(model.name) == 1 and served(model.spec) == 1
    # production stays a good version: a later `mlspec rollback` and the Models page must not skip it as failed
    assert registry.version_record(model.name, 1).state == "production"


def test_a_version_never_ready_whose_restore_fails_too_is_recorded_failed(ops_home, ops_server, request, monkeypatch):
    """Serving had drifted (3 served, 1 production); candidate 2 never becomes ready and serving production
    fails too: the task says so and what to do, the version is recorded "failed" (not "rolled_back") and the
    audit trail claims no automatic rollback, since nothing went back."""
    from mlspec.errors import ServingError
    from mlspec.operations import deploy_version
    from mlspec.operators.base import GateFailed
    from mlspec.operators.deploy import DeployModelOperator
    from mlspec.serving import open_local_serving
    from mlspec.serving.local import LocalServing

    model = publish_versions(unique(request), 3)
    deploy_version(model.spec, 1)
    open_local_serving(None).deploy(model.name, 3, model.uris[3])

    def never_ready(self, state, event=None):
        raise ServingError("version 2 did not become ready")

    def refuses(self, deployment):
        raise ServingError("the model server refused the load")

    monkeypatch.setattr(LocalServing, "await_ready", never_ready)
    monkeypatch.setattr(LocalServing, "rollback", refuses)
    op = DeployModelOperator(task_id="deploy", spec=model.spec.to_dict(), stored={"version": 2, "uri": model.uris[2]})
    with pytest.raises(GateFailed) as failure:
        op.run(context())
    message = str(failure.value)
    assert "version 2 did not become ready" in message
    assert "serving the registry's production version (version 1) failed too: the model server refused" in message
    assert "check with `mlspec status" in message and "went back" not in message
    registry = model.registry()
    assert registry.version_record(model.name, 2).deployment["outcome"] == "failed"
    assert "auto_rollback" not in [c.action for c in registry.production_changes(model.name)]
    assert registry.production_version(model.name) == 1

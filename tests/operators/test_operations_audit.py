"""Operations leave an audit trail, record the deployment on the version, verify every recorded file,
hold a per-model lock, and a restarted server is brought back to what the registry says.

Real parts in this process: the embedded MLflow registry, a file store and the mlspec model server."""

from __future__ import annotations

import hashlib
import json
import threading

import pytest
from tests.operators.operations_testkit import publish_versions, served, spec_for, start_server, unique


def test_deploy_rollback_undeploy_are_recorded_with_actor_and_the_deployment(ops_home, ops_server, request):
    from mlspec.operations import deploy_version, rollback, undeploy
    from mlspec.release import Trigger

    model = publish_versions(unique(request), 2)
    spec, registry = model.spec, model.registry()
    airflow = Trigger(actor="alice", run_id="manual__2026-12-07", run_url="http://localhost:8080/dags/mlspec_operations/runs/manual__2026-12-07")
    deploy_version(spec, 1, trigger=Trigger.from_cli())
    deploy_version(spec, 2, trigger=airflow)
    result = rollback(spec, trigger=airflow)
    assert result["version"] == 1 and served(spec) == 1

    changes = registry.production_changes(spec.name)
    assert [(c.action, c.from_version, c.to_version) for c in changes] == [
        ("deploy", None, 1), ("deploy", 1, 2), ("rollback", 2, 1)]
    assert changes[0].actor.startswith("cli:") and changes[0].run_id == ""
    assert changes[1].actor == "alice" and changes[1].run_url.endswith("/runs/manual__2026-12-07")
    assert changes[2].reason == "rollback from version 2" and changes[2].at.endswith("Z")
    # v1 -> v2 -> v1 keeps its order (it read "v2 -> v1" before)
    assert registry.production_history(spec.name) == [1, 2, 1]

    # The version an operation deployed carries the deployment, like one the pipeline promoted.
    tags = registry.client.get_model_version(spec.name, "2").tags
    assert tags["deployment.outcome"] == "smoke_test_passed" and tags["deployment.endpoint_url"] == ops_server.url
    assert tags["mlspec.state"] == "archived"
    assert registry.version_record(spec.name, 1).state == "production"

    undeploy(spec, trigger=airflow)
    last = registry.production_changes(spec.name)[-1]
    assert (last.action, last.from_version, last.to_version, last.actor) == ("undeploy", 1, None, "alice")


def test_a_failed_deploy_records_the_automatic_rollback_and_rollback_skips_it(ops_home, ops_server, request):
    from mlspec.operations import deploy_version, rollback
    from mlspec.release import OperationFailed

    model = publish_versions(unique(request), 3)
    spec, registry = model.spec, model.registry()
    deploy_version(spec, 1)
    deploy_version(spec, 2)
    # a smoke test no endpoint can pass
    strict = spec_for(spec.name, "smoke_test: {max_latency_ms: 0.0001}\n")
    with pytest.raises(OperationFailed, match="version 2 is production and serving again"):
        deploy_version(strict, 3)
    assert served(spec) == 2 and registry.production_version(spec.name) == 2
    last = registry.production_changes(spec.name)[-2:]
    assert [(c.action, c.from_version, c.to_version) for c in last] == [("deploy", 2, 3), ("auto_rollback", 3, 2)]
    assert "failed" in last[1].reason and registry.version_record(spec.name, 3).state == "failed"
    # the default rollback goes back past the failed version 3, to 1
    assert rollback(spec)["version"] == 1


def test_every_file_the_registry_recorded_is_checked(ops_home, ops_server, request):
    from mlspec.operations import deploy_version
    from mlspec.release import OperationFailed

    model = publish_versions(unique(request), 2)
    deploy_version(model.spec, 1)
    # signature.json and the manifest rewritten consistently: the server's own check would pass
    signature = model.folder(2) / "signature.json"
    signature.write_text(json.dumps({**json.loads(signature.read_text()), "opset": 99}))
    manifest_path = model.folder(2) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["signature.json"] = hashlib.sha256(signature.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(OperationFailed, match=r"signature.json at .* does not match the sha256 the registry recorded"):
        deploy_version(model.spec, 2)
    assert served(model.spec) == 1 and model.registry().production_version(model.spec.name) == 1
    assert [c.action for c in model.registry().production_changes(model.spec.name)] == ["deploy"]


def test_concurrent_deploy_and_rollback_take_turns(ops_home, ops_server, request):
    """`deploy 3` and `rollback --to-version 2` at once: each reports what is true when it returns,
    and the one that finished last is what serves."""
    from mlspec.operations import deploy_version, rollback

    model = publish_versions(unique(request), 3)
    spec = model.spec
    deploy_version(spec, 1)
    results: dict[str, dict] = {}
    errors: list[BaseException] = []

    def run(key: str, work) -> None:
        try:
            results[key] = work()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=("deploy", lambda: deploy_version(spec, 3))),
               threading.Thread(target=run, args=("rollback", lambda: rollback(spec, 2)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    changes = model.registry().production_changes(spec.name)[1:]
    assert sorted((c.from_version, c.to_version) for c in changes) in ([(1, 2), (2, 3)], [(1, 3), (3, 2)])
    # serialized: the second one started from what the first one left
    assert changes[1].from_version == changes[0].to_version
    assert served(spec) == changes[-1].to_version == model.registry().production_version(spec.name)


def test_the_lock_names_its_holder_when_it_times_out(ops_home, request, monkeypatch):
    import os
    import threading

    from mlspec.embedded_state import LockError
    from mlspec.locks import lock_path, model_lock

    monkeypatch.setenv("MLSPEC_LOCK_TIMEOUT_S", "0.3")
    name = unique(request)
    failures: list[Exception] = []

    def other_operation() -> None:  # another thread: its own file description, so it must wait
        try:
            with model_lock(name, "rollback"):
                pass
        except LockError as exc:
            failures.append(exc)

    with model_lock(name, "deploy version 3 for alice"):
        assert lock_path(name) == ops_home / "locks" / f"{name}.lock"
        assert oct(lock_path(name).stat().st_mode & 0o777) == "0o600"
        thread = threading.Thread(target=other_operation)
        thread.start()
        thread.join(timeout=30)
    (failure,) = failures
    assert f"another operation on {name} holds" in str(failure)
    assert f"(pid {os.getpid()}: deploy version 3 for alice)" in str(failure)
    assert "nothing changed" in str(failure) and "MLSPEC_LOCK_TIMEOUT_S" in str(failure)
    with model_lock(name, "after"):  # released
        pass


def test_a_nested_take_of_one_model_lock_in_one_thread_does_not_deadlock(ops_home, request, monkeypatch):
    """rollback -> deploy helpers, promote -> a helper that locks: the same thread takes the lock again."""
    from mlspec.locks import lock_path, model_lock

    monkeypatch.setenv("MLSPEC_LOCK_TIMEOUT_S", "2")
    name = unique(request)
    with model_lock(name, "outer"):
        with model_lock(name, "inner"):
            assert "outer" in lock_path(name).read_text()
    with model_lock(name, "again"):  # released by the outer one
        pass


def test_a_lock_timeout_that_is_not_a_number_is_a_clear_error(ops_home, request, monkeypatch):
    from mlspec.embedded_state import LockError
    from mlspec.locks import model_lock

    monkeypatch.setenv("MLSPEC_LOCK_TIMEOUT_S", "ten minutes")
    with pytest.raises(LockError, match=r"MLSPEC_LOCK_TIMEOUT_S='ten minutes' is not a number of seconds; set it"):
        with model_lock(unique(request), "deploy"):
            pass


def test_an_unwritable_lock_folder_is_a_clear_error(ops_home, request, monkeypatch, tmp_path):
    from mlspec.embedded_state import LockError
    from mlspec.locks import model_lock

    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "locks").write_text("")  # a file where the locks folder belongs
    monkeypatch.setenv("MLSPEC_HOME", str(tmp_path / "home"))
    with pytest.raises(LockError, match=r"cannot open the lock file .*home/locks/.*MLSPEC_HOME"):
        with model_lock(unique(request), "deploy"):
            pass


def test_a_restarted_server_is_reconciled_to_the_registry(ops_home, request, monkeypatch, tmp_path):
    """A crash mid-deploy: the server loaded version 2 (its state says so), the registry never promoted it."""
    from mlspec.operations import reconcile, status
    from mlspec.serving import open_local_serving

    model = publish_versions(unique(request), 2)
    spec = model.spec
    state = tmp_path / "state"
    first = start_server(ops_home, monkeypatch, state)
    try:
        from mlspec.operations import deploy_version

        deploy_version(spec, 1)
        open_local_serving(None).deploy(spec.name, 2, model.uris[2])  # then the worker died
    finally:
        first.stop()
    again = start_server(ops_home, monkeypatch, state)
    try:
        assert served(spec) == 2  # the server restores what its state says
        report = status(spec)
        assert report["drift"] and any("version 2" in p for p in report["problems"])
        assert "version 1 is serving again" in reconcile(spec)
        assert served(spec) == 1 and status(spec)["problems"] == []
        assert reconcile(spec) == ""  # nothing to do
    finally:
        again.stop()


class Interrupted(BaseException):
    """What a task's deadline (Airflow's AirflowTaskTimeout) or a Ctrl-C is: a BaseException, not an Exception."""


def serving_that(monkeypatch, **replaced):
    """Every operation's serving backend, with the named methods replaced (each gets the real backend first)."""
    from mlspec.release import Release

    real_open = Release.open.__func__

    class Wrapped:
        def __init__(self, serving):
            self.serving = serving

        def __getattr__(self, name):
            if name in replaced:
                return lambda *args: replaced[name](self.serving, *args)
            return getattr(self.serving, name)

    def wrapped_open(cls, spec, store=None):
        release = real_open(cls, spec, store)
        release.serving = Wrapped(release.serving)
        return release

    monkeypatch.setattr(Release, "open", classmethod(wrapped_open))


def test_a_deadline_mid_deploy_restores_the_registry_and_serving_and_records_it(ops_home, ops_server, request, monkeypatch):
    from mlspec.operations import deploy_version

    model = publish_versions(unique(request), 2)
    spec, registry = model.spec, model.registry()
    deploy_version(spec, 1)

    def half_deploy(serving, name, version, uri):
        deployment = serving.deploy(name, version, uri)  # serving changed...
        if version == 2:
            raise Interrupted("Timeout, PID: 4242")  # ...then the task's deadline hit
        return deployment

    serving_that(monkeypatch, deploy=half_deploy)
    with pytest.raises(Interrupted):  # the interruption goes on, after the restore
        deploy_version(spec, 2)
    assert registry.production_version(spec.name) == 1 and served(spec) == 1
    last = registry.production_changes(spec.name)[-2:]
    assert [(c.action, c.from_version, c.to_version) for c in last] == [("deploy", 1, 2), ("auto_rollback", 2, 1)]
    assert "interrupted (Interrupted: Timeout, PID: 4242)" in last[1].reason
    assert registry.version_record(spec.name, 2).state == "failed"


def test_a_deadline_mid_undeploy_restores_the_registry_and_records_it(ops_home, ops_server, request, monkeypatch):
    from mlspec.operations import deploy_version, undeploy

    model = publish_versions(unique(request), 1)
    spec, registry = model.spec, model.registry()
    deploy_version(spec, 1)

    def interrupted(serving, name):
        raise Interrupted("Timeout")

    serving_that(monkeypatch, undeploy=interrupted)
    with pytest.raises(Interrupted):
        undeploy(spec)
    assert registry.production_version(spec.name) == 1 and served(spec) == 1
    last = registry.production_changes(spec.name)[-1]
    assert (last.action, last.from_version, last.to_version) == ("auto_rollback", None, 1)


def test_a_failed_undeploy_with_nothing_in_production_records_no_restore(ops_home, ops_server, request, monkeypatch):
    from mlspec.errors import ServingError
    from mlspec.operations import undeploy
    from mlspec.release import OperationFailed

    model = publish_versions(unique(request), 1)
    spec, registry = model.spec, model.registry()

    def refused(serving, name):
        raise ServingError("the model server refused: 503")

    serving_that(monkeypatch, undeploy=refused)
    with pytest.raises(OperationFailed, match="the registry still names nothing"):
        undeploy(spec)
    # the undeploy itself is on the trail (the registry was asked to name nothing); no "nothing -> nothing" restore
    assert [(c.action, c.from_version, c.to_version) for c in registry.production_changes(spec.name)] == [
        ("undeploy", None, None)]


def test_status_advice_when_serving_does_not_answer_fits_the_platform(ops_home, request, monkeypatch):
    import mlspec.release
    from mlspec.errors import ServingError
    from mlspec.operations import status

    class Unreachable:
        def served_version(self, name):
            raise ServingError("connection refused")

    monkeypatch.setattr(mlspec.release, "open_serving", lambda spec, store: Unreachable())
    from dataclasses import replace
    from types import SimpleNamespace

    local = spec_for(unique(request))
    kserve = replace(local, serving=replace(local.serving, platform="kserve", settings=SimpleNamespace(namespace="models")))
    (problem,) = status(kserve)["problems"]
    assert "make serve" not in problem
    assert f"kubectl get inferenceservice {kserve.name} -n models" in problem
    (problem,) = status(local)["problems"]
    assert "start the model server (`make serve` or `mlspec serve`)" in problem

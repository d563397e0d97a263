"""Operations on a model's production version: deploy N, roll back, undeploy, status.

The registry is the record of production and serving follows it. Every change moves the registry
first, then applies to serving, then smoke-tests the endpoint; a failure restores both to where
they were. Used by the `mlspec deploy|rollback|undeploy|status` commands and the
`mlspec_operations` DAG.

Every change of production is recorded on the registry's audit trail (`ProductionChange`: time,
actor, action, from -> to, reason, run link). Operations on one model hold an exclusive file lock,
``$MLSPEC_HOME/locks/<model>.lock``, from the first registry read to the last serving check: two
operations on one model run one after the other. The lock is local to one machine (one
MLSPEC_HOME); Airflow workers on several machines need the mlspec_operations DAG's
``max_active_runs=1`` (its default) and no CLI operations run beside it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mlspec.errors import MlspecError, ServingError

log = logging.getLogger(__name__)

ACTIONS = ("status", "deploy", "rollback", "undeploy")


class OperationFailed(MlspecError):
    """The operation did not complete; the message says what was restored."""


# -- who changed production, and from which run ---------------------------------------------------


@dataclass(frozen=True)
class Trigger:
    """Who asked for a change of production and from which run: what the audit trail records."""

    actor: str  # the Airflow user, "schedule", or "cli:<os user>"
    run_id: str = ""
    run_url: str = ""

    @classmethod
    def from_cli(cls) -> Trigger:
        import getpass

        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry and no USER variable (some containers)
            user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
        return cls(actor=f"cli:{user}")

    @classmethod
    def from_context(cls, context: Any) -> Trigger:
        """The run's triggering user (Airflow 3's dag_run.triggering_user_name); "schedule" for a run
        the scheduler made (on its timetable, or on an asset event); "cli:<os user>" for `mlspec run`
        (dag.test, whose runs Airflow names "dag_test"); the run's page in the Airflow UI."""
        dag_run = context.get("dag_run") if hasattr(context, "get") else None
        run_id = str(context.get("run_id") or getattr(dag_run, "run_id", "") or "")
        user = getattr(dag_run, "triggering_user_name", None)
        run_type = getattr(getattr(dag_run, "run_type", None), "value", getattr(dag_run, "run_type", None))
        if user == "dag_test":  # Airflow's dag.test() (`mlspec run`) names no user: the one at the terminal
            actor = cls.from_cli().actor
        elif user:
            actor = str(user)
        elif str(run_type or "") in ("scheduled", "asset_triggered", "asset_materialization"):
            actor = "schedule"
        else:
            actor = f"unknown ({run_type or 'no'} run without a triggering user)"
        dag_id = str(getattr(dag_run, "dag_id", "") or "")
        return cls(actor=actor, run_id=run_id, run_url=dag_run_url(dag_id, run_id) if dag_id and run_id else "")

    def change(self, action: str, before: int | None, after: int | None, reason: str):
        from mlspec.registry.base import ProductionChange, utc_now

        return ProductionChange(at=utc_now(), actor=self.actor, action=action, from_version=before,
                                to_version=after, reason=reason, run_id=self.run_id, run_url=self.run_url)


def dag_run_url(dag_id: str, run_id: str) -> str:
    """The DAG run's page in the Airflow UI ([api] base_url, as Airflow's own task log links)."""
    from urllib.parse import quote

    try:
        from airflow.sdk.configuration import conf
    except ImportError:  # pragma: no cover - older SDKs
        from airflow.configuration import conf
    base = str(conf.get("api", "base_url", fallback="http://localhost:8080/") or "http://localhost:8080/")
    return f"{base.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def record_change(registry: Any, model_name: str, change: Any) -> str:
    """Append `change` to the model's audit trail; "" or a note when the registry refused it (the change of
    production itself already happened, so this never undoes or fails it)."""
    try:
        registry.record_production_change(model_name, change)
    except MlspecError as exc:
        log.warning("could not record %s of %s (%s -> %s) on the audit trail: %s", change.action, model_name,
                    change.from_version, change.to_version, exc)
        return f" The change could not be recorded on the registry's audit trail: {exc}"
    return ""


# -- one operation per model at a time ------------------------------------------------------------


def lock_path(model_name: str):
    from mlspec.home import mlspec_home

    return mlspec_home() / "locks" / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', model_name)}.lock"


@contextmanager
def model_lock(model_name: str, what: str, timeout_s: float | None = None) -> Iterator[None]:
    """Hold ``$MLSPEC_HOME/locks/<model>.lock`` exclusively (embedded_state.locked: re-entrant in one thread,
    0600, the holder's pid and `what` in the file); waits up to `timeout_s` (MLSPEC_LOCK_TIMEOUT_S, default
    600) for an operation that holds it, then LockError naming that operation."""
    from mlspec.embedded_state import locked

    path = lock_path(model_name)
    with locked(
        path.with_name(path.stem), timeout_s=timeout_s, what=what, busy=f"another operation on {model_name}",
        next_step="nothing changed. Wait for it to finish and try again",
    ):
        yield


@dataclass
class Backends:
    """The spec's registry, serving backend and store, opened once per operation."""

    spec: Any
    registry: Any
    serving: Any
    store: Any

    @classmethod
    def open(cls, spec: Any) -> Backends:
        from mlspec.registry import open_registry
        from mlspec.serving import open_serving
        from mlspec.storage import open_store

        store = open_store(spec.storage.uri, spec.storage.connection)
        return cls(spec, open_registry(spec.registry.backend, spec.registry.connection), open_serving(spec, store), store)


def status(spec: Any) -> dict[str, Any]:
    """The registry's production version, what serving answers with, and every disagreement between
    them (`problems`: drift, serving unreachable, production's files no longer what the registry recorded)."""
    from mlspec.registry.reading import open_for_reading

    backends = Backends.open(spec)
    backends.registry = open_for_reading(spec.registry.backend, spec.registry.connection)  # creates nothing
    production = backends.registry.production_version(spec.name)
    try:
        serving: int | None | str = backends.serving.served_version(spec.name)
    except ServingError as exc:
        serving = f"unreachable: {exc}"
    reachable = not isinstance(serving, str)
    drift = reachable and serving != production
    report = {
        "model": spec.name,
        "production": production,
        "serving": serving,
        "reachable": reachable,
        "drift": drift,
        "history": backends.registry.production_history(spec.name),
        "latest": backends.registry.latest_version(spec.name),
    }
    source = spec.source_file or "<spec>"
    problems: list[str] = []
    if drift:
        report["advice"] = (
            f"serving does not follow the registry; `mlspec deploy {source} --version {production}` "
            "puts the registry's production version back" if production is not None
            else f"nothing is production in the registry; `mlspec undeploy {source}` stops serving"
        )
        problems.append(f"serving answers with version {serving}, the registry's production version is "
                        f"{production}: {report['advice']}")
    if not reachable:
        if spec.serving.platform == "kserve":
            step = (f"check the Kubernetes connection and the InferenceService `{spec.name}` "
                    f"(`kubectl get inferenceservice {spec.name} -n {spec.serving.namespace}`) and ask again")
        else:
            step = "start the model server (`make serve` or `mlspec serve`) and ask again"
        problems.append(f"serving could not be asked which version it serves ({serving}); {step}")
    if production is not None:
        record = backends.registry.version_record(spec.name, production)
        try:
            if record is None:
                raise OperationFailed(f"the registry names version {production} production but has no record of it")
            _verified_files(backends, record)
        except OperationFailed as exc:
            report["files_problem"] = str(exc).removesuffix("; nothing changed")
            problems.append(f"{report['files_problem']}; serve a version whose files match "
                            f"(`mlspec deploy {source} --version N`)")
    report["problems"] = problems
    return report


def deploy_version(
    spec: Any, version: int, *, reason: str = "deployed on request", trigger: Trigger | None = None
) -> dict[str, Any]:
    """Make store version `version` production and serve it; restore both if it fails its smoke test."""
    trigger = trigger or Trigger.from_cli()
    with model_lock(spec.name, f"deploy version {version} for {trigger.actor}"):
        return _deploy_locked(Backends.open(spec), version, reason, trigger, "deploy")


def _deploy_locked(backends: Backends, version: int, reason: str, trigger: Trigger, action: str) -> dict[str, Any]:
    spec = backends.spec
    record = backends.registry.version_record(spec.name, version)
    if record is None:
        known = backends.registry.latest_version(spec.name)
        raise OperationFailed(
            f"{spec.name} version {version} is not registered (latest registered: {known}); nothing changed"
        )
    onnx_bytes = _verified_model(backends, record)
    previous = backends.registry.production_version(spec.name)
    served_before = _served_or_none(backends)
    if served_before != previous:
        log.warning("drift: serving had %s version %s, the registry says %s; this %s corrects it",
                    spec.name, served_before, previous, action)
    log.info("%s %s version %d (production before: %s): registry first, then serving", action, spec.name,
             version, previous)
    backends.registry.set_production(spec.name, version, reason=reason)
    notes = ""
    deployment = None
    try:
        notes = record_change(backends.registry, spec.name, trigger.change(action, previous, version, reason))
        deployment = backends.serving.deploy(spec.name, version, record.source_uri)
        report = _smoke_test(backends, deployment, onnx_bytes, record)
        served = backends.serving.served_version(spec.name)
        if served != version:
            raise OperationFailed(f"after deploying, serving answers with version {served}, not {version}")
    except BaseException as exc:
        # Also a task's deadline (AirflowTaskTimeout), a Ctrl-C or a bug: the registry moved first, so it and
        # serving go back before the exception goes on.
        why = str(exc) if isinstance(exc, MlspecError) else f"interrupted ({type(exc).__name__}: {exc})"
        restored = _restore(backends, previous)
        failure = f"{action} of {spec.name} version {version} failed: {why}"
        _record_failure(backends, version, deployment, failure)
        record_change(backends.registry, spec.name,
                      trigger.change("auto_rollback", version, previous, f"{failure}; {restored}"[:1200]))
        if isinstance(exc, MlspecError):
            raise OperationFailed(f"{failure}; {restored}") from None
        log.error("%s; %s", failure, restored)
        raise
    from dataclasses import replace

    # What the pipeline's promote records: where the version went and that it passed its smoke test.
    passed = replace(deployment, previous_version=previous).to_xcom()
    passed["message"] = f"{action} by {trigger.actor}: {reason}"
    try:
        backends.registry.record_deployment(spec.name, version, passed, "smoke_test_passed")
    except MlspecError as exc:
        notes += f" The deployment could not be recorded on version {version}: {exc}"
    log.info("%s version %d is production and serving (smoke test agreement %.3f)", spec.name, version, report["agreement"])
    result = {"model": spec.name, "action": action, "version": version, "previous": previous,
              "endpoint_url": deployment.endpoint_url, "smoke_test": report, "actor": trigger.actor}
    if notes:
        result["warning"] = notes.strip()
    return result


def _record_failure(backends: Backends, version: int, deployment: Any, failure: str) -> None:
    spec = backends.spec
    try:
        if deployment is not None:
            backends.registry.record_deployment(spec.name, version, {**deployment.to_xcom(), "message": failure[:2000]}, "failed")
        backends.registry.set_state(spec.name, version, "failed", {"failure": failure[:2000]})
    except MlspecError as exc:
        log.warning("could not record the failure of %s version %d: %s", spec.name, version, exc)


def rollback(spec: Any, to_version: int | None = None, *, trigger: Trigger | None = None) -> dict[str, Any]:
    """Serve `to_version`, by default the version that was production before the current one (skipping
    versions that failed or were rolled back)."""
    trigger = trigger or Trigger.from_cli()
    with model_lock(spec.name, f"rollback to {to_version or 'the previous version'} for {trigger.actor}"):
        backends = Backends.open(spec)
        current = backends.registry.production_version(spec.name)
        if to_version is None:
            to_version = _previous_production(backends, current)
        result = _deploy_locked(backends, to_version, f"rollback from version {current}", trigger, "rollback")
    return {**result, "rolled_back_from": current}


def _previous_production(backends: Backends, current: int | None) -> int:
    spec = backends.spec
    for candidate in reversed(backends.registry.production_history(spec.name)):
        if candidate == current:
            continue
        record = backends.registry.version_record(spec.name, candidate)
        if record is not None and record.state not in ("failed", "rolled_back"):
            return candidate
    raise OperationFailed(
        f"{spec.name} has no earlier production version to roll back to (production: {current}); "
        "name one with --to-version, or undeploy"
    )


def undeploy(spec: Any, *, trigger: Trigger | None = None) -> dict[str, Any]:
    """Nothing is production and nothing serves; if serving refuses, the registry is restored."""
    trigger = trigger or Trigger.from_cli()
    with model_lock(spec.name, f"undeploy for {trigger.actor}"):
        backends = Backends.open(spec)
        previous = backends.registry.production_version(spec.name)
        reason = "undeployed on request"
        backends.registry.set_production(spec.name, None, reason=reason)
        notes = ""
        try:
            notes = record_change(backends.registry, spec.name, trigger.change("undeploy", previous, None, reason))
            backends.serving.undeploy(spec.name)
        except BaseException as exc:  # a deadline or Ctrl-C too: the registry moved first, so it goes back
            why = str(exc) if isinstance(exc, MlspecError) else f"interrupted ({type(exc).__name__}: {exc})"
            if previous is not None:  # with nothing production before, nothing moved: nothing to restore
                backends.registry.set_production(spec.name, previous, reason="restored: undeploy failed")
                record_change(backends.registry, spec.name,
                              trigger.change("auto_rollback", None, previous, f"undeploy failed: {why}"[:1200]))
            if not isinstance(exc, MlspecError):
                raise
            still = f"version {previous}" if previous is not None else "nothing (as before)"
            raise OperationFailed(f"undeploying {spec.name} failed: {exc}; the registry still names {still}") from None
    result = {"model": spec.name, "action": "undeploy", "previous": previous, "actor": trigger.actor}
    if notes:
        result["warning"] = notes.strip()
    return result


def reconcile(spec: Any) -> str:
    """Make serving follow the registry (a restarted server serves what its own state says): serve the
    registry's production version, or nothing when none is. Returns a sentence of what was done ("" when
    serving already followed). Production does not change, so the audit trail records nothing."""
    with model_lock(spec.name, "reconcile serving with the registry"):
        backends = Backends.open(spec)
        production = backends.registry.production_version(spec.name)
        served = backends.serving.served_version(spec.name)
        if served == production:
            return ""
        if production is None:
            backends.serving.undeploy(spec.name)
            done = f"serving had {spec.name} version {served} while nothing is production in the registry; it was unloaded"
        else:
            record = backends.registry.version_record(spec.name, production)
            if record is None:
                raise OperationFailed(f"the registry names {spec.name} version {production} production but has no record of it")
            _verified_model(backends, record)
            backends.serving.deploy(spec.name, production, record.source_uri)
            done = (f"serving had {spec.name} version {served}, the registry's production version is {production}; "
                    f"version {production} is serving again")
    log.warning("reconciled: %s", done)
    return done


def run_action(spec: Any, action: str, version: int | None = None, *, trigger: Trigger | None = None) -> dict[str, Any]:
    if action == "status":
        return status(spec)
    if action == "deploy":
        if version is None:
            raise OperationFailed("deploy needs a version")
        return deploy_version(spec, int(version), trigger=trigger)
    if action == "rollback":
        return rollback(spec, None if version is None else int(version), trigger=trigger)
    if action == "undeploy":
        return undeploy(spec, trigger=trigger)
    raise OperationFailed(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")


# -- helpers ------------------------------------------------------------------------------------


def _served_or_none(backends: Backends) -> int | None:
    try:
        return backends.serving.served_version(backends.spec.name)
    except ServingError:
        return None


def verify_recorded_files(store: Any, record: Any) -> dict[str, bytes]:
    """Read every file the registry recorded a sha256 for (model.onnx, signature.json, the schemas, ...)
    from the version folder and check it; OperationFailed names the first that is missing or changed."""
    from mlspec.storage import sha256_hex

    where = f"{record.model_name} version {record.version}"
    if "model.onnx" not in record.files:
        log.warning("%s: the registry recorded no sha256 for model.onnx; its files cannot be checked", where)
    contents: dict[str, bytes] = {}
    for file_name, expected in sorted(record.files.items()):
        try:
            data = store.read_uri(f"{record.source_uri}/{file_name}")
        except MlspecError as exc:
            raise OperationFailed(f"{where}: {file_name} cannot be read from {record.source_uri}: {exc}; nothing changed") from None
        if expected and sha256_hex(data) != expected:
            raise OperationFailed(
                f"{where}: {file_name} at {record.source_uri} does not match the sha256 the registry recorded "
                f"({expected[:12]}...; changed after publishing); nothing changed"
            )
        contents[file_name] = data
    return contents


def _verified_files(backends: Backends, record: Any) -> dict[str, bytes]:
    return verify_recorded_files(backends.store, record)


def _verified_model(backends: Backends, record: Any) -> bytes:
    contents = _verified_files(backends, record)
    if "model.onnx" in contents:
        return contents["model.onnx"]
    try:
        return backends.store.read_uri(f"{record.source_uri}/model.onnx")
    except MlspecError as exc:
        raise OperationFailed(f"{record.model_name} version {record.version} cannot be read from {record.source_uri}: {exc}; nothing changed") from None


def _smoke_test(backends: Backends, deployment: Any, onnx_bytes: bytes, record: Any) -> dict[str, Any]:
    """The endpoint must answer like the offline model, on rows drawn around each feature's training
    statistics (input_schema.json): an operation has no test split at hand."""
    import json

    import numpy as np

    from mlspec.ml.onnx_export import onnx_predict, onnx_signature
    from mlspec.serving.smoke_test import run_smoke_test, spec_settings

    spec = backends.spec
    signature = onnx_signature(onnx_bytes)
    try:
        schema = json.loads(backends.store.read_uri(f"{record.source_uri}/input_schema.json"))
    except MlspecError:
        schema = {}
    shape = [int(d) for d in signature["inputs"][0]["shape"][1:]]
    rng = np.random.default_rng(0)
    samples = spec.smoke_test.samples
    features = schema.get("features") or []
    if features and len(features) == int(np.prod(shape)):
        mean = np.array([f.get("mean") or 0.0 for f in features], dtype=np.float32)
        std = np.array([f.get("std") or 0.0 for f in features], dtype=np.float32)
        x = (mean + std * rng.standard_normal((samples, len(features))).astype(np.float32)).reshape(samples, *shape)
    else:
        x = rng.standard_normal((samples, *shape)).astype(np.float32)
    return run_smoke_test(
        endpoint_url=deployment.endpoint_url,
        model_name=deployment.served_model_name,
        version=deployment.version if deployment.platform == "local" else None,
        x=x,
        expected=onnx_predict(onnx_bytes, x),
        signature=signature,
        **spec_settings(spec),
    )


def _restore(backends: Backends, previous: int | None) -> str:
    """Put the registry and serving back to `previous`; a sentence saying what was done."""
    spec = backends.spec
    backends.registry.set_production(spec.name, previous, reason="restored after a failed operation")
    try:
        if previous is None:
            backends.serving.undeploy(spec.name)
            return "the registry and serving were restored: nothing is production and nothing serves"
        record = backends.registry.version_record(spec.name, previous)
        backends.serving.deploy(spec.name, previous, record.source_uri if record else "")
    except MlspecError as exc:
        return f"the registry names version {previous} again, but serving could not be restored ({exc}); serve it by hand"
    return f"version {previous} is production and serving again"

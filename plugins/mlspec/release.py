"""The release service: the one path a model version takes into production and back out.

Every caller goes through it: the pipeline's deploy, smoke_test and promote tasks, the operations by version
(`mlspec deploy|rollback|undeploy|status` and the mlspec_operations DAG, in mlspec.operations) and the Models
page. It works over the interfaces only (ModelRegistry, ServingBackend, the store), so a new registry or
serving platform changes nothing here.

The registry is the record of production and serving follows it. Every release takes the same steps, in
the same order (issue 8, "registry first"):

1. ``check``: under the model's lock, the registry's record of the version (each file checked against the
   sha256 it recorded) and its production version, the one a failure goes back to;
2. ``set_production``: the registry moves first when a person chose the version (an operation). A
   pipeline candidate is not production until it passes its smoke test: its move is step 5;
3. ``serve``: the serving backend applies the version and waits until it answers (``apply`` and
   ``await_ready``; on KServe the wait runs in Airflow's triggerer);
4. ``smoke_test``: the endpoint must answer like the offline ONNX model;
5. ``promote``: production is set explicitly, the deployment recorded on the version, the change put on
   the audit trail.

A failure restores (``serve_production``, the one restore): the registry goes back to where it was (when it
moved) and serving to the registry's production version, never to what the server or the cluster happened to
serve before.

Every change of production is recorded on the registry's audit trail (``ProductionChange``: time, actor,
action, from -> to, reason, run link). Releases of one model hold an exclusive file lock (mlspec.locks),
``$MLSPEC_HOME/locks/<model>.lock``, from the first registry read to the last serving check. The lock is
local to one machine (one MLSPEC_HOME); Airflow workers on several machines need the mlspec_operations
DAG's ``max_active_runs=1`` (its default) and no CLI operations run beside it.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote

from mlspec.errors import MlspecError, ServingError, StoreError
from mlspec.registry import open_registry
from mlspec.registry.base import ModelRegistry, ProductionChange, VersionRecord, utc_now
from mlspec.registry.reading import open_for_reading
from mlspec.rollout.plan import NO_SPLIT
from mlspec.rollout.record import (
    ABORT,
    ABORTED,
    ABORTED_STEP,
    FAILED,
    ROLLED_BACK,
    load_record,
    pending_command,
    save_record,
    unfinished_rollouts,
)
from mlspec.rollout.record import ROLLBACK as ROLLBACK_STEP
from mlspec.serving import open_serving, platform_of
from mlspec.serving import smoke_test as endpoint_check
from mlspec.serving.base import Deployment, RollbackFailed, ServingBackend
from mlspec.storage import open_store, sha256_hex

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)


class OperationFailed(MlspecError):
    """The release did not complete; the message says what was restored."""


class CandidateRefused(OperationFailed):
    """A pipeline candidate's release stops for good (a retry cannot fix it): the message says what serves,
    `next_step` what to do."""

    def __init__(self, message: str, next_step: str) -> None:
        super().__init__(message)
        self.next_step = next_step


# -- who changed production, and from which run ---------------------------------------------------


@dataclass(frozen=True)
class Trigger:
    """Who asked for a change of production and from which run: what the audit trail records."""

    actor: str  # the Airflow user, "schedule", or "cli:<os user>"
    run_id: str = ""
    run_url: str = ""

    @classmethod
    def from_cli(cls) -> Trigger:
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

    def change(self, action: str, before: int | None, after: int | None, reason: str) -> ProductionChange:
        return ProductionChange(at=utc_now(), actor=self.actor, action=action, from_version=before,
                                to_version=after, reason=reason, run_id=self.run_id, run_url=self.run_url)


def dag_run_url(dag_id: str, run_id: str) -> str:
    """The DAG run's page in the Airflow UI ([api] base_url, as Airflow's own task log links)."""
    try:
        from airflow.sdk.configuration import conf
    except ImportError:  # pragma: no cover - older SDKs
        from airflow.configuration import conf
    base = str(conf.get("api", "base_url", fallback="http://localhost:8080/") or "http://localhost:8080/")
    return f"{base.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def record_change(registry: ModelRegistry, model_name: str, change: ProductionChange) -> str:
    """Append `change` to the model's audit trail; "" or a note when the registry refused it (the change of
    production itself already happened, so this never undoes or fails it)."""
    try:
        registry.record_production_change(model_name, change)
    except MlspecError as exc:
        log.warning("could not record %s of %s (%s -> %s) on the audit trail: %s", change.action, model_name,
                    change.from_version, change.to_version, exc)
        return f" The change could not be recorded on the registry's audit trail: {exc}"
    return ""


class PublishedFileChanged(MlspecError):
    """A version's published file does not match the sha256 the registry recorded: it was changed after
    publishing, so nothing may be decided on it."""


def published_file(store: Any, record: VersionRecord, name: str) -> bytes | None:
    """One file of a published version (model.onnx, the schemas, profile.json, splits.parquet, ...), checked
    against the sha256 the registry recorded: the one reader of a version's files. None where the version was
    published without it (its manifest does not list it, and the store has none). A file its manifest lists
    that the store cannot give back is a StoreError, one that does not match its sha256 PublishedFileChanged:
    a reader that went on without it would decide on less than the version published."""
    where = f"{record.model_name} version {record.version}"
    try:
        data = store.read_uri(f"{record.source_uri}/{name}")
    except StoreError as exc:
        if name in record.files:
            raise StoreError(
                f"{where}: {name} cannot be read from {record.source_uri} (its manifest lists it): {exc}"
            ) from None
        return None
    expected = record.files.get(name)
    if expected and sha256_hex(data) != expected:
        raise PublishedFileChanged(
            f"{where}: {name} at {record.source_uri} does not match the sha256 the registry recorded "
            f"({expected[:12]}...; changed after publishing)"
        )
    return data


def published_json(store: Any, record: VersionRecord, name: str) -> dict[str, Any]:
    """A JSON file of a published version (input_schema.json, output_schema.json, profile.json, ...) as
    `published_file` reads it; {} where the version was published without it."""
    data = published_file(store, record, name)
    if data is None:
        return {}
    try:
        return json.loads(data)
    except ValueError as exc:
        raise MlspecError(
            f"{record.model_name} version {record.version}: its published {name} at {record.source_uri} is not "
            f"JSON ({exc})"
        ) from None


def verify_recorded_files(store: Any, record: VersionRecord) -> dict[str, bytes]:
    """Read every file the registry recorded a sha256 for (model.onnx, signature.json, the schemas, ...)
    from the version folder and check it; OperationFailed names the first that is missing or changed."""
    if "model.onnx" not in record.files:
        log.warning(
            "%s version %s: the registry recorded no sha256 for model.onnx; its files cannot be checked",
            record.model_name, record.version,
        )
    contents: dict[str, bytes] = {}
    for file_name in sorted(record.files):
        try:
            data = published_file(store, record, file_name)
        except MlspecError as exc:
            raise OperationFailed(f"{exc}; nothing changed") from None
        contents[file_name] = data or b""
    return contents


# Who rolls back a rollout left behind when the next one starts (the record's "by").
ABANDONED_BY = "mlspec: abandoned"


def what_failed(exc: BaseException) -> str:
    """What failed, in words: an mlspec error's message, or what interrupted the release (a task's deadline,
    a Ctrl-C, a bug)."""
    return str(exc) if isinstance(exc, MlspecError) else f"interrupted ({type(exc).__name__}: {exc})"


# -- the release service --------------------------------------------------------------------------


@dataclass
class Release:
    """One model's release steps over its spec's registry, serving backend and store. Callers hold the
    model's lock around each step that reads production and acts on it (mlspec.locks.model_lock)."""

    spec: Any
    registry: ModelRegistry
    serving: ServingBackend
    store: Any

    @classmethod
    def open(cls, spec: Any, store: Any = None) -> Release:
        store = store if store is not None else open_store(spec.storage.uri, spec.storage.connection)
        registry = open_registry(spec.registry.backend, spec.registry.connection)
        return cls(spec, registry, open_serving(spec, store), store)

    @classmethod
    def for_reading(cls, spec: Any) -> Release:
        """A release that only reads: its registry never creates or migrates the embedded database."""
        store = open_store(spec.storage.uri, spec.storage.connection)
        registry = open_for_reading(spec.registry.backend, spec.registry.connection)
        return cls(spec, registry, open_serving(spec, store), store)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def spec_ref(self) -> str:
        return self.spec.source_file or "<spec>"

    # -- 1. check ---------------------------------------------------------------------------------
    def check(self, version: int) -> tuple[VersionRecord, dict[str, bytes]]:
        """The registry's record of `version` and its files, each checked against the sha256 recorded."""
        record = self.registry.version_record(self.name, version)
        if record is None:
            known = self.registry.latest_version(self.name)
            raise OperationFailed(
                f"{self.name} version {version} is not registered (latest registered: {known}); nothing changed"
            )
        return record, verify_recorded_files(self.store, record)

    def production(self) -> int | None:
        return self.registry.production_version(self.name)

    def served_or_none(self) -> int | None:
        try:
            return self.serving.served_version(self.name)
        except ServingError:
            return None

    # -- 3. serve: apply, then await_ready (in the worker, or with the triggerer's event) ---------------
    def apply(self, version: int, version_uri: str, *, serve: bool = True) -> dict:
        """Start serving `version`; the backend's state for `await_ready` (or its `readiness_trigger`).
        `serve=False` (a rollout's candidate): loaded and ready beside production, answering no live request
        until the rollout's steps give it traffic."""
        served = self.served_or_none()
        production = self.production()
        if served is not None and served != production:
            log.warning("drift: serving had %s version %s while the registry's production version is %s; a "
                        "failure restores the registry's", self.name, served, production)
        self.endpoint_change(production, version)
        return self.serving.apply(self.name, version, version_uri, serve=serve)

    def await_ready(self, state: dict, event: dict | None = None) -> Deployment:
        """The applied version answers: its Deployment, to be rolled back to the registry's production
        version. A version that never became ready: when serving does not answer with the registry's production
        version afterwards (KServe took it back to what the cluster served; the local server may still hold it),
        serving goes to production (ServingError says so; RollbackFailed, never a rollback, when that failed)."""
        try:
            deployment = self.serving.await_ready(state, event)
        except RollbackFailed:
            raise
        except ServingError as exc:
            served, production = self.served_or_none(), self.production()
            if served == production:  # the backend went back to production itself
                raise
            try:  # drift: the backend went back to what it served, which is not production
                self.serve_production(state["version"])
            except RollbackFailed as restore_exc:  # nothing went back: say so, never "rolled back"
                raise RollbackFailed(f"{exc}; {restore_exc}") from None
            now = f"version {production}" if production is not None else "nothing"
            raise ServingError(f"{exc} Serving had version {served} before; it now serves the registry's "
                               f"production version: {now}.") from None
        return replace(deployment, previous_version=self.production())

    # -- 4. smoke test ------------------------------------------------------------------------------
    def smoke_test(
        self, deployment: Deployment, x: np.ndarray | list[dict], onnx_bytes: bytes, signature: dict, input_schema: dict | None = None
    ) -> dict:
        """The endpoint must answer `x` as the offline ONNX model does (SmokeTestFailed otherwise). `x`: a
        single-input model's samples, or a table model's JSON rows ({column: raw value or None}) with its
        published `input_schema` (columns and fills: the offline model is fed what the server makes of them)."""
        # numpy: tasks only, not at DAG parse (tests/compiler/test_parse_stays_light.py::test_parsing_imports_no_numpy_pandas_pyarrow_or_heavy_library)
        from mlspec.ml import model_io, onnx_export

        table = bool((input_schema or {}).get("columns"))
        return endpoint_check.run_smoke_test(
            endpoint_url=deployment.endpoint_url,
            model_name=deployment.served_model_name,
            version=deployment.version if platform_of(self.spec).serves_versions else None,
            x=x,
            expected=onnx_export.onnx_predict(onnx_bytes, model_io.rows_inputs(x, input_schema) if table else x),
            signature=signature,
            **endpoint_check.spec_settings(self.spec),
        )

    def sample_rows(self, onnx_bytes: bytes, schema: dict) -> np.ndarray | list[dict]:
        """What an operation sends, having no test split at hand: a table model's published example rows
        (real test rows, input_schema.json), else rows drawn around each feature's training statistics."""
        import numpy as np

        if schema.get("columns"):
            return list(schema.get("example") or [])
        signature = signature_of(onnx_bytes)
        shape = [int(d) for d in signature["inputs"][0]["shape"][1:]]
        rng = np.random.default_rng(0)
        samples = self.spec.smoke_test.samples
        features = schema.get("features") or []
        if features and len(features) == int(np.prod(shape)):
            mean = np.array([f.get("mean") or 0.0 for f in features], dtype=np.float32)
            std = np.array([f.get("std") or 0.0 for f in features], dtype=np.float32)
            return (mean + std * rng.standard_normal((samples, len(features))).astype(np.float32)).reshape(samples, *shape)
        return rng.standard_normal((samples, *shape)).astype(np.float32)

    def published_json(self, record: VersionRecord, name: str) -> dict:
        """One of the version's published JSON files (input_schema.json, output_schema.json), for information
        only: {} where it was published without it or cannot be read now (logged)."""
        try:
            return published_json(self.store, record, name)
        except MlspecError as exc:
            log.warning("%s", exc)
            return {}

    def input_schema(self, record: VersionRecord) -> dict:
        return self.published_json(record, "input_schema.json")

    def endpoint_change(self, before: int | None, after: int) -> str:
        """When `after` takes other endpoint inputs than `before`, or answers other classes (their published
        input_schema.json and output_schema.json compared), sentences saying so, also logged; "" when they are
        the same or cannot be compared. Information, not a gate: the release goes on, but clients that send the
        old inputs will be refused, and a client reading `label: 1` must know when it means another class."""
        # numpy: tasks only, not at DAG parse (tests/compiler/test_parse_stays_light.py::test_parsing_imports_no_numpy_pandas_pyarrow_or_heavy_library)
        from mlspec.ml import io_schema

        if before is None or before == after:
            return ""
        try:
            records = [self.registry.version_record(self.name, v) for v in (before, after)]
        except MlspecError as exc:
            log.warning("could not compare the endpoints of %s versions %s and %s: %s", self.name, before, after, exc)
            return ""
        if None in records:
            return ""
        sentences = []
        inputs = io_schema.input_changes(*(self.input_schema(r) for r in records))
        if inputs:
            sentences.append(f"the endpoint's inputs change from version {before} to {after}: {inputs}: clients must "
                             "send the new inputs")
        classes = io_schema.class_changes(*(self.published_json(r, "output_schema.json") for r in records))
        if classes:
            sentences.append(f"the endpoint's classes change from version {before} to {after}: {classes}")
        change = ". ".join(sentences)
        if change:
            log.warning("%s: %s", self.name, change)
        return change

    # -- 5. promote -----------------------------------------------------------------------------------
    def promote(self, deployment: Deployment, change: ProductionChange | None) -> str:
        """The smoke-tested version becomes production (an explicit `set_production`: recording a deployment
        never moves it), its deployment is recorded on the version and `change` on the audit trail (None: an
        earlier try recorded it). Call it under the model's lock. Returns what could not be recorded."""
        self.registry.set_production(self.name, deployment.version, reason="its smoke test passed")
        self.registry.record_deployment(self.name, deployment.version, deployment.to_xcom(), "smoke_test_passed")
        return record_change(self.registry, self.name, change) if change is not None else ""

    def promote_candidate(self, deployment: Deployment, trigger: Trigger, reason: str) -> str:
        """The pipeline's promote: serving must still answer with the smoke-tested version (an operation may
        have run since the smoke test; CandidateRefused then, and nothing changes), then `promote`. A retried
        promote finds its own audit entry and does not record it twice. Call it under the model's lock.
        Returns what could not be recorded."""
        served = self.serving.served_version(self.name)
        if served != deployment.version:
            raise CandidateRefused(
                f"serving answers with version {served} of {self.name}, not the deployed and smoke-tested version "
                f"{deployment.version} (an operation ran since the smoke test?); production was not changed",
                next_step=f"run `mlspec status {self.spec_ref}` to see what serves and what the registry says, "
                "then trigger a new run",
            )
        trail = self.registry.production_changes(self.name)
        done = bool(trigger.run_id) and any(
            c.action == "promote" and c.run_id == trigger.run_id and c.to_version == deployment.version for c in trail[-5:])
        if done:
            log.info("promotion of %s version %d is already on the audit trail (an earlier try)", self.name,
                     deployment.version)
        before = self.production()
        return self.promote(deployment, None if done else trigger.change("promote", before, deployment.version, reason))

    # -- a rollout: the candidate takes live traffic step by step, then serves or goes back ---------------
    def set_traffic(self, traffic: dict) -> None:
        """One rollout step: route live requests as `traffic` says (mlspec.rollout.plan.traffic_for)."""
        self.serving.set_traffic(self.name, traffic)

    def finish_rollout(self, deployment: Deployment) -> None:
        """The rollout's steps passed: the candidate becomes the served version and answers every request (the
        plain load: any traffic split and shadow cleared). Production moves with `promote_candidate` next.
        Call it under the model's lock."""
        record = self.registry.version_record(self.name, deployment.version)
        if record is None:
            raise OperationFailed(f"{self.name} version {deployment.version} is no longer registered; nothing changed")
        self.serving.deploy(self.name, deployment.version, record.source_uri)
        log.info("%s version %d answers every request after its rollout", self.name, deployment.version)

    def roll_back_rollout(self, deployment: Deployment, reason: str, trigger: Trigger, *, by: str,
                          gate: str = "", context: Any = None) -> str:
        """A rollout failed (a gate, a rejected or timed-out approval, an abort): production takes every
        request back, then the candidate is marked `rolled_back`, serving's going back goes on the audit trail
        and the `rollback` notification goes out. The split is cleared FIRST and needs no registry (production
        is the served version for the whole rollout); what follows is best-effort, each failure logged with
        the next step. Production is then served again and the candidate unloaded (`serve_production`, the
        one restore). Returns the story; RollbackFailed when serving refused (the candidate is then marked
        `failed`). Call it under the model's lock."""
        version = deployment.version
        message = f"the rollout of {self.name} version {version} was rolled back by {by}: {reason}"
        log.error("%s; the served version takes every request back", message)
        try:
            self.serving.set_traffic(self.name, NO_SPLIT)  # fast: production answers all at once
            cleared = True
        except ServingError as exc:  # the restore below clears it too
            cleared = False
            log.warning("could not clear the traffic split of %s first: %s", self.name, exc)
        try:
            production = self.production()
        except MlspecError as exc:
            return self.rollback_unrecorded(deployment, message, exc, cleared, trigger, gate=gate, by=by,
                                            reason=reason, context=context)
        if production == version:  # an operation made the candidate production on purpose since
            message += f"; an operation has made version {version} production since: serving left as is"
            log.warning("%s", message)
            return message + self.record_rollout_end(version, reason, by)
        try:
            restored = self.serve_production(version, deployment.served_model_name)
        except RollbackFailed as exc:
            message += f"; the rollback failed too ({exc}), so version {version} may still answer requests"
            message += self.record_outcome(version, {**deployment.to_xcom(), "message": message[:2000]}, "failed")
            raise RollbackFailed(message) from None
        except MlspecError as exc:  # the registry did not answer the restore's reads
            return self.rollback_unrecorded(deployment, message, exc, cleared, trigger, gate=gate, by=by,
                                            reason=reason, context=context)
        message += f"; {restored}"
        message += self.record_outcome(version, {**deployment.to_xcom(), "message": message[:2000]}, "rolled_back")
        message += self.record_serving_went_back(trigger, version, message)
        message += self.record_rollout_end(version, reason, by)
        self.notify_rollback(deployment, production, reason, gate=gate, by=by, trigger=trigger, context=context)
        return message

    def rollback_unrecorded(self, deployment: Deployment, message: str, exc: MlspecError, cleared: bool,
                            trigger: Trigger, *, gate: str, by: str, reason: str, context: Any) -> str:
        """The registry did not answer during a rollout's rollback. With the split cleared the served
        version (production) answers every request: say what is left to do; RollbackFailed otherwise."""
        if not cleared:
            raise RollbackFailed(f"{message}; the traffic split could not be cleared and the registry did not "
                                 f"answer ({exc}), so version {deployment.version} may still answer requests; "
                                 f"check with `mlspec status {self.spec_ref}`") from None
        message += (f"; the split is cleared, so production answers every request, but the registry did not "
                    f"answer ({exc}): version {deployment.version} stays loaded (answering nothing) and is not "
                    f"marked rolled_back. Next step: once the registry answers, `mlspec status --strict "
                    f"{self.spec_ref}` and `mlspec rollout {self.spec_ref} --abort`")
        log.error("%s", message)
        message += self.record_rollout_end(deployment.version, reason, by)
        self.notify_rollback(deployment, deployment.previous_version, reason, gate=gate, by=by, trigger=trigger,
                             context=context)
        return message

    def notify_rollback(self, deployment: Deployment, production: int | None, reason: str, *, gate: str, by: str,
                        trigger: Trigger, context: Any) -> None:
        """The `rollback` notification; a notifier that fails is logged (the rollback is done)."""
        # Airflow's notifiers: loaded only when a rollout rolls back (the CLI stays light without Airflow).
        from mlspec.notify import notify_rollback

        try:
            notify_rollback(self.spec, {"model": self.name, "version": deployment.version, "production": production,
                                        "reason": reason, "gate": gate, "by": by, "run_id": trigger.run_id}, context)
        except Exception as exc:  # noqa: BLE001 - a notifier's failure must not undo the rollback's story
            log.warning("the rollback notification of %s version %d could not be sent: %s; check the spec's "
                        "notify connection", self.name, deployment.version, exc)

    def roll_back_abandoned(self, candidate: int) -> str:
        """Before a rollout of `candidate` starts: a rollout left behind (its task killed or marked failed) may
        still split the traffic (the server keeps it across restarts) and its record still says it runs. Clear
        the split, take the old candidate out and record its rollout as aborted by ABANDONED_BY, so a new
        candidate never starts on an old split. Returns what was done ("" when nothing was left behind). Call it
        under the model's lock."""
        done = []
        try:
            traffic = self.serving.traffic(self.name)
        except ServingError:  # nothing served yet: no split
            traffic = {}
        served = self.served_or_none()
        weights = traffic.get("weights") or {}
        if traffic.get("shadow") or any(int(p) and str(v) != str(served) for v, p in weights.items()):
            self.serving.set_traffic(self.name, NO_SPLIT)
            done.append(f"cleared the traffic split {traffic} an abandoned rollout left; version {served} answers "
                        "every request")
        for record in unfinished_rollouts(self.registry, self.name):
            if record.version == candidate:
                continue
            if record.version != self.production():
                try:
                    self.serve_production(record.version, self.name)
                except ServingError as exc:
                    log.warning("could not take version %d of %s out: %s", record.version, self.name, exc)
            record.state = ABORTED
            record.add_step(ROLLBACK_STEP, outcome=ABORTED_STEP, by=ABANDONED_BY,
                            message=f"abandoned (its task ended without finishing); rolled back before version "
                                    f"{candidate}'s rollout")
            save_record(self.registry, self.name, record)
            done.append(f"rolled back the abandoned rollout of version {record.version} (recorded as aborted)")
        if done:
            log.warning("%s: %s", self.name, "; ".join(done))
        return "; ".join(done)

    def record_rollout_end(self, version: int, reason: str, by: str) -> str:
        """The rollout record's last step, "rollback", and its final state: "aborted" when a person's abort is
        what rolled it back (the command is then acted on), else "rolled_back". A note when it could not be
        recorded (the rollback itself is done)."""
        try:
            record = load_record(self.registry, self.name, version)
            if record is None or record.final:
                return ""
            command = pending_command(self.registry, self.name, version)
            if command is not None and command["command"] == ABORT:
                record.act_on(command)
            else:
                record.state = ROLLED_BACK
            record.add_step(ROLLBACK_STEP, outcome=ABORTED_STEP if record.state == ABORTED else FAILED, by=by,
                            message=reason[:1000])
            save_record(self.registry, self.name, record)
        except MlspecError as exc:
            log.warning("could not record the rollback on %s version %d's rollout record: %s", self.name, version, exc)
            return f" The rollback could not be recorded on the rollout record: {exc}"
        return ""

    # -- failure: restore -----------------------------------------------------------------------------
    def serve_production(self, failed: int, served_model_name: str | None = None) -> str:
        """The one restore: serving goes to the registry's production version (read now) and stops serving
        `failed`. When `failed` is production itself (a redeploy of it failed), production is deployed again,
        never read as "nothing served before". Returns a sentence saying what serves; RollbackFailed, which
        says what may serve now and what to do, when serving refused."""
        production = self.production()
        record = self.registry.version_record(self.name, production) if production is not None else None
        try:
            if record is not None and production == failed:
                self.serving.deploy(self.name, production, record.source_uri)
            else:  # the failed version's Deployment, pointed back at production (None: serve nothing)
                self.serving.rollback(Deployment(
                    platform=self.serving.platform, model_name=self.name, version=failed, endpoint_url="",
                    served_model_name=served_model_name or self.name, previous_version=production,
                    previous_state={"storage_uri": record.source_uri} if record is not None else None,
                ))
        except RollbackFailed:
            raise
        except ServingError as exc:
            now = f"version {production}" if production is not None else "nothing"
            raise RollbackFailed(f"serving the registry's production version ({now}) failed too: {exc}; version "
                                 f"{failed} may still serve: check with `mlspec status {self.spec_ref}`") from None
        return f"version {production} is serving again" if production is not None else "the new version was removed"

    def fail_candidate(self, deployment: Deployment, failure: str, trigger: Trigger) -> NoReturn:
        """A pipeline candidate failed its smoke test: serving goes to the registry's production version as it
        is now (an operation may have moved it since deploy), the outcome is recorded on the version and
        serving's going back on the audit trail. Always raises CandidateRefused. Call it under the model's lock."""
        version = deployment.version
        message = f"version {version} failed its smoke test: {failure}"
        production = self.production()
        if production != deployment.previous_version:
            log.warning("production of %s moved from %s to %s since version %d was deployed (an operation ran); "
                        "serving goes back to %s", self.name, deployment.previous_version, production, version,
                        production)
        if production == version:  # an operation made the candidate production on purpose since
            raise CandidateRefused(f"{message}; an operation has made version {version} production since: serving "
                                   "left as is", next_step=f"run `mlspec status {self.spec_ref}`")
        log.error("smoke test failed for %s version %d; rolling back to %s", self.name, version, production)
        try:
            restored = self.serve_production(version, deployment.served_model_name)
        except ServingError as exc:
            message += f"; the rollback failed too ({exc}), so the failed version may still serve"
            message += self.record_outcome(version, {**deployment.to_xcom(), "message": message}, "failed")
            raise CandidateRefused(
                message, next_step=f"restore version {production} by hand, then fix and trigger a new run") from None
        message += f"; {restored}"
        message += self.record_outcome(version, {**deployment.to_xcom(), "message": failure}, "rolled_back")
        message += self.record_serving_went_back(trigger, version, message)
        raise CandidateRefused(message, next_step="read the problems above; the endpoint was rolled back, so fix "
                               "the model or serving settings and trigger a new run")

    def candidate_not_ready(self, state: dict, failure: ServingError, trigger: Trigger) -> str:
        """Record a pipeline candidate that never became ready (`await_ready` raised `failure`); the story.
        Only a restore that worked is recorded as a rollback: after RollbackFailed the version is "failed" and
        the audit trail gets no entry (the registry never moved, and serving did not go back)."""
        version = state["version"]
        message = str(failure)
        outcome = "failed" if isinstance(failure, RollbackFailed) else "rolled_back"
        deployment = {"platform": self.serving.platform, "served_model_name": state.get("served_model_name"),
                      "previous_state": state}
        message += self.record_outcome(version, {**deployment, "message": message}, outcome)
        if outcome == "rolled_back":
            message += self.record_serving_went_back(trigger, version, message)
        else:
            log.warning("the rollback of %s version %d failed; no automatic rollback is recorded on the audit "
                        "trail (production did not change)", self.name, version)
        return message

    def record_outcome(self, version: int, deployment: dict, outcome: str) -> str:
        """Record a deployment's fate ("rolled_back", "failed") on the version; a note when the registry refused.

        The fate is already decided: a registry problem must not replace that story, nor turn the task into
        a retry that deploys the failed version again."""
        try:
            self.registry.record_deployment(self.name, version, deployment, outcome)
        except MlspecError as exc:
            log.warning("could not record outcome %r for %s version %d: %s", outcome, self.name, version, exc)
            return f" The outcome ({outcome}) could not be recorded in the registry: {exc}"
        return ""

    def record_serving_went_back(self, trigger: Trigger, failed: int, reason: str) -> str:
        """A pipeline candidate failed: serving went back to the registry's production version, which never
        moved. An "auto_rollback" from production to production (v2 -> v2; the reason names the candidate),
        so no one reads it as a change of production; nothing when nothing is production. A note when it
        could not be recorded."""
        try:
            production = self.production()
        except MlspecError as exc:  # the run's story is the failed candidate, not this
            log.warning("could not read the registry to record the automatic rollback: %s", exc)
            return f" The automatic rollback could not be recorded on the audit trail: {exc}"
        if production is None or production == failed:
            return ""
        why = (f"{reason}; serving went back to production version {production}; the candidate version "
               f"{failed} never became production (the registry did not move)")
        return record_change(self.registry, self.name, trigger.change("auto_rollback", production, production, why[:1200]))

    # -- an operation: a chosen version, the registry first ---------------------------------------------
    def change_production(self, version: int, reason: str, trigger: Trigger, action: str) -> dict[str, Any]:
        """Make `version` production, then serve and smoke-test it; a failure restores the registry and
        serving. Call it under the model's lock."""
        record, contents = self.check(version)
        onnx_bytes = contents.get("model.onnx") or self.read_model(record)
        previous = self.production()
        log.info("%s %s version %d (production before: %s): registry first, then serving", action, self.name,
                 version, previous)
        endpoint_change = self.endpoint_change(previous, version)
        self.registry.set_production(self.name, version, reason=reason)
        notes = ""
        deployment = None
        try:
            notes = record_change(self.registry, self.name, trigger.change(action, previous, version, reason))
            deployment = replace(self.serving.deploy(self.name, version, record.source_uri), previous_version=previous)
            schema = self.input_schema(record)
            rows = self.sample_rows(onnx_bytes, schema)
            report = self.smoke_test(deployment, rows, onnx_bytes, signature_of(onnx_bytes), schema)
            served = self.serving.served_version(self.name)
            if served != version:
                raise OperationFailed(f"after deploying, serving answers with version {served}, not {version}")
        except BaseException as exc:
            # Also a task's deadline (AirflowTaskTimeout), a Ctrl-C or a bug: the registry moved first, so it and
            # serving go back before the exception goes on.
            failure = f"{action} of {self.name} version {version} failed: {what_failed(exc)}"
            restored = self.undo_operation(previous, version)
            if version != previous:  # a failed redeploy of production leaves it production (the audit trail
                self.record_failure(version, deployment, failure)  # says what failed): a rollback must not skip it
            record_change(self.registry, self.name,
                          trigger.change("auto_rollback", version, previous, f"{failure}; {restored}"[:1200]))
            if isinstance(exc, MlspecError):
                raise OperationFailed(f"{failure}; {restored}") from None
            log.error("%s; %s", failure, restored)
            raise
        passed = replace(deployment, previous_version=previous).to_xcom()
        passed["message"] = f"{action} by {trigger.actor}: {reason}"
        try:
            self.registry.record_deployment(self.name, version, passed, "smoke_test_passed")
        except MlspecError as exc:
            notes += f" The deployment could not be recorded on version {version}: {exc}"
        log.info("%s version %d is production and serving (smoke test agreement %.3f)", self.name, version, report["agreement"])
        result = {"model": self.name, "action": action, "version": version, "previous": previous,
                  "endpoint_url": deployment.endpoint_url, "smoke_test": report, "actor": trigger.actor}
        if endpoint_change:
            result["endpoint_change"] = endpoint_change
        if notes:
            result["warning"] = notes.strip()
        return result

    def undo_operation(self, previous: int | None, failed: int) -> str:
        """A failed operation moved the registry first: put it back to `previous`, then serving to it (the one
        restore, `serve_production`); a sentence saying what was done."""
        self.registry.set_production(self.name, previous, reason="restored after a failed operation")
        try:
            self.serve_production(failed)
        except MlspecError as exc:
            return f"the registry names version {previous} again, but serving could not be restored ({exc}); serve it by hand"
        if previous is None:
            return "the registry and serving were restored: nothing is production and nothing serves"
        return f"version {previous} is production and serving again"

    def record_failure(self, version: int, deployment: Deployment | None, failure: str) -> None:
        try:
            if deployment is not None:
                self.registry.record_deployment(self.name, version, {**deployment.to_xcom(), "message": failure[:2000]}, "failed")
            self.registry.set_state(self.name, version, "failed", {"failure": failure[:2000]})
        except MlspecError as exc:
            log.warning("could not record the failure of %s version %d: %s", self.name, version, exc)

    def read_model(self, record: VersionRecord) -> bytes:
        try:
            return self.store.read_uri(f"{record.source_uri}/model.onnx")
        except MlspecError as exc:
            raise OperationFailed(f"{record.model_name} version {record.version} cannot be read from "
                                  f"{record.source_uri}: {exc}; nothing changed") from None

    def undeploy(self, trigger: Trigger) -> dict[str, Any]:
        """Nothing is production, then nothing serves; if serving refuses, the registry is restored. Call it
        under the model's lock."""
        previous = self.production()
        reason = "undeployed on request"
        self.registry.set_production(self.name, None, reason=reason)
        notes = ""
        try:
            notes = record_change(self.registry, self.name, trigger.change("undeploy", previous, None, reason))
            self.serving.undeploy(self.name)
        except BaseException as exc:  # a deadline or Ctrl-C too: the registry moved first, so it goes back
            if previous is not None:  # with nothing production before, nothing moved: nothing to restore
                self.registry.set_production(self.name, previous, reason="restored: undeploy failed")
                record_change(self.registry, self.name,
                              trigger.change("auto_rollback", None, previous, f"undeploy failed: {what_failed(exc)}"[:1200]))
            if not isinstance(exc, MlspecError):
                raise
            still = f"version {previous}" if previous is not None else "nothing (as before)"
            raise OperationFailed(f"undeploying {self.name} failed: {exc}; the registry still names {still}") from None
        result = {"model": self.name, "action": "undeploy", "previous": previous, "actor": trigger.actor}
        if notes:
            result["warning"] = notes.strip()
        return result

    def previous_production(self, current: int | None) -> int:
        """The version production was before `current`, skipping versions that failed or were rolled back."""
        for candidate in reversed(self.registry.production_history(self.name)):
            if candidate == current:
                continue
            record = self.registry.version_record(self.name, candidate)
            if record is not None and record.state not in ("failed", "rolled_back"):
                return candidate
        raise OperationFailed(
            f"{self.name} has no earlier production version to roll back to (production: {current}); "
            "name one with --to-version, or undeploy"
        )

    def reconcile(self) -> str:
        """Make serving follow the registry (a restarted server serves what its own state says): serve the
        registry's production version, or nothing when none is. A sentence of what was done ("" when serving
        already followed). Production does not change, so the audit trail records nothing. Call it under the
        model's lock."""
        production = self.production()
        served = self.serving.served_version(self.name)
        if served == production:
            return ""
        if production is None:
            self.serving.undeploy(self.name)
            return f"serving had {self.name} version {served} while nothing is production in the registry; it was unloaded"
        record = self.registry.version_record(self.name, production)
        if record is None:
            raise OperationFailed(f"the registry names {self.name} version {production} production but has no record of it")
        self.check(production)
        self.serving.deploy(self.name, production, record.source_uri)
        return (f"serving had {self.name} version {served}, the registry's production version is {production}; "
                f"version {production} is serving again")

    # -- status ---------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The registry's production version, what serving answers with, and every disagreement between
        them (`problems`: drift, serving unreachable, production's files no longer what the registry recorded);
        `lineage`: the data production was trained on and how it was checked ({} for a version registered
        before mlspec recorded it)."""
        production = self.production()
        try:
            serving: int | None | str = self.serving.served_version(self.name)
        except ServingError as exc:
            serving = f"unreachable: {exc}"
        reachable = not isinstance(serving, str)
        report: dict[str, Any] = {
            "model": self.name,
            "production": production,
            "serving": serving,
            "reachable": reachable,
            "drift": drifts(production, serving) if reachable else False,
            "history": self.registry.production_history(self.name),
            "latest": self.registry.latest_version(self.name),
        }
        problems: list[str] = []
        if report["drift"]:
            report["advice"] = drift_advice(self.spec, production)
            problems.append(f"serving answers with version {serving}, the registry's production version is "
                            f"{production}: {report['advice']}")
        if not reachable:
            problems.append(f"serving could not be asked which version it serves ({serving}); "
                            f"{platform_of(self.spec).unreachable_next_step(self.spec)}")
        if production is not None:
            try:
                record = self.registry.version_record(self.name, production)
                if record is None:
                    raise OperationFailed(f"the registry names version {production} production but has no record of it")
                report["lineage"] = record.lineage  # the data production trained on, as its registry tags record it
                self.check(production)
            except OperationFailed as exc:
                report["files_problem"] = str(exc).removesuffix("; nothing changed")
                problems.append(f"{report['files_problem']}; serve a version whose files match "
                                f"(`mlspec deploy {self.spec_ref} --version N`)")
        report["problems"] = problems
        return report


@dataclass(frozen=True)
class RegistryState:
    production: int | None
    history: list[int]  # production versions, oldest first
    changes: list[ProductionChange] | str  # the audit trail, oldest first, or why it could not be read
    versions: list[VersionRecord]  # every registered version, ascending


def read_registry(registry: ModelRegistry, model_name: str) -> RegistryState:
    """What the registry says of a model: production, its history, the audit trail, every version."""
    try:
        changes: list[ProductionChange] | str = list(registry.production_changes(model_name))
    except Exception as exc:  # noqa: BLE001 - the rest of the registry's answer still counts
        changes = f"{type(exc).__name__}: {exc}"
    return RegistryState(production=registry.production_version(model_name),
                         history=registry.production_history(model_name), changes=changes,
                         versions=registry.list_versions(model_name))


def drifts(production: int | None, served: int | None) -> bool:
    """Serving answers with another version than the registry's production one (both known)."""
    return served != production


def drift_advice(spec: Any, production: int | None) -> str:
    """What puts serving back on the registry's production version."""
    source = spec.source_file or "<spec>"
    if production is not None:
        return (f"serving does not follow the registry; `mlspec deploy {source} --version {production}` "
                "puts the registry's production version back")
    return f"nothing is production in the registry; `mlspec undeploy {source}` stops serving"


def signature_of(onnx_bytes: bytes) -> dict:
    """The ONNX model's input and output signature."""
    # numpy: tasks only, not at DAG parse (tests/compiler/test_parse_stays_light.py::test_parsing_imports_no_numpy_pandas_pyarrow_or_heavy_library)
    from mlspec.ml import onnx_export

    return onnx_export.onnx_signature(onnx_bytes)

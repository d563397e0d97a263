"""The MLflow model registry: an embedded SQLite file under MLSPEC_HOME, or an MLflow tracking server.

Where MLflow lives and how a client signs in is mlspec.registry.mlflow_connection's job (the embedded
store's database, mlspec.registry.mlflow_embedded's); this module is the registry on top of one client.

A store version is found again through the model-version tag ``mlspec.version``, which is what
makes a retried register task return the version its earlier try created.

Sources. A version published to a ``file://`` store is logged as an MLflow *logged model* first:
the version folder's files (``model.onnx`` byte for byte, the schemas, metrics, manifest, and the
plots and model card where the store has them) plus an ``MLmodel`` file with the ONNX flavor, the
signature (from ``input_schema.json``/``output_schema.json``) and an input example (each feature's
training mean). The logged model belongs to the training run of the DAG run (or to a registration run
when no training run is found), carries the test metrics, and the model version is created from it:
its ``source`` is ``models:/<model_id>``. This is also how a *server* gets the files: it refuses local
``file://`` sources (a safeguard against reading the server's own disk), and the logged model's
artifacts are uploaded through its artifact store. ``s3://`` (and other object-store) versions are
registered with the version folder itself as the source, as MLflow servers read object stores; the
store's URI stays in the ``model_uri`` and ``source_uri`` tags either way, which is what serving uses.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from mlspec.errors import RegistryError
from mlspec.inference_protocol import DEFAULT_DATATYPE, numpy_dtype
from mlspec.registry.base import (
    AUDIT_KEEP,
    ROLLOUT_COMMAND_TAG,
    ROLLOUT_TAG,
    STATES,
    ModelRegistry,
    ProductionChange,
    RegistrationRequest,
    RegistryEntry,
    VersionRecord,
    audit_entry_json,
    audit_key_suffix,
    audit_order,
    history_from_changes,
    json_object_tag,
    lineage_from_tags,
    lineage_tags,
    rollout_command_json,
    rollout_json,
)
from mlspec.registry.mlflow_connection import (
    MlflowConnection,
    display_uri,
    mlflow_client,
    mlflow_error_text,
    resolve_connection,
    ui_url,
)
from mlspec.registry.mlflow_embedded import default_tracking_uri, embedded_dir, embedded_store_exists
from mlspec.registry.mlflow_experiments import ROLE_TAG, ensure_experiment, experiment_name, tag_key
from mlspec.storage import resolve_file_uri, store_kind

if TYPE_CHECKING:  # pragma: no cover - typing only; mlflow is imported inside functions
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

VERSION_TAG = "mlspec.version"
PRODUCTION_ALIAS = "production"
_MAX_TAG_VALUE = 4000  # MLflow caps tag values at 5000 characters (8000 on newer servers)
_OUTCOMES = ("deployed", "smoke_test_passed", "rolled_back", "failed")
STATE_TAG = "mlspec.state"  # a version's place: registry.base.STATES
HISTORY_TAG = "mlspec.production_history"  # registered-model tag: JSON list of store versions, oldest first
# registered-model tags mlspec.audit.<seq>-<random>: one ProductionChange as JSON each
AUDIT_TAG_PREFIX = "mlspec.audit."


def _tag_value(value: object) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= _MAX_TAG_VALUE else text[: _MAX_TAG_VALUE - 3] + "..."


def mlflow_signature(request: RegistrationRequest):
    """The version's ModelSignature (tensor specs from its input and output schemas), or None."""
    from mlflow.models import ModelSignature

    parts = request.mlflow_signature()
    return ModelSignature.from_dict(parts) if parts else None


def input_example(request: RegistrationRequest):
    """One row shaped as the model's input (each feature's training mean), or None without a schema."""
    import numpy as np

    row = request.input_example()
    if not row:
        return None
    if isinstance(row, dict):  # a table model: one [1, 1] input per column, fed as the endpoint feeds it
        from mlspec.ml import model_io  # numpy and the table model's libraries: at registration only

        return model_io.rows_inputs([row], request.input_schema)
    dtype = np.dtype(numpy_dtype(request.input_schema.get("datatype", DEFAULT_DATATYPE)))
    declared = request.input_schema.get("shape", [-1, len(row)])
    shape = [1 if d is None or int(d) < 0 else int(d) for d in declared]
    example = np.asarray(row, dtype=dtype)
    return example.reshape(shape) if int(np.prod(shape)) == example.size else example.reshape(1, -1)


_PRESENTATION = ("*.png", "*.svg", "model_card.md")  # published by evaluate/store for people to look at


def _presentation_files(folder: Path) -> list[Path]:
    found = {p for pattern in _PRESENTATION for p in folder.rglob(pattern) if p.is_file()}
    return sorted(p for p in found if not any(part.startswith(".") for part in p.relative_to(folder).parts))


def open_mlflow_for_reading(connection_id: str | None) -> MlflowRegistry | NothingRegisteredYet:
    """The MLflow registry for reads only (pages, status): it never creates, migrates or repairs the embedded
    database; before that database exists (nothing registered yet) every read answers "nothing yet"."""
    if not connection_id and not embedded_store_exists():
        return NothingRegisteredYet()
    return MlflowRegistry(connection_id, create=False)


class NothingRegisteredYet:
    """The embedded MLflow registry before its database exists: no version, no production, no history.
    Creating it is the first task's work, under its lock."""

    backend = "mlflow"
    connection_id = None

    def production_version(self, model_name: str) -> int | None:
        return None

    def production_history(self, model_name: str) -> list[int]:
        return []

    def production_changes(self, model_name: str) -> list:
        return []

    def latest_version(self, model_name: str) -> int | None:
        return None

    def version_record(self, model_name: str, version: int) -> None:
        return None

    def find(self, model_name: str, version: int) -> None:
        return None

    def list_versions(self, model_name: str) -> list:
        return []

    @property
    def client(self) -> MlflowClient:
        raise RegistryError("the embedded MLflow database does not exist yet: nothing has been registered")


# -- the registry ------------------------------------------------------------------------------
class MlflowRegistry(ModelRegistry):
    """Registered model ``<spec name>``, one model version per published store version.

    Construction does no I/O; the connection is resolved and the client made on first use.
    Every MLflow failure is raised as :class:`RegistryError` naming the model, the version and
    what to check.
    """

    backend = "mlflow"

    def __init__(self, connection_id: str | None = None, *, create: bool = True) -> None:
        self.connection_id = connection_id
        self.create = create  # False: never create or migrate the embedded database (pages, status reads)
        self._connection: MlflowConnection | None = None
        self._client: MlflowClient | None = None
        self._ui_url: str | None = None

    # -- plumbing ------------------------------------------------------------------------------
    @property
    def connection(self) -> MlflowConnection:
        if self._connection is None:
            self._connection = resolve_connection(self.connection_id)
        return self._connection

    @property
    def tracking_uri(self) -> str:
        return self.connection.tracking_uri

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = mlflow_client(self.connection, create=self.create)
        return self._client

    @property
    def is_server(self) -> bool:
        return self.connection.is_server

    def _where(self) -> str:
        if self.connection_id:
            server = display_uri(self.tracking_uri)
            return f"MLflow server {server} (Airflow connection {self.connection_id!r})"
        return f"embedded MLflow registry {self.tracking_uri}"

    @contextmanager
    def _errors(self, action: str, model_name: str, version: int | None) -> Iterator[None]:
        """Turn MLflow (and artifact I/O) failures into one RegistryError saying what to check."""
        from mlflow.exceptions import MlflowException

        try:
            yield
        except RegistryError:
            raise
        except (MlflowException, OSError) as exc:
            if self.connection_id:
                hint = (
                    f"check that the server at {display_uri(self.tracking_uri)} is up and reachable from "
                    f"the worker and that Airflow connection {self.connection_id!r} (host, port, schema, "
                    "credentials) points at it"
                )
            else:
                hint = f"check that {embedded_dir()} is writable and its mlflow.db is not corrupt"
            what = f"model {model_name!r}" + ("" if version is None else f" version {version}")
            raise RegistryError(
                f"{self._where()}: could not {action} for {what}: "
                f"{mlflow_error_text(exc)}; {hint}, then clear the task to retry."
            ) from exc

    @property
    def ui_url(self) -> str:
        """The MLflow UI's address ("" when none is known: the embedded MLflow)."""
        if self._ui_url is None:
            self._ui_url = ui_url(self.connection_id, self.tracking_uri)
        return self._ui_url

    def version_url(self, model_name: str, registry_version: str) -> str:
        """The MLflow UI page of a model version when a UI is known; else the embedded store's SQLite URI."""
        if self.ui_url:
            return f"{self.ui_url}/#/models/{quote(model_name, safe='')}/versions/{registry_version}"
        return self.tracking_uri

    def _entry(self, model_name: str, version: int, mv: ModelVersion, created: bool) -> RegistryEntry:
        return RegistryEntry(
            backend=self.backend,
            model_name=model_name,
            version=version,
            registry_version=str(mv.version),
            url=self.version_url(model_name, str(mv.version)),
            created=created,
        )

    def _model_versions(self, model_name: str) -> list[ModelVersion]:
        # The name filter works everywhere; tag filters on dotted keys vary between MLflow
        # versions and stores, so tags are matched in Python (a model has few versions).
        versions: list[ModelVersion] = []
        page_token = None
        while True:
            page = self.client.search_model_versions(
                f"name = '{model_name}'", max_results=1000, page_token=page_token
            )
            versions.extend(page)
            page_token = page.token
            if not page_token:
                return versions

    def _find_version(self, model_name: str, version: int) -> ModelVersion | None:
        wanted = str(version)
        matches = [
            mv for mv in self._model_versions(model_name) if (mv.tags or {}).get(VERSION_TAG) == wanted
        ]
        # should two exist (a race between tries), the oldest is the one others saw first
        return min(matches, key=lambda mv: int(mv.version)) if matches else None

    # -- ModelRegistry -------------------------------------------------------------------------
    def register(self, request: RegistrationRequest) -> RegistryEntry:
        name, version = request.model_name, request.version
        with self._errors("register the model version", name, version):
            self._ensure_registered_model(request)
            existing = self._find_version(name, version)
            if existing is not None:
                self._check_same_content(existing, request)
                log.info("%s: %s version %s is already registered as MLflow version %s (an earlier try)",
                         self._where(), name, version, existing.version)
                return self._entry(name, version, existing, created=False)

            lineage_run = self._training_run_id(request)
            source, run_id, logged = self._source_for(request, lineage_run)
            mv = self._create_version(request, source, run_id, logged)
            log.info("%s: registered %s version %s as MLflow model version %s (source %s)",
                     self._where(), name, version, mv.version, source)
            return self._entry(name, version, mv, created=True)

    def _create_version(self, request: RegistrationRequest, source: str, run_id: str | None, logged):
        """The model version, created from the logged model when there is one (`logged`)."""
        arguments = dict(
            source=source,
            run_id=run_id,
            tags=self._version_tags(request),
            description=self._version_description(request),
            await_creation_for=60,
        )
        if logged is None:
            return self.client.create_model_version(request.model_name, **arguments)
        arguments["model_id"] = logged.model_id
        if self.is_server:
            mv = self.client.create_model_version(request.model_name, **arguments)
        else:
            with default_tracking_uri(self.tracking_uri):
                mv = self.client.create_model_version(request.model_name, **arguments)
        # What MLflow's own register_model records: the logged model lists the versions made from it.
        versions = [{"name": request.model_name, "version": str(mv.version)}]
        self.client.set_logged_model_tags(logged.model_id, {"mlflow.modelVersions": json.dumps(versions)})
        return mv

    def _check_same_content(self, existing: ModelVersion, request: RegistrationRequest) -> None:
        """A version found by number is ours only if it holds the same files from the same run."""
        tags = existing.tags or {}
        theirs = tags.get(tag_key("sha256.model.onnx"))
        ours = request.files.get("model.onnx")
        if tags.get("run_id") != request.run_id or (theirs and ours and theirs != ours):
            raise RegistryError(
                f"{self._where()}: {request.model_name} version {request.version} is already registered for run "
                f"{tags.get('run_id')!r} with other files (model.onnx sha256 {str(theirs)[:12]}...); the store "
                "handed out a number the registry knows. Publish again: the store now numbers above the registry"
            )

    def find(self, model_name: str, version: int) -> RegistryEntry | None:
        with self._errors("look up the model version", model_name, version):
            mv = self._find_version(model_name, version)
            return None if mv is None else self._entry(model_name, version, mv, created=False)

    def record_deployment(self, model_name: str, version: int, deployment: dict, outcome: str) -> None:
        """Tag the version with where it went and what happened (``deployment.*``; ``rolled_back`` and
        ``failed`` also set its state). Alias ``production`` moves only through set_production."""
        if outcome not in _OUTCOMES:
            log.warning("record_deployment: unexpected outcome %r for %s version %s",
                        outcome, model_name, version)
        with self._errors(f"record deployment outcome {outcome!r}", model_name, version):
            mv = self._find_version(model_name, version)
            if mv is None:
                raise RegistryError(
                    f"{self._where()}: model {model_name!r} version {version} is not registered, so its "
                    f"deployment ({outcome}) cannot be recorded; run the register task for this version "
                    "first."
                )
            tags = {
                "deployment.platform": deployment.get("platform", ""),
                "deployment.endpoint_url": deployment.get("endpoint_url", ""),
                "deployment.served_model_name": deployment.get("served_model_name", ""),
                "deployment.outcome": outcome,
                "deployment.message": deployment.get("message") or "",
            }
            for key, value in tags.items():
                self.client.set_model_version_tag(model_name, mv.version, key, _tag_value(value))
            if outcome in ("rolled_back", "failed"):
                self.client.set_model_version_tag(model_name, mv.version, STATE_TAG, outcome)
        log.info("%s: recorded %s for %s version %s", self._where(), outcome, model_name, version)

    def production_version(self, model_name: str) -> int | None:
        """The store version alias ``production`` points at, or None when nothing was promoted yet."""
        from mlflow.exceptions import MlflowException

        with self._errors(f"read alias {PRODUCTION_ALIAS!r}", model_name, None):
            try:
                mv = self.client.get_model_version_by_alias(model_name, PRODUCTION_ALIAS)
            except MlflowException as exc:
                if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                    return None
                raise
            tag = (mv.tags or {}).get(VERSION_TAG)
            return int(tag) if tag and tag.isdigit() else None

    def version_record(self, model_name: str, version: int) -> VersionRecord | None:
        with self._errors("read the version record", model_name, version):
            mv = self._find_version(model_name, version)
        return None if mv is None else _record_from(model_name, version, mv)

    def list_versions(self, model_name: str) -> list[VersionRecord]:
        """One listing with every tag (champion.*, deployment.*, lineage) instead of one lookup per version."""
        with self._errors("list the versions", model_name, None):
            found: dict[int, ModelVersion] = {}
            for mv in sorted(self._model_versions(model_name), key=lambda mv: int(mv.version)):
                number = (mv.tags or {}).get(VERSION_TAG, "")
                if number.isdigit():
                    found.setdefault(int(number), mv)  # the oldest of two, as _find_version
        return [_record_from(model_name, number, found[number]) for number in sorted(found)]

    def latest_version(self, model_name: str) -> int | None:
        with self._errors("list the versions", model_name, None):
            numbers = [
                int(tag) for mv in self._model_versions(model_name)
                if (tag := (mv.tags or {}).get(VERSION_TAG, "")).isdigit()
            ]
        return max(numbers, default=None)

    def production_history(self, model_name: str) -> list[int]:
        """From the audit trail when there is one (order and repeats kept); else the older history tag."""
        with self._errors("read the production history", model_name, None):
            model = self._registered_model(model_name)
        tags = (model.tags or {}) if model is not None else {}
        changes = self._changes_from_tags(model_name, tags)
        if changes:
            return history_from_changes(changes)
        raw = tags.get(HISTORY_TAG, "[]")
        try:
            return [int(v) for v in json.loads(raw)]
        except (ValueError, TypeError):
            log.warning("%s: tag %s of %s is not a JSON list of versions: %r", self._where(), HISTORY_TAG, model_name, raw)
            return []

    def set_production(self, model_name: str, version: int | None, reason: str) -> None:
        """Move alias `production` (MLflow's own record of production) and the versions' state tags."""
        current = self.production_version(model_name)
        with self._errors("change the production version", model_name, version):
            if version is None:
                if current is not None:
                    self.client.delete_registered_model_alias(model_name, PRODUCTION_ALIAS)
                    self._tag_state(model_name, current, "undeployed")
                log.info("%s: %s has no production version now (%s)", self._where(), model_name, reason)
                return
            mv = self._find_version(model_name, version)
            if mv is None:
                raise RegistryError(f"{self._where()}: {model_name} version {version} is not registered; it cannot become production")
            self.client.set_registered_model_alias(model_name, PRODUCTION_ALIAS, mv.version)
            self.client.set_model_version_tag(model_name, mv.version, STATE_TAG, "production")
            if current is not None and current != version:
                self._tag_state(model_name, current, "archived")
            history = [v for v in self.production_history(model_name) if v != version] + [version]
            self.client.set_registered_model_tag(model_name, HISTORY_TAG, json.dumps(history[-50:]))
        log.info("%s: %s version %s is production (alias %r on MLflow version %s): %s",
                 self._where(), model_name, version, PRODUCTION_ALIAS, mv.version, reason)

    def set_state(self, model_name: str, version: int, state: str, details: dict[str, str] | None = None) -> None:
        if state not in STATES:
            raise ValueError(f"unknown version state {state!r}; one of {', '.join(STATES)}")
        with self._errors(f"record state {state!r}", model_name, version):
            mv = self._find_version(model_name, version)
            if mv is None:
                raise RegistryError(f"{self._where()}: {model_name} version {version} is not registered")
            self.client.set_model_version_tag(model_name, mv.version, STATE_TAG, state)
            for key, value in (details or {}).items():
                self.client.set_model_version_tag(model_name, mv.version, tag_key(key), _tag_value(value))

    def record_production_change(self, model_name: str, change: ProductionChange) -> None:
        """One registered-model tag per change, ``mlspec.audit.<seq>-<random>`` = the change as JSON (reason
        cut to 1,200 characters); the newest AUDIT_KEEP are kept, older ones deleted."""
        value = audit_entry_json(change)
        with self._errors(f"record the production change ({change.action})", model_name, change.to_version):
            model = self._registered_model(model_name)
            if model is None:
                raise RegistryError(
                    f"{self._where()}: model {model_name!r} is not registered, so its production change "
                    f"({change.action} {change.from_version} -> {change.to_version}) cannot be recorded; "
                    "register a version first."
                )
            keys = [k for k in (model.tags or {}) if k.startswith(AUDIT_TAG_PREFIX)]
            key = AUDIT_TAG_PREFIX + audit_key_suffix(keys, AUDIT_TAG_PREFIX)
            self.client.set_registered_model_tag(model_name, key, value)
            ordered = sorted(keys + [key], key=lambda k: audit_order(k, AUDIT_TAG_PREFIX))
            for old in ordered[: max(0, len(ordered) - AUDIT_KEEP)]:
                self.client.delete_registered_model_tag(model_name, old)
        log.info("%s: %s production change recorded: %s %s -> %s by %s (%s)", self._where(), model_name,
                 change.action, change.from_version, change.to_version, change.actor, change.reason)

    def production_changes(self, model_name: str) -> list[ProductionChange]:
        with self._errors("read the production audit trail", model_name, None):
            model = self._registered_model(model_name)
        return self._changes_from_tags(model_name, (model.tags or {}) if model is not None else {})

    def record_rollout(self, model_name: str, version: int, record: dict) -> None:
        self._set_version_tag(model_name, version, ROLLOUT_TAG, rollout_json(record), "record the rollout")

    def set_rollout_command(self, model_name: str, version: int, command: dict) -> None:
        self._set_version_tag(
            model_name, version, ROLLOUT_COMMAND_TAG, rollout_command_json(command),
            f"leave the rollout command {command.get('command')!r}",
        )

    def _set_version_tag(self, model_name: str, version: int, key: str, value: str, action: str) -> None:
        with self._errors(action, model_name, version):
            mv = self._find_version(model_name, version)
            if mv is None:
                raise RegistryError(f"{self._where()}: {model_name} version {version} is not registered; cannot {action}")
            self.client.set_model_version_tag(model_name, mv.version, key, value)

    def _changes_from_tags(self, model_name: str, tags: dict[str, str]) -> list[ProductionChange]:
        changes = []
        keys = [k for k in tags if k.startswith(AUDIT_TAG_PREFIX)]
        for key in sorted(keys, key=lambda k: audit_order(k, AUDIT_TAG_PREFIX)):
            try:
                changes.append(ProductionChange.from_dict(json.loads(tags[key])))
            except (ValueError, TypeError, AttributeError):
                log.warning("%s: tag %s of %s is not a production change; skipped: %.200r",
                            self._where(), key, model_name, tags[key])
        return changes

    def _tag_state(self, model_name: str, version: int, state: str) -> None:
        mv = self._find_version(model_name, version)
        if mv is not None:
            self.client.set_model_version_tag(model_name, mv.version, STATE_TAG, state)

    def _registered_model(self, model_name: str):
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_registered_model(model_name)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    # -- helpers -------------------------------------------------------------------------------
    def _ensure_registered_model(self, request: RegistrationRequest) -> None:
        from mlflow.exceptions import MlflowException

        name = request.model_name
        tags = {"owner": request.owner} if request.owner else {}
        try:
            model = self.client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            try:
                self.client.create_registered_model(name, tags=tags, description=request.description or None)
                log.info("%s: created registered model %r", self._where(), name)
                return
            except MlflowException as create_exc:
                if create_exc.error_code != "RESOURCE_ALREADY_EXISTS":  # another task won the race
                    raise
                model = self.client.get_registered_model(name)
        # the spec is the source of truth for description and owner
        if request.description and model.description != request.description:
            self.client.update_registered_model(name, description=request.description)
        for key, value in tags.items():
            if (model.tags or {}).get(key) != value:
                self.client.set_registered_model_tag(name, key, value)

    def _version_tags(self, request: RegistrationRequest) -> dict[str, str]:
        tags = {
            VERSION_TAG: str(request.version),
            STATE_TAG: "candidate",
            "data_source": request.data_source,
            "spec_hash": request.spec_hash,
            "dag_id": request.dag_id,
            "run_id": request.run_id,
            "model_uri": request.model_uri,
            "source_uri": request.source_uri,
            "onnx_opset": str(request.onnx_opset),
        }
        for metric, value in sorted(request.metrics.items()):
            tags[tag_key(f"metric.{metric}")] = str(float(value))  # shortest exact repr, e.g. "0.9712"
        for file_name, digest in sorted(request.files.items()):
            tags[tag_key(f"sha256.{file_name}")] = digest
        if request.storage_connection:
            tags["storage_connection"] = request.storage_connection
        tags["framework"] = request.framework
        tags["task"] = request.task
        for part, value in request.mlflow_signature().items():
            tags[f"signature.{part}"] = value
        if request.input_schema:
            tags["input_example"] = json.dumps(request.input_example())
        if request.output_schema.get("class_names"):
            tags["class_names"] = json.dumps(request.output_schema["class_names"])
        if request.best_trial is not None:
            tags["mlspec.best_trial"] = str(request.best_trial)
            tags["mlspec.best_params"] = json.dumps(request.trial_params, sort_keys=True)
        tags.update(lineage_tags(request.lineage))
        return {key: _tag_value(value) for key, value in tags.items()}

    @staticmethod
    def _version_description(request: RegistrationRequest) -> str:
        metrics = ", ".join(f"{k}={float(v):.4f}" for k, v in sorted(request.metrics.items()))
        lines = [
            request.description or request.model_name,
            f"mlspec store version {request.version}: {request.model_uri}",
            f"Trained by DAG {request.dag_id}, run {request.run_id}, on {request.data_source}.",
        ]
        if metrics:
            lines.append(f"Test metrics: {metrics}.")
        return "\n\n".join(lines)

    def _training_run_id(self, request: RegistrationRequest) -> str | None:
        """The MLflow run TrainingTracker made for this DAG run, for lineage: the newest finished one, or for a
        tuned run the winning trial's (tagged mlspec.trial)."""
        if "'" in request.run_id or "'" in request.dag_id:
            return None
        found = self.client.get_experiment_by_name(experiment_name(request.model_name))
        if found is None:
            return None
        runs = self.client.search_runs(
            [found.experiment_id],
            filter_string=f"tags.airflow_run_id = '{request.run_id}' and tags.dag_id = '{request.dag_id}'",
            order_by=["attributes.start_time DESC"],
            max_results=50,
        )
        finished = [r for r in runs if r.data.tags.get(ROLE_TAG) == "training" and r.info.status == "FINISHED"]
        if request.best_trial is not None:  # a tuned run: the winning trial's run, where evaluate logged
            best = [r for r in finished if r.data.tags.get("mlspec.trial") == str(request.best_trial)]
            finished = best or finished
        return str(finished[0].info.run_id) if finished else None

    def _source_for(self, request: RegistrationRequest, lineage_run: str | None):
        """(source, run_id, logged model or None) to register; see the module docstring."""
        source = request.source_uri.rstrip("/")
        store = store_kind(source)
        if urlsplit(source).scheme and (store is None or store.local_path is None):
            return source, lineage_run, None  # s3:// and friends: servers and the embedded store read them
        folder = resolve_file_uri(source) if store is not None else Path(source)
        if not (folder / "model.onnx").is_file():
            raise RegistryError(
                f"{self._where()}: model {request.model_name!r} version {request.version}: the published "
                f"folder {source} has no model.onnx on this worker, so it cannot be logged to MLflow; "
                "use an s3:// storage.uri when tasks run on several machines."
            )
        run_id = lineage_run or self._registration_run_id(request)
        logged = self._log_model(request, folder, run_id)
        return f"models:/{logged.model_id}", run_id, logged

    def _log_model(self, request: RegistrationRequest, folder: Path, run_id: str):
        """Log the version folder as an MLflow model of run `run_id`: model.onnx, an MLmodel file with
        the ONNX flavor, signature and input example, and the version's other files (schemas, metrics,
        plots, model card). The plots and the model card are logged to the run as well, and the test
        metrics to both. A retry finds the logged model it made and uploads again (same paths)."""
        from mlflow.entities import LoggedModelOutput, LoggedModelStatus

        run = self.client.get_run(run_id)
        logged = self._logged_model_of(run.info.experiment_id, run_id, request)
        if logged is None:
            logged = self.client.create_logged_model(
                run.info.experiment_id,
                name=f"{request.model_name}-v{request.version}",
                source_run_id=run_id,
                tags={VERSION_TAG: str(request.version), "mlspec.model": request.model_name,
                      "airflow_run_id": request.run_id, "source_uri": request.source_uri},
                params={k: _tag_value(v) for k, v in list(run.data.params.items())[:100]},
                model_type="onnx",
            )
        outputs = run.outputs.model_outputs if run.outputs is not None else []
        if logged.model_id not in {output.model_id for output in outputs or []}:
            self.client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])

        with tempfile.TemporaryDirectory(prefix="mlspec-mlflow-") as tmp:
            local = Path(tmp) / "model"
            self._save_mlflow_model(request, folder, local, logged, run_id)
            self.client.log_model_artifacts(logged.model_id, str(local))
        for path in _presentation_files(folder):
            parent = path.parent.relative_to(folder).as_posix()
            self.client.log_artifact(run_id, str(path), None if parent == "." else parent)
        if logged.status != LoggedModelStatus.READY:
            logged = self.client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
        self._log_test_metrics(request, run_id, logged.model_id)
        log.info("%s: logged %s version %s as MLflow model %s of run %s (%s)", self._where(),
                 request.model_name, request.version, logged.model_id, run_id, logged.artifact_location)
        return logged

    def _logged_model_of(self, experiment_id: str, run_id: str, request: RegistrationRequest):
        """The logged model an earlier try of this register task made for this version, if any."""
        page = self.client.search_logged_models(
            [experiment_id], filter_string=f"source_run_id = '{run_id}'", max_results=100
        )
        for model in page:
            if (model.tags or {}).get(VERSION_TAG) == str(request.version) and (
                (model.tags or {}).get("mlspec.model") == request.model_name
            ):
                return model
        return None

    @staticmethod
    def _save_mlflow_model(request: RegistrationRequest, folder: Path, local: Path, logged, run_id: str):
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as installed

        import mlflow.onnx
        import onnx
        from mlflow.models import Model

        onnx_bytes = (folder / "model.onnx").read_bytes()
        requirements = []
        for package in ("onnx", "onnxruntime"):
            with suppress(PackageNotFoundError):
                requirements.append(f"{package}=={installed(package)}")
        mlflow_model = Model(
            artifact_path=logged.artifact_location,
            model_uuid=logged.model_id,
            run_id=run_id,
            model_id=logged.model_id,
            metadata={"mlspec.version": str(request.version), "mlspec.source_uri": request.source_uri},
        )
        mlflow.onnx.save_model(
            onnx.load_from_string(onnx_bytes),
            str(local),
            mlflow_model=mlflow_model,
            signature=mlflow_signature(request),
            input_example=input_example(request),
            pip_requirements=requirements,
            save_as_external_data=False,
        )
        (local / "model.onnx").write_bytes(onnx_bytes)  # the store's own bytes: the manifest's sha256 holds
        for path in sorted(folder.rglob("*")):
            target = local / path.relative_to(folder)
            if path.is_file() and not path.name.startswith(".") and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)

    def _log_test_metrics(self, request: RegistrationRequest, run_id: str, model_id: str) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(f"test_{key}", float(value), now, 0, run_id=run_id, model_id=model_id)
            for key, value in sorted(request.metrics.items())
        ]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[i : i + 1000])

    def _registration_run_id(self, request: RegistrationRequest) -> str:
        """A run holding the uploaded files when no training run is tracked; reused by a retry."""
        experiment_id = ensure_experiment(self.client, self.tracking_uri, experiment_name(request.model_name))
        if "'" not in request.run_id:
            runs = self.client.search_runs(
                [experiment_id],
                filter_string=(
                    f"tags.airflow_run_id = '{request.run_id}' and tags.`{ROLE_TAG}` = 'registration'"
                ),
                max_results=50,
            )
            for run in runs:
                if run.data.tags.get(VERSION_TAG) == str(request.version):
                    return str(run.info.run_id)
        run = self.client.create_run(
            experiment_id,
            run_name=f"register-v{request.version}",
            tags={
                ROLE_TAG: "registration",
                VERSION_TAG: str(request.version),
                "airflow_run_id": request.run_id,
                "dag_id": request.dag_id,
            },
        )
        self.client.set_terminated(run.info.run_id, "FINISHED")
        return str(run.info.run_id)


def _record_from(model_name: str, version: int, mv: ModelVersion) -> VersionRecord:
    """The VersionRecord of a store version from its MLflow model version's tags."""
    tags = dict(mv.tags or {})

    def prefixed(prefix: str) -> dict[str, str]:
        return {k.removeprefix(prefix): v for k, v in tags.items() if k.startswith(prefix)}

    metrics = {}
    for key, value in prefixed("metric.").items():
        with suppress(ValueError):
            metrics[key] = float(value)
    try:
        best_params = json.loads(tags.get("mlspec.best_params") or "{}")
    except ValueError:
        best_params = {}
    created = getattr(mv, "creation_timestamp", None)
    return VersionRecord(
        model_name=model_name,
        version=version,
        source_uri=tags.get("source_uri", ""),
        files=prefixed("sha256."),
        metrics=metrics,
        run_id=tags.get("run_id", ""),
        state=tags.get(STATE_TAG, "candidate"),
        registry_version=str(mv.version),
        created_ms=int(created) if isinstance(created, int | float) else None,
        dag_id=tags.get("dag_id", ""),
        data_source=tags.get("data_source", ""),
        spec_hash=tags.get("spec_hash", ""),
        framework=tags.get("framework", ""),
        task=tags.get("task", ""),
        champion=prefixed("champion."),
        deployment=prefixed("deployment."),
        tracking_run=str(getattr(mv, "run_id", "") or ""),
        best_trial=tags.get("mlspec.best_trial", ""),
        best_params=best_params if isinstance(best_params, dict) else {},
        lineage=lineage_from_tags(tags),
        rollout=json_object_tag(tags, ROLLOUT_TAG, f"MLflow model {model_name} version {version}"),
        rollout_command=json_object_tag(tags, ROLLOUT_COMMAND_TAG, f"MLflow model {model_name} version {version}"),
    )

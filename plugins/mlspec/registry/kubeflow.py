"""Kubeflow Model Registry backend: a published model is a RegisteredModel -> ModelVersion -> ModelArtifact.

Layout in the registry (what a user finds in the Kubeflow UI or with the `model-registry` client):
- RegisteredModel named after the spec (`metadata.name`), owner = spec owner.
- ModelVersion named after the store version number ("3"), externalId `mlspec:<name>:<version>`
  (how a retried task finds what its earlier try made), typed customProperties with the test
  metrics, data source, spec hash, DAG id, run id and the store version.
- ModelArtifact named after the model (the official client finds artifacts by model name and
  version), uri = `<version folder>/model.onnx`, format onnx/<opset>, storageKey/storagePath
  and the lineage fields (modelSource*: airflow / dag_run / dag id / run id).
- Deployments: a ServingEnvironment per namespace ("local" for the local server) holding one
  InferenceService per served model, pointing at the version it serves (desiredState DEPLOYED).
  A rolled-back or failed version that had taken over hands the service back to the version
  that served before it (still DEPLOYED), or leaves it UNDEPLOYED when there was none; the
  outcome, endpoint and message also land in the ModelVersion's customProperties.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from mlspec.connections import bearer_token, get_connection
from mlspec.errors import RegistryError
from mlspec.locks import model_lock
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
from mlspec.registry.kubeflow_client import KubeflowApiError, ModelRegistryClient
from mlspec.storage import store_kind

log = logging.getLogger(__name__)

# outcome -> InferenceService.desiredState for the version that was being deployed
DESIRED_STATE = {
    "deployed": "DEPLOYED",
    "smoke_test_passed": "DEPLOYED",
    "rolled_back": "UNDEPLOYED",
    "failed": "UNDEPLOYED",
}
LOCAL_SERVING_ENVIRONMENT = "local"
# Remembered on the InferenceService when mlspec points it at a new version, so that a
# rollback can record that the earlier version is the one serving again.
PREVIOUS_VERSION_PROPERTY = "previous_model_version_id"
# The registry's record of production, on the RegisteredModel: the store version and the history.
PRODUCTION_PROPERTY = "mlspec_production_version"
HISTORY_PROPERTY = "mlspec_production_history"
STATE_PROPERTY = "mlspec_state"  # on each ModelVersion: registry.base.STATES
# The audit trail of production, on the RegisteredModel: one string property per change,
# mlspec_audit_<seq>-<random> = the ProductionChange as JSON (the newest AUDIT_KEEP kept).
AUDIT_PROPERTY_PREFIX = "mlspec_audit_"
AUDIT_WRITE_TRIES = 5  # a production change dropped by another writer's whole-map PATCH is written again


def external_id(model_name: str, version: int) -> str:
    """The ModelVersion externalId that makes registration idempotent."""
    return f"mlspec:{model_name}:{version}"


def deployment_target(model_name: str, deployment: dict) -> tuple[str, str]:
    """(ServingEnvironment name, InferenceService name) of a deployment.

    Accepts the flat form (namespace, inference_service_name) and `Deployment.to_xcom()`, whose
    KServe state (`previous_state`) carries the namespace and the InferenceService's name. The
    local server has neither: environment "local", service named after the served model, and
    the model's own name when a failure report names nothing else.
    """
    state = deployment.get("previous_state") or {}
    environment = deployment.get("namespace") or state.get("namespace") or LOCAL_SERVING_ENVIRONMENT
    service = (
        deployment.get("inference_service_name")
        or state.get("name")
        or deployment.get("served_model_name")
        or model_name
    )
    return str(environment), str(service)


# ---- typed customProperties (the registry stores MLMD values; int_value is a string) ----
def string_value(value: object) -> dict[str, Any]:
    return {"metadataType": "MetadataStringValue", "string_value": str(value)}


def double_value(value: float) -> dict[str, Any]:
    if not math.isfinite(value):
        # JSON has no NaN/inf; keep the information as text rather than break the request.
        return string_value(repr(value))
    return {"metadataType": "MetadataDoubleValue", "double_value": float(value)}


def int_value(value: int) -> dict[str, Any]:
    return {"metadataType": "MetadataIntValue", "int_value": str(int(value))}


def read_value(prop: dict[str, Any] | None) -> Any:
    """The Python value of a typed customProperty (None when absent)."""
    if not prop:
        return None
    kind = prop.get("metadataType")
    if kind == "MetadataIntValue":
        return int(prop["int_value"])
    if kind == "MetadataDoubleValue":
        return float(prop["double_value"])
    if kind == "MetadataBoolValue":
        return bool(prop["bool_value"])
    if kind == "MetadataStringValue":
        return prop["string_value"]
    return prop


def storage_path(source_uri: str) -> str:
    """The version folder's path inside its storage (bucket and scheme belong to storageKey)."""
    parts = urlsplit(source_uri)
    store = store_kind(source_uri)
    if not parts.scheme or (store is not None and store.local_path is not None):
        return parts.path or source_uri
    return parts.path.lstrip("/")


def connection_settings(connection_id: str) -> tuple[str, str | None, bool | str]:
    """(base_url, token, verify) from an Airflow connection; raises RegistryError when unusable.

    host may carry the scheme ("https://registry.example.com"); without one, port 443 or no
    port means https, any other port http (the in-cluster service answers plain HTTP on 8080).
    The bearer token is read by `mlspec.connections.bearer_token`; extra {"verify": false | "<ca path>"}
    controls TLS verification.
    """
    conn = get_connection(connection_id, used_for="the Kubeflow Model Registry (host, port, and the bearer token as password)", error_type=RegistryError)
    host = (conn.host or "").strip().rstrip("/")
    if not host:
        raise RegistryError(
            f"Airflow connection '{connection_id}' has no host; set it to the Model Registry's address, "
            "for example https://model-registry.example.com or model-registry-service.kubeflow:8080"
        )
    extra = conn.extra_dejson or {}
    port = conn.port
    if "://" in host:
        parts = urlsplit(host)
        scheme, hostname, path = parts.scheme, parts.hostname or "", parts.path.rstrip("/")
        port = port or parts.port
    else:
        hostname, _, path = host.partition("/")
        path = f"/{path}".rstrip("/") if path else ""
        if conn.schema in ("http", "https"):
            scheme = conn.schema
        else:
            scheme = "https" if port in (None, 443) else "http"
    default_port = 443 if scheme == "https" else 80
    netloc = hostname if port in (None, default_port) else f"{hostname}:{port}"
    token = bearer_token(conn)
    verify = extra.get("verify", True)
    return f"{scheme}://{netloc}{path}", token, verify


class KubeflowRegistry(ModelRegistry):
    """Registers published models in a Kubeflow Model Registry over its REST API.

    The Airflow connection is read on first use, not at construction, so building the object
    costs nothing at DAG parse time. Every error is a `RegistryError` naming the model, the
    version, the HTTP status and the server's message.
    """

    backend = "kubeflow"

    def __init__(
        self,
        connection_id: str,
        *,
        base_url: str | None = None,
        token: str | None = None,
        verify: bool | str = True,
    ) -> None:
        """`connection_id` names the Airflow connection; `base_url` (see `from_url`) bypasses it."""
        self.connection_id = connection_id
        self._settings: tuple[str, str | None, bool | str] | None = None
        if base_url is not None:
            self._settings = (base_url.rstrip("/"), token, verify)
        self._client: ModelRegistryClient | None = None

    @classmethod
    def from_url(
        cls, base_url: str, token: str | None = None, *, verify: bool | str = True
    ) -> KubeflowRegistry:
        """A registry talking to `base_url` directly (tests, scripts); no Airflow connection."""
        return cls("", base_url=base_url, token=token, verify=verify)

    @property
    def client(self) -> ModelRegistryClient:
        if self._client is None:
            if self._settings is None:
                self._settings = connection_settings(self.connection_id)
            base_url, token, verify = self._settings
            where = f"Airflow connection '{self.connection_id}'" if self.connection_id else base_url
            self._client = ModelRegistryClient(base_url, token=token, verify=verify, where=where)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> KubeflowRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- ModelRegistry -----------------------------------------------------------------
    def register(self, request: RegistrationRequest) -> RegistryEntry:
        name, version = request.model_name, request.version
        with self._errors("register", name, version):
            model = self._find_or_create_registered_model(request)
            model_version = self._find_version(model["id"], name, version, strict=True)
            created = model_version is None
            if model_version is None:
                model_version, created = self._create_version(model, request)
            if not created:
                log.info(
                    "Model '%s' version %s is already registered as ModelVersion %s (an earlier try)",
                    name,
                    version,
                    model_version["id"],
                )
            self._ensure_artifact(model_version, request, known_absent=created)
        entry = self._entry(name, version, model_version, created=created)
        log.info("Registered model '%s' version %s in Kubeflow Model Registry: %s", name, version, entry.url)
        return entry

    def find(self, model_name: str, version: int) -> RegistryEntry | None:
        with self._errors("look up", model_name, version):
            model = self.client.find("/registered_model", {"name": model_name})
            if model is None:
                return None
            model_version = self._find_version(model["id"], model_name, version, strict=False)
        if model_version is None:
            return None
        return self._entry(model_name, version, model_version, created=False)

    def record_deployment(self, model_name: str, version: int, deployment: dict, outcome: str) -> None:
        if outcome not in DESIRED_STATE:
            raise RegistryError(
                f"cannot record deployment of model '{model_name}' version {version}: unknown outcome "
                f"{outcome!r} (expected one of {', '.join(DESIRED_STATE)})"
            )
        environment_name, service_name = deployment_target(model_name, deployment)
        with self._errors("record the deployment of", model_name, version):
            model = self.client.find("/registered_model", {"name": model_name})
            model_version = None
            if model is not None:
                model_version = self._find_version(model["id"], model_name, version, strict=False)
            if model is None or model_version is None:
                raise RegistryError(
                    f"cannot record the deployment of model '{model_name}' version {version}: the Kubeflow "
                    "Model Registry has no such version; the register task must run before deploy"
                )
            environment = self._find_or_create_serving_environment(environment_name, deployment)
            previous_id = self._previous_version_id(model, model_name, deployment)
            service = self._record_inference_service(
                service_name, model, model_version, environment, deployment, outcome, previous_id
            )
            self._record_outcome_on_version(model_version, deployment, outcome, service)
        log.info(
            "Recorded deployment outcome '%s' of model '%s' version %s (InferenceService %s in %s)",
            outcome,
            model_name,
            version,
            service["id"],
            environment["name"],
        )
        if outcome in ("rolled_back", "failed"):  # production moves only through set_production
            self.set_state(model_name, version, outcome)

    # ---- production ----------------------------------------------------------------------
    # Production lives on the RegisteredModel (which store version, and the order they served in);
    # each ModelVersion carries its state; deployments keep their InferenceService records.
    def production_version(self, model_name: str) -> int | None:
        with self._errors("read the production version of", model_name, 0):
            model = self.client.find("/registered_model", {"name": model_name})
        value = read_value((model or {}).get("customProperties", {}).get(PRODUCTION_PROPERTY))
        return int(value) if value not in (None, "", "0", 0) else None

    def production_history(self, model_name: str) -> list[int]:
        """From the audit trail when there is one (order and repeats kept); else the older property."""
        with self._errors("read the production history of", model_name, 0):
            model = self.client.find("/registered_model", {"name": model_name})
        changes = self._changes_of(model_name, model)
        if changes:
            return history_from_changes(changes)
        raw = read_value((model or {}).get("customProperties", {}).get(HISTORY_PROPERTY)) or "[]"
        try:
            return [int(v) for v in json.loads(raw)]
        except (ValueError, TypeError):
            return []

    def version_record(self, model_name: str, version: int) -> VersionRecord | None:
        with self._errors("read the record of", model_name, version):
            model = self.client.find("/registered_model", {"name": model_name})
            found = None if model is None else self._find_version(model["id"], model_name, version, strict=False)
            artifact = None if found is None else self._find_artifact(model_name, found["id"])
        if found is None:
            return None
        props = {key: read_value(value) for key, value in (found.get("customProperties") or {}).items()}
        files_raw = read_value(((artifact or {}).get("customProperties") or {}).get("files_sha256")) or "{}"
        return VersionRecord(
            model_name=model_name,
            version=version,
            source_uri=str(props.get("source_uri", "")),
            files=json.loads(files_raw),
            metrics={k: float(v) for k, v in props.items() if isinstance(v, float)},
            run_id=str(props.get("run_id", "")),
            state=str(props.get(STATE_PROPERTY) or "candidate"),
            data_source=str(props.get("data_source") or ""),
            lineage=lineage_from_tags(props),
            rollout=json_object_tag(props, ROLLOUT_TAG, f"Kubeflow model '{model_name}' version {version}"),
            rollout_command=json_object_tag(props, ROLLOUT_COMMAND_TAG, f"Kubeflow model '{model_name}' version {version}"),
        )

    def latest_version(self, model_name: str) -> int | None:
        with self._errors("list the versions of", model_name, 0):
            model = self.client.find("/registered_model", {"name": model_name})
            if model is None:
                return None
            versions = self.client.get(f"/registered_models/{model['id']}/versions", {"pageSize": "1000"})
        numbers = [int(v["name"]) for v in versions.get("items", []) if str(v.get("name", "")).isdigit()]
        return max(numbers, default=None)

    def set_production(self, model_name: str, version: int | None, reason: str) -> None:
        # customProperties is written whole (read-modify-PATCH): under the model's lock, so that no audit
        # entry written beside it on this machine is lost (see _write_model_properties).
        with model_lock(model_name, f"set the production version of {model_name} on the Kubeflow Model Registry"):
            current = self.production_version(model_name)
            history = [v for v in self.production_history(model_name) if v != version]
            with self._errors("change the production version of", model_name, version or 0):
                model = self.client.find("/registered_model", {"name": model_name})
                if model is None:
                    raise RegistryError(f"model '{model_name}' is not registered in the Kubeflow Model Registry")
                if version is not None:
                    if self._find_version(model["id"], model_name, version, strict=False) is None:
                        raise RegistryError(f"model '{model_name}' version {version} is not registered; it cannot become production")
                    history.append(version)
                properties = dict(model.get("customProperties") or {})
                properties[PRODUCTION_PROPERTY] = int_value(version or 0)
                properties[HISTORY_PROPERTY] = string_value(json.dumps(history[-50:]))
                self.client.patch(f"/registered_models/{model['id']}", {"customProperties": properties})
        if current is not None and current != version:
            self.set_state(model_name, current, "archived" if version is not None else "undeployed")
        if version is not None:
            self.set_state(model_name, version, "production")
        log.info("Model '%s': production is now %s (%s)", model_name, version if version is not None else "nothing", reason)

    def record_production_change(self, model_name: str, change: ProductionChange) -> None:
        """Add one customProperty. The server replaces the whole customProperties map on PATCH, so a writer that
        read the map before this PATCH and writes after it drops this entry: the write holds the model's lock
        (writers on this machine take turns), and the map is read back after the PATCH and the entry written
        again (up to AUDIT_WRITE_TRIES times) while it is missing (a writer on another machine)."""
        value = audit_entry_json(change)
        action = f"record a production change ({change.action}) of"
        with model_lock(model_name, f"record a production change of {model_name} on the Kubeflow Model Registry"):
            for attempt in range(1, AUDIT_WRITE_TRIES + 1):
                with self._errors(action, model_name, change.to_version or 0):
                    model = self.client.find("/registered_model", {"name": model_name})
                    if model is None:
                        raise RegistryError(
                            f"model '{model_name}' is not registered in the Kubeflow Model Registry, so its "
                            f"production change ({change.action} {change.from_version} -> {change.to_version}) "
                            "cannot be recorded; register a version first"
                        )
                    properties = dict(model.get("customProperties") or {})
                    keys = [k for k in properties if k.startswith(AUDIT_PROPERTY_PREFIX)]
                    key = AUDIT_PROPERTY_PREFIX + audit_key_suffix(keys, AUDIT_PROPERTY_PREFIX)
                    properties[key] = string_value(value)
                    ordered = sorted(keys + [key], key=lambda k: audit_order(k, AUDIT_PROPERTY_PREFIX))
                    for old in ordered[: max(0, len(ordered) - AUDIT_KEEP)]:
                        del properties[old]
                    # PATCH sends the whole map: servers replace customProperties rather than merge them.
                    self.client.patch(f"/registered_models/{model['id']}", {"customProperties": properties})
                    again = self.client.find("/registered_model", {"name": model_name}) or {}
                if key in (again.get("customProperties") or {}):
                    break
                log.warning("Model '%s': the production change %s was replaced by another writer's PATCH "
                            "(try %d of %d); writing it again", model_name, key, attempt, AUDIT_WRITE_TRIES)
            else:
                raise RegistryError(
                    f"Kubeflow Model Registry: the production change ({change.action} {change.from_version} -> "
                    f"{change.to_version}) of model '{model_name}' was replaced by other writers "
                    f"{AUDIT_WRITE_TRIES} times; run one operation at a time on this model and record it again"
                )
        log.info("Model '%s': production change recorded: %s %s -> %s by %s (%s)", model_name, change.action,
                 change.from_version, change.to_version, change.actor, change.reason)

    def production_changes(self, model_name: str) -> list[ProductionChange]:
        with self._errors("read the production audit trail of", model_name, 0):
            model = self.client.find("/registered_model", {"name": model_name})
        return self._changes_of(model_name, model)

    @staticmethod
    def _changes_of(model_name: str, model: dict[str, Any] | None) -> list[ProductionChange]:
        properties = (model or {}).get("customProperties") or {}
        changes = []
        keys = sorted((k for k in properties if k.startswith(AUDIT_PROPERTY_PREFIX)),
                      key=lambda k: audit_order(k, AUDIT_PROPERTY_PREFIX))
        for key in keys:
            try:
                changes.append(ProductionChange.from_dict(json.loads(read_value(properties[key]))))
            except (ValueError, TypeError, AttributeError):
                log.warning("Model '%s': property %s is not a production change; skipped", model_name, key)
        return changes

    def set_state(self, model_name: str, version: int, state: str, details: dict[str, str] | None = None) -> None:
        if state not in STATES:
            raise ValueError(f"unknown version state {state!r}; one of {', '.join(STATES)}")
        with self._errors("record the state of", model_name, version):
            model = self.client.find("/registered_model", {"name": model_name})
            found = None if model is None else self._find_version(model["id"], model_name, version, strict=False)
            if found is None:
                raise RegistryError(f"model '{model_name}' version {version} is not registered")
            properties = dict(found.get("customProperties") or {})
            properties[STATE_PROPERTY] = string_value(state)
            for key, value in (details or {}).items():
                properties[key.replace(".", "_")] = string_value(value)
            self.client.patch(f"/model_versions/{found['id']}", {"customProperties": properties})

    # ---- rollout ------------------------------------------------------------------------
    def record_rollout(self, model_name: str, version: int, record: dict) -> None:
        self._write_version_property(model_name, version, ROLLOUT_TAG, rollout_json(record), "record the rollout of")

    def set_rollout_command(self, model_name: str, version: int, command: dict) -> None:
        value = rollout_command_json(command)
        self._write_version_property(model_name, version, ROLLOUT_COMMAND_TAG, value, "leave a rollout command for")

    def _write_version_property(self, model_name: str, version: int, key: str, value: str, action: str) -> None:
        """Set one string customProperty of a ModelVersion. PATCH replaces the whole map, so a writer that read it
        before this PATCH and writes after it (the rollout's record beside a person's pause) drops this value: it is
        read back and written again (up to AUDIT_WRITE_TRIES times) while the map still holds what it held before.
        A value another writer put there since is theirs, newer, and kept. No model lock: the release holds it
        for a whole deploy, and a person's pause must not wait for that."""
        for attempt in range(1, AUDIT_WRITE_TRIES + 1):
            with self._errors(action, model_name, version):
                model = self.client.find("/registered_model", {"name": model_name})
                found = None if model is None else self._find_version(model["id"], model_name, version, strict=False)
                if found is None:
                    raise RegistryError(f"model '{model_name}' version {version} is not registered; cannot {action} it")
                properties = dict(found.get("customProperties") or {})
                before = read_value(properties.get(key))
                properties[key] = string_value(value)
                # PATCH sends the whole map: servers replace customProperties rather than merge them.
                self.client.patch(f"/model_versions/{found['id']}", {"customProperties": properties})
                again = self.client.get(f"/model_versions/{found['id']}")
            now = read_value((again.get("customProperties") or {}).get(key))
            if now == value or now != before:
                return
            log.warning("Model '%s' version %s: %s was replaced by another writer's PATCH (try %d of %d); writing it "
                        "again", model_name, version, key, attempt, AUDIT_WRITE_TRIES)
        raise RegistryError(
            f"Kubeflow Model Registry: {key} of model '{model_name}' version {version} was replaced by other writers "
            f"{AUDIT_WRITE_TRIES} times; run one operation at a time on this model and try again"
        )

    # ---- registration ------------------------------------------------------------------
    def _find_or_create_registered_model(self, request: RegistrationRequest) -> dict[str, Any]:
        name = request.model_name
        model = self.client.find("/registered_model", {"name": name})
        if model is not None:
            return model
        body: dict[str, Any] = {"name": name}
        if request.description:
            body["description"] = request.description
        if request.owner:
            body["owner"] = request.owner
        try:
            model = self.client.post("/registered_models", body)
            log.info("Created RegisteredModel '%s' (id %s)", name, model["id"])
            return model
        except KubeflowApiError as exc:
            if exc.status != 409:
                raise
            # Another run created it between our read and our write: use theirs.
            model = self.client.find("/registered_model", {"name": name})
            if model is None:
                raise
            return model

    def _find_version(self, model_id: str, name: str, version: int, *, strict: bool) -> dict[str, Any] | None:
        ours = external_id(name, version)
        found = self.client.find("/model_version", {"externalId": ours})
        if found is not None:
            return found
        # Servers that do not index externalId still find it by name within the model.
        found = self.client.find("/model_version", {"name": str(version), "parentResourceId": model_id})
        if found is None or found.get("externalId") == ours:
            return found
        message = (
            f"model '{name}' already has a version named '{version}' (ModelVersion {found['id']}, "
            f"externalId {found.get('externalId')!r}) that mlspec did not register"
        )
        if strict:
            raise RegistryError(
                f"{message}; archive or rename it in the registry, or publish the model as a new store "
                "version"
            )
        log.warning("%s; ignoring it", message)
        return None

    def _create_version(
        self, model: dict[str, Any], request: RegistrationRequest
    ) -> tuple[dict[str, Any], bool]:
        body: dict[str, Any] = {
            "name": str(request.version),
            "registeredModelId": model["id"],
            "externalId": external_id(request.model_name, request.version),
            "state": "LIVE",
            "customProperties": self._version_properties(request),
        }
        if request.description:
            body["description"] = request.description
        if request.owner:
            body["author"] = request.owner
        try:
            created = self.client.post("/model_versions", body)
        except KubeflowApiError as exc:
            if exc.status != 409:
                raise
            # A concurrent try of the same task won the race: its version is ours.
            found = self._find_version(model["id"], request.model_name, request.version, strict=True)
            if found is None:
                raise
            return found, False
        log.info(
            "Created ModelVersion %s ('%s' version %s)", created["id"], request.model_name, request.version
        )
        return created, True

    @staticmethod
    def _version_properties(request: RegistrationRequest) -> dict[str, Any]:
        # Metrics under their own names so that `filterQuery=accuracy > 0.95` works on them.
        properties: dict[str, Any] = {name: double_value(value) for name, value in request.metrics.items()}
        properties.update(
            {
                "data_source": string_value(request.data_source),
                "spec_hash": string_value(request.spec_hash),
                "dag_id": string_value(request.dag_id),
                "run_id": string_value(request.run_id),
                "mlspec_version": int_value(request.version),
                "source_uri": string_value(request.source_uri),
            }
        )
        properties["framework"] = string_value(request.framework)
        properties["task"] = string_value(request.task)
        for name, schema in (("input_schema", request.input_schema), ("output_schema", request.output_schema)):
            if schema:
                properties[name] = string_value(json.dumps(schema, sort_keys=True))
        if request.output_schema.get("class_names"):  # what `label` answers, in probability order, as MLflow's tag
            properties["class_names"] = string_value(json.dumps(request.output_schema["class_names"]))
        if request.best_trial is not None:
            properties["mlspec.best_trial"] = int_value(request.best_trial)
            properties["mlspec.best_params"] = string_value(json.dumps(request.trial_params, sort_keys=True))
        properties.update({key: string_value(value) for key, value in lineage_tags(request.lineage).items()})
        return properties

    def _find_artifact(self, model_name: str, version_id: str) -> dict[str, Any] | None:
        return self.client.find("/model_artifact", {"name": model_name, "parentResourceId": version_id})

    def _ensure_artifact(
        self, model_version: dict[str, Any], request: RegistrationRequest, *, known_absent: bool
    ) -> None:
        version_id = model_version["id"]
        # A retry after an earlier try stopped between the version and its artifact.
        if not known_absent and self._find_artifact(request.model_name, version_id) is not None:
            return
        body: dict[str, Any] = {
            "artifactType": "model-artifact",
            "name": request.model_name,
            "externalId": f"{external_id(request.model_name, request.version)}:onnx",
            "uri": request.model_uri,
            "modelFormatName": "onnx",
            "modelFormatVersion": str(request.onnx_opset),
            "storagePath": storage_path(request.source_uri),
            # Lineage: both API versions (v1 and v1alpha3) define the modelSource* fields.
            "modelSourceKind": "airflow",
            "modelSourceClass": "dag_run",
            "modelSourceGroup": request.dag_id,
            "modelSourceId": request.run_id,
            "modelSourceName": request.dag_id,
            "state": "LIVE",
        }
        if request.storage_connection:
            body["storageKey"] = request.storage_connection
        if request.files:
            files = json.dumps(request.files, sort_keys=True)
            body["customProperties"] = {"files_sha256": string_value(files)}
        try:
            artifact = self.client.post(f"/model_versions/{version_id}/artifacts", body)
        except KubeflowApiError as exc:
            if exc.status != 409:
                raise
            if self._find_artifact(request.model_name, version_id) is not None:
                return
            raise
        log.info(
            "Created ModelArtifact %s for ModelVersion %s: %s",
            artifact.get("id"),
            version_id,
            request.model_uri,
        )

    # ---- deployments -------------------------------------------------------------------
    def _previous_version_id(self, model: dict[str, Any], model_name: str, deployment: dict) -> str | None:
        """The ModelVersion id of the store version that served before this deployment, if known."""
        previous = deployment.get("previous_version")
        if previous is None:
            return None
        found = self._find_version(model["id"], model_name, int(previous), strict=False)
        return found["id"] if found else None

    def _find_or_create_serving_environment(self, name: str, deployment: dict) -> dict[str, Any]:
        environment = self.client.find("/serving_environment", {"name": name})
        if environment is not None:
            return environment
        platform = deployment.get("platform", "local")
        body = {"name": name, "description": f"{platform} serving, recorded by mlspec"}
        try:
            return self.client.post("/serving_environments", body)
        except KubeflowApiError as exc:
            if exc.status != 409:
                raise
            environment = self.client.find("/serving_environment", {"name": name})
            if environment is None:
                raise
            return environment

    def _record_inference_service(
        self,
        name: str,
        model: dict[str, Any],
        model_version: dict[str, Any],
        environment: dict[str, Any],
        deployment: dict,
        outcome: str,
        previous_id: str | None,
    ) -> dict[str, Any]:
        lookup = {"name": name, "parentResourceId": environment["id"]}
        service = self.client.find("/inference_service", lookup)
        if service is None:
            body: dict[str, Any] = {
                "name": name,
                "registeredModelId": model["id"],
                "servingEnvironmentId": environment["id"],
                **(self._service_state(None, model_version, deployment, outcome, previous_id) or {}),
            }
            if deployment.get("runtime"):
                body["runtime"] = str(deployment["runtime"])
            try:
                return self.client.post("/inference_services", body)
            except KubeflowApiError as exc:
                if exc.status != 409:
                    raise
                service = self.client.find("/inference_service", lookup)
                if service is None:
                    raise
        if service.get("registeredModelId") not in (None, model["id"]):
            raise RegistryError(
                f"InferenceService '{name}' in serving environment '{environment['name']}' belongs to "
                f"another registered model (id {service.get('registeredModelId')}); serve this model under "
                "another name"
            )
        update = self._service_state(service, model_version, deployment, outcome, previous_id)
        if update is None:
            return service
        return self.client.patch(f"/inference_services/{service['id']}", update)

    def _service_state(
        self,
        service: dict[str, Any] | None,
        model_version: dict[str, Any],
        deployment: dict,
        outcome: str,
        previous_id: str | None,
    ) -> dict[str, Any] | None:
        """modelVersionId, desiredState and customProperties to record, or None to leave it as it is."""
        version_id = model_version["id"]
        serving_id = (service or {}).get("modelVersionId")
        properties = dict((service or {}).get("customProperties") or {})
        if DESIRED_STATE[outcome] == "DEPLOYED":
            before = serving_id if serving_id and serving_id != version_id else previous_id
            if before and before != version_id:
                properties[PREVIOUS_VERSION_PROPERTY] = string_value(before)
            return {
                "modelVersionId": version_id,
                "desiredState": "DEPLOYED",
                "customProperties": self._service_properties(properties, deployment, outcome),
            }
        if serving_id and serving_id != version_id:
            # The new version never took over: the version recorded here keeps serving.
            return None
        previous = read_value(properties.pop(PREVIOUS_VERSION_PROPERTY, None)) or previous_id
        properties = self._service_properties(properties, deployment, outcome)
        if previous and previous != version_id:
            # Rolled back: the version that served before is the one serving again.
            return {"modelVersionId": previous, "desiredState": "DEPLOYED", "customProperties": properties}
        return {"modelVersionId": version_id, "desiredState": "UNDEPLOYED", "customProperties": properties}

    @staticmethod
    def _service_properties(properties: dict[str, Any], deployment: dict, outcome: str) -> dict[str, Any]:
        merged = dict(properties)
        merged["deployment_outcome"] = string_value(outcome)
        if deployment.get("platform"):
            merged["platform"] = string_value(deployment["platform"])
        if deployment.get("endpoint_url") and DESIRED_STATE[outcome] == "DEPLOYED":
            merged["endpoint_url"] = string_value(deployment["endpoint_url"])
        return merged

    def _record_outcome_on_version(
        self, model_version: dict[str, Any], deployment: dict, outcome: str, service: dict[str, Any]
    ) -> None:
        properties = dict(model_version.get("customProperties") or {})
        properties["deployment_outcome"] = string_value(outcome)
        properties["inference_service_id"] = string_value(service["id"])
        for key, prop in (
            ("platform", "deployment_platform"),
            ("endpoint_url", "endpoint_url"),
            ("served_model_name", "served_model_name"),
        ):
            if deployment.get(key):
                properties[prop] = string_value(deployment[key])
        if deployment.get("message"):
            properties["deployment_message"] = string_value(deployment["message"])
        else:
            # A message from an earlier outcome would describe something that is no longer true.
            properties.pop("deployment_message", None)
        # PATCH sends the whole map: servers replace customProperties rather than merge them.
        self.client.patch(f"/model_versions/{model_version['id']}", {"customProperties": properties})

    # ---- helpers -----------------------------------------------------------------------
    def _entry(
        self, name: str, version: int, model_version: dict[str, Any], *, created: bool
    ) -> RegistryEntry:
        return RegistryEntry(
            backend=self.backend,
            model_name=name,
            version=version,
            registry_version=str(model_version["id"]),
            url=f"{self.client.api_url}/model_versions/{model_version['id']}",
            created=created,
        )

    @contextmanager
    def _errors(self, action: str, model_name: str, version: int) -> Iterator[None]:
        """Name the model and version in every registry error."""
        try:
            yield
        except KubeflowApiError as exc:
            raise KubeflowApiError(
                f"Kubeflow Model Registry could not {action} model '{model_name}' version {version}: {exc}",
                status=exc.status,
                server_message=exc.server_message,
                method=exc.method,
                path=exc.path,
            ) from exc
        except RegistryError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            # A server whose answers lack the fields the contract promises (ids, names).
            raise RegistryError(
                f"Kubeflow Model Registry gave an unexpected answer while trying to {action} model "
                f"'{model_name}' version {version} ({type(exc).__name__}: {exc}); check that the server "
                "speaks the Model Registry REST API v1 or v1alpha3"
            ) from exc

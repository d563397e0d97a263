"""KServe serving backend: one InferenceService per model, through Airflow's cncf-kubernetes provider.

Deploying a version is the interface's two steps, so that operators can wait without holding a worker slot:

1. :meth:`KServeServing.apply` creates or patches the InferenceService and returns a small JSON
   *state* (name, namespace, the generation our change produced, the spec it replaced);
2. :meth:`KServeServing.await_ready` polls synchronously (CLI, operations), or takes the event of
   :meth:`KServeServing.readiness_trigger`'s wait in the triggerer, and turns it into a :class:`Deployment`
   (:func:`deployment_from_event`).

A failed or timed-out wait always takes its own change back: the replaced spec is put back (KServe keeps
the old pods serving until the new ones are ready, so traffic never sees the failed version) or, when
nothing served before, the new InferenceService is deleted. Bringing serving back to the registry's
production version is the release service's step (:meth:`KServeServing.rollback` with that version).
"""

from __future__ import annotations

import json
import logging
import time
from functools import cached_property
from typing import Any

from mlspec.errors import ServingError
from mlspec.serving.base import Deployment, RollbackFailed, ServingBackend
from mlspec.serving.kserve_manifest import (
    ENABLE_AUTH_ANNOTATION,
    GROUP,
    MANAGED_BY_LABEL,
    PLURAL,
    PREVIOUS_SPEC_ANNOTATION,
    PREVIOUS_VERSION_ANNOTATION,
    VERSION,
    VERSION_LABEL,
    VISIBILITY_LABEL,
    KServeConfig,
    build_inference_service,
    check_readiness,
    served_model_name,
)
from mlspec.storage import store_kind
from mlspec.triggers.kserve import KServeReadinessTrigger

__all__ = [
    "KServeConfig",
    "KServeServing",
    "build_inference_service",
    "RollbackFailed",
    "check_readiness",
    "deployment_from_event",
]

log = logging.getLogger(__name__)

# Keys mlspec sets only in some configurations; removed again when the configuration drops them.
_OPTIONAL_LABELS = (VISIBILITY_LABEL,)
_OPTIONAL_ANNOTATIONS = (ENABLE_AUTH_ANNOTATION, PREVIOUS_SPEC_ANNOTATION, PREVIOUS_VERSION_ANNOTATION)


def _pointer(*parts: str) -> str:
    """A JSON pointer (RFC 6901): label keys hold '/', which must be escaped."""
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def _api_error_text(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    body = getattr(exc, "body", None)
    message = None
    if body:
        try:
            message = json.loads(body).get("message")
        except (ValueError, AttributeError):
            message = str(body)[:300]
    reason = getattr(exc, "reason", None)
    if status is None:
        return f"{type(exc).__name__}: {exc}"
    return f"HTTP {status} {reason or ''}".strip() + (f": {message}" if message else "")


def _meta_ops(kind: str, current: dict, desired: dict, optional: tuple[str, ...]) -> list[dict]:
    """JSON-patch ops that set our labels/annotations one key at a time, keeping everybody else's."""
    if not current:
        return [{"op": "add", "path": _pointer("metadata", kind), "value": dict(desired)}]
    ops = [
        {"op": "add", "path": _pointer("metadata", kind, key), "value": value}
        for key, value in desired.items()
        if current.get(key) != value
    ]
    ops += [
        {"op": "remove", "path": _pointer("metadata", kind, key)}
        for key in optional
        if key in current and key not in desired
    ]
    return ops


class KServeServing(ServingBackend):
    """Serve published ONNX versions from `store_root_uri` with a KServe InferenceService."""

    platform = "kserve"

    def __init__(
        self,
        config: KServeConfig,
        store_root_uri: str,
        *,
        labels: dict | None = None,
        poll_interval_s: float = 5.0,
    ) -> None:
        self.config = config
        self.store_root_uri = store_root_uri.rstrip("/")
        self.labels = dict(labels or {})
        self.poll_interval_s = poll_interval_s
        store = store_kind(self.store_root_uri)
        if store is not None and not store.runs_here and not config.service_account:
            # The storage initializer runs in the cluster: Airflow's connection is no use to it.
            log.warning(
                "serving from %s without a service_account: KServe pods can only read it if the cluster "
                "grants S3 access another way (IRSA, a default storage secret); mlspec's own storage "
                "connection %r is not visible to them",
                self.store_root_uri,
                config.storage_connection or "aws_default",  # what open_store uses when it is left out
            )

    # -- Kubernetes access (lazy: constructing a backend does no I/O) -------------------------
    @cached_property
    def hook(self) -> Any:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        return KubernetesHook(conn_id=self.config.connection)

    def _call(self, what: str, target: str, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return fn(*args, **kwargs)
        except ApiException:
            raise
        except ServingError:
            raise
        except Exception as exc:  # connection refused, bad kubeconfig, missing Airflow connection...
            raise ServingError(
                f"could not {what} InferenceService {target} in namespace {self.config.namespace} through "
                f"Airflow connection {self.config.connection!r}: {type(exc).__name__}: {exc}. Check that the "
                "connection points at the cluster and that KServe is installed."
            ) from exc

    def get(self, name: str) -> dict | None:
        """The InferenceService as the cluster has it, or None when there is none."""
        from kubernetes.client.exceptions import ApiException

        try:
            return self._call(
                "read", name, self.hook.get_custom_object,
                group=GROUP, version=VERSION, plural=PLURAL, name=name, namespace=self.config.namespace,
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise ServingError(
                f"could not read InferenceService {name} in namespace {self.config.namespace}: "
                f"{_api_error_text(exc)}"
            ) from exc

    def _patch(self, name: str, ops: list[dict]) -> dict:
        from kubernetes.client.exceptions import ApiException

        api = self.hook.custom_object_client
        try:
            # The client labels every custom-object patch as a merge patch unless told otherwise; a JSON
            # patch is what lets us replace .spec whole and touch single label keys.
            return self._call(
                "patch", name, api.patch_namespaced_custom_object,
                group=GROUP, version=VERSION, plural=PLURAL, namespace=self.config.namespace, name=name,
                body=ops,
                _content_type="application/json-patch+json",
            )
        except ApiException as exc:
            raise ServingError(
                f"Kubernetes refused the change to InferenceService {name} in namespace "
                f"{self.config.namespace}: {_api_error_text(exc)}"
            ) from exc

    # -- step 1: apply --------------------------------------------------------------------------
    def manifest(self, model_name: str, version: int) -> dict:
        return build_inference_service(
            self.config,
            model_name=model_name,
            version=version,
            store_root_uri=self.store_root_uri,
            labels=self.labels,
        )

    def apply(self, model_name: str, version: int, version_uri: str) -> dict:
        """Create or patch the InferenceService for `version`; return the state a wait and a rollback need.

        State keys: name, namespace, generation (metadata.generation after our change), previous_spec
        (the replaced .spec, None when we created it), previous_version, model_name, version,
        served_model_name. JSON-serialisable (it travels through XCom). Safe to retry: a second
        apply of the same version finds its own change and returns the same state.
        """
        expected = f"{self.store_root_uri}/{model_name}/{version}"
        if version_uri.rstrip("/") != expected:
            raise ServingError(
                f"model {model_name} version {version} is published at {version_uri}, but KServe serves "
                f"from the store root {self.store_root_uri} (expected {expected}); serving and storage "
                "must use the same storage.uri"
            )
        desired = self.manifest(model_name, version)
        ns = self.config.namespace
        existing = self.get(model_name)
        if existing is None:
            return self._create(desired, model_name, version)

        meta = existing.get("metadata") or {}
        labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
        if labels.get(MANAGED_BY_LABEL) != "mlspec":
            raise ServingError(
                f"InferenceService {model_name} already exists in namespace {ns} and is not managed by "
                f"mlspec (no label {MANAGED_BY_LABEL}=mlspec); refusing to overwrite it. Delete it or "
                "rename the model."
            )
        if labels.get(VERSION_LABEL) == str(version) and existing.get("spec") == desired["spec"]:
            # A retried task: an earlier try already applied this version; its annotations hold what it
            # replaced.
            previous = annotations.get(PREVIOUS_SPEC_ANNOTATION)
            prev_version = annotations.get(PREVIOUS_VERSION_ANNOTATION)
            log.info("InferenceService %s/%s already serves version %d; reusing it", ns, model_name, version)
            return self._state(
                existing, model_name, version,
                previous_spec=json.loads(previous) if previous else None,
                previous_version=int(prev_version) if prev_version and prev_version.isdigit() else None,
            )

        previous_spec = existing.get("spec")
        prev_label = labels.get(VERSION_LABEL, "")
        previous_version = int(prev_label) if prev_label.isdigit() else None
        want_annotations = dict(desired["metadata"]["annotations"])
        want_annotations[PREVIOUS_SPEC_ANNOTATION] = json.dumps(
            previous_spec, sort_keys=True, separators=(",", ":")
        )
        if previous_version is not None:
            want_annotations[PREVIOUS_VERSION_ANNOTATION] = str(previous_version)
        ops = [{"op": "replace" if "spec" in existing else "add", "path": "/spec", "value": desired["spec"]}]
        ops += _meta_ops("labels", labels, desired["metadata"]["labels"], _OPTIONAL_LABELS)
        ops += _meta_ops("annotations", annotations, want_annotations, _OPTIONAL_ANNOTATIONS)
        patched = self._patch(model_name, ops)
        state = self._state(
            patched, model_name, version, previous_spec=previous_spec, previous_version=previous_version
        )
        log.info(
            "patched InferenceService %s/%s: version %s -> %d (generation %s)",
            ns, model_name, previous_version, version, state["generation"],
        )
        return state

    def _create(self, desired: dict, model_name: str, version: int) -> dict:
        from kubernetes.client.exceptions import ApiException

        try:
            created = self._call(
                "create", model_name, self.hook.create_custom_object,
                group=GROUP, version=VERSION, plural=PLURAL, body=desired, namespace=self.config.namespace,
            )
        except ApiException as exc:
            raise ServingError(
                f"Kubernetes refused to create InferenceService {model_name} (version {version}) in "
                f"namespace {self.config.namespace}: {_api_error_text(exc)}"
            ) from exc
        state = self._state(created, model_name, version, previous_spec=None, previous_version=None)
        log.info(
            "created InferenceService %s/%s for version %d (generation %s)",
            self.config.namespace, model_name, version, state["generation"],
        )
        return state

    def _state(self, isvc: dict, model_name: str, version: int, *, previous_spec, previous_version) -> dict:
        generation = (isvc.get("metadata") or {}).get("generation")
        return {
            "name": model_name,
            "namespace": self.config.namespace,
            # Without a generation (a non-conforming API server) wait for the first observed one.
            "generation": int(generation) if isinstance(generation, int) else 1,
            "previous_spec": previous_spec,
            "previous_version": previous_version,
            "model_name": model_name,
            "version": version,
            "served_model_name": served_model_name(self.config, model_name),
        }

    # -- step 2: wait ---------------------------------------------------------------------------
    def wait(self, state: dict, timeout_s: float | None = None) -> tuple[str, str]:
        """Poll until ready: ``("ready", url)``, ``("failed", reason)`` or ``("timeout", reason)``."""
        timeout = float(self.config.timeout_s if timeout_s is None else timeout_s)
        name, generation = state["name"], int(state["generation"])
        deadline = time.monotonic() + timeout
        last = "no status read yet"
        while True:
            try:
                isvc = self.get(name)
            except ServingError as exc:  # an API hiccup is not a verdict; keep polling until the deadline
                isvc, last = {}, str(exc)
            if isvc is None:
                return "failed", f"InferenceService {name} disappeared from namespace {state['namespace']}"
            if isvc:
                outcome, detail = check_readiness(isvc, generation)
                if outcome != "pending":
                    return outcome, detail
                if detail != last:
                    log.info("InferenceService %s/%s: %s", state["namespace"], name, detail)
                last = detail
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout", f"not ready within {timeout:g}s; last status: {last}"
            time.sleep(min(self.poll_interval_s, remaining))

    def await_ready(self, state: dict, event: dict | None = None) -> Deployment:
        if event is None:
            outcome, detail = self.wait(state)
            event = {"status": outcome, "url": detail if outcome == "ready" else None, "message": detail}
        return deployment_from_event(event, state, backend=self)

    def readiness_trigger(self, state: dict) -> Any:
        """KServe pulls and loads a model for minutes: the wait runs in Airflow's triggerer."""
        return KServeReadinessTrigger(
            name=state["name"],
            namespace=state["namespace"],
            generation=state["generation"],
            connection=self.config.connection,
            timeout_s=self.config.timeout_s,
            poll_interval_s=5,
        )

    def served_version(self, model_name: str) -> int | None:
        isvc = self.get(model_name)
        label = (((isvc or {}).get("metadata") or {}).get("labels") or {}).get(VERSION_LABEL, "")
        return int(label) if str(label).isdigit() else None

    def undeploy(self, model_name: str) -> None:
        self.rollback_state({"name": model_name, "namespace": self.config.namespace, "previous_spec": None})

    # -- rollback -------------------------------------------------------------------------------
    def rollback(self, deployment: Deployment) -> None:
        """Put back deployment.previous_state when it is this backend's own apply state (the spec it
        replaced); otherwise serve deployment.previous_version (the registry's production version, from
        previous_state's storage_uri), or delete the InferenceService when it is None."""
        state = deployment.previous_state or {}
        if "previous_spec" in state:
            self.rollback_state(state)
            return
        name, previous = deployment.model_name, deployment.previous_version
        if previous is None:
            self.rollback_state({"name": name, "namespace": self.config.namespace, "previous_spec": None})
            return
        if self.served_version(name) == previous:
            return
        try:
            self.deploy(name, previous, state.get("storage_uri") or f"{self.store_root_uri}/{name}/{previous}")
        except ServingError as exc:
            raise RollbackFailed(f"serving version {previous} of {name} again failed: {exc}") from exc

    def rollback_state(self, state: dict) -> str:
        """Put back what `state` replaced; returns a short description of what was done."""
        name, ns = state["name"], state["namespace"]
        previous_spec = state.get("previous_spec")
        if previous_spec is None:
            from kubernetes.client.exceptions import ApiException

            try:
                self._call(
                    "delete", name, self.hook.delete_custom_object,
                    group=GROUP, version=VERSION, plural=PLURAL, name=name, namespace=ns,
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise ServingError(
                        f"rollback failed: could not delete InferenceService {name} in namespace {ns}: "
                        f"{_api_error_text(exc)}"
                    ) from exc
            log.info("rolled back: deleted InferenceService %s/%s (nothing served before)", ns, name)
            return "InferenceService deleted (no previous version was served)"

        current = self.get(name)
        if current is None:
            raise ServingError(f"rollback failed: InferenceService {name} is gone from namespace {ns}")
        meta = current.get("metadata") or {}
        labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
        ops = [{"op": "replace" if "spec" in current else "add", "path": "/spec", "value": previous_spec}]
        want_labels = {}
        if state.get("previous_version") is not None:
            want_labels[VERSION_LABEL] = str(state["previous_version"])
        ops += _meta_ops("labels", labels, want_labels, ())
        ops += [
            {"op": "remove", "path": _pointer("metadata", "annotations", key)}
            for key in (PREVIOUS_SPEC_ANNOTATION, PREVIOUS_VERSION_ANNOTATION)
            if key in annotations
        ]
        self._patch(name, ops)
        log.info("rolled back InferenceService %s/%s to version %s", ns, name, state.get("previous_version"))
        return f"previous spec restored (version {state.get('previous_version')})"


def deployment_from_event(event: dict, state: dict, *, backend: KServeServing) -> Deployment:
    """Turn a readiness outcome into a Deployment, or roll back and raise ServingError.

    When the rollback itself fails the error is :class:`RollbackFailed`, so callers can tell
    "rolled back" from "still broken".

    `event` is a KServeReadinessTrigger payload ({"status": "ready"|"failed"|"timeout", "url", "message"});
    `state` is what :meth:`KServeServing.apply` returned.
    """
    status = event.get("status")
    model, version, ns = state["model_name"], state["version"], state["namespace"]
    if status == "ready" and event.get("url"):
        log.info("model %s version %d is ready at %s", model, version, event["url"])
        return Deployment(
            platform=KServeServing.platform,
            model_name=model,
            version=version,
            endpoint_url=str(event["url"]).rstrip("/"),
            served_model_name=state["served_model_name"],
            previous_version=state.get("previous_version"),
            previous_state=state,
        )
    reason = event.get("message") or f"unexpected readiness event {event!r}"
    what = "did not become ready in time" if status == "timeout" else "failed"
    try:
        done = backend.rollback_state(state)
    except ServingError as exc:
        raise RollbackFailed(
            f"KServe deployment of model {model} version {version} in namespace {ns} {what}: {reason}. "
            f"Rolling back ALSO failed: {exc}. Inspect it with "
            f"`kubectl describe inferenceservice {model} -n {ns}`."
        ) from exc
    raise ServingError(
        f"KServe deployment of model {model} version {version} in namespace {ns} {what}: {reason}. "
        f"Rolled back: {done}. Look at `kubectl describe inferenceservice {model} -n {ns}` and the predictor "
        "pod logs, fix the cause, then re-run the task."
    )

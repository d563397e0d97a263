"""KServe serving backend: one InferenceService per model, through Airflow's cncf-kubernetes provider.

Deploying a version is the interface's two steps, so that operators can wait without holding a worker slot:

1. :meth:`KServeServing.apply` creates or patches the InferenceService and returns a small JSON
   *state* (name, namespace, the generation our change produced, the spec it replaced);
2. :meth:`KServeServing.await_ready` polls synchronously (CLI, operations), or takes the event of
   :meth:`KServeServing.readiness_trigger`'s wait in the triggerer, and turns it into a :class:`Deployment`
   (:func:`deployment_from_event`).

A rollout (issue 16) uses KServe's canary field, Serverless mode only: ``apply(..., serve=False)`` puts the
candidate in with ``canaryTrafficPercent: 0`` (KServe's previously rolled-out revision, production, keeps every
request; the candidate answers only at its own "latest" tag URL, where the smoke test asks it), ``set_traffic``
moves the percentage once the candidate's revision is ready; at 100 the field stays until the release's plain
load removes it (KServe's promotion), so a rollback at the last step is still KServe's own. KServe has no
shadow traffic (kserve#2978) and no per-version mlspec metrics.

A failed or timed-out wait always takes its own change back: the replaced spec is put back (KServe keeps
the old pods serving until the new ones are ready, so traffic never sees the failed version) or, when
nothing served before, the new InferenceService is deleted. Bringing serving back to the registry's
production version is the release service's step (:meth:`KServeServing.rollback` with that version).
"""

from __future__ import annotations

import copy
import json
import logging
import time
from functools import cached_property
from typing import Any

from mlspec.errors import ServingError
from mlspec.serving.base import Deployment, RollbackFailed, ServingBackend
from mlspec.serving.kserve_manifest import (
    CANARY_FIELD,
    CANARY_VERSION_ANNOTATION,
    ENABLE_AUTH_ANNOTATION,
    GROUP,
    MANAGED_BY_LABEL,
    PLURAL,
    PREVIOUS_SPEC_ANNOTATION,
    PREVIOUS_VERSION_ANNOTATION,
    TAG_ROUTING_ANNOTATION,
    VERSION,
    VERSION_LABEL,
    VISIBILITY_LABEL,
    KServeConfig,
    build_inference_service,
    canary_not_ready,
    check_readiness,
    deployment_mode_of,
    predictor_status,
    refuse_canary,
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
_OPTIONAL_ANNOTATIONS = (
    ENABLE_AUTH_ANNOTATION, PREVIOUS_SPEC_ANNOTATION, PREVIOUS_VERSION_ANNOTATION, CANARY_VERSION_ANNOTATION,
    TAG_ROUTING_ANNOTATION,
)
_CANARY_POINTER = f"/spec/predictor/{CANARY_FIELD}"


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


def _int_or_none(value: Any) -> int | None:
    return int(value) if str(value or "").isdigit() else None


def _without_canary(spec: dict | None) -> dict | None:
    """A spec as mlspec builds it for plain serving: a canary share left in it (a pinned rollback) taken out."""
    if not spec or CANARY_FIELD not in (spec.get("predictor") or {}):
        return spec
    plain = copy.deepcopy(spec)
    del plain["predictor"][CANARY_FIELD]
    return plain


def _annotations(isvc: dict | None) -> dict:
    return ((isvc or {}).get("metadata") or {}).get("annotations") or {}


def _labels(isvc: dict | None) -> dict:
    return ((isvc or {}).get("metadata") or {}).get("labels") or {}


def canary_version(isvc: dict | None) -> int | None:
    """The candidate of the rollout running on this InferenceService, or None."""
    return _int_or_none(_annotations(isvc).get(CANARY_VERSION_ANNOTATION))


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
    def manifest(self, model_name: str, version: int, canary_percent: int | None = None) -> dict:
        return build_inference_service(
            self.config,
            model_name=model_name,
            version=version,
            store_root_uri=self.store_root_uri,
            labels=self.labels,
            canary_percent=canary_percent,
        )

    def apply(self, model_name: str, version: int, version_uri: str, *, serve: bool = True) -> dict:
        """Create or patch the InferenceService for `version`; return the state a wait and a rollback need.

        State keys: name, namespace, generation (metadata.generation after our change), previous_spec
        (the replaced .spec, None when we created it), previous_version, model_name, version,
        served_model_name, canary. JSON-serialisable (it travels through XCom). Safe to retry: a second
        apply of the same version finds its own change and returns the same state.

        `serve=False` (a rollout's candidate): `version` comes in as a canary answering no live request
        (`canaryTrafficPercent: 0`); production stays the served version (the label) until `set_traffic` gives
        the candidate 100 %. A first version has nothing to split with and serves at once. `serve=True` for the
        rollout's own candidate promotes it (the canary field removed).
        """
        expected = f"{self.store_root_uri}/{model_name}/{version}"
        if version_uri.rstrip("/") != expected:
            raise ServingError(
                f"model {model_name} version {version} is published at {version_uri}, but KServe serves "
                f"from the store root {self.store_root_uri} (expected {expected}); serving and storage "
                "must use the same storage.uri"
            )
        ns = self.config.namespace
        existing = self.get(model_name)
        if existing is None:
            if not serve:
                log.info("%s has no InferenceService yet: version %d serves all requests (nothing to split with)",
                         model_name, version)
            return self._create(self.manifest(model_name, version), model_name, version)

        labels, annotations = _labels(existing), _annotations(existing)
        if labels.get(MANAGED_BY_LABEL) != "mlspec":
            raise ServingError(
                f"InferenceService {model_name} already exists in namespace {ns} and is not managed by "
                f"mlspec (no label {MANAGED_BY_LABEL}=mlspec); refusing to overwrite it. Delete it or "
                "rename the model."
            )
        candidate = canary_version(existing)
        if candidate is not None and candidate != version:
            raise ServingError(
                f"a rollout of {model_name} version {candidate} runs on InferenceService {model_name} in namespace "
                f"{ns}; version {version} cannot be applied until it is finished or aborted (`mlspec rollout SPEC "
                "--abort` gives production every request back)"
            )
        if not serve and not (candidate is None and labels.get(VERSION_LABEL) == str(version)):
            return self._apply_canary(existing, model_name, version)
        if candidate == version:
            return self.promote(model_name)
        desired = self.manifest(model_name, version)
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

        previous_spec = _without_canary(existing.get("spec"))
        previous_version = _int_or_none(labels.get(VERSION_LABEL))
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

    def _apply_canary(self, existing: dict, model_name: str, version: int) -> dict:
        """Put `version` in beside production as a canary with no share of live requests (see `apply`)."""
        ns = self.config.namespace
        refuse_canary(deployment_mode_of(existing), model_name)  # what the cluster runs, whatever the spec asks
        desired = self.manifest(model_name, version, canary_percent=0)
        labels, annotations = _labels(existing), _annotations(existing)
        previous_spec = _without_canary(existing.get("spec"))
        production = _int_or_none(labels.get(VERSION_LABEL))
        if canary_version(existing) == version:  # a retried deploy: the same candidate, its rollout starts again
            previous = annotations.get(PREVIOUS_SPEC_ANNOTATION)
            previous_spec = json.loads(previous) if previous else None
            production = _int_or_none(annotations.get(PREVIOUS_VERSION_ANNOTATION))
            if _without_canary(existing.get("spec")) == _without_canary(desired["spec"]):
                again = self._set_canary_percent(existing, model_name, version, 0)
                return self._state(again, model_name, version, previous_spec=previous_spec,
                                   previous_version=production, canary=True)
        want_labels = dict(desired["metadata"]["labels"])
        if production is not None:  # the label names what serves: production, until the candidate takes 100 %
            want_labels[VERSION_LABEL] = str(production)
        want_annotations = dict(desired["metadata"]["annotations"])
        want_annotations[PREVIOUS_SPEC_ANNOTATION] = json.dumps(previous_spec, sort_keys=True, separators=(",", ":"))
        if production is not None:
            want_annotations[PREVIOUS_VERSION_ANNOTATION] = str(production)
        want_annotations[CANARY_VERSION_ANNOTATION] = str(version)
        ops = [{"op": "replace" if "spec" in existing else "add", "path": "/spec", "value": desired["spec"]}]
        ops += _meta_ops("labels", labels, want_labels, _OPTIONAL_LABELS)
        ops += _meta_ops("annotations", annotations, want_annotations, _OPTIONAL_ANNOTATIONS)
        patched = self._patch(model_name, ops)
        state = self._state(patched, model_name, version, previous_spec=previous_spec, previous_version=production,
                            canary=True)
        log.info("patched InferenceService %s/%s: version %d in as a canary with 0 %% of requests beside version %s "
                 "(generation %s)", ns, model_name, version, production, state["generation"])
        return state

    def _set_canary_percent(self, isvc: dict, model_name: str, candidate: int, percent: int) -> dict:
        """Patch the candidate's share; the patch fails when another candidate took its place meanwhile."""
        predictor = (isvc.get("spec") or {}).get("predictor") or {}
        if predictor.get(CANARY_FIELD) == percent:
            return isvc
        ops = [
            {"op": "test", "path": _pointer("metadata", "annotations", CANARY_VERSION_ANNOTATION),
             "value": str(candidate)},
            {"op": "replace" if CANARY_FIELD in predictor else "add", "path": _CANARY_POINTER, "value": percent},
        ]
        return self._patch(model_name, ops)

    def promote(self, model_name: str) -> dict:
        """The rollout's candidate becomes the served version: the canary field goes (KServe's promotion: its
        revision answers every request) and the label names it. Returns its apply state (for await_ready)."""
        isvc = self.get(model_name)
        candidate = canary_version(isvc)
        if candidate is None:
            raise ServingError(f"no rollout runs on InferenceService {model_name} in namespace {self.config.namespace}")
        annotations = _annotations(isvc)
        ops = [{"op": "test", "path": _pointer("metadata", "annotations", CANARY_VERSION_ANNOTATION),
                "value": str(candidate)}]
        if CANARY_FIELD in ((isvc.get("spec") or {}).get("predictor") or {}):
            ops.append({"op": "remove", "path": _CANARY_POINTER})
        ops += _meta_ops("labels", _labels(isvc), {VERSION_LABEL: str(candidate)}, ())
        ops.append({"op": "remove", "path": _pointer("metadata", "annotations", CANARY_VERSION_ANNOTATION)})
        patched = self._patch(model_name, ops)
        previous = annotations.get(PREVIOUS_SPEC_ANNOTATION)
        log.info("InferenceService %s/%s: version %d promoted (%s removed: it answers every request)",
                 self.config.namespace, model_name, candidate, CANARY_FIELD)
        return self._state(patched, model_name, candidate, previous_spec=json.loads(previous) if previous else None,
                           previous_version=_int_or_none(annotations.get(PREVIOUS_VERSION_ANNOTATION)))

    # -- a rollout's traffic --------------------------------------------------------------------
    def set_traffic(self, model_name: str, traffic: dict) -> None:
        """Give the rollout's candidate its share: `traffic` is the model server's traffic object ({"weights":
        {version: percent}, "shadow": ...}; weights None: production answers all). Only production and the
        candidate can have weight. A share above 0 is given only once the candidate's revision is ready
        (ServingError otherwise: the order kserve#5983 got wrong).

        At 100 the candidate answers every request, but the field stays (100) and production stays the served
        version until the release's plain load (`apply(serve=True)`) promotes it: until then a rollback is
        KServe's own (share 0: KServe routes to the revision rolled out before), not a new deployment."""
        isvc = self.get(model_name)
        ns = self.config.namespace
        if isvc is None:
            raise ServingError(f"InferenceService {model_name} does not exist in namespace {ns}: nothing to route")
        candidate, production = canary_version(isvc), _int_or_none(_labels(isvc).get(VERSION_LABEL))
        shadow = traffic.get("shadow")
        if shadow:
            log.info("KServe cannot copy requests to a shadow (kserve#2978): no shadow of version %s on %s",
                     shadow.get("version"), model_name)
        weights = traffic.get("weights")
        percent = 0 if weights is None else self._candidate_share(model_name, weights, candidate, production)
        if candidate is None:
            return  # no rollout runs: production answers all, as asked
        refuse_canary(deployment_mode_of(isvc), model_name)
        if percent > 0:
            why = canary_not_ready(isvc)
            if why is not None:
                raise ServingError(
                    f"version {candidate} of {model_name} gets no share of requests yet: {why}. KServe would route "
                    f"the canary's share to a revision that cannot answer (kserve#5983); production keeps "
                    f"answering, so wait until `kubectl get inferenceservice {model_name} -n {ns}` shows it ready, "
                    "then set the step again"
                )
        self._set_canary_percent(isvc, model_name, candidate, percent)
        log.info("InferenceService %s/%s: version %d answers %d %% of requests, version %s the rest", ns,
                 model_name, candidate, percent, production)

    def _candidate_share(self, model_name: str, weights: dict, candidate: int | None, production: int | None) -> int:
        shares = {}
        for key, value in weights.items():
            if not str(key).isdigit() or not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ServingError(f"traffic for {model_name}: weights must map versions to whole percentages, "
                                   f"got {weights!r}")
            shares[int(key)] = value
        if sum(shares.values()) != 100:
            raise ServingError(f"traffic for {model_name}: weights must add up to 100, got {weights!r}")
        routable = {v for v in (production, candidate) if v is not None}
        if not set(shares) <= routable or (candidate is None and shares.get(production) != 100):
            what = f"production (version {production}) and the candidate (version {candidate})" if candidate else (
                f"production (version {production}); no candidate was applied with serve=False")
            raise ServingError(f"traffic for {model_name}: KServe can route only to {what}, not {weights!r}")
        return shares.get(candidate, 0) if candidate is not None else 0

    def traffic(self, model_name: str) -> dict:
        """What KServe routes now, from status.components.predictor.traffic: {"weights": {version: percent},
        "shadow": None}. A share on a revision that is not the candidate's ready revision is production's (Knative
        sends the "latest" share to the latest READY revision)."""
        isvc = self.get(model_name)
        production = _int_or_none(_labels(isvc).get(VERSION_LABEL))
        candidate = canary_version(isvc)
        predictor = predictor_status(isvc or {})
        created = predictor.get("latestCreatedRevision")
        candidate_ready = candidate is not None and created is not None and created == predictor.get("latestReadyRevision")
        weights: dict[str, int] = {}
        for entry in predictor.get("traffic") or []:
            if not isinstance(entry, dict):
                continue
            version = candidate if candidate_ready and entry.get("revisionName") == created else production
            weights[str(version)] = weights.get(str(version), 0) + int(entry.get("percent") or 0)
        if not weights and production is not None:  # no split reported (RawDeployment, or no status yet)
            weights[str(production)] = 100
        if candidate is not None:
            weights.setdefault(str(candidate), 0)
        return {"weights": weights, "shadow": None}

    def metrics_url(self, deployment: Deployment) -> str | None:
        """None: KServe's runtimes (OVMS, Triton) export no mlspec per-version metrics; gates read a Prometheus
        that scrapes the predictor pods (rollout.metrics.source prometheus), or only readiness is checked."""
        return None

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

    def _state(self, isvc: dict, model_name: str, version: int, *, previous_spec, previous_version,
               canary: bool = False) -> dict:
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
            "canary": canary,  # a rollout's candidate: ready means its own revision answers at its tag URL
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
                outcome, detail = check_readiness(isvc, generation, canary=bool(state.get("canary")))
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
            canary=bool(state.get("canary")),
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
        isvc = self.get(name)
        if canary_version(isvc) is not None and self.served_version(name) == previous:
            # A rollout runs beside production: production takes every request back and its spec returns.
            production_spec = _annotations(isvc).get(PREVIOUS_SPEC_ANNOTATION)
            if production_spec:
                self.rollback_state({"name": name, "namespace": self.config.namespace, "previous_version": previous,
                                     "previous_spec": json.loads(production_spec)})
                return
            self.set_traffic(name, {"weights": None})
            return
        if self.served_version(name) == previous:
            return
        try:
            self.deploy(name, previous, state.get("storage_uri") or f"{self.store_root_uri}/{name}/{previous}")
        except ServingError as exc:
            raise RollbackFailed(f"serving version {previous} of {name} again failed: {exc}") from exc

    def _route_back_to_production(self, name: str, isvc: dict) -> dict:
        """The candidate's share goes to 0 and, when KServe had rolled the candidate's revision out (a step at
        100 %), wait until it routes back to the revision rolled out before it (production's): a restored spec
        pinned at 0 % before that would leave the candidate's revision answering every request."""
        candidate = canary_version(isvc)
        if candidate is None:
            return isvc
        isvc = self._set_canary_percent(isvc, name, candidate, 0)
        deadline = time.monotonic() + float(self.config.timeout_s)
        while True:
            predictor = predictor_status(isvc)
            rolled_out = predictor.get("latestRolledoutRevision")
            observed = (isvc.get("status") or {}).get("observedGeneration")
            caught_up = isinstance(observed, int) and observed >= int((isvc.get("metadata") or {}).get("generation") or 0)
            if caught_up and (rolled_out != predictor.get("latestCreatedRevision")
                              or not predictor.get("previousRolledoutRevision")):
                return isvc
            if time.monotonic() >= deadline:
                raise ServingError(
                    f"rollback failed: KServe still routes InferenceService {name} to the candidate's revision "
                    f"{rolled_out} {self.config.timeout_s}s after its share was set to 0 (the revision rolled out "
                    f"before it: {predictor.get('previousRolledoutRevision')}); look at `kubectl get "
                    f"inferenceservice {name} -n {self.config.namespace}`"
                )
            time.sleep(self.poll_interval_s)
            isvc = self.get(name)
            if isvc is None:
                raise ServingError(f"rollback failed: InferenceService {name} is gone from namespace "
                                   f"{self.config.namespace}")

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
        if CANARY_FIELD in ((current.get("spec") or {}).get("predictor") or {}):
            # A canary is in: Knative sends an unsplit predictor's requests to its latest READY revision, which
            # is the candidate until the restored spec's revision is ready. Pinned at 0 %, the restored revision
            # waits while KServe's previously rolled-out revision (production) keeps every request.
            current = self._route_back_to_production(name, current)
            previous_spec = copy.deepcopy(previous_spec)
            previous_spec["predictor"][CANARY_FIELD] = 0
        labels, annotations = _labels(current), _annotations(current)
        ops = [{"op": "replace" if "spec" in current else "add", "path": "/spec", "value": previous_spec}]
        want_labels = {}
        if state.get("previous_version") is not None:
            want_labels[VERSION_LABEL] = str(state["previous_version"])
        ops += _meta_ops("labels", labels, want_labels, ())
        ops += [
            {"op": "remove", "path": _pointer("metadata", "annotations", key)}
            for key in (PREVIOUS_SPEC_ANNOTATION, PREVIOUS_VERSION_ANNOTATION, CANARY_VERSION_ANNOTATION)
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

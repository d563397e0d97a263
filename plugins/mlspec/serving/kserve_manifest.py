"""What mlspec asks KServe for, and how it reads KServe's answer: pure functions, no cluster, no I/O.

Kept apart from the Kubernetes calls (``kserve.py``) and light enough for the triggerer and for DAG
parsing: nothing here imports ``kubernetes``.

Storage layout and version pinning (see ``../shared/contracts/README.md``): a published version
lives at ``<store_root>/<model>/<version>/model.onnx``.

* **OVMS** (``kserve-ovms``) serves ``<storageUri>/<version>/model.onnx`` under the
  InferenceService's name, so ``storageUri = <store_root>/<model>``. Left alone OVMS serves the
  *highest* version folder it finds, which is wrong twice: a newer version that failed its smoke
  test (and was rolled back) would be served again on the next pod restart, and rolling back to
  version N-1 would change nothing in the spec. mlspec therefore pins the version with OVMS's
  ``--model_version_policy {"specific": {"versions": [N]}}`` (KServe appends ``model.args`` to
  the runtime's own args). The pin also makes every version a spec change, so the controller
  rolls new pods and the storage initializer downloads again.
* **Triton** (``kserve-tritonserver``) serves ``<repository>/<model>/<version>/model.onnx`` and
  names the model after the folder. Pointing ``storageUri`` at the store root would download the
  whole store (every model, every version, every run's artifacts) into each pod, and Triton's
  default ``--model-control-mode=none`` loads every folder it finds: another team's broken model
  or a ``runs/`` folder stops the server from starting, and Triton's default version policy
  (latest 1) has the same "highest version wins" problem as OVMS. Instead mlspec mounts exactly
  one version folder where Triton expects it, with ``storageUris``
  (``uri: <store_root>/<model>/<version>``, ``mountPath: /mnt/models/<model>/<version>``): Triton
  sees one model with one version, so the version is pinned and nothing else is loaded.
  ``storageUris`` is in the vendored CRD (KServe >= 0.16); on an older KServe the field is pruned,
  no model is mounted, the predictor never becomes ready and mlspec rolls back.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlparse

from mlspec.errors import ServingError
from mlspec.storage import open_store, store_kind

log = logging.getLogger(__name__)

GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"
KIND = "InferenceService"

RUNTIMES = ("kserve-ovms", "kserve-tritonserver")
DEPLOYMENT_MODES = ("RawDeployment", "Serverless")
AUTH_MODES = ("none", "token")

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
VERSION_LABEL = "mlspec/version"
PREVIOUS_SPEC_ANNOTATION = "mlspec/previous-spec"
PREVIOUS_VERSION_ANNOTATION = "mlspec/previous-version"
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
# A rollout (issue 16) through KServe's own canary field: the candidate is the predictor's newest revision and
# answers canaryTrafficPercent of requests; the revision last rolled out at 100 % (tag "prev") answers the rest.
# Serverless (Knative) only: RawDeployment ignores the field (kserve#5335, #4074).
CANARY_FIELD = "canaryTrafficPercent"
CANARY_MODE = "Serverless"
CANARY_VERSION_ANNOTATION = "mlspec/canary-version"  # the candidate while a rollout runs; the label stays production
# Knative gives each tagged revision its own URL ("latest-<name>-predictor..."): the smoke test asks the candidate
# there while production answers live traffic.
TAG_ROUTING_ANNOTATION = "serving.kserve.io/enable-tag-routing"
LATEST_TAG = "latest"
# OpenShift AI (odh-model-controller, RHOAI 2.x and 3.x) protects an InferenceService with a
# bearer token (kube-rbac-proxy / Authorino) when this annotation is "true", and creates an
# external Route for a RawDeployment only when the KServe visibility label says "exposed".
# Without token auth mlspec keeps the endpoint cluster-local: nothing unauthenticated is exposed.
ENABLE_AUTH_ANNOTATION = "security.opendatahub.io/enable-auth"
VISIBILITY_LABEL = "networking.kserve.io/visibility"
TRITON_MOUNT_ROOT = "/mnt/models"  # the kserve-tritonserver runtime's --model-store

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY = re.compile(  # the CRD's own pattern for resource quantities
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_FAILED_TRANSITIONS = {"BlockedByFailedLoad", "InvalidSpec"}

# The `serving.*` keys that moved into `serving.kserve`: still read where they were, with a lint warning.
MOVED_KEYS = ("namespace", "service_account", "deployment_mode", "replicas", "resources")


@dataclass(frozen=True)
class KServeSettings:
    """`serving.kserve`: the InferenceService's namespace, identity, deployment mode and size (the schema
    holds the defaults)."""

    namespace: str
    service_account: str | None
    deployment_mode: str
    min_replicas: int
    max_replicas: int
    cpu: str
    memory: str
    gpu: int

    @classmethod
    def from_mapping(cls, kserve: Mapping) -> KServeSettings:
        replicas, resources = kserve["replicas"], kserve["resources"]
        return cls(
            namespace=kserve["namespace"],
            service_account=kserve["service_account"],
            deployment_mode=kserve["deployment_mode"],
            min_replicas=replicas["min"],
            max_replicas=replicas["max"],
            cpu=resources["cpu"],
            memory=resources["memory"],
            gpu=resources["gpu"],
        )


def lint_settings(kserve: Mapping, problem: Callable[..., Any]) -> Iterator[Any]:
    """What the schema cannot say about `serving.kserve` (defaults filled); `problem(path, message)` makes
    one finding, its path relative to `serving.kserve`."""
    namespace = kserve["namespace"]
    if not _DNS1123_LABEL.fullmatch(namespace):
        yield problem(("namespace",), f"{namespace!r} is not a valid Kubernetes namespace (DNS-1123 label)")
    replicas = kserve["replicas"]
    if replicas["min"] == 0 and kserve["deployment_mode"] != "Serverless":
        yield problem(("replicas", "min"), "scaling to zero needs deployment_mode: Serverless")
    if replicas["min"] > replicas["max"]:
        yield problem(("replicas",), f"min {replicas['min']} is greater than max {replicas['max']}")


@dataclass(frozen=True)
class KServeConfig:
    """The spec's ``serving:`` section for ``platform: kserve``; validates itself on construction."""

    runtime: str = "kserve-ovms"
    namespace: str = "default"
    connection: str = "kubernetes_default"  # Airflow connection id (cncf-kubernetes provider)
    min_replicas: int = 1
    max_replicas: int = 1
    cpu: str = "1"
    memory: str = "2Gi"
    gpu: int = 0
    timeout_s: int = 600  # how long a deploy waits for Ready before it rolls back
    deployment_mode: str = "RawDeployment"
    service_account: str | None = None  # a ServiceAccount holding the S3 credentials secret
    auth: str = "none"
    # The Airflow connection mlspec's store uses. KServe pods cannot use Airflow connections:
    # the cluster side needs `service_account`; this is only used to warn when it is missing.
    storage_connection: str | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.runtime not in RUNTIMES:
            problems.append(f"runtime {self.runtime!r} is not one of {', '.join(RUNTIMES)}")
        if self.deployment_mode not in DEPLOYMENT_MODES:
            problems.append(
                f"deployment_mode {self.deployment_mode!r} is not one of {', '.join(DEPLOYMENT_MODES)}"
            )
        if self.auth not in AUTH_MODES:
            problems.append(f"auth {self.auth!r} is not one of {', '.join(AUTH_MODES)}")
        if not _DNS1123_LABEL.fullmatch(self.namespace or ""):
            problems.append(f"namespace {self.namespace!r} is not a DNS-1123 label")
        for name in ("min_replicas", "max_replicas", "gpu", "timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                problems.append(f"{name} must be an integer, got {value!r}")
        if not problems:
            # RawDeployment scales with an HPA, which cannot scale to zero; Serverless can.
            floor = 0 if self.deployment_mode == "Serverless" else 1
            if self.min_replicas < floor:
                problems.append(f"min_replicas must be >= {floor} for {self.deployment_mode}")
            if self.max_replicas < max(self.min_replicas, 1):
                problems.append("max_replicas must be >= min_replicas and >= 1")
            if self.gpu < 0:
                problems.append("gpu must be >= 0")
            if self.timeout_s <= 0:
                problems.append("timeout_s must be > 0")
        for name in ("cpu", "memory"):
            if not _QUANTITY.fullmatch(str(getattr(self, name))):
                problems.append(
                    f"{name} {getattr(self, name)!r} is not a Kubernetes quantity (e.g. '500m', '2Gi')"
                )
        if self.service_account is not None and not self.service_account:
            problems.append("service_account must be a name or left out")
        if problems:
            raise ServingError("invalid KServe serving settings: " + "; ".join(problems))


def served_model_name(config: KServeConfig, model_name: str) -> str:
    """The name clients use in ``/v2/models/{name}``.

    OVMS serves under the InferenceService's name, Triton under the model folder's name; mlspec
    names both after the spec, so they agree, but callers should not rely on that.
    """
    return model_name


def storage_layout(config: KServeConfig, *, model_name: str, version: int, store_root_uri: str) -> dict:
    """The ``model`` fields and predictor fields that point the runtime at exactly one version."""
    root = store_root_uri.rstrip("/")
    version_uri = f"{root}/{model_name}/{version}"
    if config.runtime == "kserve-ovms":
        policy = json.dumps({"specific": {"versions": [version]}}, separators=(",", ":"))
        return {
            "model": {"storageUri": f"{root}/{model_name}", "args": [f"--model_version_policy={policy}"]},
            "predictor": {},
        }
    mount = f"{TRITON_MOUNT_ROOT}/{model_name}/{version}"
    return {"model": {}, "predictor": {"storageUris": [{"uri": version_uri, "mountPath": mount}]}}


def _check_inputs(model_name: str, version: int, store_root_uri: str) -> None:
    if not _DNS1123_LABEL.fullmatch(model_name) or len(model_name) > 63:
        raise ServingError(
            f"model name {model_name!r} is not a DNS-1123 label; it names the InferenceService"
        )
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ServingError(f"model {model_name}: version must be a positive integer, got {version!r}")
    scheme = urlparse(store_root_uri).scheme
    if not scheme:
        raise ServingError(
            f"model {model_name}: store root {store_root_uri!r} is not a URI (s3://, pvc://, ...)"
        )
    store = store_kind(store_root_uri)
    if store is not None and store.local_path is not None:  # a folder on the worker's disk
        log.warning(
            "model %s: KServe pods only see %s if that path is mounted into them; "
            "use an s3:// store (or pvc://) for a real cluster",
            model_name,
            store_root_uri,
        )


def build_inference_service(
    config: KServeConfig,
    *,
    model_name: str,
    version: int,
    store_root_uri: str,
    labels: dict | None = None,
    canary_percent: int | None = None,
) -> dict:
    """The InferenceService (serving.kserve.io/v1beta1) that serves `version` of `model_name`.

    `canary_percent` (Serverless only): `version` becomes a canary answering that share of requests beside the
    revision KServe last rolled out, reachable alone at its "latest" tag URL. Deterministic: the same inputs
    give the same manifest, so a retried task patches nothing.
    """
    _check_inputs(model_name, version, store_root_uri)
    layout = storage_layout(config, model_name=model_name, version=version, store_root_uri=store_root_uri)
    all_labels = {str(k): str(v) for k, v in (labels or {}).items()}
    all_labels.update({MANAGED_BY_LABEL: "mlspec", VERSION_LABEL: str(version)})
    annotations = {DEPLOYMENT_MODE_ANNOTATION: config.deployment_mode}
    if config.auth == "token":
        annotations[ENABLE_AUTH_ANNOTATION] = "true"
        all_labels[VISIBILITY_LABEL] = "exposed"
    if canary_percent is not None:
        refuse_canary(config.deployment_mode, model_name)
        annotations[TAG_ROUTING_ANNOTATION] = "true"

    resources: dict = {
        "requests": {"cpu": config.cpu, "memory": config.memory},
        "limits": {"cpu": config.cpu, "memory": config.memory},
    }
    if config.gpu > 0:
        # Extended resources must have requests == limits; set both so no defaulting is needed.
        resources["requests"]["nvidia.com/gpu"] = str(config.gpu)
        resources["limits"]["nvidia.com/gpu"] = str(config.gpu)

    model = {
        "modelFormat": {"name": "onnx"},
        "protocolVersion": "v2",
        # Named explicitly: OVMS and Triton both claim onnx, and expect different layouts.
        "runtime": config.runtime,
        **layout["model"],
        "resources": resources,
    }
    predictor: dict = {"minReplicas": config.min_replicas, "maxReplicas": config.max_replicas}
    if config.service_account:
        predictor["serviceAccountName"] = config.service_account
    predictor.update(layout["predictor"])
    if canary_percent is not None:
        predictor[CANARY_FIELD] = canary_percent
    predictor["model"] = model
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": model_name,
            "namespace": config.namespace,
            "labels": all_labels,
            "annotations": annotations,
        },
        "spec": {"predictor": predictor},
    }


def canary_refusal(deployment_mode: str) -> str | None:
    """Why a rollout cannot run in `deployment_mode` (None: it can), the end of a sentence naming the mode."""
    if deployment_mode == CANARY_MODE:
        return None
    return (
        f"{deployment_mode}, where KServe ignores {CANARY_FIELD} and would send 100 % of requests to the candidate "
        f"at once (kserve#5335, kserve#4074): a rollout on KServe needs deployment_mode {CANARY_MODE}; set "
        f"serving.kserve.deployment_mode: {CANARY_MODE} (Knative), or remove the rollout section to release "
        "without steps"
    )


def rollout_refusal(settings: KServeSettings) -> str | None:
    """What lint says of a spec with a `rollout` and these `serving.kserve` settings (None: nothing)."""
    refusal = canary_refusal(settings.deployment_mode)
    return f"serving.kserve.deployment_mode is {refusal}" if refusal else None


def refuse_canary(deployment_mode: str | None, model_name: str) -> None:
    """ServingError unless `deployment_mode` honours canaryTrafficPercent (None: not known, let it pass)."""
    refusal = canary_refusal(deployment_mode) if deployment_mode is not None else None
    if refusal:
        raise ServingError(f"model {model_name}: InferenceService {model_name} runs in {refusal}")


def deployment_mode_of(isvc: dict) -> str | None:
    """The mode the controller reports it runs the InferenceService in (status.deploymentMode), else the one its
    annotation asks for, else None (the cluster's default, unknown here)."""
    reported = (isvc.get("status") or {}).get("deploymentMode")
    asked = ((isvc.get("metadata") or {}).get("annotations") or {}).get(DEPLOYMENT_MODE_ANNOTATION)
    return reported or asked or None


def predictor_status(isvc: dict) -> dict:
    return ((isvc.get("status") or {}).get("components") or {}).get("predictor") or {}


def canary_not_ready(isvc: dict) -> str | None:
    """Why the predictor's newest revision must not get a share of traffic yet, or None when it may.

    The order kserve#5983 got wrong: a canary is given traffic only once the controller has seen the spec that
    made it (observedGeneration), Knative reports that revision ready (latestCreatedRevision ==
    latestReadyRevision) and the InferenceService is Ready."""
    generation = (isvc.get("metadata") or {}).get("generation")
    status = isvc.get("status") or {}
    observed = status.get("observedGeneration")
    if isinstance(generation, int) and (not isinstance(observed, int) or observed < generation):
        return f"the controller has not observed generation {generation} yet (observedGeneration={observed})"
    predictor = predictor_status(isvc)
    created, ready = predictor.get("latestCreatedRevision"), predictor.get("latestReadyRevision")
    if not created:
        return "status.components.predictor reports no revision yet"
    if created != ready:
        return f"its revision {created} is not ready (latest ready revision: {ready})"
    conditions = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, dict)}
    if not _condition_true(conditions, "Ready"):
        cond = conditions.get("Ready") or {}
        why = cond.get("message") or cond.get("reason")
        return f"the InferenceService is not Ready (Ready={cond.get('status', 'Unknown')}" + (f": {why})" if why else ")")
    return None


def tagged_url(isvc: dict, tag: str) -> str | None:
    """The URL Knative gives the predictor revision tagged `tag` (tag routing on), or None."""
    for entry in predictor_status(isvc).get("traffic") or []:
        if isinstance(entry, dict) and entry.get("tag") == tag and entry.get("url"):
            return entry["url"]
    return None


def endpoint_url(isvc: dict) -> str | None:
    status = isvc.get("status") or {}
    return status.get("url") or (status.get("address") or {}).get("url") or None


def _condition_true(conditions: dict, kind: str) -> bool:
    return str((conditions.get(kind) or {}).get("status", "")).lower() == "true"


def check_readiness(isvc: dict, generation: int, *, canary: bool = False) -> tuple[str, str]:
    """Classify an InferenceService read back from the cluster.

    Returns ``("ready", url)``, ``("pending", reason)`` or ``("failed", reason)``. Status is only
    trusted once the controller has observed `generation` (the one our apply produced): before
    that, a ``Ready=True`` left over from the previous version says nothing about this one.
    `canary`: the applied version is a canary; its url is its own ("latest" tag), not the shared one.
    """
    status = isvc.get("status") or {}
    observed = status.get("observedGeneration")
    if not isinstance(observed, int) or observed < generation:
        return (
            "pending",
            f"controller has not observed generation {generation} yet (observedGeneration={observed})",
        )

    model_status = status.get("modelStatus") or {}
    states = model_status.get("states") or {}
    transition = model_status.get("transitionStatus") or ""
    # targetModelState covers a rollout whose new model fails while the old one keeps serving.
    failed_state = "FailedToLoad" in (states.get("activeModelState"), states.get("targetModelState"))
    if failed_state or transition in _FAILED_TRANSITIONS:
        failure = model_status.get("lastFailureInfo") or {}
        detail = failure.get("message") or failure.get("reason") or "no failure message reported"
        what = transition if transition in _FAILED_TRANSITIONS else "FailedToLoad"
        return "failed", f"model failed to load ({what}): {detail}"

    conditions = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, dict)}
    ready = _condition_true(conditions, "Ready") or (
        _condition_true(conditions, "PredictorReady") and _condition_true(conditions, "IngressReady")
    )
    if not ready:
        waiting = []
        for kind in ("Ready", "PredictorReady", "IngressReady"):
            cond = conditions.get(kind) or {}
            why = cond.get("message") or cond.get("reason")
            waiting.append(f"{kind}={cond.get('status', 'Unknown')}" + (f" ({why})" if why else ""))
        return "pending", "not ready yet: " + ", ".join(waiting)
    if transition == "InProgress":
        return "pending", "Ready, but the new model is still being rolled out (transitionStatus=InProgress)"
    predictor = (status.get("components") or {}).get("predictor") or {}
    created, ready_rev = predictor.get("latestCreatedRevision"), predictor.get("latestReadyRevision")
    if created and ready_rev and created != ready_rev:
        return "pending", f"revision {created} is not ready yet (latest ready: {ready_rev})"
    if canary:
        url = tagged_url(isvc, LATEST_TAG)
        if not url:
            return "pending", f"Ready, but no URL for the canary's {LATEST_TAG!r} tag reported yet"
        return "ready", url
    url = endpoint_url(isvc)
    if not url:
        return "pending", "Ready, but no status.url / status.address.url reported yet"
    return "ready", url


def kserve_config(spec) -> KServeConfig:
    """The KServe settings of a ModelSpec (mlspec.spec.ModelSpec): its serving section and `serving.kserve`."""
    serving = spec.serving
    return KServeConfig(
        runtime=serving.runtime,
        connection=serving.connection or "kubernetes_default",
        timeout_s=serving.timeout,
        auth=serving.auth,
        storage_connection=spec.storage.connection,
        **asdict(serving.settings),
    )


def manifest_for_spec(spec, *, version: int) -> dict:
    """Exactly the InferenceService that deploy applies for `version` of this spec (`mlspec manifest`)."""
    store_root = open_store(spec.storage.uri, spec.storage.connection).root_uri
    return build_inference_service(kserve_config(spec), model_name=spec.name, version=version, store_root_uri=store_root)

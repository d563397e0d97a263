"""Test helpers: the KServe CRD as a JSON Schema, a kmock-based API server for it, a fake KServe controller.

* ``crd_validator``: the vendored CRD's v1beta1 openAPIV3Schema converted to JSON Schema
  (``x-kubernetes-int-or-string``, ``nullable``, other ``x-kubernetes-*`` keys). With
  ``strict=True`` unknown fields are errors (like ``kubectl apply --validate=strict``), so a
  misspelt field fails instead of being silently pruned.
* ``InferenceServiceEmulator``: kmock's ``KubernetesEmulator`` (HTTP, routing, object store,
  create/get/delete) plus what a real API server does (201 on create: kmock answers 200, which
  the kubernetes client reads as an empty body) for a CRD with a status subresource and
  what kmock leaves to subclasses: ``metadata.generation`` bumped on spec changes only, status
  written only through ``/status``, JSON and merge patches applied to the whole object, every
  stored object validated against the CRD schema (422 ``Invalid`` otherwise).
* ``EmulatorThread``: runs it on 127.0.0.1 in its own event loop, so the code under test can use
  the provider's blocking client from the test thread.
* ``ServerlessKServe``: a FakeController scenario playing Serverless KServe over Knative revisions, for canaries.
* ``FakeController``: a thread playing the KServe controller over HTTP: it reads the
  InferenceService and writes ``status`` through the status subresource, following a scenario.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp.web
import attrs
import httpx
import jsonpatch
import jsonpointer
import jsonschema
import kmock

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
_DROP = {"description", "example", "externalDocs", "x-kubernetes-int-or-string", "nullable"}


def openapi_to_jsonschema(node: Any, *, strict: bool) -> Any:
    """Convert one structural OpenAPI v3 schema node (as in CRDs) into JSON Schema."""
    if not isinstance(node, dict):
        return node
    out: dict = {}
    for key, value in node.items():
        if key in _DROP or key.startswith("x-kubernetes-"):
            continue
        if key == "properties":
            out[key] = {name: openapi_to_jsonschema(sub, strict=strict) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = openapi_to_jsonschema(value, strict=strict) if isinstance(value, dict) else value
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [openapi_to_jsonschema(sub, strict=strict) for sub in value]
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (
        strict
        and out.get("type") == "object"
        and "properties" in out
        and "additionalProperties" not in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


# What the API server checks in metadata itself (the CRD schema only says `type: object`).
_LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
_QUALIFIED_KEY = (  # optional DNS-subdomain prefix + "/" + name
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
OBJECT_META_SCHEMA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
        "namespace": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "labels": {
            "type": "object",
            "propertyNames": {"pattern": _QUALIFIED_KEY},
            "additionalProperties": {"type": "string", "maxLength": 63, "pattern": _LABEL_VALUE},
        },
        "annotations": {
            "type": "object",
            "propertyNames": {"pattern": _QUALIFIED_KEY},
            "additionalProperties": {"type": "string"},
        },
        "generation": {"type": "integer"},
    },
}


def crd_validator(crd: dict, *, strict: bool = True) -> jsonschema.protocols.Validator:
    (v1beta1,) = [v for v in crd["spec"]["versions"] if v["name"] == VERSION]
    schema = openapi_to_jsonschema(v1beta1["schema"]["openAPIV3Schema"], strict=strict)
    schema["properties"]["metadata"] = OBJECT_META_SCHEMA
    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata", "spec"})
    # No check_schema(): it takes seconds on this schema, and the tests that must fail prove it works.
    return jsonschema.Draft202012Validator(schema)


def schema_errors(validator: jsonschema.protocols.Validator, obj: dict) -> list[str]:
    errors = validator.iter_errors(obj)
    return sorted(f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors)


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _invalid(message: str) -> kmock.KubernetesError:
    return kmock.KubernetesError(status=422, reason="Invalid", message=message)


@attrs.define(kw_only=True)
class InferenceServiceEmulator(kmock.KubernetesEmulator):
    validator: Any = None
    _rv: int = 0

    def _ours(self, request: kmock.Request) -> bool:
        res = request.resource
        return res is not None and res.group == GROUP and res.version == VERSION and res.plural == PLURAL

    def _check(self, obj: dict) -> None:
        errors = schema_errors(self.validator, obj)
        if errors:
            raise _invalid(f"InferenceService.{GROUP} {obj.get('metadata', {}).get('name')!r} is invalid: "
                           + "; ".join(errors[:5]))

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if self._ours(request):
            if request.action == kmock.action.CREATE:
                self._prepare_create(request)
                response = await super()._handle(request)
                if response.status == 200 and not response.prepared:
                    response.set_status(201)  # a real API server answers a create with 201 Created
                return response
            elif request.action == kmock.action.UPDATE:
                return aiohttp.web.json_response(self._patch(request))
            elif request.method.upper() == "PUT":
                raise kmock.KubernetesError(status=405, reason="MethodNotAllowed", message="use PATCH")
        return await super()._handle(request)

    def _prepare_create(self, request: kmock.Request) -> None:
        body = request.data
        if not isinstance(body, dict):
            raise kmock.KubernetesError(status=400, reason="BadRequest", message="body must be an object")
        body.pop("status", None)  # the status subresource: create never sets status
        meta = body.setdefault("metadata", {})
        if request.namespace and meta.setdefault("namespace", request.namespace) != request.namespace:
            raise kmock.KubernetesError(status=400, reason="BadRequest", message="namespace mismatch")
        self._check(body)
        meta.update(generation=1, uid=str(uuid.uuid4()), resourceVersion=self._next_rv(),
                    creationTimestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    def _patch(self, request: kmock.Request) -> dict:
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            raise kmock.KubernetesObjectNotFoundError()
        old = copy.deepcopy(self.objects[key].raw)
        content_type = request.headers.get("Content-Type", "")
        try:
            if "json-patch" in content_type:
                if not isinstance(request.data, list):
                    raise _invalid("a JSON patch must be a list of operations")
                patched = jsonpatch.apply_patch(copy.deepcopy(old), request.data)
            elif "merge-patch" in content_type:
                if not isinstance(request.data, dict):
                    raise kmock.KubernetesError(status=400, reason="BadRequest",
                                                message="a merge patch must be a JSON object")
                patched = _merge_patch(old, request.data)
            else:
                raise kmock.KubernetesError(status=415, reason="UnsupportedMediaType", message=content_type)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            raise _invalid(f"the patch could not be applied: {exc}") from exc
        if request.subresource == "status":
            new = {**old, "status": patched.get("status")}
            if new["status"] is None:
                new.pop("status")
        elif request.subresource is None:
            new = {k: v for k, v in patched.items() if k != "status"}
            if "status" in old:
                new["status"] = old["status"]
        else:
            raise kmock.KubernetesNotFoundError()
        meta = new.setdefault("metadata", {})
        for immutable in ("name", "namespace", "uid", "creationTimestamp", "generation"):
            if immutable in old["metadata"]:
                meta[immutable] = old["metadata"][immutable]
        if request.subresource is None and new.get("spec") != old.get("spec"):
            meta["generation"] = old["metadata"]["generation"] + 1
        self._check(new)
        meta["resourceVersion"] = self._next_rv()
        self.objects[key].history.append(new)
        return new


class EmulatorThread:
    """An InferenceServiceEmulator served on 127.0.0.1:<free port> from a background event loop."""

    def __init__(self, validator: Any) -> None:
        self.validator = validator
        self.url = ""
        self.emulator: InferenceServiceEmulator | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kmock-kserve", daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        emulator = InferenceServiceEmulator(validator=self.validator)
        async with emulator, kmock.Server(emulator) as server:
            self.emulator = emulator
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def start(self) -> EmulatorThread:
        self._thread.start()
        self._ready.wait(15)
        if self._error or not self.url:
            raise RuntimeError(f"kmock emulator did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._thread.is_alive() and self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run fn inside the emulator's loop (its state is not thread-safe)."""

        async def _wrapped() -> Any:
            return fn()

        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(_wrapped(), self._loop).result(10)

    def history(self, namespace: str, name: str) -> list[dict | None]:
        def read() -> list[dict | None]:
            key = (kmock.resource(GROUP, VERSION, PLURAL), namespace, name)
            if key not in self.emulator.objects:
                return []
            return [None if v is None else copy.deepcopy(v.raw) for v in self.emulator.objects[key].history]

        return self.call(read)

    def errors(self) -> list[Exception]:
        return self.call(lambda: list(self.emulator.errors))


Scenario = Callable[[dict], "dict | None"]


class FakeController(threading.Thread):
    """Plays the KServe controller: status = scenario(isvc) is written through /status when it changes."""

    def __init__(self, base_url: str, namespace: str, name: str, scenario: Scenario, period_s: float = 0.02):
        super().__init__(name=f"fake-kserve-{name}", daemon=True)
        self.url = f"{base_url}/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}"
        self.scenario = scenario
        self.period_s = period_s
        self.writes: list[dict] = []
        self.failures: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._halt.is_set():
                response = client.get(self.url)
                if response.status_code == 200:
                    isvc = response.json()
                    status = self.scenario(isvc)
                    if status is not None and status != isvc.get("status"):
                        result = client.patch(
                            self.url + "/status",
                            json={"status": status},
                            headers={"Content-Type": "application/merge-patch+json"},
                        )
                        if result.status_code == 200:
                            self.writes.append(status)
                        else:
                            self.failures.append(result.text)
                self._halt.wait(self.period_s)

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def ready_status(isvc: dict, *, generation: int | None = None) -> dict:
    meta = isvc["metadata"]
    conditions = [{"type": t, "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
                  for t in ("IngressReady", "PredictorReady", "Ready")]
    return {
        "observedGeneration": meta["generation"] if generation is None else generation,
        "url": f"http://{meta['name']}-{meta['namespace']}.apps.example.test",
        "address": {"url": f"http://{meta['name']}-predictor.{meta['namespace']}.svc.cluster.local"},
        "conditions": conditions,
        "deploymentMode": "RawDeployment",
        "modelStatus": {
            "transitionStatus": "UpToDate",
            "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"},
            "copies": {"failedCopies": 0, "totalCopies": 1},
        },
    }


def failed_to_load_status(isvc: dict, message: str) -> dict:
    meta = isvc["metadata"]
    return {
        "observedGeneration": meta["generation"],
        "conditions": [
            {"type": "PredictorReady", "status": "False", "reason": "ModelLoadFailed", "message": message},
            {"type": "Ready", "status": "False", "reason": "ModelLoadFailed"},
        ],
        "modelStatus": {
            "transitionStatus": "BlockedByFailedLoad",
            "states": {"activeModelState": "FailedToLoad", "targetModelState": "FailedToLoad"},
            "lastFailureInfo": {"reason": "ModelLoadFailed", "message": message},
            "copies": {"failedCopies": 1, "totalCopies": 1},
        },
    }


def pending_status(isvc: dict) -> dict:
    meta = isvc["metadata"]
    return {
        "observedGeneration": meta["generation"],
        "conditions": [
            {"type": "PredictorReady", "status": "Unknown", "reason": "Progressing"},
            {"type": "Ready", "status": "False", "reason": "Progressing"},
        ],
        "modelStatus": {"transitionStatus": "InProgress", "states": {"activeModelState": "Pending"}},
    }


@contextlib.contextmanager
def running_controller(k8s_api: Any, namespace: str, name: str, scenario: Callable[[dict], dict]) -> Iterator[FakeController]:
    """A FakeController for one InferenceService while the block runs; the emulator must have accepted
    every status it wrote."""
    fake = FakeController(k8s_api.url, namespace, name, scenario)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
    assert fake.failures == [], "the emulator rejected a status the fake controller wrote"


def ovms_version(predictor: dict) -> int | None:
    """The store version an OVMS predictor spec pins (its --model_version_policy)."""
    for arg in (predictor.get("model") or {}).get("args") or []:
        if arg.startswith("--model_version_policy="):
            return json.loads(arg.split("=", 1)[1])["specific"]["versions"][0]
    return None


class ServerlessKServe:
    """Scenario: KServe in Serverless mode over Knative, as far as a canary needs it.

    Every predictor spec (canaryTrafficPercent aside) is a new revision, ready unless its version is in
    `unready`. Traffic follows KServe's canary rules: the "latest" tag (the latest ready revision) gets
    canaryTrafficPercent (all without it), the revision rolled out last (tag "prev") the rest. A ready latest
    revision given 100 % becomes the rolled-out one; given less again, KServe goes back to the one rolled out
    before (how `canaryTrafficPercent: 0` rolls back a promoted revision). `route_unready=True` plays the bug of kserve#5983: the "latest" share
    goes to the newest revision even before it is ready; `unready_shares` records every such share written.
    """

    def __init__(self, *, unready: set[int] | None = None, route_unready: bool = False) -> None:
        self.unready: set[int] = set(unready or ())
        self.route_unready = route_unready
        self.revisions: list[dict] = []  # {"name", "template", "version"}
        self.rolled_out: str | None = None
        self.previous_rolled_out: str | None = None
        self.unready_shares: list[tuple[str, int]] = []

    def revision_of_version(self, version: int) -> str | None:
        """The first revision made for `version` (a restored spec makes another)."""
        names = [r["name"] for r in self.revisions if r["version"] == version]
        return names[0] if names else None

    def __call__(self, isvc: dict) -> dict:
        meta = isvc["metadata"]
        name, ns = meta["name"], meta["namespace"]
        predictor = dict(isvc["spec"]["predictor"])
        canary = predictor.pop("canaryTrafficPercent", None)
        template = json.dumps(predictor, sort_keys=True)
        if not self.revisions or self.revisions[-1]["template"] != template:
            self.revisions.append({"name": f"{name}-predictor-{len(self.revisions) + 1:05d}", "template": template,
                                   "version": ovms_version(predictor)})
        ready = [r for r in self.revisions if r["version"] not in self.unready]
        created = self.revisions[-1]
        latest_ready = ready[-1]["name"] if ready else None
        created_ready = created["name"] == latest_ready
        share = 100 if canary is None or self.rolled_out is None else canary
        if created_ready and share == 100 and self.rolled_out != created["name"]:
            self.previous_rolled_out, self.rolled_out = self.rolled_out, created["name"]
        elif created_ready and share < 100 and self.rolled_out == created["name"] and self.previous_rolled_out:
            self.rolled_out = self.previous_rolled_out
        host = f"{name}-predictor.{ns}.example.test"
        latest_target = created["name"] if self.route_unready else latest_ready
        traffic = []
        if canary is not None and self.rolled_out and latest_target and latest_target != self.rolled_out:
            traffic = [
                {"tag": "latest", "latestRevision": True, "revisionName": latest_target, "percent": canary,
                 "url": f"http://latest-{host}"},
                {"tag": "prev", "latestRevision": False, "revisionName": self.rolled_out, "percent": 100 - canary,
                 "url": f"http://prev-{host}"},
            ]
            if latest_target != latest_ready and canary > 0:
                self.unready_shares.append((latest_target, canary))
        elif latest_target:
            traffic = [{"tag": "latest", "latestRevision": True, "revisionName": latest_target, "percent": 100,
                        "url": f"http://latest-{host}"}]
        state = "True" if created_ready else "Unknown"
        conditions = [{"type": t, "status": state, "lastTransitionTime": "2026-01-01T00:00:00Z"}
                      for t in ("IngressReady", "PredictorReady", "Ready")]
        component = {"latestCreatedRevision": created["name"], "traffic": traffic,
                     "url": f"http://{host}", "address": {"url": f"http://{name}-predictor.{ns}.svc.cluster.local"}}
        if latest_ready:
            component["latestReadyRevision"] = latest_ready
        if self.rolled_out:
            component["latestRolledoutRevision"] = self.rolled_out
        if self.previous_rolled_out:
            component["previousRolledoutRevision"] = self.previous_rolled_out
        return {
            "observedGeneration": meta["generation"],
            "url": f"http://{name}-{ns}.example.test",
            "address": {"url": f"http://{name}.{ns}.svc.cluster.local"},
            "conditions": conditions,
            "deploymentMode": "Serverless",
            "components": {"predictor": component},
            "modelStatus": {
                "transitionStatus": "UpToDate" if created_ready else "InProgress",
                "states": {"activeModelState": "Loaded", "targetModelState": "Loaded" if created_ready else "Loading"},
                "copies": {"failedCopies": 0, "totalCopies": 1},
            },
        }

"""A stateful fake Kubeflow Model Registry REST server, held to the vendored OpenAPI contract.

It serves only the endpoints mlspec and the official `model-registry` client use, under
`/api/model_registry/<version>` for the API versions it is told to serve (the others answer 404,
like an older or newer server). Ids are numeric strings, duplicate names answer 409, nothing can
be deleted.

Every request it receives and every response it sends is checked against the contract of that
API version (`ModelRegistryContract`): the (method, path) must be an operation of the contract,
query parameters must be declared and match their schemas, request bodies must validate against
the operation's requestBody schema and carry no property the schema does not define, response
status codes must be declared for the operation and response bodies must validate against the
declared schema. Problems land in `FakeModelRegistry.violations`; a bad request also gets a 400.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

API_ROOT = "/api/model_registry"
CONTRACT_FILES = {"v1": "model-registry-v1.yaml", "v1alpha3": "model-registry-v1alpha3.yaml"}
HTTP_METHODS = ("get", "post", "patch", "put", "delete")


# ------------------------------------------------------------------------------------------
# The contract
# ------------------------------------------------------------------------------------------
def normalize(template: str) -> str:
    """`/model_versions/{modelversionId}` -> `/model_versions/{id}`: parameter names differ by version."""
    return re.sub(r"\{[^}]+\}", "{id}", template)


def _json_schema(node: Any, base: str) -> Any:
    """OpenAPI 3.0 schema objects -> JSON Schema 2020-12 (absolute $refs, discriminators, nullable)."""
    if isinstance(node, list):
        return [_json_schema(item, base) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _json_schema(value, base) for key, value in node.items()}
    ref = out.get("$ref")
    if isinstance(ref, str) and ref.startswith("#"):
        out["$ref"] = base + ref
    discriminator = out.pop("discriminator", None)
    if discriminator and "oneOf" in out and discriminator.get("mapping"):
        # Branches overlap (no additionalProperties: false), so plain oneOf would reject valid
        # bodies: dispatch on the discriminator the way OpenAPI tools do.
        prop = discriminator["propertyName"]
        mapping = discriminator["mapping"]
        out.pop("oneOf")
        out["type"] = "object"
        out["required"] = sorted(set(out.get("required", [])) | {prop})
        out.setdefault("properties", {})[prop] = {"enum": list(mapping)}
        out["allOf"] = out.get("allOf", []) + [
            {
                "if": {"properties": {prop: {"const": key}}, "required": [prop]},
                "then": {"$ref": base + target},
            }
            for key, target in mapping.items()
        ]
    if out.pop("nullable", False):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


@dataclass(frozen=True)
class Operation:
    method: str  # upper case
    template: str  # the contract's path, prefix included
    spec: dict[str, Any]
    parameters: dict[tuple[str, str], dict[str, Any]]  # (in, name) -> parameter object


class ModelRegistryContract:
    """One API version of the vendored Model Registry OpenAPI document, ready to validate with."""

    def __init__(self, path: Path, version: str) -> None:
        self.path = path
        self.version = version
        self.prefix = f"{API_ROOT}/{version}"
        self.raw = _load_yaml(str(path))
        self.base = f"urn:mlspec-contract:{path.name}"
        self.doc = _json_schema(self.raw, self.base)
        resource = Resource.from_contents(self.doc, default_specification=DRAFT202012)
        self.registry: Registry = Registry().with_resource(self.base, resource)
        self.operations: dict[tuple[str, str], Operation] = {}
        for template, item in self.raw["paths"].items():
            shared = item.get("parameters", [])
            for method in HTTP_METHODS:
                if method in item:
                    op = item[method]
                    params = {}
                    for param in [*shared, *op.get("parameters", [])]:
                        param = self._deref(param)
                        params[(param["in"], param["name"])] = param
                    key = (method.upper(), normalize(template))
                    self.operations[key] = Operation(method.upper(), template, op, params)

    # ---- lookups -----------------------------------------------------------------------
    def _deref(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = self._pointer(node["$ref"])
        return node

    def _pointer(self, ref: str) -> Any:
        node: Any = self.raw
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return node

    def operation(self, method: str, suffix_template: str) -> Operation | None:
        """The operation for a path template below the prefix (`/model_versions/{id}`), or None."""
        return self.operations.get((method, normalize(self.prefix + suffix_template)))

    def _body_schema_ref(self, container: dict[str, Any]) -> str | None:
        container = self._deref(container)
        schema = container.get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            return None
        return schema.get("$ref")

    def _validator(self, schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
        return _validator_for(self, json.dumps(schema, sort_keys=True))

    # ---- checks ------------------------------------------------------------------------
    def check_query(self, op: Operation, query: dict[str, str]) -> list[str]:
        problems = []
        for name, value in query.items():
            param = op.parameters.get(("query", name))
            if param is None:
                problems.append(f"{op.method} {op.template}: query parameter {name!r} is not in the contract")
                continue
            schema = _json_schema(param.get("schema", {}), self.base)
            for error in self._validator(schema).iter_errors(value):
                problems.append(f"{op.method} {op.template}: query {name}={value!r}: {error.message}")
        return problems

    def check_request_body(self, op: Operation, body: Any) -> list[str]:
        request_body = op.spec.get("requestBody")
        operation = f"{op.method} {op.template}"
        if request_body is None:
            return [] if body is None else [f"{operation}: the contract defines no request body"]
        ref = self._body_schema_ref(request_body)
        if body is None:
            return [f"{operation}: request body missing"] if request_body.get("required") else []
        where = f"{operation} request body ({ref.rsplit('/', 1)[-1] if ref else '?'})"
        problems = self.schema_errors(ref, body, where) if ref else []
        if ref and isinstance(body, dict):
            allowed, read_only = self.property_names(ref, body)
            if allowed is not None:
                for key in sorted(set(body) - allowed):
                    problems.append(f"{where}: property {key!r} is not defined by the contract")
            for key in sorted(set(body) & read_only):
                problems.append(f"{where}: property {key!r} is read-only")
        return problems

    def declared_statuses(self, op: Operation) -> set[int]:
        return {int(code) for code in op.spec["responses"] if code.isdigit()}

    def check_response(self, op: Operation, status: int, body: Any) -> list[str]:
        responses = op.spec["responses"]
        response = responses.get(str(status)) or responses.get("default")
        operation = f"{op.method} {op.template}"
        if response is None:
            return [f"{operation}: status {status} is not declared (declared: {sorted(responses)})"]
        ref = self._body_schema_ref(response)
        if ref is None:
            return []
        return self.schema_errors(ref, body, f"{operation} -> {status} ({ref.rsplit('/', 1)[-1]})")

    def schema_errors(self, ref: str, instance: Any, where: str) -> list[str]:
        validator = self._validator({"$ref": self.base + ref})
        problems = [
            f"{where}: {'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
            for error in validator.iter_errors(instance)
        ]
        # allOf parts repeat properties (customProperties is in both *Create and *Update): report once
        return list(dict.fromkeys(problems))

    def property_names(self, ref: str, instance: dict[str, Any]) -> tuple[set[str] | None, set[str]]:
        """(defined properties or None for "any", read-only ones), following allOf and discriminators."""
        allowed: set[str] = set()
        read_only: set[str] = set()
        open_ended = False

        def walk(schema: dict[str, Any]) -> None:
            nonlocal open_ended
            if "$ref" in schema:
                walk(self._pointer(schema["$ref"]))
                return
            discriminator = schema.get("discriminator")
            if discriminator and "oneOf" in schema:
                target = discriminator.get("mapping", {}).get(instance.get(discriminator["propertyName"]))
                if target is None:
                    open_ended = True
                else:
                    walk(self._pointer(target))
            elif "oneOf" in schema or "anyOf" in schema:
                open_ended = True
            for name, prop in schema.get("properties", {}).items():
                allowed.add(name)
                if isinstance(prop, dict) and prop.get("readOnly"):
                    read_only.add(name)
            for part in schema.get("allOf", []):
                walk(part)

        walk(self._pointer(ref))
        return (None if open_ended else allowed), read_only


@functools.lru_cache(maxsize=4)
def _load_yaml(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@functools.lru_cache(maxsize=256)
def _validator_for(contract: ModelRegistryContract, schema_json: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(schema_json), registry=contract.registry)


@functools.lru_cache(maxsize=4)
def load_contract(contracts_dir: str, version: str) -> ModelRegistryContract:
    return ModelRegistryContract(Path(contracts_dir) / "model-registry" / CONTRACT_FILES[version], version)


# ------------------------------------------------------------------------------------------
# The fake server
# ------------------------------------------------------------------------------------------
class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int = 0  # what the fake answered


@dataclass
class Fault:
    status: int
    message: str
    method: str | None
    path: str | None  # route template, None for any
    times: int


@dataclass
class Route:
    method: str
    template: str  # below the prefix, `{id}` for the one path parameter
    handler: Callable[..., tuple[int, Any]]
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        self.pattern = re.compile("^" + re.escape(self.template).replace(r"\{id\}", "([^/]+)") + "$")


def _now_ms() -> str:
    return str(int(time.time() * 1000))


class FakeModelRegistry:
    """The fake server. Use as a context manager, or start()/stop().

    versions: the API versions that answer ("v1", "v1alpha3"); token: when set, requests
    without `Authorization: Bearer <token>` get 401.
    """

    def __init__(
        self, contracts_dir: Path, versions: tuple[str, ...] = ("v1",), token: str | None = None
    ) -> None:
        self.contracts = {version: load_contract(str(contracts_dir), version) for version in versions}
        self.token = token
        self.violations: list[str] = []
        self.requests: list[RecordedRequest] = []
        self._faults: list[Fault] = []
        self._lock = threading.RLock()
        self._next_id = 1
        # kind -> id -> stored entity (exactly what the server answers)
        kinds = ("RegisteredModel", "ModelVersion", "ModelArtifact", "ServingEnvironment", "InferenceService")
        self.store: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in kinds}
        self.version_artifacts: dict[str, list[str]] = {}
        self.routes = self._routes()
        for contract in self.contracts.values():
            missing = self.routes_not_in_contract(contract)
            if missing:
                raise AssertionError(f"the fake serves operations that {contract.path.name} lacks: {missing}")
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self) -> FakeModelRegistry:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes

            def do_GET(self) -> None:
                fake._handle(self)

            do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-model-registry", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeModelRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the fake first"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- test controls -----------------------------------------------------------------
    def fail_next(
        self, status: int, message: str, *, method: str | None = None, path: str | None = None, times: int = 1
    ) -> None:
        """Answer the next matching request(s) with `status` and an Error body.

        path is a route template below the API prefix, e.g. "/model_versions/{id}/artifacts".
        """
        with self._lock:
            self._faults.append(Fault(status, message, method, path, times))

    def entities(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(entity) for entity in self.store[kind].values()]

    def artifacts_of(self, version_id: str) -> list[dict[str, Any]]:
        with self._lock:
            ids = self.version_artifacts.get(version_id, [])
            return [copy.deepcopy(self.store["ModelArtifact"][a]) for a in ids]

    def calls(self, method: str, path_suffix: str) -> list[RecordedRequest]:
        """Requests whose path (below the API prefix) is exactly `path_suffix`."""
        prefix = re.compile(r"^/api/model_registry/[^/]+")
        return [r for r in self.requests if r.method == method and prefix.sub("", r.path) == path_suffix]

    def routes_not_in_contract(self, contract: ModelRegistryContract) -> list[str]:
        missing = [r for r in self.routes if contract.operation(r.method, r.template) is None]
        return [f"{r.method} {r.template}" for r in missing]

    # ---- HTTP plumbing -----------------------------------------------------------------
    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        headers = {key.lower(): value for key, value in request.headers.items()}
        body: Any = None
        bad_json = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
        with self._lock:
            recorded = RecordedRequest(request.command, parts.path, query, headers, body)
            self.requests.append(recorded)
            status, payload = self._dispatch(request.command, parts.path, query, headers, body, bad_json)
            recorded.status = status
        data = json.dumps(payload).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _dispatch(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: Any,
        bad_json: bool,
    ) -> tuple[int, Any]:
        contract = next((c for c in self.contracts.values() if path.startswith(c.prefix + "/")), None)
        if contract is None:
            return 404, {"code": "404", "message": f"404 page not found: {path}"}
        suffix = path[len(contract.prefix) :]
        for route in self.routes:
            match = route.pattern.match(suffix)
            if match and route.method == method:
                break
        else:
            methods = {m for (m, template) in contract.operations if _template_matches(template, path)}
            if methods:
                if method in methods:
                    self.violations.append(f"{method} {path}: in the contract, not implemented by the fake")
                    return 501, {"code": "501", "message": "not implemented by the fake"}
                return 405, {"code": "405", "message": f"method {method} not allowed"}
            return 404, {"code": "404", "message": f"404 page not found: {path}"}
        op = contract.operation(method, route.template)
        assert op is not None  # checked in __init__

        status, payload = self._answer(contract, op, route, match, query, headers, body, bad_json)
        problems = contract.check_response(op, status, payload)
        self.violations.extend(f"response: {p}" for p in problems)
        return status, payload

    def _answer(
        self,
        contract: ModelRegistryContract,
        op: Operation,
        route: Route,
        match: re.Match[str],
        query: dict[str, str],
        headers: dict[str, str],
        body: Any,
        bad_json: bool,
    ) -> tuple[int, Any]:
        if self.token is not None and headers.get("authorization") != f"Bearer {self.token}":
            return 401, {"code": "401", "message": "Unauthorized: missing or invalid bearer token"}
        for fault in self._faults:
            if fault.times > 0 and fault.method in (None, op.method) and fault.path in (None, route.template):
                fault.times -= 1
                if fault.status not in contract.declared_statuses(op):
                    self.violations.append(f"fault {fault.status} undeclared: {op.method} {op.template}")
                return fault.status, {"code": str(fault.status), "message": fault.message}
        if bad_json:
            self.violations.append(f"request: {op.method} {op.template}: body is not JSON")
            return 400, {"code": "400", "message": "request body is not JSON"}
        problems = contract.check_query(op, query) + contract.check_request_body(op, body)
        if problems:
            self.violations.extend(f"request: {p}" for p in problems)
            return 400, {"code": "400", "message": "; ".join(problems)}
        try:
            return route.handler(*match.groups(), query=query, body=body)
        except ApiError as exc:
            return exc.status, {"code": str(exc.status), "message": exc.message}

    # ---- routes ------------------------------------------------------------------------
    def _routes(self) -> list[Route]:
        Handler = Callable[..., tuple[int, Any]]

        def find(kind: str, needs_parent: bool, missing_status: int) -> Handler:
            return lambda *, query, body: self._find(kind, query, needs_parent, missing_status)

        def listing(kind: str) -> Handler:
            return lambda *, query, body: self._list(list(self.store[kind].values()), query)

        def create(make: Callable[[dict[str, Any]], tuple[int, Any]]) -> Handler:
            return lambda *, query, body: make(body)

        def get(kind: str) -> Handler:
            return lambda entity_id, *, query, body: (200, self._get(kind, entity_id))

        def patch(kind: str) -> Handler:
            return lambda entity_id, *, query, body: self._patch(kind, entity_id, body)

        return [
            Route("GET", "/registered_model", find("RegisteredModel", False, 404)),
            Route("GET", "/registered_models", listing("RegisteredModel")),
            Route("POST", "/registered_models", create(self._create_registered_model)),
            Route("GET", "/registered_models/{id}", get("RegisteredModel")),
            Route("PATCH", "/registered_models/{id}", patch("RegisteredModel")),
            Route("GET", "/registered_models/{id}/versions", self._versions_of_model),
            Route("GET", "/model_version", find("ModelVersion", True, 400)),
            Route("GET", "/model_versions", listing("ModelVersion")),
            Route("POST", "/model_versions", create(self._create_model_version)),
            Route("GET", "/model_versions/{id}", get("ModelVersion")),
            Route("PATCH", "/model_versions/{id}", patch("ModelVersion")),
            Route("GET", "/model_versions/{id}/artifacts", self._artifacts_of_version),
            Route("POST", "/model_versions/{id}/artifacts", self._create_version_artifact),
            Route("GET", "/model_artifact", find("ModelArtifact", True, 400)),
            Route("GET", "/model_artifacts/{id}", get("ModelArtifact")),
            Route("GET", "/serving_environment", find("ServingEnvironment", False, 404)),
            Route("GET", "/serving_environments", listing("ServingEnvironment")),
            Route("POST", "/serving_environments", create(self._create_serving_environment)),
            Route("GET", "/serving_environments/{id}", get("ServingEnvironment")),
            Route("GET", "/inference_service", find("InferenceService", True, 400)),
            Route("GET", "/inference_services", listing("InferenceService")),
            Route("POST", "/inference_services", create(self._create_inference_service)),
            Route("GET", "/inference_services/{id}", get("InferenceService")),
            Route("PATCH", "/inference_services/{id}", patch("InferenceService")),
        ]

    # ---- behaviour ---------------------------------------------------------------------
    def _new(self, kind: str, body: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
        taken = {e.get("externalId") for e in self.store[kind].values()}
        if body.get("externalId") and body["externalId"] in taken:
            raise ApiError(409, f"{kind} with externalId {body['externalId']!r} already exists")
        entity_id = str(self._next_id)
        self._next_id += 1  # one counter for every kind: an id used as the wrong kind is caught
        now = _now_ms()
        entity = {**defaults, **copy.deepcopy(body), "id": entity_id, "createTimeSinceEpoch": now}
        entity["lastUpdateTimeSinceEpoch"] = now
        entity.setdefault("customProperties", {})
        self.store[kind][entity_id] = entity
        return entity

    def _get(self, kind: str, entity_id: str) -> dict[str, Any]:
        entity = self.store[kind].get(entity_id)
        if entity is None:
            raise ApiError(404, f"no {kind} found for id {entity_id}")
        return copy.deepcopy(entity)

    def _patch(self, kind: str, entity_id: str, body: dict[str, Any]) -> tuple[int, Any]:
        entity = self.store[kind].get(entity_id)
        if entity is None:
            raise ApiError(404, f"no {kind} found for id {entity_id}")
        if kind == "InferenceService" and body.get("modelVersionId"):
            version = self.store["ModelVersion"].get(body["modelVersionId"])
            if version is None or version["registeredModelId"] != entity["registeredModelId"]:
                raise ApiError(400, f"modelVersionId {body['modelVersionId']} is not a version of that model")
        entity.update(copy.deepcopy(body))  # customProperties are replaced as a whole
        entity["lastUpdateTimeSinceEpoch"] = _now_ms()
        return 200, copy.deepcopy(entity)

    def _find(
        self, kind: str, query: dict[str, str], needs_parent: bool, missing_status: int
    ) -> tuple[int, Any]:
        name, external, parent = query.get("name"), query.get("externalId"), query.get("parentResourceId")
        if external:
            candidates = [e for e in self.store[kind].values() if e.get("externalId") == external]
        elif name and (parent or not needs_parent):
            candidates = [
                e
                for e in self.store[kind].values()
                if e.get("name") == name and (not parent or self._parent_of(kind, e) == parent)
            ]
        else:
            raise ApiError(missing_status, "invalid parameters: name (with parentResourceId) or externalId")
        if not candidates:
            raise ApiError(404, f"no {kind} found for {query}")
        return 200, copy.deepcopy(candidates[0])

    def _parent_of(self, kind: str, entity: dict[str, Any]) -> str | None:
        if kind == "ModelVersion":
            return entity["registeredModelId"]
        if kind == "InferenceService":
            return entity["servingEnvironmentId"]
        if kind == "ModelArtifact":
            return next((v for v, arts in self.version_artifacts.items() if entity["id"] in arts), None)
        return None

    def _list(self, items: list[dict[str, Any]], query: dict[str, str]) -> tuple[int, Any]:
        items = sorted(items, key=lambda e: int(e["id"]), reverse=query.get("sortOrder") == "DESC")
        size = int(query.get("pageSize") or 100)
        start = int(query.get("nextPageToken") or 0)
        page = items[start : start + size]
        next_token = str(start + size) if start + size < len(items) else ""
        return 200, {
            "items": copy.deepcopy(page),
            "size": len(page),
            "pageSize": size,
            "nextPageToken": next_token,
        }

    def _create_registered_model(self, body: dict[str, Any]) -> tuple[int, Any]:
        if any(m["name"] == body["name"] for m in self.store["RegisteredModel"].values()):
            raise ApiError(409, f"registered model {body['name']!r} already exists")
        return 201, self._new("RegisteredModel", body, {"state": "LIVE"})

    def _create_model_version(self, body: dict[str, Any]) -> tuple[int, Any]:
        parent = body["registeredModelId"]
        if parent not in self.store["RegisteredModel"]:
            # the contract declares 422, not 404, for POST /model_versions
            raise ApiError(422, f"no RegisteredModel found for id {parent}")
        siblings = [v for v in self.store["ModelVersion"].values() if v["registeredModelId"] == parent]
        if any(v["name"] == body["name"] for v in siblings):
            raise ApiError(409, f"version {body['name']!r} already exists for registered model {parent}")
        return 201, self._new("ModelVersion", body, {"state": "LIVE"})

    def _versions_of_model(self, model_id: str, *, query: dict[str, str], body: Any) -> tuple[int, Any]:
        self._get("RegisteredModel", model_id)
        versions = [v for v in self.store["ModelVersion"].values() if v["registeredModelId"] == model_id]
        return self._list(versions, query)

    def _artifacts_of_version(self, version_id: str, *, query: dict[str, str], body: Any) -> tuple[int, Any]:
        self._get("ModelVersion", version_id)
        artifacts = [self.store["ModelArtifact"][a] for a in self.version_artifacts.get(version_id, [])]
        if query.get("artifactType") not in (None, "model-artifact"):
            artifacts = []
        if query.get("name"):
            artifacts = [a for a in artifacts if a.get("name") == query["name"]]
        return self._list(artifacts, query)

    def _create_version_artifact(
        self, version_id: str, *, query: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, Any]:
        self._get("ModelVersion", version_id)
        if body.get("artifactType") != "model-artifact":
            raise ApiError(400, f"the fake stores model-artifact only, not {body.get('artifactType')!r}")
        linked = self.version_artifacts.setdefault(version_id, [])
        if body.get("id"):  # associate an existing artifact
            artifact = self._get("ModelArtifact", body["id"])
            if body["id"] not in linked:
                linked.append(body["id"])
            return 200, artifact
        names = {self.store["ModelArtifact"][a].get("name") for a in linked}
        if body.get("name") and body["name"] in names:
            raise ApiError(409, f"artifact {body['name']!r} already exists for model version {version_id}")
        artifact = self._new("ModelArtifact", body, {"state": "UNKNOWN"})
        linked.append(artifact["id"])
        return 201, copy.deepcopy(artifact)

    def _create_serving_environment(self, body: dict[str, Any]) -> tuple[int, Any]:
        if any(e["name"] == body["name"] for e in self.store["ServingEnvironment"].values()):
            raise ApiError(409, f"serving environment {body['name']!r} already exists")
        return 201, self._new("ServingEnvironment", body, {})

    def _create_inference_service(self, body: dict[str, Any]) -> tuple[int, Any]:
        environment, model = body["servingEnvironmentId"], body["registeredModelId"]
        if environment not in self.store["ServingEnvironment"] or model not in self.store["RegisteredModel"]:
            raise ApiError(400, f"unknown servingEnvironmentId {environment} or registeredModelId {model}")
        version = body.get("modelVersionId")
        if version and self.store["ModelVersion"].get(version, {}).get("registeredModelId") != model:
            raise ApiError(400, f"modelVersionId {version} is not a version of registered model {model}")
        services = self.store["InferenceService"].values()
        names = {s.get("name") for s in services if s["servingEnvironmentId"] == environment}
        if body.get("name") and body["name"] in names:
            raise ApiError(409, f"inference service {body['name']!r} already exists in {environment}")
        return 201, self._new("InferenceService", body, {"desiredState": "DEPLOYED"})


def _template_matches(template: str, path: str) -> bool:
    return re.match("^" + re.escape(template).replace(r"\{id\}", "[^/]+") + "$", path) is not None

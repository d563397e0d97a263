"""The local Open Inference Protocol (KServe v2 REST) model server on onnxruntime.

Endpoints (all JSON; errors are an HTTP status with `{"error": "..."}`: 400 bad request, 404
unknown model or version, 503 known but not ready):

* GET  /v2/health/live, /v2/health/ready, /v2 (server metadata)
* GET  /v2/models/{m}[/versions/{v}]           model metadata (+ `parameters.served_version`)
* GET  /v2/models/{m}[/versions/{v}]/ready     200 when ready
* POST /v2/models/{m}[/versions/{v}]/infer     JSON tensors, or Triton's binary tensor extension
* POST /v2/repository/index                    every model version with its state
* POST /v2/repository/models/{m}/load          {"parameters": {"storage_uri": ..., "version": "3"}}
* POST /v2/repository/models/{m}/unload        optional {"parameters": {"version": "3"}}

Inference, loads and unloads run in worker threads, so the event loop (health probes, metadata)
always answers, even during a slow request or a large load.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlspec import __version__
from mlspec.server.errors import BadRequest, ProtocolError
from mlspec.server.repository import PLATFORM, LoadedVersion, ModelRepository
from mlspec.server.tensors import HEADER_LENGTH, conform_inputs, encode_response, parse_infer_request

log = logging.getLogger(__name__)

SERVER_NAME = "mlspec"


def _repo(request: Request) -> ModelRepository:
    return request.app.state.repository


def _version_param(request: Request) -> str | None:
    return request.path_params.get("version")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _json_body(request: Request, *, optional: bool = False) -> dict:
    body = await request.body()
    if not body.strip() and optional:
        return {}
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise BadRequest("the request body must be a JSON object")
    return payload


# -- health and metadata --------------------------------------------------------------------------
async def live(request: Request) -> Response:
    return Response(status_code=200)


async def ready(request: Request) -> Response:
    is_ready, why = _repo(request).all_ready()
    return Response(status_code=200) if is_ready else _error(503, why)


async def server_metadata(request: Request) -> Response:
    return JSONResponse({"name": SERVER_NAME, "version": __version__, "extensions": ["model_repository"]})


def _model_metadata(repo: ModelRepository, name: str, version: str | None) -> dict:
    loaded = repo.get(name, version)
    return {
        "name": name,
        "versions": repo.versions(name),
        "platform": PLATFORM,
        "inputs": [spec.to_json() for spec in loaded.inputs],
        "outputs": [spec.to_json() for spec in loaded.outputs],
        # Not in the protocol (its extension slot): lets a deployer find what serves now, for rollback.
        "parameters": {
            "served_version": repo.served_version(name),
            "version": loaded.version,
            "storage_uri": loaded.storage_uri,
            # The published input and output schemas (feature statistics, class names).
            **loaded.schemas,
        },
    }


async def model_metadata(request: Request) -> Response:
    payload = _model_metadata(_repo(request), request.path_params["model"], _version_param(request))
    return JSONResponse(payload)


async def model_ready(request: Request) -> Response:
    _repo(request).get(request.path_params["model"], _version_param(request))
    return Response(status_code=200)


# -- inference ------------------------------------------------------------------------------------
def _infer_sync(
    loaded: LoadedVersion, body: bytes, header_length: str | None
) -> tuple[bytes, dict[str, str]]:
    parsed = parse_infer_request(body, header_length)
    feeds = conform_inputs(parsed.inputs, loaded.inputs, loaded.name)
    known = [spec.name for spec in loaded.outputs]
    wanted = parsed.outputs if parsed.outputs is not None else known
    for name in wanted:
        if name not in known:
            raise BadRequest(f"model {loaded.name} has no output named {name!r}; its outputs are {known}")
    results = loaded.run(feeds, list(dict.fromkeys(wanted)))
    return encode_response(
        model_name=loaded.name, model_version=loaded.version, request=parsed, outputs=results
    )


async def infer(request: Request) -> Response:
    # Resolve the version before reading the body: a request keeps the version it started with
    # even if another one becomes served while it runs.
    loaded = _repo(request).get(request.path_params["model"], _version_param(request))
    body = await request.body()
    # Decoding, the session run and encoding are CPU work: keep them off the event loop.
    header_length = request.headers.get(HEADER_LENGTH)
    content, headers = await anyio.to_thread.run_sync(_infer_sync, loaded, body, header_length)
    return Response(content, status_code=200, headers=headers)


# -- model repository extension -------------------------------------------------------------------
def _parameters(payload: dict) -> dict:
    parameters = payload.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadRequest("'parameters' must be a JSON object")
    return parameters


def _optional_str(parameters: dict, key: str) -> str | None:
    value = parameters.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        raise BadRequest(f"parameters.{key} must be a non-empty string, got {value!r}")
    return str(value).strip()


async def repository_index(request: Request) -> Response:
    payload = await _json_body(request, optional=True)
    return JSONResponse(_repo(request).index(ready_only=bool(payload.get("ready", False))))


async def repository_load(request: Request) -> Response:
    name = request.path_params["model"]
    parameters = _parameters(await _json_body(request, optional=True))
    version = _optional_str(parameters, "version")
    storage_uri = _optional_str(parameters, "storage_uri")
    loaded = await anyio.to_thread.run_sync(_repo(request).load, name, version, storage_uri)
    return JSONResponse(
        {"name": name, "version": loaded.version, "state": "READY", "served_version": loaded.version}
    )


async def repository_unload(request: Request) -> Response:
    name = request.path_params["model"]
    parameters = _parameters(await _json_body(request, optional=True))
    version = _optional_str(parameters, "version")
    served = await anyio.to_thread.run_sync(_repo(request).unload, name, version)
    return JSONResponse({"name": name, "unloaded_version": version, "served_version": served})


# -- errors ---------------------------------------------------------------------------------------
async def _protocol_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProtocolError)
    log.warning("%s %s -> %d: %s", request.method, request.url.path, exc.status, exc)
    return _error(exc.status, str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail if exc.status_code != 404 else f"no endpoint {request.url.path}"
    log.warning("%s %s -> %d: %s", request.method, request.url.path, exc.status_code, message)
    return _error(exc.status_code, str(message))


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("%s %s failed", request.method, request.url.path)
    return _error(500, f"internal server error: {type(exc).__name__}: {exc}")


def _routes() -> list[Route]:
    routes = [
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/", server_metadata, methods=["GET"]),
        Route("/v2/repository/index", repository_index, methods=["POST"]),
        Route("/v2/repository/models/{model}/load", repository_load, methods=["POST"]),
        Route("/v2/repository/models/{model}/unload", repository_unload, methods=["POST"]),
    ]
    for prefix in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
        routes += [
            Route(prefix, model_metadata, methods=["GET"]),
            Route(f"{prefix}/ready", model_ready, methods=["GET"]),
            Route(f"{prefix}/infer", infer, methods=["POST"]),
        ]
    return routes


def create_app(state_dir: Path | None = None, *, max_loaded_versions: int = 3) -> Starlette:
    """The server as an ASGI app; with `state_dir`, it serves again at start-up what it served before.

    `app.state.repository` is the ModelRepository behind it.
    """
    repository = ModelRepository(state_dir, max_loaded_versions=max_loaded_versions)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Restored before the server accepts connections: once it answers, it serves what it did.
        await anyio.to_thread.run_sync(repository.restore)
        log.info("mlspec model server ready (state: %s)", state_dir or "not persisted")
        yield

    handlers: dict[Any, Any] = {
        ProtocolError: _protocol_error,
        HTTPException: _http_error,
        Exception: _unexpected_error,
    }
    app = Starlette(routes=_routes(), exception_handlers=handlers, lifespan=lifespan)
    app.state.repository = repository
    return app


def run_server(host: str = "127.0.0.1", port: int = 8555, state_dir: Path | None = None) -> None:
    """Serve until interrupted (the CLI's `mlspec serve`)."""
    import uvicorn

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.info("starting the mlspec model server on http://%s:%d", host, port)
    uvicorn.run(create_app(Path(state_dir) if state_dir is not None else None), host=host, port=port)

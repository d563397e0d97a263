"""The local Open Inference Protocol (KServe v2 REST) model server on onnxruntime.

Endpoints (all JSON; errors are an HTTP status with `{"error": "..."}`: 400 bad request, 401 no or
wrong token, 403 storage outside the allowed roots, 404 unknown model or version, 409 a change of
that model in flight, 413 body too large, 503 known but not ready or too many request bytes in flight
(with Retry-After), 504 a load that timed out):

* GET  /v2/health/live, /v2/health/ready, /v2 (server metadata)
* GET  /metrics                                Prometheus text format (metrics.py); open like health,
                                               but with `auth="token"` it needs the token like the models
* GET  /v2/models/{m}[/versions/{v}]           model metadata (+ `parameters.served_version`, `.traffic`)
* GET  /v2/models/{m}[/versions/{v}]/ready     200 when that model (version) is ready
* POST /v2/models/{m}[/versions/{v}]/infer     JSON tensors, or Triton's binary tensor extension; a table
                                               model takes raw rows, one input per column (tensors.py).
                                               Unversioned: routed by the model's traffic (traffic.py)
                                               and copied to its shadow (shadow.py); the answer's
                                               x-mlspec-model-version header names the version
* POST /v2/repository/index                    every model version with its state and traffic share (admin)
* POST /v2/repository/models/{m}/load          {"parameters": {"storage_uri": ..., "version": "3",
                                               "serve": true}}; serve false loads without serving (admin)
* POST /v2/repository/models/{m}/unload        optional {"parameters": {"version": "3"}}  (admin)
* POST /v2/repository/models/{m}/traffic       {"parameters": {"weights": {"2": 90, "3": 10}, "shadow":
                                               {"version": "3", "percent": 100}}}; weights null clears (admin)
* POST /v2/repository/models/{m}/logging       request logging of the model (request_log.py)     (admin)

The repository API needs `Authorization: Bearer <token>` (MLSPEC_SERVER_TOKEN, or the token file
the server writes into its state folder at first start, mode 0600), at least MIN_TOKEN_CHARS long
(the server refuses to start with a shorter one); with `auth="token"` the model endpoints need it
too, and so does /metrics (it names the models, versions, traffic and class counts). Health and server
metadata stay open for probes.

Request bodies are capped one by one (`Limits.max_body_bytes`, 413) and all together: the bytes of the
bodies being received or answered at one moment stay under `ServerConfig.max_inflight_bytes`
(`mlspec serve --max-inflight-mb`, MLSPEC_SERVER_MAX_INFLIGHT_MB); a request that would go over is
answered 503 with Retry-After before its body is read.

The app is a plain ASGI callable (no framework): every request is answered by this module, so an
error of any kind becomes a JSON answer and never resets the keep-alive connection. Requests are
decoded, run and encoded in a thread pool of their own; a request to a model whose small requests
have proven tiny (under `INLINE_COST_S`) is answered inline on the event loop, which saves the
thread hop that dominates at batch 1. Loads run in daemon threads under their own limiter and
timeout, so storage that never answers cannot take inference, health probes or SIGTERM with it.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson

from mlspec import __version__
from mlspec.home import SERVER_TOKEN_ENV, server_token_file
from mlspec.server.errors import (
    BadRequest,
    Busy,
    Conflict,
    LoadTimedOut,
    NotFound,
    PayloadTooLarge,
    ProtocolError,
    ServerSetupError,
    Unauthorized,
)
from mlspec.server.metrics import CONTENT_TYPE, ServerMetrics
from mlspec.server.repository import DEFAULT_MAX_MODEL_BYTES, PLATFORM, LoadedVersion, ModelRepository
from mlspec.server.request_log import RequestLogs
from mlspec.server.shadow import (
    DEFAULT_QUEUE_BYTES,
    DEFAULT_QUEUE_SIZE,
    ShadowJob,
    ShadowRunner,
    compared_output,
)
from mlspec.server.sources import StorageRoots, default_roots
from mlspec.server.tensors import Limits, conform_inputs, encode_response, loads, parse_infer_request
from mlspec.server.traffic import Traffic, request_hash

log = logging.getLogger(__name__)

SERVER_NAME = "mlspec"
# Requests up to this body size may run inline on the event loop once the model's small requests
# are known to take less than INLINE_COST_S each (decode + run + encode).
INLINE_BODY_BYTES = 64 * 1024
INLINE_COST_S = 0.0005
_JSON = [(b"content-type", b"application/json")]
# The shortest admin token the server accepts: secrets.token_urlsafe(32) (what it generates) is 43.
MIN_TOKEN_CHARS = 32
DEFAULT_MAX_INFLIGHT_BYTES = 256 * 1024 * 1024
MAX_INFLIGHT_ENV = "MLSPEC_SERVER_MAX_INFLIGHT_MB"
RETRY_AFTER_S = 1


@dataclass(frozen=True)
class ServerConfig:
    """How the server guards itself; `mlspec serve` flags map onto these fields."""

    token: str | None = None  # None: MLSPEC_SERVER_TOKEN, else the state folder's token file
    auth: str = "admin"  # "admin": the repository API needs the token; "token": every model endpoint too
    allow_roots: tuple[str, ...] = ()  # storage roots besides the store under MLSPEC_HOME
    default_roots: bool = True  # include the store under MLSPEC_HOME
    limits: Limits = field(default_factory=Limits)
    # Request body bytes held at once across all requests (being received or answered); 503 beyond.
    max_inflight_bytes: int = DEFAULT_MAX_INFLIGHT_BYTES
    max_models: int = 32
    max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES
    load_timeout_s: float = 120.0
    max_concurrent_loads: int = 2
    inference_threads: int = 0  # 0: one per core
    ort_threads: int = 1
    shadow_queue: int = DEFAULT_QUEUE_SIZE  # shadow copies waiting at most; more are dropped (and counted)
    shadow_queue_bytes: int = DEFAULT_QUEUE_BYTES  # and their request bodies together, at most


def ensure_server_token(state_dir: Path | None) -> str:
    """MLSPEC_SERVER_TOKEN, else the token file in the state folder (MLSPEC_HOME/server without one),
    generated at first start with mode 0600."""
    token = os.environ.get(SERVER_TOKEN_ENV, "").strip()
    if token:
        return token
    path = server_token_file(state_dir)
    try:
        existing = path.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
            log.warning("%s was readable by other users; its mode is now 0600", path)
        return existing
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(32) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    try:
        if path.exists():  # empty (a crash between create and write): replace it
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # a server starting at the same moment may win: then its token counts
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    token = path.read_text().strip()
    log.info("generated the model server's admin token into %s (mode 0600)", path)
    return token


class LoadRunner:
    """Runs loads in daemon threads, at most `slots` at once, each awaited for at most `timeout_s`.

    A load that times out keeps its slot until its thread returns (storage that never answers
    cannot start unbounded threads); its result is discarded. Inference has its own pool, so stuck
    loads never starve it, and daemon threads never keep the process from exiting.
    """

    def __init__(self, slots: int, timeout_s: float) -> None:
        self.slots = max(1, slots)
        self.timeout_s = timeout_s
        self._free: asyncio.Semaphore | None = None
        self.stuck = 0

    async def run(self, what: str, fn, *args, **kwargs) -> Any:
        loop = asyncio.get_running_loop()
        if self._free is None:
            self._free = asyncio.Semaphore(self.slots)
        free = self._free
        deadline = loop.time() + self.timeout_s
        try:
            await asyncio.wait_for(free.acquire(), self.timeout_s)
        except TimeoutError:
            raise LoadTimedOut(
                f"{what}: every load slot ({self.slots}) stayed busy for {self.timeout_s:g}s with loads "
                "from storage that does not answer; nothing changed"
            ) from None
        cancelled = threading.Event()
        future: asyncio.Future = loop.create_future()

        def settle(ok: bool, value: Any) -> None:
            free.release()
            if not future.done():
                future.set_result(value) if ok else future.set_exception(value)
            elif not ok and not isinstance(value, ProtocolError):
                log.error("%s failed after its timeout: %s", what, value)

        def work() -> None:
            try:
                result, ok = fn(*args, cancelled=cancelled, **kwargs), True
            except BaseException as exc:  # handed to the awaiting request
                result, ok = exc, False
            try:
                loop.call_soon_threadsafe(settle, ok, result)
            except RuntimeError:  # the event loop is gone: the server is shutting down
                pass

        threading.Thread(target=work, name=f"mlspec-load:{what}", daemon=True).start()
        try:
            return await asyncio.wait_for(asyncio.shield(future), max(0.0, deadline - loop.time()))
        except TimeoutError:
            cancelled.set()
            raise LoadTimedOut(
                f"{what} did not finish within {self.timeout_s:g}s (storage that does not answer?); "
                "its result will be discarded and nothing changed"
            ) from None


def _error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


class ModelServer:
    """The ASGI application; `state.repository` is the ModelRepository behind it."""

    def __init__(
        self,
        state_dir: Path | None = None,
        *,
        max_loaded_versions: int = 3,
        config: ServerConfig | None = None,
    ) -> None:
        config = config or ServerConfig()
        self.config = config
        self.limits = config.limits
        roots = list(config.allow_roots) + (default_roots() if config.default_roots else [])
        self.roots = StorageRoots.parse(roots)
        self.repository = ModelRepository(
            state_dir,
            max_loaded_versions=max_loaded_versions,
            max_models=config.max_models,
            roots=self.roots,
            max_model_bytes=config.max_model_bytes,
            ort_threads=config.ort_threads,
        )
        token = config.token or ensure_server_token(state_dir)
        self.token = _checked_token(token, config, state_dir).encode()
        if config.max_inflight_bytes < self.limits.max_body_bytes:
            raise ServerSetupError(
                f"max_inflight_bytes ({config.max_inflight_bytes}) is below the largest request body "
                f"({self.limits.max_body_bytes}), so a request of the largest size could never be served: "
                "raise "
                "--max-inflight-mb (MLSPEC_SERVER_MAX_INFLIGHT_MB) or lower --max-body-mb"
            )
        self.max_inflight = config.max_inflight_bytes
        self.inflight = 0  # body bytes reserved by requests now being received or answered (event loop only)
        self.protect_models = config.auth == "token"
        self.loads = LoadRunner(config.max_concurrent_loads, config.load_timeout_s)
        self.restored = threading.Event()
        self.metrics = ServerMetrics(self.repository)
        self.shadows = ShadowRunner(
            self._run_output, self.metrics.stats, config.shadow_queue, config.shadow_queue_bytes
        )
        self.request_logs = RequestLogs(self.roots, state_dir, registry=self.metrics.registry)
        self.state = SimpleNamespace(repository=self.repository, restored=self.restored, server=self)
        threads = config.inference_threads or max(2, os.cpu_count() or 2)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mlspec-infer")
        self._restore_task: asyncio.Task | None = None

    # -- ASGI -----------------------------------------------------------------------------------
    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # Restoring runs in the background: the server is live at once and ready (the
                # probe) when what it served before is back; SIGTERM works meanwhile.
                self._restore_task = asyncio.get_running_loop().create_task(self._restore())
                log.info(
                    "mlspec model server started (state: %s; loads from %s)",
                    self.repository.state_dir or "not persisted",
                    self.roots.describe(),
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._restore_task is not None and not self._restore_task.done():
                    self._restore_task.cancel()
                self.shadows.close()
                self.request_logs.close()
                self._pool.shutdown(wait=False, cancel_futures=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _restore(self) -> None:
        repo = self.repository
        try:
            state = await asyncio.get_running_loop().run_in_executor(self._pool, repo.read_state)
            plan = repo.begin_restore(state)
            for name, version, uri, served in plan:
                try:
                    await self.loads.run(
                        f"restoring model {name} version {version}",
                        repo.load,
                        name,
                        version,
                        uri,
                        make_served=served,
                    )
                except ProtocolError as exc:
                    repo.restore_failed(name, version, str(exc))
                except Exception as exc:  # never leave the server unready for good
                    repo.restore_failed(name, version, f"{type(exc).__name__}: {exc}")
        finally:
            repo.restore_traffic()
            repo.end_restore()
            self.restored.set()
            log.info("mlspec model server ready")

    async def _http(self, scope, receive, send) -> None:
        status, body, headers = 200, b"", _JSON
        scope[_RESERVED] = 0
        try:
            try:
                status, body, headers = await self._route(scope, receive)
            except ProtocolError as exc:
                status, body = exc.status, _error_body(str(exc))
                headers = list(_JSON)
                if status == 401:
                    headers.append((b"www-authenticate", b'Bearer realm="mlspec"'))
                elif status == 413:
                    headers.append((b"connection", b"close"))  # the rest of the body is not read
                elif isinstance(exc, Busy):
                    headers += [(b"retry-after", str(RETRY_AFTER_S).encode()), (b"connection", b"close")]
                log.warning("%s %s -> %d: %s", scope["method"], scope["path"], status, exc)
            except _ClientGone:
                return
            except Exception as exc:
                log.exception("%s %s failed", scope["method"], scope["path"])
                status, body, headers = (
                    500,
                    _error_body(f"internal server error: {type(exc).__name__}: {exc}"),
                    _JSON,
                )
            headers = [*headers, (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        finally:
            # The body is answered (or abandoned): its bytes are free.
            self.inflight -= scope.pop(_RESERVED, 0)

    # -- routing --------------------------------------------------------------------------------
    async def _route(self, scope, receive) -> tuple[int, bytes, list]:
        path: str = scope["path"]
        method: str = scope["method"]
        parts = path.strip("/").split("/")
        if parts[0] != "v2":
            if parts == ["metrics"]:
                self._require(scope, "GET", method, models=True)
                return 200, self.metrics.exposition(), [(b"content-type", CONTENT_TYPE)]
            raise NotFound(f"no endpoint {path}")
        rest = parts[1:]
        if rest and rest[0] == "models" and len(rest) >= 2:
            name = rest[1]
            version = None
            tail = rest[2:]
            if len(tail) >= 2 and tail[0] == "versions":
                version, tail = tail[1], tail[2:]
            if not tail:
                self._require(scope, "GET", method, models=True)
                return 200, orjson.dumps(self._model_metadata(name, version)), _JSON
            if tail == ["infer"]:
                self._require(scope, "POST", method, models=True)
                return await self._infer(scope, receive, name, version)
            if tail == ["ready"]:
                self._require(scope, "GET", method, models=True)
                self.repository.get(name, version)
                return 200, b"", _JSON
            raise NotFound(f"no endpoint {path}")
        if rest in ([], [""]):
            self._require(scope, "GET", method)
            return 200, self._server_metadata(), _JSON
        if rest == ["health", "live"]:
            self._require(scope, "GET", method)
            return 200, b"", _JSON
        if rest == ["health", "ready"]:
            self._require(scope, "GET", method)
            ready, why = self.repository.is_ready()
            if not ready:
                return 503, _error_body(why), _JSON
            return 200, b"", _JSON
        if rest == ["repository", "index"]:
            self._require(scope, "POST", method, admin=True)
            payload = await self._json_body(scope, receive)
            ready_only = payload.get("ready", False)
            return 200, orjson.dumps(self.repository.index(ready_only=ready_only is True)), _JSON
        if len(rest) == 4 and rest[:2] == ["repository", "models"] and rest[3] in _REPOSITORY_ACTIONS:
            self._require(scope, "POST", method, admin=True)
            payload = await self._json_body(scope, receive)
            return await getattr(self, f"_{rest[3]}")(rest[2], payload)
        raise NotFound(f"no endpoint {path}")

    def _require(
        self, scope, allowed: str, method: str, *, admin: bool = False, models: bool = False
    ) -> None:
        if method != allowed:
            raise _MethodNotAllowed(f"{scope['path']} answers {allowed}, not {method}")
        if admin or (models and self.protect_models):
            self._check_token(scope, admin)

    def _check_token(self, scope, admin: bool) -> None:
        given = b""
        for key, value in scope["headers"]:
            if key == b"authorization":
                given = value
                break
        scheme, _, credential = given.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(credential.strip(), self.token):
            return
        what = "the model repository API" if admin else "this server's model endpoints (and /metrics)"
        raise Unauthorized(
            f"{what} needs 'Authorization: Bearer <token>' with the server's token (MLSPEC_SERVER_TOKEN, "
            "or the token file in the server's state folder)"
            if not given
            else f"the bearer token is not this server's; {what} refused it"
        )

    # -- bodies ---------------------------------------------------------------------------------
    def _reserve(self, scope, size: int) -> None:
        """Count `size` more body bytes of this request as in flight, or refuse it with 503 (Busy) when
        all requests together would hold more than max_inflight_bytes. Runs on the event loop only."""
        extra = size - scope.get(_RESERVED, 0)
        if extra <= 0:
            return
        if self.inflight + extra > self.max_inflight:
            raise Busy(
                f"the server is holding {self.inflight} bytes of request bodies (its limit across requests "
                f"is {self.max_inflight} bytes) and this request needs {size}; retry in {RETRY_AFTER_S}s"
            )
        self.inflight += extra
        scope[_RESERVED] = size

    async def _body(self, scope, receive) -> bytes:
        limit = self.limits.max_body_bytes
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise BadRequest("Content-Length is not an integer") from None
                if declared > limit:
                    raise PayloadTooLarge(
                        f"the request body is {declared} bytes, over the server's limit of {limit} bytes"
                    )
                self._reserve(scope, declared)  # before a byte is read: 503 at once when over
                break
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        body = message.get("body", b"")
        if not message.get("more_body", False):
            if len(body) > limit:
                raise PayloadTooLarge(f"the request body is over the server's limit of {limit} bytes")
            self._reserve(scope, len(body))
            return body
        chunks = [body]
        size = len(body)
        self._reserve(scope, size)
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the request body is over the server's limit of {limit} bytes")
            self._reserve(scope, size)  # a body without Content-Length (chunked) counts as it arrives
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _json_body(self, scope, receive) -> dict:
        body = await self._body(scope, receive)
        if not body.strip():
            return {}
        payload = loads(body)
        if not isinstance(payload, dict):
            raise BadRequest("the request body must be a JSON object")
        return payload

    # -- metadata -------------------------------------------------------------------------------
    def _server_metadata(self) -> bytes:
        return orjson.dumps({"name": SERVER_NAME, "version": __version__, "extensions": ["model_repository"]})

    def _model_metadata(self, name: str, version: str | None) -> dict:
        repo = self.repository
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
                "traffic": repo.traffic(name),
                "version": loaded.version,
                "storage_uri": loaded.storage_uri,
                # The published input and output schemas (feature statistics, class names).
                **loaded.schemas,
            },
        }

    # -- inference ------------------------------------------------------------------------------
    def _infer_sync(
        self, loaded: LoadedVersion, body: bytes, header_length: str | None, measure: bool
    ) -> tuple[bytes, list, str | None, dict, dict]:
        """(body, headers, the request's id, the inputs as the model ran them, the outputs) of one answer."""
        started = time.perf_counter()
        parsed = parse_infer_request(body, header_length, self.limits, loaded.table)
        feeds = conform_inputs(parsed.inputs, loaded.inputs, loaded.name, loaded.table)
        known = loaded.output_names
        if parsed.outputs is None:
            wanted = known
        else:
            for name in parsed.outputs:
                if name not in known:
                    raise BadRequest(
                        f"model {loaded.name} has no output named {name[:80]!r}; its outputs are {known}"
                    )
            wanted = list(dict.fromkeys(parsed.outputs))
        try:
            results = loaded.run(feeds, wanted)
        except Exception as exc:  # onnxruntime's own exception types: the input does not fit the graph
            raise BadRequest(f"model {loaded.name} could not run on this input: {str(exc)[:300]}") from None
        content, headers = encode_response(
            model_name=loaded.name, model_version=loaded.version, request=parsed, outputs=results
        )
        if measure:
            cost = time.perf_counter() - started
            loaded.cost_s = cost if loaded.cost_s < 0 else 0.8 * loaded.cost_s + 0.2 * cost
        if len(headers) == 1:
            return content, loaded.json_headers, parsed.id, feeds, results
        answer_headers = [(k.encode(), v.encode()) for k, v in headers.items()]
        return content, [*answer_headers, loaded.json_headers[1]], parsed.id, feeds, results

    def _run_output(self, loaded: LoadedVersion, body: bytes, header_length: str | None, output: str) -> Any:
        """One output of `loaded` on a request body (the shadow worker's run)."""
        parsed = parse_infer_request(body, header_length, self.limits, loaded.table)
        feeds = conform_inputs(parsed.inputs, loaded.inputs, loaded.name, loaded.table)
        return loaded.run(feeds, [output])[output]

    async def _infer(self, scope, receive, name: str, version: str | None) -> tuple[int, bytes, list]:
        # Resolve the version (or the traffic) before reading the body: a request keeps what it started
        # with even if another version becomes served, or the traffic changes, while it runs.
        target = self.repository.route(name) if version is None else self.repository.get(name, version)
        loaded = target if type(target) is LoadedVersion else None
        try:
            body = await self._body(scope, receive)
        except ProtocolError as exc:  # too large, or too many bytes in flight: answered before the work
            if loaded is not None:
                self.metrics.stats(loaded).failed(exc.status, None)
            raise
        started = time.perf_counter()
        header_length = None
        for key, value in scope["headers"]:
            if key == b"inference-header-content-length":
                header_length = value.decode("latin-1")
                break
        small = len(body) <= INLINE_BODY_BYTES
        shadow = None
        if loaded is None:  # a traffic split or a shadow: the request id decides
            given_id = _header(scope, b"x-request-id")
            if small:
                hashed = request_hash(body, header_length, given_id)
            else:  # parsing (or hashing) a large body on the event loop would hold every model's requests
                hashed = await asyncio.get_running_loop().run_in_executor(
                    self._pool, request_hash, body, header_length, given_id
                )
            loaded, shadow = target.pick(hashed)
        stats = loaded.stats or self.metrics.stats(loaded)
        try:
            if small and 0 <= loaded.cost_s < INLINE_COST_S:
                answer = self._infer_sync(loaded, body, header_length, True)
            else:
                loop = asyncio.get_running_loop()
                answer = await loop.run_in_executor(
                    self._pool, self._infer_sync, loaded, body, header_length, small
                )
        except ProtocolError as exc:
            stats.failed(exc.status, time.perf_counter() - started)
            raise
        except Exception:
            stats.failed(500, time.perf_counter() - started)
            raise
        content, headers, request_id, feeds, results = answer
        stats.answered(time.perf_counter() - started, len(next(iter(feeds.values()))), results)
        if shadow is not None:
            output, _ = compared_output(loaded.output_names)
            self.shadows.offer(
                ShadowJob(shadow, loaded, body, header_length, results.get(output), target.traffic.shadow)
            )
        # Only what clients send to the model's URL is logged: a versioned request (the deploy's smoke test,
        # a person trying a version) is not live traffic, and its rows would blur `mlspec drift`.
        if version is None and self.request_logs.wants(name):
            if request_id is None:
                given = _header(scope, b"x-request-id")
                request_id = given.decode("latin-1") if given else secrets.token_hex(8)
            self.request_logs.offer(
                name, loaded.version, request_id, feeds, results, loaded.schemas.get("input_schema")
            )
        return 200, content, headers

    # -- model repository extension -------------------------------------------------------------
    @staticmethod
    def _parameters(payload: dict) -> dict:
        parameters = payload.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise BadRequest("'parameters' must be a JSON object")
        return parameters

    @staticmethod
    def _optional_str(parameters: dict, key: str) -> str | None:
        value = parameters.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
            raise BadRequest(f"parameters.{key} must be a non-empty string, got {str(value)[:80]!r}")
        text = str(value).strip()
        if len(text) > 4096 or any(ord(c) < 32 for c in text):
            raise BadRequest(f"parameters.{key} is too long or holds control characters")
        return text

    async def _load(self, name: str, payload: dict) -> tuple[int, bytes, list]:
        parameters = self._parameters(payload)
        version = self._optional_str(parameters, "version")
        storage_uri = self._optional_str(parameters, "storage_uri")
        serve = parameters.get("serve", True)
        if not isinstance(serve, bool):
            raise BadRequest(f"parameters.serve must be true or false, got {str(serve)[:40]!r}")
        repo = self.repository
        if storage_uri is not None:
            storage_uri = repo.check_storage_uri(storage_uri)  # 403 before anything is opened
        busy = repo.busy(name)
        if busy:
            raise Conflict(f"{busy}; try again later")
        what = f"loading model {name} version {version or '(from its manifest)'}"
        loaded = await self.loads.run(what, repo.load, name, version, storage_uri, make_served=serve)
        served = loaded.version if serve else repo.served_version(name)
        body = {"name": name, "version": loaded.version, "state": "READY", "served_version": served}
        return 200, orjson.dumps(body), _JSON

    async def _traffic(self, name: str, payload: dict) -> tuple[int, bytes, list]:
        if "parameters" not in payload:
            raise BadRequest('the body must be {"parameters": {"weights": {version: percent}, "shadow": …}}')
        traffic = Traffic.from_parameters(payload["parameters"])
        repo = self.repository
        # Only a state write: in the request pool, never queued behind loads stuck on storage (a rollback
        # sets traffic and must not wait for them).
        entry = await asyncio.get_running_loop().run_in_executor(self._pool, repo.set_traffic, name, traffic)
        body = {"name": name, "served_version": entry.served, "traffic": repo.traffic(name)}
        return 200, orjson.dumps(body), _JSON

    async def _logging(self, name: str, payload: dict) -> tuple[int, bytes, list]:
        if "parameters" not in payload:
            raise BadRequest(
                'the body must be {"parameters": {"uri", "sample", "max_mb_per_hour"}}, or '
                '{"parameters": null} to stop'
            )
        parameters = payload["parameters"]
        if parameters is not None and not isinstance(parameters, dict):
            raise BadRequest("'parameters' must be a JSON object or null")
        self.repository.versions(name)  # 404 for a model this server does not know
        answer = await asyncio.get_running_loop().run_in_executor(
            self._pool, self.request_logs.configure, name, parameters
        )
        return 200, orjson.dumps(answer), _JSON

    async def _unload(self, name: str, payload: dict) -> tuple[int, bytes, list]:
        parameters = self._parameters(payload)
        version = self._optional_str(parameters, "version")
        repo = self.repository

        def unload(cancelled: threading.Event) -> str | None:
            return repo.unload(name, version)

        served = await self.loads.run(f"unloading model {name}", unload)
        return 200, orjson.dumps({"name": name, "unloaded_version": version, "served_version": served}), _JSON


_RESERVED = "mlspec.reserved_bytes"  # in the request's scope: the body bytes it holds in flight
_REPOSITORY_ACTIONS = ("load", "unload", "traffic", "logging")  # POST /v2/repository/models/{m}/<action>


def _header(scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


def _checked_token(token: str, config: ServerConfig, state_dir: Path | None) -> str:
    """The admin token, refused (ServerSetupError naming where it came from) when shorter than
    MIN_TOKEN_CHARS: a short token can be guessed, and it guards loads and unloads."""
    token = token.strip()
    if len(token) >= MIN_TOKEN_CHARS:
        return token

    if config.token:
        source = "the configured token (ServerConfig.token)"
        fix = "pass a longer one"
    elif os.environ.get(SERVER_TOKEN_ENV, "").strip():
        source = SERVER_TOKEN_ENV
        fix = (
            f"set {SERVER_TOKEN_ENV} to a longer one, or unset it to let the server generate one in its "
            "state folder"
        )
    else:
        path = server_token_file(state_dir)
        source = f"the token file {path}"
        fix = f"delete {path} and start the server again: it generates a new 43-character token"
    raise ServerSetupError(
        f"the model server's admin token from {source} is {len(token)} characters; it needs at least "
        f"{MIN_TOKEN_CHARS}: {fix} (make one: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
    )


def max_inflight_bytes_from_env(default: int = DEFAULT_MAX_INFLIGHT_BYTES) -> int:
    """MLSPEC_SERVER_MAX_INFLIGHT_MB as bytes, else `default`; ServerSetupError when not a positive number."""
    raw = os.environ.get(MAX_INFLIGHT_ENV, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ServerSetupError(f"{MAX_INFLIGHT_ENV}={raw[:40]!r} is not a positive number of megabytes")
    return int(value * 1024 * 1024)


class _ClientGone(Exception):
    """The client disconnected before its body arrived: nothing to answer."""


class _MethodNotAllowed(ProtocolError):
    status = 405


def create_app(
    state_dir: Path | None = None, *, max_loaded_versions: int = 3, config: ServerConfig | None = None
) -> ModelServer:
    """The server as an ASGI app; with `state_dir`, it serves again after start-up what it served before.

    `app.state.repository` is the ModelRepository behind it; `app.state.restored` (a threading.Event)
    is set once the restore is over.
    """
    return ModelServer(
        Path(state_dir) if state_dir is not None else None,
        max_loaded_versions=max_loaded_versions,
        config=config,
    )


def run_server(
    host: str = "127.0.0.1",
    port: int = 8555,
    state_dir: Path | None = None,
    *,
    config: ServerConfig | None = None,
    access_log: bool = False,
    shutdown_timeout_s: float = 10.0,
) -> None:
    """Serve until SIGTERM or SIGINT (the CLI's `mlspec serve`); stops within `shutdown_timeout_s`."""
    import uvicorn

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(Path(state_dir) if state_dir is not None else None, config=config)
    log.info("starting the mlspec model server on http://%s:%d", host, port)
    uvicorn.run(
        app,
        host=host,
        port=port,
        access_log=access_log,
        log_level="info",
        timeout_graceful_shutdown=shutdown_timeout_s,
        lifespan="on",
        # No "server: uvicorn" on every answer: it tells a client nothing it needs (and names the software),
        # and each header costs the server CPU per answer (x-mlspec-model-version is worth it).
        server_header=False,
    )
    # Daemon load threads stuck on storage never hold the exit; a stuck inference thread would
    # (the pool joins its threads at exit), so leave once the grace period is over regardless.
    log.info("mlspec model server stopped")
    _exit_soon(shutdown_timeout_s)


def _exit_soon(after_s: float) -> None:
    def leave() -> None:
        logging.shutdown()
        os._exit(0)

    timer = threading.Timer(after_s, leave)
    timer.daemon = True
    timer.start()

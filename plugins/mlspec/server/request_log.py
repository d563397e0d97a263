"""The model server's request log: a sampled copy of what each model was asked and answered, written to the
store as hourly Parquet parts (layout and columns: mlspec.request_logs), for `mlspec drift` (issue 16 §2).

What a caller can rely on:

* `offer` never blocks a request: it hashes the request id (sampling), checks the hour's cap and puts the
  request's arrays on a bounded queue; the arrays are turned into rows and written by one background thread.
  A full queue drops the request's rows and counts them
  (mlspec_request_log_dropped_total{reason="queue_full"});
* a part is written every MLSPEC_REQUEST_LOG_FLUSH_S seconds (default 60), at FLUSH_ROWS rows, when its hour
  is over, when logging of its model stops and at shutdown (`close`);
* parts go only below the server's storage roots (the log folder is checked when logging is configured, and a
  `file://` hour folder again once created, so a planted symlink cannot lead outside), `file://` written aside
  and renamed, `s3://` with the credentials the server reads with (boto3's standard environment);
* `max_mb_per_hour` caps the Parquet bytes this server writes per model and UTC hour: a part that would go
  over is cut to what fits, the rest of the hour's rows are dropped and counted (reason "cap");
* the settings of each model are kept in the state folder (request_logs.json) and restored at start-up.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import queue
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

from mlspec.errors import StoreError
from mlspec.request_logs import (
    DROP_REASONS,
    LOGGED_OUTPUTS,
    array_feature_names,
    feature_column,
    hour_folder,
    part_name,
)
from mlspec.server.errors import BadRequest, Forbidden
from mlspec.server.sources import OutsideRoots, StorageRoots, local_path, s3_client
from mlspec.storage import file as file_store
from mlspec.storage import store_kind
from mlspec.vocabulary import METRIC_REQUEST_LOG_DROPPED, METRIC_REQUEST_LOG_ROWS

log = logging.getLogger(__name__)

FLUSH_ENV = "MLSPEC_REQUEST_LOG_FLUSH_S"
DEFAULT_FLUSH_S = 60.0
FLUSH_ROWS = 10_000
# Requests waiting for the writer, and the bytes of their arrays; more are dropped and counted (queue_full).
QUEUE_REQUESTS = 10_000
QUEUE_BYTES = 128 << 20
QUEUE_PUT_TIMEOUT_S = 5.0  # a settings change waits this long at most for room to ask the writer for a flush
STATE_FILE = "request_logs.json"
SETTINGS = ("uri", "sample", "max_mb_per_hour")
CAP, QUEUE_FULL, WRITE_ERROR = DROP_REASONS
_SAMPLE_SPACE = float(1 << 64)
_STOP = object()


@dataclass(frozen=True)
class LogSettings:
    """How one model's requests are logged (the /logging parameters, checked)."""

    uri: str  # the log folder, below a storage root
    sample: float  # share of requests logged, (0, 1]
    max_mb_per_hour: float  # Parquet megabytes per UTC hour, > 0

    @property
    def cap_bytes(self) -> int:
        return int(self.max_mb_per_hour * 1024 * 1024)

    def logs(self, request_id: str) -> bool:
        """Whether the request is in the sample: a hash of its id, so a retry is logged as its first try was
        (salted apart from traffic routing's hash, so the sample is not one version's share of requests)."""
        if self.sample >= 1.0:
            return True
        digest = hashlib.blake2b(
            request_id.encode("utf-8", "surrogatepass"), digest_size=8, person=b"mlspec-log"
        )
        return int.from_bytes(digest.digest(), "big") / _SAMPLE_SPACE < self.sample


@dataclass
class _Offered:
    model: str
    version: str
    request_id: str
    at: float
    rows: int
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    input_schema: Mapping[str, Any] | None
    size: int  # bytes of its arrays, held while it waits


@dataclass
class _Part:
    """The rows of one model version and hour waiting to be written: per column, pieces of rows (an int: a gap
    of that many rows, where a request did not have the column)."""

    settings: LogSettings
    model: str
    version: str
    folder: str  # hour_folder(...)
    hour: int  # hours since the epoch
    started: float
    rows: int = 0
    columns: dict[str, list[Any]] = field(default_factory=dict)

    def add(self, chunk: dict[str, np.ndarray], rows: int) -> None:
        for name in self.columns.keys() - chunk.keys():
            self.columns[name].append(rows)
        for name, values in chunk.items():
            self.columns.setdefault(name, [self.rows] if self.rows else []).append(values)
        self.rows += rows


class RequestLogs:
    """Request logging of every model on one server (see the module's docstring)."""

    def __init__(self, roots: StorageRoots, state_dir: Path | None, registry: Any = None) -> None:
        from prometheus_client import CollectorRegistry, Counter

        self.roots = roots
        self.state_dir = state_dir
        self.flush_s = flush_seconds()
        registry = registry if registry is not None else CollectorRegistry()
        self._rows = Counter(
            METRIC_REQUEST_LOG_ROWS,
            "Rows written to the request log",
            ["model", "version"],
            registry=registry,
        )
        self._dropped = Counter(
            METRIC_REQUEST_LOG_DROPPED,
            "Rows not written to the request log (cap: over max_mb_per_hour; queue_full: the writer fell "
            "behind; write_error: the store refused the part)",
            ["model", "version", "reason"],
            registry=registry,
        )
        # Replaced whole on change: requests read it without a lock.
        self._settings: dict[str, LogSettings] = {}
        self._capped: dict[str, int] = {}  # model -> the hour (since the epoch) its cap was reached in
        self._written: dict[tuple[str, int], int] = {}  # (model, hour) -> Parquet bytes (writer thread)
        self._queue: queue.Queue = queue.Queue(QUEUE_REQUESTS)
        self._queued_bytes = 0  # of the requests on the queue (under _bytes_lock)
        self._bytes_lock = threading.Lock()
        self._lock = threading.Lock()  # configure and close
        self._thread: threading.Thread | None = None
        self._restore()

    # -- configuration ------------------------------------------------------------------------
    def configure(self, model: str, parameters: dict | None) -> dict:
        """Start (or change) logging of `model` with the /logging parameters, or stop it (None); the answer's
        `logging` is the settings now in force (None: off). BadRequest for parameters that are not settings,
        Forbidden for a folder outside the server's storage roots."""
        settings = None if parameters is None else self.checked(parameters)
        with self._lock:
            before = self._settings.get(model)
            changed = dict(self._settings)
            if settings is None:
                changed.pop(model, None)
            else:
                changed[model] = settings
            self._save(changed)
            self._settings = changed
            self._capped.pop(model, None)
            if before is not None and before != settings:
                try:  # what was buffered under the old settings is written now
                    self._queue.put((model,), timeout=QUEUE_PUT_TIMEOUT_S)
                except queue.Full:  # a writer that does not keep up must not hold the repository API
                    log.warning("request log of model %s: the writer is behind; rows buffered under the old "
                                "settings are written with the next part", model)
            if settings is not None:
                self._start()
        if settings is None:
            log.info("request logging of model %s stopped", model)
        else:
            log.info(
                "request logging of model %s: %s of requests to %s, at most %g MB per hour",
                model,
                f"{settings.sample:.0%}",
                settings.uri,
                settings.max_mb_per_hour,
            )
        return {"name": model, "logging": None if settings is None else asdict(settings)}

    def checked(self, parameters: Any) -> LogSettings:
        if not isinstance(parameters, dict):
            raise BadRequest(
                "'parameters' must be a JSON object {uri, sample, max_mb_per_hour}, or null to stop"
            )
        unknown = sorted(set(parameters) - set(SETTINGS))
        if unknown:
            raise BadRequest(
                f"unknown logging parameter {unknown[0][:80]!r}; the parameters are {', '.join(SETTINGS)}"
            )
        uri = parameters.get("uri")
        if not isinstance(uri, str) or not uri.strip() or len(uri) > 4096:
            raise BadRequest(
                "parameters.uri must be the store URI of the log folder (<storage.uri>/<model>/requests)"
            )
        try:
            uri = self.roots.check(uri.strip())
        except OutsideRoots as exc:
            raise Forbidden(str(exc)) from None
        except StoreError as exc:
            raise BadRequest(str(exc)) from None
        sample = _number(parameters.get("sample", 1.0), "sample")
        if not 0 < sample <= 1:
            raise BadRequest(
                f"parameters.sample must be in (0, 1], the share of requests logged; got {sample:g}"
            )
        cap = _number(parameters.get("max_mb_per_hour", 100.0), "max_mb_per_hour")
        if not 0 < cap < math.inf:
            raise BadRequest(
                f"parameters.max_mb_per_hour must be a positive number of megabytes; got {cap:g}"
            )
        return LogSettings(uri, sample, cap)

    def settings(self, model: str) -> LogSettings | None:
        return self._settings.get(model)

    # -- the request path -----------------------------------------------------------------------
    def wants(self, model: str) -> bool:
        """Whether `model`'s requests are logged at all (a dict lookup: called on every request)."""
        return model in self._settings

    def offer(
        self,
        model: str,
        version: str,
        request_id: str,
        inputs: dict[str, np.ndarray],
        outputs: dict[str, np.ndarray],
        input_schema: Mapping[str, Any] | None = None,
    ) -> None:
        """Log a request answered by `version` if it is in the sample; never blocks. `inputs` are the model's
        inputs as it ran them, `outputs` what it answered; `input_schema` the version's published input schema
        (its array features' names)."""
        settings = self._settings.get(model)
        if settings is None or not settings.logs(request_id):
            return
        at = time.time()
        rows = _rows(inputs)
        if self._capped.get(model) == int(at // 3600):
            self._drop(model, version, CAP, rows)
            return
        size = sum(array.nbytes for arrays in (inputs, outputs) for array in arrays.values())
        offered = _Offered(model, version, request_id, at, rows, inputs, outputs, input_schema, size)
        with self._bytes_lock:
            full = self._queued_bytes + size > QUEUE_BYTES
            if not full:
                try:
                    self._queue.put_nowait(offered)
                    self._queued_bytes += size
                except queue.Full:
                    full = True
        if full:
            self._drop(model, version, QUEUE_FULL, rows)

    def close(self, timeout_s: float = 30.0) -> None:
        """Write what is buffered and stop the writer (at shutdown)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        try:
            self._queue.put(_STOP, timeout=timeout_s)
        except queue.Full:  # storage that does not answer must not hold the shutdown
            log.warning("the request log writer is stuck; its buffered rows are lost")
            return
        thread.join(timeout_s)
        if thread.is_alive():
            log.warning(
                "the request log writer did not finish within %gs; its last rows may be lost", timeout_s
            )

    # -- the writer thread ----------------------------------------------------------------------
    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._write_loop, name="mlspec-request-log", daemon=True)
            self._thread.start()

    def _write_loop(self) -> None:
        parts: dict[tuple[str, str, str], _Part] = {}
        while True:
            due = min((part.started + self.flush_s for part in parts.values()), default=None)
            try:
                item = self._queue.get(timeout=None if due is None else max(0.01, due - time.time()))
            except queue.Empty:
                item = None
            if item is _STOP:
                for key in list(parts):
                    self._write(parts.pop(key))
                return
            if isinstance(item, tuple):  # (model,): its settings changed
                for key in [key for key in parts if key[0] == item[0]]:
                    self._write(parts.pop(key))
            elif item is not None:
                with self._bytes_lock:
                    self._queued_bytes -= item.size
                self._add(parts, item)
            now = time.time()
            hour = int(now // 3600)
            for key in [
                k
                for k, p in parts.items()
                if p.rows >= FLUSH_ROWS or p.hour < hour or now >= p.started + self.flush_s
            ]:
                self._write(parts.pop(key))

    def _add(self, parts: dict[tuple[str, str, str], _Part], offered: _Offered) -> None:
        settings = self._settings.get(offered.model)
        if settings is None:
            return  # stopped after it was offered
        try:
            chunk = _columns(offered)
        except Exception as exc:  # never let one odd request stop the writer
            log.warning(
                "request %s of model %s: not logged (%s: %s)",
                offered.request_id[:80],
                offered.model,
                type(exc).__name__,
                exc,
            )
            self._drop(offered.model, offered.version, WRITE_ERROR, offered.rows)
            return
        at = datetime.fromtimestamp(offered.at, UTC)
        folder = hour_folder(offered.version, at)
        key = (offered.model, offered.version, folder)
        part = parts.get(key)
        if part is None:
            part = parts[key] = _Part(
                settings, offered.model, offered.version, folder, int(offered.at // 3600), time.time()
            )
        part.add(chunk, offered.rows)

    def _write(self, part: _Part) -> None:
        if not part.rows:
            return
        try:
            table = _table(part)
            data, rows = self._within_cap(part, table)
            if rows:
                name = part_name(datetime.now(UTC), secrets.token_hex(4))
                self._put(part.settings, f"{part.folder}/{name}", data)
                hour = (part.model, part.hour)
                self._written[hour] = self._written.get(hour, 0) + len(data)
        except Exception as exc:  # the store refused, or the rows would not encode: counted, logged, goes on
            log.warning(
                "request log of model %s version %s: %d rows not written to %s (%s: %s); check the store and "
                "that the server may write there (boto3's standard environment for s3://)",
                part.model,
                part.version,
                part.rows,
                part.settings.uri,
                type(exc).__name__,
                exc,
            )
            self._drop(part.model, part.version, WRITE_ERROR, part.rows)
            return
        self._rows.labels(part.model, part.version).inc(rows)
        if rows < part.rows:
            self._drop(part.model, part.version, CAP, part.rows - rows)

    def _within_cap(self, part: _Part, table: Any) -> tuple[bytes, int]:
        """The part's Parquet bytes and rows, cut to what the hour's cap leaves (0 rows: nothing fits)."""
        # Older hours are over: forget them.
        self._written = {key: size for key, size in self._written.items() if key[1] >= part.hour - 1}
        room = part.settings.cap_bytes - self._written.get((part.model, part.hour), 0)
        data = _parquet(table)
        rows = table.num_rows
        while rows and len(data) > room:
            rows = int(rows * max(room, 0) / len(data) * 0.9)  # Parquet bytes grow about linearly with rows
            data = _parquet(table.slice(0, rows)) if rows else b""
        if rows < table.num_rows:
            self._capped[part.model] = part.hour
            log.warning(
                "request log of model %s: the cap of %g MB for hour %s is reached; its further rows are "
                "dropped",
                part.model,
                part.settings.max_mb_per_hour,
                part.folder.split("/", 1)[1],
            )
        return data, rows

    def _put(self, settings: LogSettings, relative: str, data: bytes) -> None:
        uri = f"{settings.uri}/{relative}"
        folder_uri = uri.rsplit("/", 1)[0]
        if store_kind(uri) is file_store.KIND:
            root = local_path(settings.uri)
            self.roots.check(folder_uri)  # before a folder is made: nothing is created outside the roots
            local_path(folder_uri).mkdir(parents=True, exist_ok=True)
            # Resolves symlinks: a link planted below the log folder cannot lead outside the roots.
            self.roots.check(folder_uri)
            file_store.FileStore(settings.uri, root).write_bytes(relative, data)
            return
        parsed = urlparse(uri)
        s3_client().put_object(Bucket=parsed.netloc, Key=unquote(parsed.path).lstrip("/"), Body=data)

    # -- counting and state ------------------------------------------------------------------------
    def _drop(self, model: str, version: str, reason: str, rows: int) -> None:
        self._dropped.labels(model, version, reason).inc(rows)

    def _state_path(self) -> Path | None:
        return self.state_dir / STATE_FILE if self.state_dir is not None else None

    def _save(self, settings: dict[str, LogSettings]) -> None:
        path = self._state_path()
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        tmp.write_text(json.dumps({model: asdict(each) for model, each in settings.items()}, indent=2))
        os.replace(tmp, path)

    def _restore(self) -> None:
        path = self._state_path()
        if path is None or not path.exists():
            return
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("cannot read %s (%s): request logging starts off for every model", path, exc)
            return
        restored = {}
        for model, parameters in (saved if isinstance(saved, dict) else {}).items():
            try:
                restored[model] = self.checked(parameters)
            except (BadRequest, Forbidden) as exc:
                log.warning("request logging of model %s is not restored: %s", model, exc)
        self._settings = restored
        if restored:
            self._start()


def flush_seconds() -> float:
    """MLSPEC_REQUEST_LOG_FLUSH_S, else DEFAULT_FLUSH_S."""
    raw = os.environ.get(FLUSH_ENV, "").strip()
    try:
        value = float(raw) if raw else DEFAULT_FLUSH_S
    except ValueError:
        value = -1.0
    if not 0 < value < math.inf:
        log.warning(
            "%s=%r is not a positive number of seconds; using %g", FLUSH_ENV, raw[:40], DEFAULT_FLUSH_S
        )
        return DEFAULT_FLUSH_S
    return value


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"parameters.{name} must be a number, got {str(value)[:40]!r}")
    return float(value)


def _rows(inputs: Mapping[str, np.ndarray]) -> int:
    for array in inputs.values():
        return int(array.shape[0]) if array.ndim else 1
    return 0


def _columns(offered: _Offered) -> dict[str, np.ndarray]:
    """One request as the log's columns (mlspec.request_logs' layout)."""
    rows = offered.rows
    chunk: dict[str, np.ndarray] = {
        "ts": np.full(rows, int(offered.at * 1000), dtype="datetime64[ms]"),
        "request_id": np.full(rows, offered.request_id, dtype=object),
        "version": np.full(rows, offered.version, dtype=object),
        "row": np.arange(rows, dtype=np.int32),
    }
    schema = offered.input_schema or {}
    if isinstance(schema.get("columns"), list):  # a table model: one input per column
        for name, values in offered.inputs.items():
            chunk[feature_column(name)] = _flat(values.reshape(rows, -1)[:, 0])
    else:
        for name, values in offered.inputs.items():
            flat = values.reshape(rows, -1)
            names = array_feature_names(schema, name, flat.shape[1], len(offered.inputs))
            if names:
                numbers = flat.astype(np.float64)
                chunk.update((feature_column(n), numbers[:, i]) for i, n in enumerate(names))
    for name in LOGGED_OUTPUTS:
        values = offered.outputs.get(name)
        if values is not None and values.size == rows:
            chunk[name] = _flat(values.reshape(rows))
    return chunk


def _flat(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind in "OSU":  # text: str, never bytes
        return np.array(
            [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values], dtype=object
        )
    return values


def _table(part: _Part) -> Any:
    import pyarrow as pa

    arrays = {}
    for name, pieces in part.columns.items():
        present = [pa.array(piece) for piece in pieces if not isinstance(piece, int)]
        kind = pa.timestamp("ms", tz="UTC") if name == "ts" else present[0].type
        present = [piece.cast(kind) for piece in present]
        chunks, found = [], iter(present)
        for piece in pieces:
            chunks.append(pa.nulls(piece, kind) if isinstance(piece, int) else next(found))
        arrays[name] = pa.chunked_array(chunks, kind)
    return pa.table(arrays)


def _parquet(table: Any) -> bytes:
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()

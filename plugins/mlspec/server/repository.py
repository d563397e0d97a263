"""The model repository of the local server: which versions are loaded, which one is served.

What a caller can rely on:

* one onnxruntime session per loaded version; loading a version that is already loaded only makes
  it the served (default) version again, which is how rollback stays fast. A loaded version is
  never replaced by another folder under the same number: that load answers 409;
* a new version becomes the served one only after its files were verified against manifest.json
  (sha256, streamed, with a size cap), its session was built, its signature matched the session
  and, with a state folder, the new state was written to `state.json` (atomically). Until then the
  previous version keeps answering, and a failed load, or a state that cannot be written, leaves
  it serving;
* loads only read below the configured storage roots (`StorageRoots`);
* one load or unload per model at a time: a second one while one is in flight answers 409;
  inference never waits for them;
* a model's traffic (weights per version and a shadow, mlspec.server.traffic) routes its unversioned
  requests while set; loading a version as served clears it. Versions the traffic holds are never
  evicted, and unloading one answers 409;
* with a state folder, `{model: {served_version, versions: {version: storage_uri}, traffic?}}` is written
  to `state.json` after every change. At start-up `read_state()` sets aside a file it cannot read
  (logging where it went) and the app restores each version. A version that fails its checks then
  stays recorded and reported (UNAVAILABLE, with the reason); if it was the served one, the model
  answers 503 saying why, instead of another version answering in its place.

Methods block (file and S3 reads, session building, state writes): the app calls them from
worker threads.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlspec.errors import StoreError
from mlspec.inference_protocol import ORT_TYPES
from mlspec.server.columns import TableInputs, table_inputs
from mlspec.server.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    NotReady,
    ServerFull,
    StateNotSaved,
)
from mlspec.server.sources import SMALL_FILE_LIMIT, OutsideRoots, StorageRoots, VersionSource
from mlspec.server.tensors import TensorSpec
from mlspec.server.traffic import Route, Traffic
from mlspec.storage.base import MANIFEST, sha256_hex

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
SIGNATURE_FILE = "signature.json"
# Published beside model.onnx since mlspec 0.2; older versions lack them, so they are optional.
SCHEMA_FILES = {"input_schema": "input_schema.json", "output_schema": "output_schema.json"}
STATE_FILE = "state.json"
PLATFORM = "onnxruntime"
DEFAULT_MAX_MODEL_BYTES = 1 << 30


FORGET = object()  # what a change passed to ModelRepository._commit returns to forget the model


class LoadFailed(BadRequest):
    """A version could not be loaded; the message says why and what stays served."""


@dataclass
class LoadedVersion:
    """One loaded model version with its onnxruntime session (thread-safe for concurrent `run`)."""

    name: str
    version: str
    storage_uri: str
    session: Any  # onnxruntime.InferenceSession
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    signature: dict = field(default_factory=dict)
    schemas: dict = field(default_factory=dict)  # input_schema / output_schema, when published
    output_names: list[str] = field(default_factory=list)
    # A table model's column inputs (which accept a gap, and what fills it); None for one array input.
    table: TableInputs | None = None
    # Exponential average of the seconds one small request takes end to end (decode, run, encode);
    # the app answers requests inline on the event loop while it stays tiny.
    cost_s: float = -1.0
    # The headers of a JSON answer (content type and x-mlspec-model-version), built once.
    json_headers: list = field(default_factory=list)
    # The app's counters for this version (mlspec.server.metrics.VersionStats), attached at first use.
    stats: Any = None

    def __post_init__(self) -> None:
        self.output_names = [spec.name for spec in self.outputs]
        self.json_headers = [
            (b"content-type", b"application/json"),
            (b"x-mlspec-model-version", self.version.encode("utf-8")),
        ]
        datatypes = {spec.name: spec.datatype for spec in self.inputs}
        self.table = table_inputs(self.schemas.get("input_schema"), datatypes)

    def run(self, feeds: dict, output_names: list[str]) -> dict:
        results = self.session.run(output_names, feeds)
        return dict(zip(output_names, results, strict=True))


@dataclass
class ModelEntry:
    name: str
    versions: dict[str, LoadedVersion] = field(default_factory=dict)
    served: str | None = None
    loading: set[str] = field(default_factory=set)
    failures: dict[str, str] = field(default_factory=dict)  # version -> why its last load failed
    serve_order: list[str] = field(default_factory=list)  # versions by when they last became served
    # Versions state.json holds that are not loaded (not restored yet, or failed to restore): kept
    # in the state and reported until they load or are unloaded.
    recorded: dict[str, str] = field(default_factory=dict)
    # The served version state.json names while it is not loaded: nothing else serves in its place.
    wanted_served: str | None = None
    # The traffic split and shadow (None: the served version answers everything), bound to the loaded
    # versions in `route`; `wanted_traffic` is what state.json holds until the restore binds it.
    traffic: Traffic | None = None
    route: Route | None = None
    wanted_traffic: dict | None = None

    def is_empty(self) -> bool:
        return not (self.versions or self.loading or self.failures or self.recorded)

    def copy(self) -> ModelEntry:
        return replace(
            self,
            versions=dict(self.versions),
            loading=set(self.loading),
            failures=dict(self.failures),
            serve_order=list(self.serve_order),
            recorded=dict(self.recorded),
        )

    def make_served(self, version: str) -> None:
        self.served = version
        self.wanted_served = None
        self.traffic = self.route = None  # the served version answers everything again
        if version in self.serve_order:
            self.serve_order.remove(version)
        self.serve_order.append(version)


def _version_key(version: str) -> tuple[int, int | str]:
    return (0, int(version)) if version.isdigit() else (1, version)


def _tensor_specs(ort_args: list, where: str) -> list[TensorSpec]:
    specs = []
    for arg in ort_args:
        datatype = ORT_TYPES.get(arg.type)
        if datatype is None:
            raise LoadFailed(f"{where}: tensor {arg.name!r} has type {arg.type}, which unsupported here")
        # Symbolic or unknown dimensions are variable: the protocol spells them -1.
        shape = [d if isinstance(d, int) and d >= 0 else -1 for d in (arg.shape or [])]
        specs.append(TensorSpec(arg.name, datatype, shape))
    return specs


def _check_signature(signature: dict, kind: str, actual: list[TensorSpec], where: str) -> None:
    declared = signature.get(kind)
    if not isinstance(declared, list) or not all(isinstance(t, dict) for t in declared):
        raise LoadFailed(f"{where}: {SIGNATURE_FILE} has no '{kind}' list")
    by_name = {spec.name: spec for spec in actual}
    if sorted(str(t.get("name")) for t in declared) != sorted(by_name):
        raise LoadFailed(
            f"{where}: {SIGNATURE_FILE} declares {kind} {[t.get('name') for t in declared]} but "
            f"model.onnx has {sorted(by_name)}"
        )
    for tensor in declared:
        spec = by_name[tensor["name"]]
        if tensor.get("datatype") != spec.datatype:
            raise LoadFailed(
                f"{where}: {kind[:-1]} {spec.name!r} is {spec.datatype} in model.onnx but "
                f"{tensor.get('datatype')} in {SIGNATURE_FILE}"
            )
        shape = tensor.get("shape")
        if shape is not None and (
            not isinstance(shape, list)
            or len(shape) != len(spec.shape)
            or any(-1 not in (a, b) and a != b for a, b in zip(shape, spec.shape, strict=True))
        ):
            raise LoadFailed(
                f"{where}: {kind[:-1]} {spec.name!r} has shape {spec.shape} in model.onnx but {shape} in "
                f"{SIGNATURE_FILE}"
            )


def session_options(threads: int = 1) -> Any:
    """One intra-op and one inter-op thread, no spinning: a spinning pool busy-waits on every other
    core, even under taskset, and loses throughput to the HTTP side (see PERFORMANCE.md)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def _json_file(source: VersionSource, file_name: str, where: str, data: bytes | None = None) -> Any:
    try:
        raw = source.read(file_name) if data is None else data
        return json.loads(raw)
    except StoreError as exc:
        raise LoadFailed(f"cannot load {where}: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise LoadFailed(f"cannot load {where}: {file_name} is not valid JSON: {exc}") from None


def build_version(
    name: str,
    version: str,
    storage_uri: str,
    *,
    max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES,
    ort_threads: int = 1,
) -> LoadedVersion:
    """Read, verify and open one version folder; LoadFailed with the reason when anything is wrong.

    model.onnx is streamed into a private temporary file and hashed on the way (never held in
    memory whole); onnxruntime opens that verified copy, so what runs is what was hashed.
    """
    import onnxruntime

    where = f"model {name} version {version} at {storage_uri}"
    try:
        source = VersionSource(storage_uri)
        manifest_bytes = source.read(MANIFEST)
    except StoreError as exc:
        raise LoadFailed(f"cannot load {where}: {exc} (is the version published?)") from None
    manifest = _json_file(source, MANIFEST, where, manifest_bytes)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise LoadFailed(f"cannot load {where}: {MANIFEST} has no 'files' table")
    if "version" in manifest and str(manifest["version"]) != version:
        raise LoadFailed(f"cannot load {where}: its {MANIFEST} is for version {manifest['version']}")
    if manifest.get("name") not in (None, name):
        raise LoadFailed(f"cannot load {where}: its {MANIFEST} is for model {str(manifest['name'])[:80]!r}")
    files = manifest["files"]

    def expected_hash(file_name: str) -> str:
        expected = files.get(file_name)
        if not expected or not isinstance(expected, str):
            raise LoadFailed(f"cannot load {where}: {MANIFEST} lists no sha256 for {file_name}")
        return expected

    def check_hash(file_name: str, actual: str) -> None:
        expected = expected_hash(file_name)
        if actual != expected:
            raise LoadFailed(
                f"cannot load {where}: {file_name} has sha256 {actual[:12]}..., the manifest says "
                f"{expected[:12]}...; the folder was changed after publishing; publish a new version"
            )

    contents: dict[str, bytes] = {}
    optional = [f for f in SCHEMA_FILES.values() if f in files]
    for file_name in (SIGNATURE_FILE, *optional):
        expected_hash(file_name)
        try:
            data = source.read(file_name, SMALL_FILE_LIMIT)
        except StoreError as exc:
            raise LoadFailed(f"cannot load {where}: {exc}") from None
        check_hash(file_name, sha256_hex(data))
        contents[file_name] = data
    signature = _json_file(source, SIGNATURE_FILE, where, contents[SIGNATURE_FILE])
    if not isinstance(signature, dict):
        raise LoadFailed(f"cannot load {where}: {SIGNATURE_FILE} is not a JSON object")
    schemas = {}
    for key, file_name in SCHEMA_FILES.items():
        if file_name in contents:
            schemas[key] = _json_file(source, file_name, where, contents[file_name])

    expected_hash(MODEL_FILE)
    with tempfile.TemporaryDirectory(prefix="mlspec-load-") as scratch:
        model_path = Path(scratch) / MODEL_FILE
        try:
            actual = source.copy_hashed(MODEL_FILE, model_path, max_model_bytes)
        except StoreError as exc:
            raise LoadFailed(f"cannot load {where}: {exc}") from None
        check_hash(MODEL_FILE, actual)
        try:
            session = onnxruntime.InferenceSession(
                str(model_path), sess_options=session_options(ort_threads), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises several private exception types for a bad model
            raise LoadFailed(f"cannot load {where}: onnxruntime refused model.onnx: {exc}") from None
    inputs = _tensor_specs(session.get_inputs(), where)
    outputs = _tensor_specs(session.get_outputs(), where)
    _check_signature(signature, "inputs", inputs, where)
    _check_signature(signature, "outputs", outputs, where)
    return LoadedVersion(name, version, storage_uri, session, inputs, outputs, signature, schemas)


class StateFileError(Exception):
    pass


def _validate_state(state: Any) -> dict[str, dict]:
    if not isinstance(state, dict):
        raise StateFileError("it is not a JSON object")
    for name, model in state.items():
        if not isinstance(model, dict):
            raise StateFileError(f"model {name!r} is not an object")
        versions = model.get("versions")
        if not isinstance(versions, dict) or not all(
            isinstance(v, str) and isinstance(u, str) for v, u in versions.items()
        ):
            raise StateFileError(f"model {name!r} has no 'versions' table of version -> storage URI")
        served = model.get("served_version")
        if served is not None and not isinstance(served, str):
            raise StateFileError(f"model {name!r}: served_version is not a string")
        traffic = model.get("traffic")
        if traffic is not None and not isinstance(traffic, dict):
            raise StateFileError(f"model {name!r}: traffic is not an object")
    return state


class ModelRepository:
    """Loaded models and their served versions; safe to use from many threads at once."""

    def __init__(
        self,
        state_dir: Path | None = None,
        *,
        max_loaded_versions: int = 3,
        max_models: int = 32,
        roots: StorageRoots | None = None,
        max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES,
        ort_threads: int = 1,
    ) -> None:
        self.state_dir = Path(state_dir) if state_dir is not None else None
        # Keep the served version and the last few served before it (rollback targets); older ones
        # are unloaded so a long-running server does not grow with every deployment.
        self.max_loaded_versions = max(1, max_loaded_versions)
        self.max_models = max(1, max_models)
        self.roots = roots if roots is not None else StorageRoots()
        self.max_model_bytes = max_model_bytes
        self.ort_threads = ort_threads
        self._models: dict[str, ModelEntry] = {}
        self._lock = threading.RLock()  # guards _models; held only for short bookkeeping
        self._state_lock = threading.Lock()  # one state write (and the change it records) at a time
        self._model_locks: dict[str, threading.Lock] = {}  # one load/unload at a time per model
        self._busy: dict[str, tuple[str, float]] = {}  # model -> (what, since) while its lock is held
        self._restoring = False

    # -- lookups (fast, used by every request) ------------------------------------------------
    def _entry(self, name: str) -> ModelEntry:
        entry = self._models.get(name)
        if entry is None or entry.is_empty():
            raise NotFound(f"model {name!r} is not loaded on this server")
        return entry

    def get(self, name: str, version: str | None = None) -> LoadedVersion:
        """The served version (or the given one); NotFound if unknown, NotReady if known but not ready."""
        with self._lock:
            entry = self._models.get(name)
            if entry is not None:
                if version is None:
                    if entry.served is not None:
                        return entry.versions[entry.served]
                elif version in entry.versions:
                    return entry.versions[version]
            entry = self._entry(name)
            if version is None:
                raise NotReady(f"model {name!r} has no ready version: {self._why_not_ready(entry)}")
            if version in entry.loading or (self._restoring and version in entry.recorded):
                raise NotReady(f"model {name!r} version {version} is still loading")
            if version in entry.failures:
                raise NotReady(f"model {name!r} version {version} is not ready: {entry.failures[version]}")
            raise NotFound(
                f"model {name!r} has no version {version!r}; loaded versions: {self._sorted(entry.versions)}"
            )

    def route(self, name: str) -> LoadedVersion | Route:
        """What an unversioned request of `name` resolves to: the model's Route while a split or shadow is
        set, else the served version; NotFound / NotReady like `get`."""
        with self._lock:
            entry = self._models.get(name)
            if entry is not None:
                if entry.route is not None:
                    return entry.route
                if entry.served is not None:
                    return entry.versions[entry.served]
        return self.get(name)

    def traffic(self, name: str) -> dict:
        """The model's traffic as the API shows it: {"weights", "shadow"}; {served: 100} without a split."""
        with self._lock:
            entry = self._entry(name)
            return self._traffic_json(entry)

    @staticmethod
    def _traffic_json(entry: ModelEntry) -> dict:
        if entry.traffic is not None:
            return entry.traffic.to_json()
        return {"weights": {entry.served: 100} if entry.served is not None else {}, "shadow": None}

    @staticmethod
    def _shares(entry: ModelEntry, version: str) -> tuple[int, int]:
        """(traffic %, shadow %) of one version: its split's, or without one all for the served version."""
        if entry.traffic is not None:
            return entry.traffic.percent_of(version), entry.traffic.shadow_percent_of(version)
        return (100 if version == entry.served else 0), 0

    def traffic_percents(self) -> list[tuple[str, str, int, int]]:
        """(model, version, traffic %, shadow %) of every loaded version, for the /metrics gauges."""
        rows = []
        with self._lock:
            for name, entry in sorted(self._models.items()):
                for version in entry.versions:
                    rows.append((name, version, *self._shares(entry, version)))
        return rows

    def shadow_pairs(self) -> set[tuple[str, str, str]]:
        """(model, shadow version, primary version) pairs that do or may soon get shadow copies: the traffic's
        shadow with each version that answers, and each loaded version with the served one both ways (a
        rollout's candidate shadows production, then production shadows the candidate at 100 %)."""
        pairs = set()
        with self._lock:
            for name, entry in self._models.items():
                if entry.served is not None:
                    for version in entry.versions:
                        if version != entry.served:
                            pairs |= {(name, version, entry.served), (name, entry.served, version)}
                if entry.traffic is not None and entry.traffic.shadow is not None:
                    shadow = entry.traffic.shadow.version
                    answering = [v for v, w in entry.traffic.weights.items() if w > 0 and v != shadow]
                    pairs |= {(name, shadow, v) for v in answering}
        return pairs

    def loaded_versions(self) -> list[LoadedVersion]:
        with self._lock:
            return [loaded for entry in self._models.values() for loaded in entry.versions.values()]

    def served_version(self, name: str) -> str | None:
        with self._lock:
            return self._entry(name).served

    def versions(self, name: str) -> list[str]:
        with self._lock:
            return self._sorted(self._entry(name).versions)

    def is_ready(self) -> tuple[bool, str]:
        """Whether the server is ready: up, and done restoring what it served before its restart.

        Readiness of each model is its own (`get`): one model that cannot answer, or a failed load,
        does not make the whole server unready.
        """
        if self._restoring:
            return False, "the server is still loading the models it served before its restart"
        return True, ""

    def index(self, ready_only: bool = False) -> list[dict]:
        """Every known (model, version) with its state: READY, LOADING or UNAVAILABLE (with the reason)."""
        rows = []
        with self._lock:
            for name in sorted(self._models):
                entry = self._models[name]
                known = set(entry.versions) | entry.loading | set(entry.failures) | set(entry.recorded)
                for version in self._sorted(known):
                    if version in entry.versions:
                        row = {"name": name, "version": version, "state": "READY", "reason": ""}
                        row["served"] = version == entry.served
                        row["storage_uri"] = entry.versions[version].storage_uri
                    elif version in entry.loading or (self._restoring and version not in entry.failures):
                        row = {"name": name, "version": version, "state": "LOADING", "reason": ""}
                    else:
                        reason = entry.failures.get(version, "not loaded")
                        if version == entry.wanted_served:
                            reason = f"served before the restart, not served now: {reason}"
                        row = {"name": name, "version": version, "state": "UNAVAILABLE", "reason": reason}
                    if version in entry.recorded:
                        row["storage_uri"] = entry.recorded[version]
                    row["traffic_percent"], row["shadow_percent"] = self._shares(entry, version)
                    if row["state"] == "READY" or not ready_only:
                        rows.append(row)
        return rows

    @staticmethod
    def _sorted(versions: Any) -> list[str]:
        return sorted(versions, key=_version_key)

    @staticmethod
    def _why_not_ready(entry: ModelEntry) -> str:
        if entry.wanted_served is not None:
            reason = entry.failures.get(entry.wanted_served, "it is still loading")
            return (
                f"version {entry.wanted_served}, which this server served before its restart, is not "
                f"loaded ({reason}); no other version serves in its place: fix it and load it again, or "
                "load another version explicitly"
            )
        if entry.loading:
            return f"version {', '.join(sorted(entry.loading, key=_version_key))} is still loading"
        if entry.failures:
            version = sorted(entry.failures, key=_version_key)[-1]
            return f"loading version {version} failed: {entry.failures[version]}"
        return "nothing is served"

    # -- changes (slow, serialized per model) -----------------------------------------------------
    def check_storage_uri(self, storage_uri: str) -> str:
        """The URI, normalized, when loads may read it; Forbidden (403) before anything is opened."""
        try:
            return self.roots.check(storage_uri)
        except OutsideRoots as exc:
            raise Forbidden(str(exc)) from None
        except StoreError as exc:
            raise BadRequest(str(exc)) from None

    def busy(self, name: str) -> str | None:
        """What is in flight for model `name` (a load or an unload), or None."""
        with self._lock:
            busy = self._busy.get(name)
        if busy is None:
            return None
        what, since = busy
        return f"{what} of model {name!r} has been in progress for {time.monotonic() - since:.0f}s"

    def _claim(self, name: str, what: str) -> threading.Lock:
        with self._lock:
            lock = self._model_locks.setdefault(name, threading.Lock())
        if not lock.acquire(blocking=False):
            raise Conflict(
                f"{self.busy(name) or f'a change of model {name!r} is in progress'}; try again later"
            )
        with self._lock:
            self._busy[name] = (what, time.monotonic())
        return lock

    def _release(self, name: str, lock: threading.Lock) -> None:
        with self._lock:
            self._busy.pop(name, None)
        lock.release()

    def load(
        self,
        name: str,
        version: str | None,
        storage_uri: str | None,
        *,
        cancelled: threading.Event | None = None,
        make_served: bool = True,
    ) -> LoadedVersion:
        """Load `version` from `storage_uri` (or re-serve it if loaded) and make it the served version.

        `version` may be left out when storage_uri is given: the manifest's version is used.
        Raises LoadFailed (400) with the reason, Forbidden (403) for a URI outside the roots,
        Conflict (409) while another change of the model is in flight, StateNotSaved (500) when the
        state cannot be written; whatever served before keeps serving. `cancelled` set (the client
        was told the load timed out) discards the result.
        """
        storage_uri = self.check_storage_uri(storage_uri) if storage_uri else None
        lock = self._claim(name, f"a load of version {version or '(from the manifest)'}")
        try:
            return self._load_claimed(name, version, storage_uri, cancelled, make_served)
        finally:
            self._release(name, lock)

    def _load_claimed(
        self,
        name: str,
        version: str | None,
        storage_uri: str | None,
        cancelled: threading.Event | None,
        make_served: bool,
    ) -> LoadedVersion:
        if version is None:
            if storage_uri is None:
                raise BadRequest(f"loading model {name!r} needs parameters.storage_uri or parameters.version")
            version = self._manifest_version(name, storage_uri)
        with self._lock:
            entry = self._models.get(name)
            current = entry.versions.get(version) if entry else None
            if current is None and storage_uri is None and entry is not None:
                storage_uri = entry.recorded.get(version)  # restore failed earlier: retry from its folder
        if current is not None:
            if storage_uri not in (None, current.storage_uri):
                raise Conflict(
                    f"model {name!r} version {version} is already loaded from {current.storage_uri}; a "
                    "published version never changes: unload it first to load another folder as "
                    f"version {version}"
                )
            if make_served:
                previous = self.served_version(name)
                self._commit(name, lambda e: e.make_served(version))
                log.info("model %s: serving version %s again (was %s)", name, version, previous)
            return current
        if storage_uri is None:
            raise BadRequest(
                f"model {name!r} version {version} is not loaded; give parameters.storage_uri to load it"
            )
        with self._lock:
            if name not in self._models:
                loaded_models = sum(1 for e in self._models.values() if e.versions or e.recorded)
                if loaded_models >= self.max_models:
                    raise ServerFull(
                        f"the server already holds {loaded_models} models, its limit (--max-models); "
                        f"unload one before loading model {name!r}"
                    )
            entry = self._models.setdefault(name, ModelEntry(name))
            entry.loading.add(version)
            entry.failures.pop(version, None)
        log.info("model %s: loading version %s from %s", name, version, storage_uri)
        started = time.perf_counter()
        try:
            loaded = build_version(
                name, version, storage_uri, max_model_bytes=self.max_model_bytes, ort_threads=self.ort_threads
            )
            if cancelled is not None and cancelled.is_set():
                raise LoadFailed(
                    f"cannot load model {name} version {version} at {storage_uri}: it took longer than the "
                    "load timeout, so its result was discarded"
                )
        except LoadFailed as exc:
            still = self._fail(name, version, str(exc))
            log.error("model %s: %s; %s", name, exc, still)
            raise LoadFailed(f"{exc}; {still}") from None
        except BaseException:
            self._fail(name, version, None)
            raise

        def apply(entry: ModelEntry) -> None:
            entry.loading.discard(version)
            entry.recorded.pop(version, None)
            entry.versions[version] = loaded
            if make_served or entry.wanted_served == version:
                entry.make_served(version)
            elif version not in entry.serve_order:
                entry.serve_order.insert(0, version)
            self._evict(entry, keep=version)

        previous = self.served_version(name) if self._models.get(name) else None
        try:
            self._commit(name, apply)
        except StateNotSaved as exc:
            still = self._fail(name, version, str(exc))
            raise StateNotSaved(f"{exc}; {still}") from None
        log.info(
            "model %s: version %s loaded in %.2fs%s",
            name,
            version,
            time.perf_counter() - started,
            f" and now served (was {previous})" if make_served else "",
        )
        return loaded

    def _fail(self, name: str, version: str, reason: str | None) -> str:
        """Record a failed load (reason None: forget it); returns what serves now, in words."""
        with self._lock:
            entry = self._models.get(name)
            if entry is None:
                return "nothing is served"
            entry.loading.discard(version)
            if reason is not None:
                entry.failures[version] = reason
            if entry.is_empty():
                del self._models[name]
            return f"version {entry.served} keeps serving" if entry.served else "nothing is served"

    def _manifest_version(self, name: str, storage_uri: str) -> str:
        try:
            manifest = json.loads(VersionSource(storage_uri).read(MANIFEST))
            return str(manifest["version"])
        except (StoreError, ValueError, KeyError, TypeError) as exc:
            raise LoadFailed(
                f"cannot load model {name} from {storage_uri}: no version given and {MANIFEST} has none "
                f"({exc})"
            ) from None

    def _evict(self, entry: ModelEntry, keep: str | None = None) -> None:
        held = entry.traffic.versions() if entry.traffic is not None else set()
        held |= {entry.served, keep}
        while len(entry.versions) > self.max_loaded_versions:
            oldest = next((v for v in entry.serve_order if v in entry.versions and v not in held), None)
            if oldest is None:  # every loaded version serves, is in the traffic or was just loaded
                break
            del entry.versions[oldest]
            entry.serve_order.remove(oldest)
            log.info(
                "model %s: unloaded version %s to keep at most %d versions loaded",
                entry.name,
                oldest,
                self.max_loaded_versions,
            )

    def unload(self, name: str, version: str | None = None) -> str | None:
        """Unload one version (or the whole model); returns the version served afterwards, if any.

        Unloading the served version serves the most recently served version still loaded.
        Unloading the last version forgets the model. NotFound when there is nothing to unload.
        """
        lock = self._claim(name, "an unload")
        try:
            with self._lock:
                entry = self._entry(name)
                known = set(entry.versions) | set(entry.failures) | set(entry.recorded)
                if version is not None and version not in known:
                    raise NotFound(
                        f"model {name!r} has no version {version!r} to unload; "
                        f"loaded versions: {self._sorted(entry.versions)}"
                    )
                if version is not None and entry.traffic is not None and version in entry.traffic.versions():
                    raise Conflict(
                        f"model {name!r} version {version} is in its traffic {entry.traffic.to_json()}; set "
                        "traffic without it (or clear it with weights null) before unloading it"
                    )

            def apply(entry: ModelEntry) -> object:
                if version is None:
                    return FORGET
                entry.versions.pop(version, None)
                entry.failures.pop(version, None)
                entry.recorded.pop(version, None)
                if entry.wanted_served == version:
                    entry.wanted_served = None
                if version in entry.serve_order:
                    entry.serve_order.remove(version)
                if entry.served == version:
                    remaining = [v for v in entry.serve_order if v in entry.versions]
                    entry.served = remaining[-1] if remaining else None
                return FORGET if entry.is_empty() else None

            after = self._commit(name, apply)
            served = after.served if after is not None else None
            log.info(
                "model %s: unloaded %s; now serving %s",
                name,
                f"version {version}" if version else "all versions",
                served,
            )
            return served
        finally:
            self._release(name, lock)

    def set_traffic(self, name: str, traffic: Traffic | None) -> ModelEntry:
        """Route the model's unversioned requests by `traffic` (None: the served version answers all, no
        shadow); persisted before it takes effect. NotFound for a version that is not loaded, Conflict (409)
        for one still loading or failed to load, and while a load or unload of the model is in flight."""
        lock = self._claim(name, "a traffic change")
        try:
            with self._lock:
                entry = self._entry(name)
                if traffic is not None:
                    named = set(traffic.weights) | traffic.versions()
                    for version in self._sorted(named):
                        if version in entry.versions:
                            continue
                        if version in entry.loading or version in entry.failures or version in entry.recorded:
                            why = entry.failures.get(version, "it is still loading")
                            raise Conflict(
                                f"model {name!r} version {version} is not ready ({why}); traffic unchanged"
                            )
                        raise NotFound(
                            f"model {name!r} has no version {version!r} loaded; loaded versions: "
                            f"{self._sorted(entry.versions)}; load it (serve: false) before giving it traffic"
                        )
                route = Route.bind(traffic, entry.versions, _version_key) if traffic is not None else None

            def apply(entry: ModelEntry) -> None:
                entry.traffic, entry.route, entry.wanted_traffic = traffic, route, None

            updated = self._commit(name, apply)
            log.info("model %s: traffic %s", name, self._traffic_json(updated))
            return updated
        finally:
            self._release(name, lock)

    # -- persistence ------------------------------------------------------------------------------
    def _commit(self, name: str, change) -> ModelEntry | None:
        """Apply `change` to a copy of the model's entry, write the resulting state, then make the copy
        current. `change(entry)` edits the copy in place, or returns FORGET to forget the model.
        StateNotSaved when the state cannot be written: nothing changes then."""
        with self._state_lock:
            with self._lock:
                current = self._models.get(name)
                updated = (current or ModelEntry(name)).copy()
                result = None if change(updated) is FORGET else updated
                models = dict(self._models)
                if result is None:
                    models.pop(name, None)
                else:
                    models[name] = result
                state = self._state(models)
            self._write_state(state)
            with self._lock:
                if result is None:
                    self._models.pop(name, None)
                else:
                    self._models[name] = result
            return result

    def _state(self, models: dict[str, ModelEntry]) -> dict:
        state = {}
        for name, entry in sorted(models.items()):
            versions = {v: entry.versions[v].storage_uri for v in entry.versions}
            versions.update(entry.recorded)
            if not versions:
                continue
            served = entry.served if entry.served is not None else entry.wanted_served
            state[name] = {
                "served_version": served,
                "versions": dict(sorted(versions.items(), key=lambda kv: _version_key(kv[0]))),
            }
            traffic = entry.traffic.to_json() if entry.traffic is not None else entry.wanted_traffic
            if traffic is not None:
                state[name]["traffic"] = traffic
        return state

    def _write_state(self, state: dict) -> None:
        if self.state_dir is None:
            return
        target = self.state_dir / STATE_FILE
        tmp = None
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.state_dir, prefix=f".{STATE_FILE}.")
            with os.fdopen(fd, "w") as handle:
                json.dump(state, handle, indent=2, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
            tmp = None
            directory = os.open(self.state_dir, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as exc:
            log.error("cannot write %s: %s; the change was not made", target, exc)
            raise StateNotSaved(
                f"the server could not write its state to {target} ({exc}), so nothing changed"
            ) from None
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)

    def read_state(self) -> dict[str, dict]:
        """What state.json says was served before; a file that cannot be read is set aside (renamed,
        with an ERROR log line saying where) and the server starts without it."""
        if self.state_dir is None:
            return {}
        path = self.state_dir / STATE_FILE
        if not path.exists():
            log.info("no %s yet; starting with an empty model repository", path)
            return {}
        try:
            return _validate_state(json.loads(path.read_text()))
        except (OSError, ValueError, RecursionError, StateFileError) as exc:
            aside = path.with_name(f"{STATE_FILE}.unreadable-{time.strftime('%Y%m%dT%H%M%S')}")
            try:
                os.replace(path, aside)
                moved = f"moved it to {aside}"
            except OSError as move_exc:
                moved = f"could not move it aside ({move_exc})"
            log.error(
                "the model server's state file %s is unreadable (%s); %s and started with an empty model "
                "repository: load the models again, or fix the file and restart",
                path,
                exc,
                moved,
            )
            return {}

    def begin_restore(self, state: dict[str, dict]) -> list[tuple[str, str, str, bool]]:
        """Record every version `state` holds (so no state write drops one) and return the loads to
        run: (model, version, storage_uri, served?), the served version of each model last."""
        plan: list[tuple[str, str, str, bool]] = []
        with self._lock:
            self._restoring = True
            for name, model in sorted(state.items()):
                served = model.get("served_version")
                versions = model["versions"]
                entry = self._models.setdefault(name, ModelEntry(name))
                entry.recorded.update(versions)
                if served in versions:
                    entry.wanted_served = served
                entry.wanted_traffic = model.get("traffic")
                order = sorted((v for v in versions if v != served), key=_version_key)
                order += [served] if served in versions else []
                plan += [(name, v, versions[v], v == served) for v in order]
        return plan

    def restore_failed(self, name: str, version: str, reason: str) -> None:
        with self._lock:
            entry = self._models.get(name)
            if entry is not None and version not in entry.versions:
                entry.failures[version] = reason
        log.error("model %s: could not restore version %s: %s", name, version, reason)

    def restore_traffic(self) -> None:
        """Bind the traffic state.json holds to the restored versions. A part whose versions did not load
        is dropped (logged): the weights, or the shadow alone; then the served version answers."""
        with self._lock:
            for entry in self._models.values():
                wanted, entry.wanted_traffic = entry.wanted_traffic, None
                if wanted is None:
                    continue
                try:
                    traffic = Traffic.from_state(wanted)
                except BadRequest as exc:
                    log.error("model %s: traffic in %s not valid (%s); dropped", entry.name, STATE_FILE, exc)
                    continue
                if traffic is None:
                    continue
                missing = [v for v, w in traffic.weights.items() if w > 0 and v not in entry.versions]
                if missing:
                    log.error(
                        "model %s: traffic %s not restored: version %s did not load; version %s answers all",
                        entry.name, traffic.to_json(), ", ".join(missing), entry.served,
                    )
                    continue
                if traffic.shadow is not None and traffic.shadow.version not in entry.versions:
                    log.error(
                        "model %s: shadow version %s did not load; the weights are restored without it",
                        entry.name, traffic.shadow.version,
                    )
                    traffic = Traffic(traffic.weights, None)
                entry.traffic = traffic
                entry.route = Route.bind(traffic, entry.versions, _version_key)
                log.info("model %s: traffic restored: %s", entry.name, traffic.to_json())

    def end_restore(self) -> None:
        with self._lock:
            self._restoring = False
            for entry in self._models.values():
                log.info("model %s: restored; serving version %s", entry.name, entry.served)

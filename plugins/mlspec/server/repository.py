"""The model repository of the local server: which versions are loaded, which one is served.

What a caller can rely on:

* one onnxruntime session per loaded version; loading a version that is already loaded only makes
  it the served (default) version again, which is how rollback stays fast;
* a new version becomes the served one only after its files were verified against manifest.json
  (sha256), its session was built and its signature matched the session. Until then the previous
  version keeps answering, and a failed load leaves it serving;
* loads and unloads of one model run one at a time; inference never waits for them;
* with a state folder, `{model: {served_version, versions: {version: storage_uri}}}` is written to
  `state.json` after every change and `restore()` loads it again at start-up.

Methods block (file and S3 reads, session building): the app calls them from worker threads.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlspec.errors import StoreError
from mlspec.server.errors import BadRequest, NotFound, NotReady
from mlspec.server.sources import read_version_file
from mlspec.server.tensors import ORT_TYPES, TensorSpec
from mlspec.storage.base import MANIFEST, sha256_hex

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
SIGNATURE_FILE = "signature.json"
# Published beside model.onnx since mlspec 0.2; older versions lack them, so they are optional.
SCHEMA_FILES = {"input_schema": "input_schema.json", "output_schema": "output_schema.json"}
STATE_FILE = "state.json"
PLATFORM = "onnxruntime"


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

    def is_empty(self) -> bool:
        return not (self.versions or self.loading or self.failures)

    def make_served(self, version: str) -> None:
        self.served = version
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
    if not isinstance(declared, list):
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
            len(shape) != len(spec.shape)
            or any(-1 not in (a, b) and a != b for a, b in zip(shape, spec.shape, strict=True))
        ):
            raise LoadFailed(
                f"{where}: {kind[:-1]} {spec.name!r} has shape {spec.shape} in model.onnx but {shape} in "
                f"{SIGNATURE_FILE}"
            )


def build_version(name: str, version: str, storage_uri: str) -> LoadedVersion:
    """Read, verify and open one version folder; LoadFailed with the reason when anything is wrong."""
    import onnxruntime

    where = f"model {name} version {version} at {storage_uri}"
    try:
        manifest = json.loads(read_version_file(storage_uri, MANIFEST))
    except StoreError as exc:
        raise LoadFailed(f"cannot load {where}: {exc} (is the version published?)") from None
    except ValueError as exc:
        raise LoadFailed(f"cannot load {where}: {MANIFEST} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise LoadFailed(f"cannot load {where}: {MANIFEST} has no 'files' table")
    if "version" in manifest and str(manifest["version"]) != version:
        raise LoadFailed(f"cannot load {where}: its {MANIFEST} is for version {manifest['version']}")

    contents: dict[str, bytes] = {}
    optional = [name for name in SCHEMA_FILES.values() if name in manifest["files"]]
    for file_name in (MODEL_FILE, SIGNATURE_FILE, *optional):
        expected = manifest["files"].get(file_name)
        if not expected:
            raise LoadFailed(f"cannot load {where}: {MANIFEST} lists no sha256 for {file_name}")
        try:
            data = read_version_file(storage_uri, file_name)
        except StoreError as exc:
            raise LoadFailed(f"cannot load {where}: {exc}") from None
        actual = sha256_hex(data)
        if actual != expected:
            raise LoadFailed(
                f"cannot load {where}: {file_name} has sha256 {actual[:12]}..., the manifest says "
                f"{str(expected)[:12]}...; the folder was changed after publishing; publish a new version"
            )
        contents[file_name] = data
    try:
        signature = json.loads(contents[SIGNATURE_FILE])
    except ValueError as exc:
        raise LoadFailed(f"cannot load {where}: {SIGNATURE_FILE} is not valid JSON: {exc}") from None
    if not isinstance(signature, dict):
        raise LoadFailed(f"cannot load {where}: {SIGNATURE_FILE} is not a JSON object")
    schemas = {}
    for key, file_name in SCHEMA_FILES.items():
        if file_name in contents:
            try:
                schemas[key] = json.loads(contents[file_name])
            except ValueError as exc:
                raise LoadFailed(f"cannot load {where}: {file_name} is not valid JSON: {exc}") from None

    try:
        session = onnxruntime.InferenceSession(contents[MODEL_FILE], providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several private exception types for a bad model
        raise LoadFailed(f"cannot load {where}: onnxruntime refused model.onnx: {exc}") from None
    inputs = _tensor_specs(session.get_inputs(), where)
    outputs = _tensor_specs(session.get_outputs(), where)
    _check_signature(signature, "inputs", inputs, where)
    _check_signature(signature, "outputs", outputs, where)
    return LoadedVersion(name, version, storage_uri, session, inputs, outputs, signature, schemas)


class ModelRepository:
    """Loaded models and their served versions; safe to use from many threads at once."""

    def __init__(self, state_dir: Path | None = None, *, max_loaded_versions: int = 3) -> None:
        self.state_dir = Path(state_dir) if state_dir is not None else None
        # Keep the served version and the last few served before it (rollback targets); older ones
        # are unloaded so a long-running server does not grow with every deployment.
        self.max_loaded_versions = max(1, max_loaded_versions)
        self._models: dict[str, ModelEntry] = {}
        self._lock = threading.RLock()  # guards _models; held only for short bookkeeping
        self._model_locks: dict[str, threading.Lock] = {}  # one load/unload at a time per model
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
            entry = self._entry(name)
            if version is None:
                if entry.served is not None:
                    return entry.versions[entry.served]
                raise NotReady(f"model {name!r} has no ready version: {self._why_not_ready(entry)}")
            if version in entry.versions:
                return entry.versions[version]
            if version in entry.loading:
                raise NotReady(f"model {name!r} version {version} is still loading")
            if version in entry.failures:
                raise NotReady(f"model {name!r} version {version} is not ready: {entry.failures[version]}")
            raise NotFound(
                f"model {name!r} has no version {version!r}; loaded versions: {self._sorted(entry.versions)}"
            )

    def served_version(self, name: str) -> str | None:
        with self._lock:
            entry = self._entry(name)
            return entry.served

    def versions(self, name: str) -> list[str]:
        with self._lock:
            return self._sorted(self._entry(name).versions)

    def all_ready(self) -> tuple[bool, str]:
        """Whether every known model has a ready served version (the server-ready probe), and why not."""
        with self._lock:
            if self._restoring:
                return False, "the server is still loading the models it served before its restart"
            for entry in self._models.values():
                if not entry.is_empty() and entry.served is None:
                    return False, f"model {entry.name!r} has no ready version: {self._why_not_ready(entry)}"
            return True, ""

    def index(self, ready_only: bool = False) -> list[dict]:
        """Every known (model, version) with its state: READY, LOADING or UNAVAILABLE (with the reason)."""
        rows = []
        with self._lock:
            for name in sorted(self._models):
                entry = self._models[name]
                for version in self._sorted(set(entry.versions) | entry.loading | set(entry.failures)):
                    if version in entry.versions:
                        row = {"name": name, "version": version, "state": "READY", "reason": ""}
                        row["served"] = version == entry.served
                        row["storage_uri"] = entry.versions[version].storage_uri
                    elif version in entry.loading:
                        row = {"name": name, "version": version, "state": "LOADING", "reason": ""}
                    else:
                        row = {"name": name, "version": version, "state": "UNAVAILABLE"}
                        row["reason"] = entry.failures[version]
                    if row["state"] == "READY" or not ready_only:
                        rows.append(row)
        return rows

    @staticmethod
    def _sorted(versions: Any) -> list[str]:
        return sorted(versions, key=_version_key)

    @staticmethod
    def _why_not_ready(entry: ModelEntry) -> str:
        if entry.loading:
            return f"version {', '.join(sorted(entry.loading, key=_version_key))} is still loading"
        if entry.failures:
            version = sorted(entry.failures, key=_version_key)[-1]
            return f"loading version {version} failed: {entry.failures[version]}"
        return "nothing is loaded"

    # -- changes (slow, serialized per model) -----------------------------------------------------
    def _model_lock(self, name: str) -> threading.Lock:
        with self._lock:
            return self._model_locks.setdefault(name, threading.Lock())

    def load(self, name: str, version: str | None, storage_uri: str | None) -> LoadedVersion:
        """Load `version` from `storage_uri` (or re-serve it if loaded) and make it the served version.

        `version` may be left out when storage_uri is given: the manifest's version is used.
        Raises LoadFailed (400) with the reason; whatever served before keeps serving.
        """
        storage_uri = storage_uri.rstrip("/") if storage_uri else None
        if version is None:
            if storage_uri is None:
                raise BadRequest(f"loading model {name!r} needs parameters.storage_uri or parameters.version")
            version = self._manifest_version(name, storage_uri)
        with self._model_lock(name):
            with self._lock:
                entry = self._models.setdefault(name, ModelEntry(name))
                current = entry.versions.get(version)
                if current is not None and storage_uri in (None, current.storage_uri):
                    previous = entry.served
                    entry.make_served(version)
                    self._persist()
                    log.info("model %s: serving version %s again (was %s)", name, version, previous)
                    return current
                if storage_uri is None:
                    if entry.is_empty():
                        del self._models[name]
                    raise BadRequest(
                        f"model {name!r} version {version} is not loaded; "
                        "give parameters.storage_uri to load it"
                    )
                entry.loading.add(version)
                entry.failures.pop(version, None)
            log.info("model %s: loading version %s from %s", name, version, storage_uri)
            started = time.perf_counter()
            try:
                loaded = build_version(name, version, storage_uri)
            except LoadFailed as exc:
                with self._lock:
                    entry.loading.discard(version)
                    entry.failures[version] = str(exc)
                    still = f"version {entry.served} keeps serving" if entry.served else "nothing is served"
                log.error("model %s: %s; %s", name, exc, still)
                raise LoadFailed(f"{exc}; {still}") from None
            except BaseException:
                with self._lock:
                    entry.loading.discard(version)
                raise
            with self._lock:
                entry.loading.discard(version)
                previous = entry.served
                entry.versions[version] = loaded
                entry.make_served(version)
                self._evict(entry)
                self._persist()
            log.info(
                "model %s: version %s loaded in %.2fs and now served (was %s)",
                name,
                version,
                time.perf_counter() - started,
                previous,
            )
            return loaded

    def _manifest_version(self, name: str, storage_uri: str) -> str:
        try:
            manifest = json.loads(read_version_file(storage_uri, MANIFEST))
            return str(manifest["version"])
        except (StoreError, ValueError, KeyError, TypeError) as exc:
            raise LoadFailed(
                f"cannot load model {name} from {storage_uri}: no version given and {MANIFEST} has none "
                f"({exc})"
            ) from None

    def _evict(self, entry: ModelEntry) -> None:
        while len(entry.versions) > self.max_loaded_versions:
            oldest = next(v for v in entry.serve_order if v in entry.versions and v != entry.served)
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
        with self._model_lock(name):
            with self._lock:
                entry = self._entry(name)
                if version is None:
                    del self._models[name]
                    self._persist()
                    log.info("model %s: unloaded (all versions)", name)
                    return None
                if version not in entry.versions and version not in entry.failures:
                    raise NotFound(
                        f"model {name!r} has no version {version!r} to unload; "
                        f"loaded versions: {self._sorted(entry.versions)}"
                    )
                entry.versions.pop(version, None)
                entry.failures.pop(version, None)
                if version in entry.serve_order:
                    entry.serve_order.remove(version)
                if entry.served == version:
                    remaining = [v for v in entry.serve_order if v in entry.versions]
                    entry.served = remaining[-1] if remaining else None
                if entry.is_empty():
                    del self._models[name]
                self._persist()
                log.info("model %s: unloaded version %s; now serving %s", name, version, entry.served)
                return entry.served

    # -- persistence ------------------------------------------------------------------------------
    def _state(self) -> dict:
        return {
            name: {
                "served_version": entry.served,
                "versions": {v: entry.versions[v].storage_uri for v in self._sorted(entry.versions)},
            }
            for name, entry in sorted(self._models.items())
            if entry.versions
        }

    def _persist(self) -> None:
        # While restoring, the file still holds what to restore; a version that fails to come back
        # (storage briefly unreachable) must not be dropped from it.
        if self.state_dir is None or self._restoring:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        target = self.state_dir / STATE_FILE
        fd, tmp = tempfile.mkstemp(dir=self.state_dir, prefix=f".{STATE_FILE}.")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(self._state(), handle, indent=2, sort_keys=True)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def restore(self) -> None:
        """Load what state.json says was served before; failures are logged and left UNAVAILABLE."""
        if self.state_dir is None:
            return
        path = self.state_dir / STATE_FILE
        if not path.exists():
            log.info("no %s yet; starting with an empty model repository", path)
            return
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            log.error("cannot read %s (%s); starting with an empty model repository", path, exc)
            return
        self._restoring = True
        try:
            for name, model in sorted(state.items()):
                served = model.get("served_version")
                versions = model.get("versions") or {}
                # Load the served version last so it ends up served even if restoring it is slow.
                order = sorted((v for v in versions if v != served), key=_version_key)
                order += [served] if served in versions else []
                for version in order:
                    try:
                        self.load(name, str(version), versions[version])
                    except LoadFailed as exc:
                        log.error("model %s: could not restore version %s: %s", name, version, exc)
                served_now = self._models.get(name, ModelEntry(name)).served
                log.info("model %s: restored; serving version %s", name, served_now)
        finally:
            self._restoring = False

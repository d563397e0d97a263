"""What the Models page shows, read from the specs, the store, the registry and serving.

Every backend call runs in a worker thread with a deadline (`bounded`): a registry, store or model
server that is down or hangs becomes a sentence on the page (`problems`), never an exception, so a
page always loads with whatever the other backends said. Nothing here writes anywhere.

The registry is the record of production and of each version's metrics, state and champion gate; the
store holds the files (manifest, metrics.json, schemas, plots, model card); serving says what answers.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 15.0  # per backend call; a page waits at most about this long for one that hangs
# Versions whose metrics.json is read from the store when the registry cannot say (newest first).
MAX_STORE_METRICS = 50
PLOT_FILE = re.compile(r"[a-z][a-z0-9_]*\.png")
VERSION_TAG = "mlspec.version"
STATE_TAG = "mlspec.state"

# One pool for every backend call of every request: a hung backend holds a thread, never a request.
_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="mlspec-ui")


class Unavailable(Exception):
    """A backend did not answer, or answered with an error; the message says which and why."""


class NotFound(Exception):
    """The model, version or file is not there."""


class ChecksumMismatch(Exception):
    """A stored file's bytes do not match the sha256 in the version's manifest."""


def bounded(what: str, call: Callable[[], T], timeout_s: float) -> T:
    """call() in a worker thread; Unavailable when it fails or takes longer than timeout_s."""
    future = _POOL.submit(call)
    try:
        return future.result(timeout=timeout_s)
    except FuturesTimeout:
        future.cancel()
        raise Unavailable(f"{what} did not answer within {timeout_s:g} s") from None
    except (NotFound, ChecksumMismatch):
        raise
    except Exception as exc:  # noqa: BLE001 - any backend failure is reported on the page
        raise Unavailable(f"{what}: {one_line(exc)}") from None


def one_line(exc: BaseException, limit: int = 400) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- specs ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BrokenSpec:
    """A spec file that does not compile: its DAG is a placeholder tagged invalid-spec."""

    file: str
    name: str  # the dag_id its placeholder DAG has
    problems: tuple[str, ...]  # one `file:line:col: path: message` each


@dataclass(frozen=True)
class Catalog:
    specs_dir: Path
    models: tuple[Any, ...]  # ModelSpec, sorted by name
    broken: tuple[BrokenSpec, ...]

    def model(self, name: str) -> Any | None:
        return next((spec for spec in self.models if spec.name == name), None)

    def broken_named(self, name: str) -> BrokenSpec | None:
        return next((b for b in self.broken if b.name == name), None)


def specs_dir(default: Path | str | None = None) -> Path:
    """MLSPEC_SPECS_DIR when set (as dags/mlspec_dags.py reads it), else `default`, else ./specs."""
    return Path(os.environ.get("MLSPEC_SPECS_DIR") or default or "specs")


def load_catalog(folder: Path | str | None = None) -> Catalog:
    """Every spec in the folder, compiled or with its problems (the same split dagbag makes)."""
    from mlspec.dagbag import declared_name, spec_files
    from mlspec.spec import ModelSpec, SpecError, load_spec_text
    from mlspec.spec import cache as spec_cache

    folder = specs_dir(folder)
    loaded: list[tuple[Path, Any]] = []
    broken: list[BrokenSpec] = []
    for path in spec_files(folder):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            broken.append(BrokenSpec(str(path), declared_name(path, ""), (f"{path}:0:0: cannot read the spec: {exc.strerror or exc}",)))
            continue
        cached = spec_cache.get(text)
        try:
            spec = ModelSpec.from_dict(cached, source_file=str(path)) if cached is not None else load_spec_text(text, str(path))
        except SpecError as exc:
            broken.append(BrokenSpec(str(path), declared_name(path, text), tuple(str(p) for p in exc.problems)))
            continue
        except Exception as exc:  # noqa: BLE001 - one odd file must not take the page down
            broken.append(BrokenSpec(str(path), declared_name(path, text), (f"{path}:1:1: could not load: {one_line(exc)}",)))
            continue
        if cached is None:
            spec_cache.put(text, spec.to_dict())
        loaded.append((path, spec))
    by_name: dict[str, list[Path]] = {}
    for path, spec in loaded:
        by_name.setdefault(spec.name, []).append(path)
    models = []
    for path, spec in loaded:
        others = [str(p) for p in by_name[spec.name] if p != path]
        if others:  # as dagbag: neither silently wins
            broken.append(BrokenSpec(str(path), spec.name, (f"{path}:1:1: metadata.name: dag_id `{spec.name}` is also claimed by {', '.join(others)}",)))
        else:
            models.append(spec)
    return Catalog(folder, tuple(sorted(models, key=lambda s: s.name)), tuple(sorted(broken, key=lambda b: (b.name, b.file))))


# -- a model and its versions -----------------------------------------------------------------
@dataclass
class VersionInfo:
    version: int
    registered: bool = False
    in_store: bool = False
    state: str = ""  # registry.base.STATES; "" when the registry does not know the version
    metrics: dict[str, float] = field(default_factory=dict)
    metrics_from: str = ""  # "registry" | "store (metrics.json)"
    run_id: str = ""  # the Airflow DAG run that made it
    dag_id: str = ""
    data_source: str = ""
    spec_hash: str = ""
    source_uri: str = ""
    framework: str = ""
    task: str = ""
    registry_version: str = ""
    created_ms: int | None = None
    files: dict[str, str] = field(default_factory=dict)  # the registry's sha256 of each file
    champion: dict[str, str] = field(default_factory=dict)  # the gate's outcome: decision, metric, challenger, ...
    deployment: dict[str, str] = field(default_factory=dict)  # platform, endpoint_url, outcome, ...


@dataclass
class ModelStatus:
    spec: Any
    production: int | None = None
    history: list[int] = field(default_factory=list)
    served: int | None = None
    versions: list[VersionInfo] = field(default_factory=list)  # ascending
    registry_ok: bool = False
    store_ok: bool = False
    serving_ok: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def main_metric(self) -> str:
        from mlspec.model_card import main_metric

        return main_metric(self.spec)

    @property
    def drift(self) -> bool:
        """Serving answers with another version than the registry's production (both known)."""
        return self.registry_ok and self.serving_ok and self.served != self.production

    def version(self, number: int) -> VersionInfo | None:
        return next((v for v in self.versions if v.version == number), None)

    @property
    def latest(self) -> VersionInfo | None:
        return self.versions[-1] if self.versions else None

    def endpoint(self) -> str:
        """The base URL that answers for this model: the local server, or KServe's recorded URL."""
        from mlspec.model_card import KSERVE_ENDPOINT, endpoint_base

        base = endpoint_base(self.spec)
        if base == KSERVE_ENDPOINT and self.production is not None:
            info = self.version(self.production)
            if info is not None and info.deployment.get("endpoint_url"):
                return info.deployment["endpoint_url"].rstrip("/")
        return base


def open_model_store(spec: Any) -> Any:
    from mlspec.storage import open_store

    return open_store(spec.storage.uri, spec.storage.connection)


def registry_where(spec: Any) -> str:
    where = spec.registry.backend + (f" (connection {spec.registry.connection})" if spec.registry.connection else " (embedded)")
    return f"the {where} registry"


def preload(spec: Any) -> None:
    """Import the registry's client library before any deadline starts: importing MLflow takes seconds on a
    cold api-server, and that is not a backend failing to answer."""
    if spec.registry.backend == "mlflow":
        import mlflow  # noqa: F401
        from mlflow import MlflowClient  # noqa: F401


def model_status(spec: Any, timeout_s: float = DEFAULT_TIMEOUT_S) -> ModelStatus:
    """Production, what serves and every version of one model; a backend that fails is a problem line."""
    preload(spec)
    status = ModelStatus(spec)
    versions: dict[int, VersionInfo] = {}
    try:
        store = bounded(f"the store {spec.storage.uri}", lambda: open_model_store(spec), timeout_s)
        stored = bounded(f"the store {spec.storage.uri}", lambda: store.list_versions(spec.name), timeout_s)
        status.store_ok = True
        for number in stored:
            versions[number] = VersionInfo(number, in_store=True)
    except Unavailable as exc:
        store = None
        status.problems.append(f"store unavailable: {exc}")
    try:
        production, history, registered = bounded(registry_where(spec), lambda: _registry_state(spec), timeout_s)
        status.registry_ok = True
        status.production, status.history = production, history
        for number, info in registered.items():
            info.in_store = number in versions
            versions[number] = info
    except Unavailable as exc:
        status.problems.append(f"registry unavailable: {exc}; metrics below are read from the store's metrics.json")
        if store is not None:
            _metrics_from_store(store, spec, versions, timeout_s, status.problems)
    try:
        status.served = bounded(f"serving ({_serving_where(spec)})", lambda: _served_version(spec, timeout_s), timeout_s + 1)
        status.serving_ok = True
    except Unavailable as exc:
        status.problems.append(f"serving unavailable: {exc}")
    status.versions = [versions[n] for n in sorted(versions)]
    return status


def _registry_state(spec: Any) -> tuple[int | None, list[int], dict[int, VersionInfo]]:
    from mlspec.registry import open_registry

    registry = open_registry(spec.registry.backend, spec.registry.connection)
    production = registry.production_version(spec.name)
    history = registry.production_history(spec.name)
    if spec.registry.backend == "mlflow":
        # One listing with every tag (champion.*, deployment.*, lineage) instead of one lookup per version.
        found = {}
        for mv in registry._model_versions(spec.name):
            tags = dict(mv.tags or {})
            number = tags.get(VERSION_TAG, "")
            if number.isdigit():
                found[int(number)] = _from_tags(int(number), tags, str(mv.version), getattr(mv, "creation_timestamp", None))
        return production, history, found
    found = {}
    for number in range(1, (registry.latest_version(spec.name) or 0) + 1):
        record = registry.version_record(spec.name, number)
        if record is not None:
            found[number] = VersionInfo(
                number, registered=True, state=record.state, metrics=dict(record.metrics), metrics_from="registry",
                run_id=record.run_id, source_uri=record.source_uri, files=dict(record.files),
            )
    return production, history, found


def _from_tags(number: int, tags: dict[str, str], registry_version: str, created_ms: Any) -> VersionInfo:
    metrics = {}
    for key, value in tags.items():
        if key.startswith("metric."):
            try:
                metrics[key.removeprefix("metric.")] = float(value)
            except ValueError:
                continue
    return VersionInfo(
        number,
        registered=True,
        state=tags.get(STATE_TAG, "candidate"),
        metrics=metrics,
        metrics_from="registry",
        run_id=tags.get("run_id", ""),
        dag_id=tags.get("dag_id", ""),
        data_source=tags.get("data_source", ""),
        spec_hash=tags.get("spec_hash", ""),
        source_uri=tags.get("source_uri", ""),
        framework=tags.get("framework", ""),
        task=tags.get("task", ""),
        registry_version=registry_version,
        created_ms=int(created_ms) if isinstance(created_ms, int | float) else None,
        files={k.removeprefix("sha256."): v for k, v in tags.items() if k.startswith("sha256.")},
        champion={k.removeprefix("champion."): v for k, v in tags.items() if k.startswith("champion.")},
        deployment={k.removeprefix("deployment."): v for k, v in tags.items() if k.startswith("deployment.")},
    )


def _metrics_from_store(store: Any, spec: Any, versions: dict[int, VersionInfo], timeout_s: float, problems: list[str]) -> None:
    wanted = set(spec.evaluation.metrics)
    for number in sorted(versions, reverse=True)[:MAX_STORE_METRICS]:
        try:
            payload = bounded("the store", lambda n=number: store.read_json(f"{spec.name}/{n}/metrics.json"), timeout_s)
        except Unavailable as exc:
            problems.append(f"version {number}: {exc}")
            break
        versions[number].metrics = {k: float(v) for k, v in payload.items() if k in wanted and isinstance(v, int | float)}
        versions[number].metrics_from = "store (metrics.json)"


def _serving_where(spec: Any) -> str:
    if spec.serving.platform == "kserve":
        return f"KServe namespace {spec.serving.namespace}"
    from mlspec.model_card import endpoint_base

    return f"the local model server at {endpoint_base(spec)}"


def _served_version(spec: Any, timeout_s: float) -> int | None:
    if spec.serving.platform == "local":
        from mlspec.model_card import endpoint_base
        from mlspec.serving.local import LocalServing

        return LocalServing(endpoint_base(spec), timeout_s=timeout_s, poll_interval_s=0.1).served_version(spec.name)
    from mlspec.serving import open_serving

    return open_serving(spec, open_model_store(spec)).served_version(spec.name)


# -- one version ------------------------------------------------------------------------------
@dataclass
class VersionCard:
    status: ModelStatus
    number: int
    info: VersionInfo | None
    manifest: dict | None = None
    evaluation: dict | None = None  # metrics.json: every metric, confusion_matrix/support or residuals
    input_schema: dict | None = None
    output_schema: dict | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def files(self) -> dict[str, str]:
        return dict((self.manifest or {}).get("files") or {})

    @property
    def plots(self) -> list[str]:
        return [name for name in sorted(self.files) if PLOT_FILE.fullmatch(name)]

    @property
    def has_card(self) -> bool:
        from mlspec.model_card import CARD_FILE

        return CARD_FILE in self.files


def version_card(spec: Any, number: int, timeout_s: float = DEFAULT_TIMEOUT_S) -> VersionCard:
    status = model_status(spec, timeout_s)
    info = status.version(number)
    if info is None and status.registry_ok and status.store_ok:
        raise NotFound(f"{spec.name} has no version {number}")
    card = VersionCard(status, number, info)
    if not status.store_ok or (info is not None and not info.in_store):
        if status.store_ok:
            card.problems.append(f"version {number} has no published files in the store {spec.storage.uri} (pruned or lost)")
        return card
    try:
        store = bounded("the store", lambda: open_model_store(spec), timeout_s)
        card.manifest = bounded("the store", lambda: store.read_manifest(spec.name, number), timeout_s)
    except Unavailable as exc:
        card.problems.append(f"manifest unreadable: {exc}")
        return card
    for attribute, file_name in (("evaluation", "metrics.json"), ("input_schema", "input_schema.json"), ("output_schema", "output_schema.json")):
        if file_name not in card.files:
            continue
        try:
            data = verified_bytes(spec, number, file_name, timeout_s, manifest=card.manifest, store=store)
            setattr(card, attribute, json.loads(data))
        except (Unavailable, ChecksumMismatch, NotFound, ValueError) as exc:
            card.problems.append(f"{file_name}: {exc}")
    return card


def verified_bytes(
    spec: Any, number: int, file_name: str, timeout_s: float = DEFAULT_TIMEOUT_S, *, manifest: dict | None = None, store: Any = None
) -> bytes:
    """A published file's bytes, after checking them against the sha256 in the version's manifest."""
    from mlspec.storage import sha256_hex

    if store is None:
        store = bounded("the store", lambda: open_model_store(spec), timeout_s)
    if manifest is None:
        if number not in bounded("the store", lambda: store.list_versions(spec.name), timeout_s):
            raise NotFound(f"{spec.name} version {number} is not published in the store")
        manifest = bounded("the store", lambda: store.read_manifest(spec.name, number), timeout_s)
    expected = (manifest.get("files") or {}).get(file_name)
    if not expected:
        raise NotFound(f"{file_name} is not in the manifest of {spec.name} version {number}")
    data = bounded("the store", lambda: store.read_bytes(f"{spec.name}/{number}/{file_name}"), timeout_s)
    actual = sha256_hex(data)
    if actual != expected:
        raise ChecksumMismatch(
            f"{file_name} of {spec.name} version {number} has sha256 {actual[:12]}…, not the manifest's {expected[:12]}…; "
            "it was changed after publishing"
        )
    return data

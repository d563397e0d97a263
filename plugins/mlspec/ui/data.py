"""What the Models page shows, read from the specs, the store, the registry and serving.

Every backend call runs in a worker thread with a deadline (`bounded`): a registry, store or model
server that is down or hangs becomes a sentence on the page (`problems`), never an exception, so a
page always loads with whatever the other backends said. Nothing here writes anywhere.

The registry is the record of production and of each version's metrics, state and champion gate; the
store holds the files (manifest, metrics.json, schemas, plots, model card); serving says what answers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import mlspec
from mlspec.connections import get_connection
from mlspec.dagbag import (
    DEFAULT_MEMORY_BUDGET_MB,
    OVERRUN_REMEMBERED_S,
    fallback_name,
    glimpsed_name,
    overrun_problem,
    spec_files,
)
from mlspec.env import env_number
from mlspec.errors import MlspecError
from mlspec.ml.frameworks import TrainingPlan
from mlspec.model_card import CARD_FILE, endpoint_base, main_metric
from mlspec.registry.backends import backend_of
from mlspec.registry.reading import open_for_reading
from mlspec.release import drifts, read_registry
from mlspec.rollout.record import active_rollout_in
from mlspec.serving import open_serving, platform_of
from mlspec.serving.platforms import ENDPOINT_PLACEHOLDER
from mlspec.spec import ModelSpec, SpecError, SpecProblem
from mlspec.spec import cache as spec_cache
from mlspec.spec.yaml_loader import read_spec_file
from mlspec.storage import open_store, sha256_hex
from mlspec.vocabulary import DRIFT_FILE, DRIFT_PLOT, LINEAGE_FILE

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 15.0  # per backend call; a page waits at most about this long for one that hangs
# Versions whose metrics.json is read from the store when the registry cannot say (newest first).
MAX_STORE_METRICS = 50
PLOT_FILE = re.compile(r"[a-z][a-z0-9_]*\.png")

# One pool for every backend call of every request: a hung backend holds a thread, never a request.
_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="mlspec-ui")


class Unavailable(Exception):
    """A backend did not answer, or answered with an error; the message says which and why."""


class NoAnswer(Unavailable):
    """A backend that did not answer within the page's time: asking it for the next file would wait as long."""


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
        raise NoAnswer(f"{what} did not answer within {timeout_s:g} s") from None
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
    """Every spec in the folder, compiled or with its problems (the same split dagbag makes).

    A page never validates a spec in the api-server's own process, and never the same text twice: each file is
    looked up (by its size, mtime and the sha256 of its text) in what this process checked before, failures
    included, then in the DAG processor's cache (valid specs, and specs that ran over their budget); only what
    neither knows is checked, by the DAG processor's own bounded check in a process of its own (`check_specs`).
    """
    folder = specs_dir(folder)
    outcomes: list[tuple[Path, Checked]] = []
    unchecked: list[tuple[Path, str, tuple[str, str]]] = []
    for path in spec_files(folder):
        found, text, key = _known(path)
        if found is not None:
            outcomes.append((path, found))
        elif text is not None and key is not None:
            unchecked.append((path, text, key))
    if unchecked:
        with _CHECK_LOCK:  # concurrent page loads wait for one check rather than each starting their own
            still = []
            for path, text, key in unchecked:
                found = _remembered(key)
                if found is not None:
                    outcomes.append((path, found))
                else:
                    still.append((path, text, key))
            if still:
                results = check_specs([(path, text) for path, text, _ in still])
                for (path, _, key), found in zip(still, results, strict=True):
                    _remember(key, found)
                    outcomes.append((path, found))
    loaded = [(path, found.spec) for path, found in outcomes if found.spec is not None]
    broken = [BrokenSpec(str(path), found.name, found.problems) for path, found in outcomes if found.spec is None]
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


# -- checking specs, bounded, once per text ---------------------------------------------------
PAGE_SPECS_BUDGET_S = 10.0  # all uncached specs of one page load together (MLSPEC_SPECS_TIME_BUDGET_S wins)
CHECK_START_S = 30.0  # on top of the budget: starting the check process on a busy machine
MAX_REMEMBERED = 512  # checked texts kept (LRU)


@dataclass(frozen=True)
class Checked:
    """A spec file's check: its model (valid) or its problems, and until when it holds (None: until the text
    changes; a spec that ran over its budget is checked again after a while, as the DAG processor does)."""

    name: str
    spec: Any = None
    problems: tuple[str, ...] = ()
    until: float | None = None


_CHECK_LOCK = threading.Lock()
_MEMO_LOCK = threading.Lock()
_CHECKED: OrderedDict[tuple[str, str], Checked] = OrderedDict()  # (path, sha256 of the text) -> its check
_BY_STAT: dict[str, tuple[tuple[int, int, int], tuple[str, str]]] = {}  # path -> (mtime_ns, size, inode), its key
check_runs = 0  # check processes started by this process (tests and logs read it)


def _remembered(key: tuple[str, str]) -> Checked | None:
    with _MEMO_LOCK:
        found = _CHECKED.get(key)
        if found is None:
            return None
        if found.until is not None and found.until <= time.time():
            del _CHECKED[key]
            return None
        _CHECKED.move_to_end(key)
        return found


def _remember(key: tuple[str, str], found: Checked) -> None:
    if found.until is not None and found.until <= time.time():
        return
    with _MEMO_LOCK:
        _CHECKED[key] = found
        _CHECKED.move_to_end(key)
        while len(_CHECKED) > MAX_REMEMBERED:
            _CHECKED.popitem(last=False)


def _known(path: Path) -> tuple[Checked | None, str | None, tuple[str, str] | None]:
    """(what is known of the file's check, else None; its text when it was read; its key)."""
    try:
        info = path.stat()
        stat = (info.st_mtime_ns, info.st_size, info.st_ino)
    except OSError:
        stat = None
    with _MEMO_LOCK:
        seen = _BY_STAT.get(str(path))
    if stat is not None and seen is not None and seen[0] == stat:
        found = _remembered(seen[1])
        if found is not None:
            return found, None, seen[1]
    try:
        text = read_spec_file(path).decode("utf-8", errors="replace")
    except SpecError as exc:  # unreadable, too big, not a regular file: said now, looked at again next time
        return Checked(fallback_name(path), problems=tuple(str(p) for p in exc.problems)), None, None
    key = (str(path), hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest())
    if stat is not None:
        with _MEMO_LOCK:
            if len(_BY_STAT) > MAX_REMEMBERED:
                _BY_STAT.clear()
            _BY_STAT[str(path)] = (stat, key)
    found = _remembered(key) or _from_processor(path, text)
    if found is not None:
        _remember(key, found)
    return found, text, key


def _from_processor(path: Path, text: str) -> Checked | None:
    """What the DAG processor's check left in the spec cache: a valid spec, or one that ran over its budget."""
    resolved = spec_cache.get(text)
    if resolved is not None:
        try:
            spec = ModelSpec.from_dict(resolved, source_file=str(path))
            return Checked(spec.name, spec=spec)
        except Exception:  # noqa: BLE001 - an odd cache entry: check the spec instead
            return None
    overrun = spec_cache.get_overrun(text, OVERRUN_REMEMBERED_S)
    if overrun is not None:
        return _checked(path, text, overrun, until=time.time() + 60)
    return None


def check_specs(items: list[tuple[Path, str]]) -> list[Checked]:
    """The DAG processor's bounded check (mlspec.dagbag: each spec in a forked process under its time and
    memory budgets, all of them under MLSPEC_SPECS_TIME_BUDGET_S, default PAGE_SPECS_BUDGET_S here), run in
    a fresh process (mlspec.ui.speccheck): the api-server's threads make forking it unsafe."""
    global check_runs
    import subprocess
    import sys

    budget = env_number("MLSPEC_SPECS_TIME_BUDGET_S", PAGE_SPECS_BUDGET_S)
    package_root = str(Path(mlspec.__file__).resolve().parent.parent)
    env = {
        **os.environ,
        "MLSPEC_SPECS_TIME_BUDGET_S": repr(budget),
        "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p),
    }
    check_runs += 1
    log.info("checking %d spec(s) for the Models page (budget %g s): %s", len(items), budget, ", ".join(str(p) for p, _ in items))
    why = ""
    outcomes: Any = None
    try:
        done = subprocess.run(
            [sys.executable, "-m", "mlspec.ui.speccheck"], input=json.dumps([[str(p), t] for p, t in items]),
            capture_output=True, text=True, timeout=budget + CHECK_START_S, env=env, check=False,
        )
        if done.returncode == 0:
            outcomes = json.loads(done.stdout)
        else:
            why = f"the check exited with status {done.returncode}: {one_line(Exception(done.stderr[-300:]))}"
    except subprocess.TimeoutExpired:
        why = f"the check did not finish within {budget + CHECK_START_S:g} s"
    except (OSError, ValueError) as exc:
        why = f"the check could not run: {one_line(exc)}"
    if not isinstance(outcomes, list) or len(outcomes) != len(items):
        log.warning("could not check specs for the Models page: %s", why or "it answered nonsense")
        return [_not_checked(path, text, why or "the check answered nonsense") for path, text in items]
    return [_checked(path, text, outcome) for (path, text), outcome in zip(items, outcomes, strict=True)]


def _not_checked(path: Path, text: str, why: str) -> Checked:
    problem = f"{path}:1:1: this spec could not be checked for this page ({why}); reload the page, or run `mlspec lint {path}`"
    return Checked(glimpsed_name(path, text), problems=(problem,), until=time.time())


def _checked(path: Path, text: str, outcome: dict, until: float | None = None) -> Checked:
    """One outcome of the bounded check (dagbag's format) as the page shows it."""
    name = outcome.get("name") or (glimpsed_name(path, text) if "overrun" in outcome else fallback_name(path))
    if "resolved" in outcome:
        try:
            spec = ModelSpec.from_dict(outcome["resolved"], source_file=str(path))
        except Exception as exc:  # noqa: BLE001 - one odd file must not take the page down
            return Checked(name, problems=(f"{path}:1:1: could not load: {one_line(exc)}",))
        spec_cache.put(text, outcome["resolved"])  # the DAG processor need not check it again either
        return Checked(spec.name, spec=spec)
    if "problems" in outcome:
        return Checked(name, problems=tuple(str(SpecProblem(**p)) for p in outcome["problems"]))
    if "crash" in outcome:
        return Checked(name, problems=(f"{path}:1:1: could not compile: {outcome['crash']}",))
    kind = outcome.get("overrun")
    if kind in ("time", "memory", "died"):
        if not outcome.get("remembered"):  # as compile_specs does: the DAG processor skips it too
            spec_cache.put_overrun(text, {**outcome, "remembered": True})
        until = until or time.time() + OVERRUN_REMEMBERED_S
    else:  # not reached within the page's budget: checked again on the next load
        until = time.time()
    memory_mb = env_number("MLSPEC_SPEC_MEMORY_BUDGET_MB", DEFAULT_MEMORY_BUDGET_MB)
    problem = overrun_problem(path, dict(outcome, overrun=kind or "file"), memory_mb)
    return Checked(name, problems=(str(problem),), until=until)


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
    tracking_run: str = ""  # MLflow: the run the version is registered from (the training run, when tracked)
    best_trial: str = ""  # tuned runs: the winning trial's index (tag mlspec.best_trial)
    best_params: dict[str, Any] = field(default_factory=dict)  # and its values, {spec path: value}
    lineage: dict[str, Any] = field(default_factory=dict)  # the data it was trained on, as its registry tags record it
    rollout: dict[str, Any] = field(default_factory=dict)  # its rollout record (registry.base.ROLLOUT_TAG), {} when none


@dataclass
class ModelStatus:
    spec: Any
    production: int | None = None
    history: list[int] = field(default_factory=list)
    changes: list[Any] = field(default_factory=list)  # the registry's audit trail (ProductionChange), oldest first
    changes_ok: bool = False  # the audit trail was read (an empty one too)
    served: int | None = None
    versions: list[VersionInfo] = field(default_factory=list)  # ascending
    registry_ok: bool = False
    store_ok: bool = False
    serving_ok: bool = False
    problems: list[str] = field(default_factory=list)
    unset_connections: dict[str, str] = field(default_factory=dict)  # "registry" -> its connection id, not defined here
    rollout_version: int | None = None  # the version under rollout, as mlspec.rollout.record.active_rollout says

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def main_metric(self) -> str:
        return main_metric(self.spec)

    @property
    def drift(self) -> bool:
        """Serving answers with another version than the registry's production (both known)."""
        return self.registry_ok and self.serving_ok and drifts(self.production, self.served)

    def version(self, number: int) -> VersionInfo | None:
        return next((v for v in self.versions if v.version == number), None)

    @property
    def rollout(self) -> VersionInfo | None:
        """The version under rollout (mlspec.rollout.record.active_rollout, as `mlspec rollout --status`), or None."""
        return None if self.rollout_version is None else self.version(self.rollout_version)

    @property
    def latest(self) -> VersionInfo | None:
        return self.versions[-1] if self.versions else None

    def endpoint(self) -> str:
        """The base URL that answers for this model: the local server, or KServe's recorded URL."""
        base = endpoint_base(self.spec)
        if base == ENDPOINT_PLACEHOLDER and self.production is not None:
            info = self.version(self.production)
            if info is not None and info.deployment.get("endpoint_url"):
                return info.deployment["endpoint_url"].rstrip("/")
        return base


def open_model_store(spec: Any) -> Any:
    return open_store(spec.storage.uri, spec.storage.connection)


def registry_where(spec: Any) -> str:
    where = spec.registry.backend + (f" (connection {spec.registry.connection})" if spec.registry.connection else " (embedded)")
    return f"the {where} registry"


def preload(spec: Any) -> None:
    """Import the registry's client library before any deadline starts: importing MLflow takes seconds on a
    cold api-server, and that is not a backend failing to answer."""
    preload_client = backend_of(spec).preload
    if preload_client is not None:
        preload_client()


def model_status(spec: Any, timeout_s: float = DEFAULT_TIMEOUT_S) -> ModelStatus:
    """Production, what serves and every version of one model; a backend that fails is a problem line."""
    status = ModelStatus(spec)
    # A backend whose Airflow connection is not defined here is not asked (digits-s3 and cifar10 under `make
    # up`): asking printed AWS, Kubeflow and kube-config errors and waited on their timeouts. Not an error.
    try:  # a secrets backend may be slow: bounded like every other call the page makes
        status.unset_connections = bounded("the Airflow connections", lambda: unset_connections(spec), timeout_s)
    except Unavailable:
        status.unset_connections = {}  # the backends are asked (bounded) and say what is wrong
    for what, connection_id in status.unset_connections.items():
        status.problems.append(f"{what} not set up on this machine: Airflow connection {connection_id!r} is not "
                               "defined here (create it to see this model's " + what + ")")
    preload(spec)
    versions: dict[int, VersionInfo] = {}
    try:
        if "store" in status.unset_connections:
            raise NotSetUp()
        store = bounded(f"the store {spec.storage.uri}", lambda: open_model_store(spec), timeout_s)
        stored = bounded(f"the store {spec.storage.uri}", lambda: store.list_versions(spec.name), timeout_s)
        status.store_ok = True
        for number in stored:
            versions[number] = VersionInfo(number, in_store=True)
    except NotSetUp:
        store = None
    except Unavailable as exc:
        store = None
        status.problems.append(f"store unavailable: {exc}")
    try:
        if "registry" in status.unset_connections:
            raise NotSetUp()
        production, history, registered, changes, rollout = bounded(
            registry_where(spec), lambda: _registry_state(spec), timeout_s
        )
        status.registry_ok = True
        status.production, status.history, status.rollout_version = production, history, rollout
        if isinstance(changes, list):
            status.changes, status.changes_ok = changes, True
        else:
            status.problems.append(f"production audit trail unreadable: {changes}")
        for number, info in registered.items():
            info.in_store = number in versions
            versions[number] = info
    except (Unavailable, NotSetUp) as exc:
        if not isinstance(exc, NotSetUp):
            status.problems.append(f"registry unavailable: {exc}; metrics below are read from the store's metrics.json")
        if store is not None:
            _metrics_from_store(store, spec, versions, timeout_s, status.problems)
    try:
        if "serving" in status.unset_connections:
            raise NotSetUp()
        status.served = bounded(f"serving ({platform_of(spec).where(spec)})", lambda: _served_version(spec, timeout_s), timeout_s + 1)
        status.serving_ok = True
    except NotSetUp:
        pass
    except Unavailable as exc:
        status.problems.append(f"serving unavailable: {exc}")
    status.versions = [versions[n] for n in sorted(versions)]
    return status


class NotSetUp(Exception):
    """A backend's Airflow connection is not defined here: it is not asked (see ModelStatus.unset_connections)."""


def unset_connections(spec: Any) -> dict[str, str]:
    """{"store" | "registry" | "serving": connection id} for each Airflow connection the spec names for them that
    is not defined here (embedded backends name none)."""
    named = {"store": spec.storage.connection, "registry": spec.registry.connection, "serving": spec.serving.connection}
    missing = {}
    for what, connection_id in named.items():
        if not connection_id:
            continue
        try:
            get_connection(connection_id, used_for=what)
        except MlspecError:
            missing[what] = connection_id
    return missing


def _registry_state(spec: Any) -> tuple[int | None, list[int], dict[int, VersionInfo], list | str, int | None]:
    """Production, its history, every registered version, the audit trail (or why it could not be read) and the
    version under rollout (None: none)."""
    registry = open_for_reading(spec.registry.backend, spec.registry.connection)  # never creates
    state = read_registry(registry, spec.name)
    changes = state.changes if isinstance(state.changes, list) else state.changes[:400]
    active = active_rollout_in(state.versions)  # the one definition of "under rollout", on the versions read
    versions = {r.version: _version_info(r) for r in state.versions}
    return state.production, state.history, versions, changes, None if active is None else active.version


def _version_info(record: Any) -> VersionInfo:
    """What the page shows of a registered version (registry.base.VersionRecord)."""
    return VersionInfo(
        record.version, registered=True, state=record.state, metrics=dict(record.metrics), metrics_from="registry",
        run_id=record.run_id, dag_id=record.dag_id, data_source=record.data_source, spec_hash=record.spec_hash,
        source_uri=record.source_uri, framework=record.framework, task=record.task,
        registry_version=record.registry_version, created_ms=record.created_ms, files=dict(record.files),
        champion=dict(record.champion), deployment=dict(record.deployment), tracking_run=record.tracking_run,
        best_trial=record.best_trial, best_params=dict(record.best_params), lineage=dict(record.lineage),
        rollout=dict(record.rollout),
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


def _served_version(spec: Any, timeout_s: float) -> int | None:
    # The spec's own backend, as deploy opens it (a local serving.url gets serving.connection's token).
    return open_serving(spec, timeout_s=timeout_s).served_version(spec.name)


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
    lineage: dict | None = None  # lineage.json: the data it was trained on and its data checks (issue 14 on)
    drift: dict | None = None  # drift.json: the data checks' table, when there was a reference
    settings: Settings | None = None  # how this version was trained
    production_settings: Settings | None = None  # and the production version, to compare with (another version's card)

    @property
    def files(self) -> dict[str, str]:
        return dict((self.manifest or {}).get("files") or {})

    @property
    def plots(self) -> list[str]:
        """evaluate's plots (the drift plot belongs to the data checks)."""
        return [name for name in sorted(self.files) if PLOT_FILE.fullmatch(name) and name != DRIFT_PLOT]

    @property
    def has_drift_plot(self) -> bool:
        return DRIFT_PLOT in self.files

    @property
    def lineage_recorded(self) -> bool | None:
        """Whether the version published lineage.json; None when its manifest could not be read."""
        return None if self.manifest is None else LINEAGE_FILE in self.files

    @property
    def data_lineage(self) -> tuple[dict, str]:
        """The version's lineage and where it was read: its published lineage.json (""), else what its registry tags
        record (digest, source, rows, files, the data checks' outcome) when the store's file was not read."""
        if self.lineage is not None:
            return self.lineage, ""
        if self.info is not None and self.info.lineage:
            return self.info.lineage, "as the registry's tags record it (the store's lineage.json was not read)"
        return {}, ""

    @property
    def has_card(self) -> bool:
        return CARD_FILE in self.files


def version_card(spec: Any, number: int, timeout_s: float = DEFAULT_TIMEOUT_S) -> VersionCard:
    status = model_status(spec, timeout_s)
    info = status.version(number)
    if info is None and status.registry_ok and status.store_ok:
        raise NotFound(f"{spec.name} has no version {number}")
    card = VersionCard(status, number, info)
    _read_files(card, spec, number, timeout_s)
    card.settings = training_settings(spec, info, (card.manifest or {}).get("spec_hash", ""), timeout_s, card.problems)
    production = status.version(status.production) if status.production not in (None, number) else None
    if production is not None:
        card.production_settings = training_settings(spec, production, "", timeout_s, card.problems)
    return card


def _read_files(card: VersionCard, spec: Any, number: int, timeout_s: float) -> None:
    status, info = card.status, card.info
    if not status.store_ok or (info is not None and not info.in_store):
        if status.store_ok:
            card.problems.append(f"version {number} has no published files in the store {spec.storage.uri} (pruned or lost)")
        return
    try:
        store = bounded("the store", lambda: open_model_store(spec), timeout_s)
        card.manifest = bounded("the store", lambda: store.read_manifest(spec.name, number), timeout_s)
    except Unavailable as exc:
        card.problems.append(f"manifest unreadable: {exc}")
        return
    published = (("evaluation", "metrics.json"), ("input_schema", "input_schema.json"), ("output_schema", "output_schema.json"),
                 ("lineage", LINEAGE_FILE), ("drift", DRIFT_FILE))
    listed = [(attribute, file_name) for attribute, file_name in published if file_name in card.files]
    for index, (attribute, file_name) in enumerate(listed):
        try:
            data = verified_bytes(spec, number, file_name, timeout_s, manifest=card.manifest, store=store)
            payload = json.loads(data)
            if not isinstance(payload, dict):
                raise ValueError("not a JSON object")
            setattr(card, attribute, payload)
        except NoAnswer as exc:  # a store that did not answer once is not asked again: the page waits no longer
            unread = [name for _, name in listed[index + 1:]]
            card.problems.append(f"{file_name}: {exc}" + (f"; not read: {', '.join(unread)}" if unread else ""))
            break
        except (Unavailable, ChecksumMismatch, NotFound, ValueError) as exc:
            card.problems.append(f"{file_name}: {exc}")


# -- training settings ------------------------------------------------------------------------
HIDDEN_SETTINGS = ("framework", "task", "data_source")  # on the card already


@dataclass
class Settings:
    """What a version was trained with: the flat parameters its training run logged (epochs, batch_size,
    optimizer.learning_rate; estimator, params.*; trial.* for a tuning trial), and where they were read."""

    version: int
    values: dict[str, str]
    source: str  # "tracking": the run's logged parameters; "spec": the spec it was trained from
    where: str  # says so in words


def training_settings(spec: Any, info: VersionInfo | None, stored_hash: str, timeout_s: float, problems: list[str]) -> Settings | None:
    """The parameters the version's MLflow training run logged (what the run really used, trigger-form values
    included); else, when the version was trained from the spec as it is now (same spec hash), the spec's."""
    if info is None:
        return None
    run_params = backend_of(spec).training_run_params
    if info.tracking_run and run_params is not None:
        try:
            logged = bounded(f"the training run {info.tracking_run}",
                             lambda: run_params(spec.registry.connection, info.tracking_run), timeout_s)
        except Unavailable as exc:
            problems.append(f"training settings of version {info.version}: {exc}")
            logged = {}
        values = {k: v for k, v in logged.items() if k not in HIDDEN_SETTINGS}
        if "framework" in logged:  # a training run (TrainingPlan.log_params), not the run registration made
            return Settings(info.version, values, "tracking", f"logged by its training run {info.tracking_run} (MLflow)")
    if (info.spec_hash or stored_hash) == spec.spec_hash:
        plan = TrainingPlan.from_spec(spec.resolved)
        values = {k: _text(v) for k, v in plan.log_params().items() if k not in HIDDEN_SETTINGS}
        for path, value in info.best_params.items():
            values[f"trial.{path}"] = _text(value)
        return Settings(info.version, values, "spec", "from the spec it was trained from (no training run was tracked; "
                        "a value the run's trigger form changed is not known)")
    return Settings(info.version, {}, "", "not known: no training run was tracked, and the spec has changed since "
                    f"(spec hash {info.spec_hash[:12] or 'unknown'})")


def _text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, dict | list | tuple) else str(value)


def verified_bytes(
    spec: Any, number: int, file_name: str, timeout_s: float = DEFAULT_TIMEOUT_S, *, manifest: dict | None = None, store: Any = None
) -> bytes:
    """A published file's bytes, after checking them against the sha256 in the version's manifest."""
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

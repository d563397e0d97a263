"""The embedded MLflow store: ``<MLSPEC_HOME>/mlflow/mlflow.db`` (SQLite) and its artifacts folder.

The database is created here, with experiment 0 ("Default") under ``<MLSPEC_HOME>/mlflow/artifacts``
rather than MLflow's ``./mlruns`` of whatever the working directory is: once, under the lock
``mlflow.db.lock`` (mlspec.embedded_state), by the first task that needs it; a half-made one is repaired
or rebuilt there (:func:`prepare_embedded_store`). Reads (the Models page, status) only ask
:func:`embedded_store_exists`, which never creates or migrates it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from mlspec import embedded_state
from mlspec.errors import RegistryError
from mlspec.home import mlspec_home

log = logging.getLogger(__name__)


def embedded_dir() -> Path:
    """``<MLSPEC_HOME>/mlflow``: the embedded registry's SQLite file and its artifacts folder."""
    folder = mlspec_home() / "mlflow"
    (folder / "artifacts").mkdir(parents=True, exist_ok=True)
    return folder


_PREPARED: set[str] = set()
_HEAD: list[str] = []  # MLflow's schema head revision, read once
_HEAD_COLUMNS: dict[str, set[str]] = {}  # {table: columns} of a database MLflow made at its head, read once
_DATA_TABLES = ("registered_models", "model_versions", "runs", "logged_models")


def embedded_db() -> Path:
    """``<MLSPEC_HOME>/mlflow/mlflow.db``, the embedded registry's database (nothing is created)."""
    return mlspec_home() / "mlflow" / "mlflow.db"


def _mlflow_head() -> str:
    if not _HEAD:
        from mlflow.store.db.utils import _get_latest_schema_revision

        _HEAD.append(str(_get_latest_schema_revision()))
    return _HEAD[0]


def _revision(db: Path) -> str | None:
    """The database's alembic revision; None when it has none (no alembic_version table, or it is empty)."""
    conn = embedded_state.read_only(db)
    try:
        found = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
        if not conn.execute(found).fetchone():
            return None
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return str(row[0]) if row and row[0] else None
    finally:
        conn.close()


def embedded_store_problem(db: Path) -> str | None:
    """What is wrong with an existing embedded MLflow database, None when it is ready. Reads only."""
    why = embedded_state.unreadable(db)
    if why:
        return f"cannot be read ({why})"
    names = embedded_state.tables(db)
    stray = sorted(n for n in names if n.startswith("_alembic_tmp_"))
    if stray:
        return f"is half-migrated (stray table{'s' if len(stray) > 1 else ''} {', '.join(stray)})"
    revision, head = _revision(db), _mlflow_head()
    if revision is None:
        return "has no schema revision (its alembic_version is empty or missing: an interrupted creation)"
    if revision != head:
        return f"is at schema revision {revision}, not MLflow's {head}"
    from mlflow.store.db.base_sql_model import Base

    missing = sorted(set(Base.metadata.tables) - names)
    if missing:
        return f"lacks table{'s' if len(missing) > 1 else ''} {', '.join(missing[:5])}"
    return None


def embedded_store_exists(db: Path | None = None) -> bool:
    """Whether the embedded MLflow database is there to read; it creates and migrates nothing.

    False when there is none yet (nothing was registered: a page says "no version yet"). While a task
    creates or upgrades it, this waits for that (a shared lock, at most 10 s). A database that is there but
    half-made or unreadable is a RegistryError naming the file and what to do; a page never repairs it.
    """
    db = db or embedded_db()
    if not embedded_state.exists(db):
        return False
    try:
        with embedded_state.locked(db, shared=True, timeout_s=10):
            if not embedded_state.exists(db):
                return False
            problem = embedded_store_problem(db)
    except embedded_state.EmbeddedStateError as exc:
        raise RegistryError(str(exc)) from None
    if problem:
        raise RegistryError(
            f"the embedded MLflow database {db} {problem}; the next task that uses it (any spec's run) "
            "repairs it under its lock, see the README's Troubleshooting"
        )
    return True


def prepare_embedded_store(db: Path) -> None:
    """Make the embedded SQLite database ready, once, under ``<db>.lock`` (idempotent, across processes).

    Missing: created, with experiment 0 ("Default") under MLSPEC_HOME's artifacts folder rather than
    MLflow's ``./mlruns`` of the working directory. Ready: a database made before keeps its experiment 0,
    moved here when it holds no run. Half-made (an interrupted or raced creation, an older MLflow schema):
    repaired, or rebuilt when it holds nothing, or moved aside to ``mlflow.db.broken-<time>`` when it
    holds runs but no registered model; one with registered models that cannot be repaired is a
    RegistryError saying how to recover. Every change is one log line.
    """
    if str(db) in _PREPARED and embedded_state.exists(db):
        return
    artifacts = db.parent / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    try:
        with embedded_state.locked(db):
            _make_ready(db, artifacts)
    except embedded_state.EmbeddedStateError as exc:
        raise RegistryError(str(exc)) from None
    _PREPARED.add(str(db))


def _make_ready(db: Path, artifacts: Path) -> None:
    """prepare_embedded_store's work, under the lock."""
    if not embedded_state.exists(db):
        embedded_state.remove(db)  # a 0-byte file or stray journal of a creation that never started
        _create_embedded(db, artifacts)
        log.info("created the embedded MLflow database %s (schema %s)", db, _mlflow_head())
        return
    problem = embedded_store_problem(db)
    if problem is None:
        _experiment_zero_here(db, artifacts)
        return
    recovery = (
        f"take a copy of it, then try `mlflow db upgrade sqlite:///{db}`; if that fails and you can lose "
        f"what it records, move it aside (mv {db} {db}.broken) and run again: an empty registry is made (the "
        "model files stay in the store; clear a run's register task to register its version again)"
    )
    where = f"the embedded MLflow database {db}"
    if embedded_state.unreadable(db):
        raise RegistryError(f"{where} {problem}; mlspec leaves it alone: {recovery}.")
    held = {table: embedded_state.count_rows(db, table) for table in _DATA_TABLES}
    if not any(held.values()):
        _release_engines(db)
        embedded_state.remove(db)
        _create_embedded(db, artifacts)
        log.warning("%s %s and held no registered model and no run: rebuilt it", where, problem)
        return
    try:
        done = _repair_embedded(db)
        left = embedded_store_problem(db)
    except Exception as exc:  # noqa: BLE001 - any failure to repair leads to the decision below
        why = " ".join(str(exc).split())
        done, left = "", f"could not be repaired: {why if len(why) <= 300 else why[:297] + '...'}"
    if left is None:
        log.warning("%s %s: repaired it (%s); its %d registered model(s) and %d run(s) are kept",
                    where, problem, done, held["registered_models"], held["runs"])
        return
    if not held["registered_models"]:
        _release_engines(db)
        target = embedded_state.move_aside(db)
        _create_embedded(db, artifacts)
        log.warning("%s %s and %s; it held no registered model, so it was moved aside to %s (its %d run(s) "
                    "are there) and a new one was created", where, problem, left, target, held["runs"])
        return
    raise RegistryError(
        f"{where} {problem} and {left}; it holds {held['registered_models']} registered model(s), so mlspec "
        f"leaves it alone: {recovery}."
    )


def _release_engines(db: Path) -> None:
    """Close the connections this process's MLflow keeps to `db` (its stores cache one engine per URI), so
    that after the file is replaced the next use opens what is at the path then, not the old file."""
    uri = f"sqlite:///{db.as_posix()}"
    for module in ("mlflow.store.tracking.sqlalchemy_store", "mlflow.store.model_registry.sqlalchemy_store"):
        store_class = getattr(sys.modules.get(module), "SqlAlchemyStore", None)
        engines = getattr(store_class, "_engine_map", None) or {}
        for key, engine in list(engines.items()):
            if key == uri:
                engine.dispose()


def _create_embedded(db: Path, artifacts: Path) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(f"sqlite:///{db.as_posix()}", artifacts.as_uri())
    with suppress(AttributeError):
        store.engine.dispose()


def _head_columns() -> dict[str, set[str]]:
    """{table: columns} of a database MLflow creates at its head revision (made once, in a temp folder)."""
    if not _HEAD_COLUMNS:
        with tempfile.TemporaryDirectory(prefix="mlspec-mlflow-head-") as folder:
            reference = Path(folder) / "mlflow.db"
            _create_embedded(reference, Path(folder) / "artifacts")
            _HEAD_COLUMNS.update(embedded_state.columns(reference))
    return _HEAD_COLUMNS


def _repair_embedded(db: Path) -> str:
    """Under the lock: drop stray ``_alembic_tmp_*`` tables whose original is there, then stamp the head
    revision on a database whose tables are exactly the head's but has none, or upgrade one at an older
    revision. Returns what was done; raises when it cannot tell."""
    done = []
    names = embedded_state.tables(db)
    stray = sorted(n for n in names if n.startswith("_alembic_tmp_"))
    orphans = [t for t in stray if t.removeprefix("_alembic_tmp_") not in names]
    if orphans:
        raise RegistryError(f"{', '.join(orphans)} may hold the only copy of its table's rows")
    conn = sqlite3.connect(db, timeout=60)
    try:
        with conn:
            for table in stray:
                conn.execute(f'DROP TABLE "{table}"')
        if stray:
            done.append(f"dropped {', '.join(stray)}")
        revision, head = _revision(db), _mlflow_head()
        if revision is None:
            ours = {t: c for t, c in embedded_state.columns(db).items() if t != "alembic_version"}
            theirs = {t: c for t, c in _head_columns().items() if t != "alembic_version"}
            if ours != theirs:
                changed = {t for t in set(ours) & set(theirs) if ours[t] != theirs[t]}
                differ = ", ".join(sorted(set(ours) ^ set(theirs) | changed)[:5])
                raise RegistryError(f"it has no schema revision; its tables differ from MLflow's ({differ})")
            with conn:
                conn.execute("CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL, "
                             "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))")
                conn.execute("DELETE FROM alembic_version")
                conn.execute("INSERT INTO alembic_version (version_num) VALUES (?)", (head,))
            done.append(f"its tables match MLflow's schema: stamped revision {head}")
    finally:
        conn.close()
    revision = _revision(db)
    if revision != _mlflow_head():
        from mlflow.store.db.utils import _upgrade_db, create_sqlalchemy_engine

        engine = create_sqlalchemy_engine(f"sqlite:///{db.as_posix()}")
        try:
            _upgrade_db(engine)
        finally:
            engine.dispose()
        done.append(f"upgraded it from revision {revision} to {_mlflow_head()}")
    return "; ".join(done) or "nothing to change"


def _experiment_zero_here(db: Path, artifacts: Path) -> None:
    """Experiment 0 of a database MLflow itself made keeps its artifacts here if it holds no run."""
    location = (artifacts / "0").as_uri()
    with suppress(sqlite3.Error):
        conn = sqlite3.connect(db, timeout=30)
        try:
            with conn:
                conn.execute(
                    "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0 AND "
                    "artifact_location <> ? AND NOT EXISTS (SELECT 1 FROM runs WHERE experiment_id = 0)",
                    (location, location),
                )
        finally:
            conn.close()


@contextmanager
def default_tracking_uri(tracking_uri: str) -> Iterator[None]:
    """Point MLflow's process-wide default tracking URI at `tracking_uri` for one call, then put back
    exactly what was there (the global and the MLFLOW_TRACKING_URI variable).

    MLflow's SQL registry store looks a ``models:/<id>`` source up through ``MlflowClient()`` with no
    URI (the global one, else ``./mlflow.db`` of the working directory), not through the client that
    called it; for the embedded store that default must name the same database during the call.
    """
    import mlflow
    from mlflow.tracking._tracking_service import utils

    saved_global = getattr(utils, "_tracking_uri", None)
    saved_env = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_uri)
    try:
        yield
    finally:
        if saved_global is not None:
            mlflow.set_tracking_uri(saved_global)
        elif hasattr(utils, "_tracking_uri"):
            utils._tracking_uri = None
        if saved_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved_env

"""The MLflow model registry: an embedded SQLite file under MLSPEC_HOME, or an MLflow tracking server.

Where MLflow lives is decided by :func:`resolve_tracking_uri`: no connection id means the embedded
``sqlite:///<MLSPEC_HOME>/mlflow/mlflow.db``; a connection id names an Airflow connection whose
host (and schema/port) is the tracking server. Every call goes through an explicit
``MlflowClient(tracking_uri=..., registry_uri=...)`` so that several tasks in one process never
share MLflow's global "current tracking URI".

A store version is found again through the model-version tag ``mlspec.version``, which is what
makes a retried register task return the version its earlier try created.

Sources. A version published to a ``file://`` store is logged as an MLflow *logged model* first:
the version folder's files (``model.onnx`` byte for byte, the schemas, metrics, manifest, and the
plots and model card where the store has them) plus an ``MLmodel`` file with the ONNX flavor, the
signature (from ``input_schema.json``/``output_schema.json``) and an input example (each feature's
training mean). The logged model belongs to the training run of the DAG run (or to a registration run
when no training run is found), carries the test metrics, and the model version is created from it:
its ``source`` is ``models:/<model_id>``. This is also how a *server* gets the files: it refuses local
``file://`` sources (a safeguard against reading the server's own disk), and the logged model's
artifacts are uploaded through its artifact store. ``s3://`` (and other object-store) versions are
registered with the version folder itself as the source, as MLflow servers read object stores; the
store's URI stays in the ``model_uri`` and ``source_uri`` tags either way, which is what serving uses.

The embedded SQLite database is created here, with experiment 0 ("Default") under
``<MLSPEC_HOME>/mlflow/artifacts`` rather than MLflow's ``./mlruns`` of whatever the working directory is:
once, under the lock ``mlflow.db.lock`` (mlspec.embedded_state), by the first task that needs it; a
half-made one is repaired or rebuilt there (:func:`prepare_embedded_store`). Reads (``create=False``: the
Models page, status) never create or migrate it.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from mlspec.errors import RegistryError
from mlspec.inference_protocol import DEFAULT_DATATYPE, numpy_dtype
from mlspec.registry.base import (
    AUDIT_KEEP,
    STATES,
    ModelRegistry,
    ProductionChange,
    RegistrationRequest,
    RegistryEntry,
    VersionRecord,
    audit_entry_json,
    audit_key_suffix,
    audit_order,
    history_from_changes,
)

if TYPE_CHECKING:  # pragma: no cover - typing only; mlflow is imported inside functions
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

VERSION_TAG = "mlspec.version"
ROLE_TAG = "mlspec.role"  # "training" (TrainingTracker) | "registration" (registry upload run)
PRODUCTION_ALIAS = "production"
EXPERIMENT_PREFIX = "mlspec/"
_TAG_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-/ ]+")
_MAX_TAG_VALUE = 4000  # MLflow caps tag values at 5000 characters (8000 on newer servers)
_OUTCOMES = ("deployed", "smoke_test_passed", "rolled_back", "failed")
STATE_TAG = "mlspec.state"  # a version's place: registry.base.STATES
HISTORY_TAG = "mlspec.production_history"  # registered-model tag: JSON list of store versions, oldest first
# registered-model tags mlspec.audit.<seq>-<random>: one ProductionChange as JSON each
AUDIT_TAG_PREFIX = "mlspec.audit."


# -- where MLflow lives ------------------------------------------------------------------------
def embedded_dir() -> Path:
    """``<MLSPEC_HOME>/mlflow``: the embedded registry's SQLite file and its artifacts folder."""
    from mlspec.home import mlspec_home

    folder = mlspec_home() / "mlflow"
    (folder / "artifacts").mkdir(parents=True, exist_ok=True)
    return folder


def resolve_tracking_uri(connection_id: str | None) -> str:
    """The MLflow tracking (and registry) URI for a spec's ``registry.connection``.

    ``None`` gives the embedded ``sqlite:///<MLSPEC_HOME>/mlflow/mlflow.db`` (its folder is
    created). A connection id gives ``<scheme>://<host>[:<port>][/path]``: the host may be a bare
    name (scheme from the connection's schema, ``http`` unless it says ``https``) or a full URL.
    Login/password are exported as MLFLOW_TRACKING_USERNAME/PASSWORD and ``extra.token`` as
    MLFLOW_TRACKING_TOKEN, where MLflow's HTTP client reads them; they are never logged or put
    in the URI.
    """
    if not connection_id:
        return f"sqlite:///{(embedded_dir() / 'mlflow.db').as_posix()}"

    from mlspec.connections import bearer_token, get_connection

    conn = get_connection(
        connection_id,
        used_for="the MLflow tracking server (its host; or leave the connection out to use the embedded MLflow)",
        error_type=RegistryError,
    )
    host = (conn.host or "").strip()
    if not host:
        raise RegistryError(
            f"Airflow connection {connection_id!r} has no host; set it to the MLflow tracking server, "
            "e.g. host=mlflow.example.com port=5000 schema=https, or host=http://mlflow:5000."
        )
    login, password = conn.login, conn.password
    if "://" in host:
        parts = urlsplit(host)
        scheme = parts.scheme.lower()
        hostname = parts.hostname or ""
        port = conn.port or parts.port
        path = parts.path.rstrip("/")
        # credentials written into the host URL would otherwise end up in logs and error messages
        login = login or parts.username
        password = password or parts.password
    else:
        hostname, _, rest = host.partition("/")
        path = f"/{rest}".rstrip("/") if rest else ""
        candidates = [(conn.schema or "").lower(), (conn.conn_type or "").lower()]
        scheme = next((c for c in candidates if c in ("http", "https")), "http")
        port = conn.port
    if scheme not in ("http", "https"):
        raise RegistryError(
            f"Airflow connection {connection_id!r}: MLflow tracking server URL scheme {scheme!r} is not "
            "http or https; set the connection's schema to http or https."
        )
    if ":" in hostname and not hostname.startswith("["):
        hostname = f"[{hostname}]"  # IPv6 literal
    uri = f"{scheme}://{hostname}{f':{port}' if port else ''}{path}"

    auth = []
    if login:
        os.environ["MLFLOW_TRACKING_USERNAME"] = login
        os.environ["MLFLOW_TRACKING_PASSWORD"] = password or ""
        auth.append("basic auth")
    token = bearer_token(conn) if not login else (conn.extra_dejson or {}).get("token")
    if token:
        os.environ["MLFLOW_TRACKING_TOKEN"] = str(token)
        auth.append("token")
    log.info("MLflow tracking server %s (Airflow connection %r%s)", uri, connection_id,
             f", {' and '.join(auth)}" if auth else "")
    return uri


def ui_url(connection_id: str | None, tracking_uri: str) -> str:
    """Where people open the MLflow UI: the connection's extra ``ui_url`` (a server whose UI is at
    another address than its API, e.g. behind a proxy), else the tracking server's own URL; "" for the
    embedded MLflow, which has no UI of its own."""
    if not connection_id:
        return ""
    from mlspec.connections import get_connection

    conn = get_connection(connection_id, used_for="the MLflow tracking server", error_type=RegistryError)
    configured = str((conn.extra_dejson or {}).get("ui_url") or "").strip()
    if configured.startswith(("http://", "https://")):
        return display_uri(configured).rstrip("/")
    if configured:
        log.warning("Airflow connection %r: extra ui_url %r is not an http(s) URL; using the server's URL",
                    connection_id, configured)
    return display_uri(tracking_uri).rstrip("/") if is_server_uri(tracking_uri) else ""


def is_server_uri(tracking_uri: str) -> bool:
    return urlsplit(tracking_uri).scheme in ("http", "https")


def mlflow_client(tracking_uri: str, *, create: bool = True) -> MlflowClient:
    """An MlflowClient bound to one URI for tracking and registry (no global MLflow state).

    For the embedded store, `create` (tasks, the CLI) makes the database, or migrates or repairs it,
    under its lock first (:func:`prepare_embedded_store`); ``create=False`` (pages, status reads) only
    opens one that exists and is at MLflow's schema, and raises RegistryError otherwise.
    """
    from mlflow import MlflowClient

    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        if create:
            prepare_embedded_store(db)
        elif not embedded_store_exists(db):
            raise RegistryError(
                f"the embedded MLflow database {db} does not exist yet: nothing has been registered; "
                "the first run of a spec creates it"
            )
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


_PREPARED: set[str] = set()
_HEAD: list[str] = []  # MLflow's schema head revision, read once
_HEAD_COLUMNS: dict[str, set[str]] = {}  # {table: columns} of a database MLflow made at its head, read once
_DATA_TABLES = ("registered_models", "model_versions", "runs", "logged_models")


def embedded_db() -> Path:
    """``<MLSPEC_HOME>/mlflow/mlflow.db``, the embedded registry's database (nothing is created)."""
    from mlspec.home import mlspec_home

    return mlspec_home() / "mlflow" / "mlflow.db"


def _mlflow_head() -> str:
    if not _HEAD:
        from mlflow.store.db.utils import _get_latest_schema_revision

        _HEAD.append(str(_get_latest_schema_revision()))
    return _HEAD[0]


def _revision(db: Path) -> str | None:
    """The database's alembic revision; None when it has none (no alembic_version table, or it is empty)."""
    from mlspec import embedded_state

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
    from mlspec import embedded_state

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
    from mlspec import embedded_state

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
    from mlspec import embedded_state

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
    from mlspec import embedded_state

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
        done, left = "", f"could not be repaired: {mlflow_error_text(exc, 300)}"
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
    import sys

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
        import tempfile

        from mlspec import embedded_state

        with tempfile.TemporaryDirectory(prefix="mlspec-mlflow-head-") as folder:
            reference = Path(folder) / "mlflow.db"
            _create_embedded(reference, Path(folder) / "artifacts")
            _HEAD_COLUMNS.update(embedded_state.columns(reference))
    return _HEAD_COLUMNS


def _repair_embedded(db: Path) -> str:
    """Under the lock: drop stray ``_alembic_tmp_*`` tables whose original is there, then stamp the head
    revision on a database whose tables are exactly the head's but has none, or upgrade one at an older
    revision. Returns what was done; raises when it cannot tell."""
    import sqlite3

    from mlspec import embedded_state

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
    import sqlite3

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
def _default_tracking_uri(tracking_uri: str) -> Iterator[None]:
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


def experiment_name(name: str) -> str:
    """``mlspec/<name>``: every spec's runs live in one experiment of that name."""
    return name if name.startswith(EXPERIMENT_PREFIX) else f"{EXPERIMENT_PREFIX}{name}"


def ensure_experiment(client: MlflowClient, tracking_uri: str, name: str) -> str:
    """The id of experiment ``name``, created when missing.

    The embedded store gets an explicit artifact folder under MLSPEC_HOME, since MLflow's own
    default there would be ``./mlruns`` relative to whatever the worker's working directory is.
    """
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    location = None
    if not is_server_uri(tracking_uri):
        folder = embedded_dir() / "artifacts" / _TAG_KEY_UNSAFE.sub("_", name).replace("/", "_")
        location = folder.as_uri()
    try:
        experiment_id = client.create_experiment(name, artifact_location=location)
        log.info("created MLflow experiment %r (id %s)", name, experiment_id)
        return str(experiment_id)
    except MlflowException:
        # another task created it between our lookup and create
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


def display_uri(tracking_uri: str) -> str:
    """The tracking URI without any user:password, for messages."""
    parts = urlsplit(tracking_uri)
    if parts.username or parts.password:
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return parts._replace(netloc=netloc).geturl()
    return tracking_uri


def mlflow_error_text(exc: BaseException, limit: int = 400) -> str:
    """One short line from an MLflow exception (connection errors carry pages of urllib3 detail)."""
    text = " ".join(str(getattr(exc, "message", None) or exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _tag_key(text: str) -> str:
    return _TAG_KEY_UNSAFE.sub("_", text)


def _tag_value(value: object) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= _MAX_TAG_VALUE else text[: _MAX_TAG_VALUE - 3] + "..."


def mlflow_signature(request: RegistrationRequest):
    """The version's ModelSignature (tensor specs from its input and output schemas), or None."""
    from mlflow.models import ModelSignature

    parts = request.mlflow_signature()
    return ModelSignature.from_dict(parts) if parts else None


def input_example(request: RegistrationRequest):
    """One row shaped as the model's input (each feature's training mean), or None without a schema."""
    import numpy as np

    row = request.input_example()
    if not row:
        return None
    dtype = np.dtype(numpy_dtype(request.input_schema.get("datatype", DEFAULT_DATATYPE)))
    declared = request.input_schema.get("shape", [-1, len(row)])
    shape = [1 if d is None or int(d) < 0 else int(d) for d in declared]
    example = np.asarray(row, dtype=dtype)
    return example.reshape(shape) if int(np.prod(shape)) == example.size else example.reshape(1, -1)


_PRESENTATION = ("*.png", "*.svg", "model_card.md")  # published by evaluate/store for people to look at


def _presentation_files(folder: Path) -> list[Path]:
    found = {p for pattern in _PRESENTATION for p in folder.rglob(pattern) if p.is_file()}
    return sorted(p for p in found if not any(part.startswith(".") for part in p.relative_to(folder).parts))


# -- the registry ------------------------------------------------------------------------------
class MlflowRegistry(ModelRegistry):
    """Registered model ``<spec name>``, one model version per published store version.

    Construction does no I/O; the connection is resolved and the client made on first use.
    Every MLflow failure is raised as :class:`RegistryError` naming the model, the version and
    what to check.
    """

    backend = "mlflow"

    def __init__(self, connection_id: str | None = None, *, create: bool = True) -> None:
        self.connection_id = connection_id
        self.create = create  # False: never create or migrate the embedded database (pages, status reads)
        self._tracking_uri: str | None = None
        self._client: MlflowClient | None = None
        self._ui_url: str | None = None

    # -- plumbing ------------------------------------------------------------------------------
    @property
    def tracking_uri(self) -> str:
        if self._tracking_uri is None:
            self._tracking_uri = resolve_tracking_uri(self.connection_id)
        return self._tracking_uri

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = mlflow_client(self.tracking_uri, create=self.create)
        return self._client

    @property
    def is_server(self) -> bool:
        return is_server_uri(self.tracking_uri)

    def _where(self) -> str:
        if self.connection_id:
            server = display_uri(self.tracking_uri)
            return f"MLflow server {server} (Airflow connection {self.connection_id!r})"
        return f"embedded MLflow registry {self.tracking_uri}"

    @contextmanager
    def _errors(self, action: str, model_name: str, version: int | None) -> Iterator[None]:
        """Turn MLflow (and artifact I/O) failures into one RegistryError saying what to check."""
        from mlflow.exceptions import MlflowException

        try:
            yield
        except RegistryError:
            raise
        except (MlflowException, OSError) as exc:
            if self.connection_id:
                hint = (
                    f"check that the server at {display_uri(self.tracking_uri)} is up and reachable from "
                    f"the worker and that Airflow connection {self.connection_id!r} (host, port, schema, "
                    "credentials) points at it"
                )
            else:
                hint = f"check that {embedded_dir()} is writable and its mlflow.db is not corrupt"
            what = f"model {model_name!r}" + ("" if version is None else f" version {version}")
            raise RegistryError(
                f"{self._where()}: could not {action} for {what}: "
                f"{mlflow_error_text(exc)}; {hint}, then clear the task to retry."
            ) from exc

    @property
    def ui_url(self) -> str:
        """The MLflow UI's address ("" when none is known: the embedded MLflow)."""
        if self._ui_url is None:
            self._ui_url = ui_url(self.connection_id, self.tracking_uri)
        return self._ui_url

    def version_url(self, model_name: str, registry_version: str) -> str:
        """The MLflow UI page of a model version when a UI is known; else the embedded store's SQLite URI."""
        if self.ui_url:
            return f"{self.ui_url}/#/models/{quote(model_name, safe='')}/versions/{registry_version}"
        return self.tracking_uri

    def _entry(self, model_name: str, version: int, mv: ModelVersion, created: bool) -> RegistryEntry:
        return RegistryEntry(
            backend=self.backend,
            model_name=model_name,
            version=version,
            registry_version=str(mv.version),
            url=self.version_url(model_name, str(mv.version)),
            created=created,
        )

    def _model_versions(self, model_name: str) -> list[ModelVersion]:
        # The name filter works everywhere; tag filters on dotted keys vary between MLflow
        # versions and stores, so tags are matched in Python (a model has few versions).
        versions: list[ModelVersion] = []
        page_token = None
        while True:
            page = self.client.search_model_versions(
                f"name = '{model_name}'", max_results=1000, page_token=page_token
            )
            versions.extend(page)
            page_token = page.token
            if not page_token:
                return versions

    def _find_version(self, model_name: str, version: int) -> ModelVersion | None:
        wanted = str(version)
        matches = [
            mv for mv in self._model_versions(model_name) if (mv.tags or {}).get(VERSION_TAG) == wanted
        ]
        # should two exist (a race between tries), the oldest is the one others saw first
        return min(matches, key=lambda mv: int(mv.version)) if matches else None

    # -- ModelRegistry -------------------------------------------------------------------------
    def register(self, request: RegistrationRequest) -> RegistryEntry:
        name, version = request.model_name, request.version
        with self._errors("register the model version", name, version):
            self._ensure_registered_model(request)
            existing = self._find_version(name, version)
            if existing is not None:
                self._check_same_content(existing, request)
                log.info("%s: %s version %s is already registered as MLflow version %s (an earlier try)",
                         self._where(), name, version, existing.version)
                return self._entry(name, version, existing, created=False)

            lineage_run = self._training_run_id(request)
            source, run_id, logged = self._source_for(request, lineage_run)
            mv = self._create_version(request, source, run_id, logged)
            log.info("%s: registered %s version %s as MLflow model version %s (source %s)",
                     self._where(), name, version, mv.version, source)
            return self._entry(name, version, mv, created=True)

    def _create_version(self, request: RegistrationRequest, source: str, run_id: str | None, logged):
        """The model version, created from the logged model when there is one (`logged`)."""
        arguments = dict(
            source=source,
            run_id=run_id,
            tags=self._version_tags(request),
            description=self._version_description(request),
            await_creation_for=60,
        )
        if logged is None:
            return self.client.create_model_version(request.model_name, **arguments)
        arguments["model_id"] = logged.model_id
        if self.is_server:
            mv = self.client.create_model_version(request.model_name, **arguments)
        else:
            with _default_tracking_uri(self.tracking_uri):
                mv = self.client.create_model_version(request.model_name, **arguments)
        # What MLflow's own register_model records: the logged model lists the versions made from it.
        versions = [{"name": request.model_name, "version": str(mv.version)}]
        self.client.set_logged_model_tags(logged.model_id, {"mlflow.modelVersions": json.dumps(versions)})
        return mv

    def _check_same_content(self, existing: ModelVersion, request: RegistrationRequest) -> None:
        """A version found by number is ours only if it holds the same files from the same run."""
        tags = existing.tags or {}
        theirs = tags.get(_tag_key("sha256.model.onnx"))
        ours = request.files.get("model.onnx")
        if tags.get("run_id") != request.run_id or (theirs and ours and theirs != ours):
            raise RegistryError(
                f"{self._where()}: {request.model_name} version {request.version} is already registered for run "
                f"{tags.get('run_id')!r} with other files (model.onnx sha256 {str(theirs)[:12]}...); the store "
                "handed out a number the registry knows. Publish again: the store now numbers above the registry"
            )

    def find(self, model_name: str, version: int) -> RegistryEntry | None:
        with self._errors("look up the model version", model_name, version):
            mv = self._find_version(model_name, version)
            return None if mv is None else self._entry(model_name, version, mv, created=False)

    def record_deployment(self, model_name: str, version: int, deployment: dict, outcome: str) -> None:
        """Tag the version with where it went and what happened; move alias ``production`` on success.

        The alias names what is serving, so only ``smoke_test_passed`` moves it; after
        ``rolled_back`` or ``failed`` it keeps pointing at the version that still serves.
        """
        if outcome not in _OUTCOMES:
            log.warning("record_deployment: unexpected outcome %r for %s version %s",
                        outcome, model_name, version)
        with self._errors(f"record deployment outcome {outcome!r}", model_name, version):
            mv = self._find_version(model_name, version)
            if mv is None:
                raise RegistryError(
                    f"{self._where()}: model {model_name!r} version {version} is not registered, so its "
                    f"deployment ({outcome}) cannot be recorded; run the register task for this version "
                    "first."
                )
            tags = {
                "deployment.platform": deployment.get("platform", ""),
                "deployment.endpoint_url": deployment.get("endpoint_url", ""),
                "deployment.served_model_name": deployment.get("served_model_name", ""),
                "deployment.outcome": outcome,
                "deployment.message": deployment.get("message") or "",
            }
            for key, value in tags.items():
                self.client.set_model_version_tag(model_name, mv.version, key, _tag_value(value))
            if outcome in ("rolled_back", "failed"):
                self.client.set_model_version_tag(model_name, mv.version, STATE_TAG, outcome)
        if outcome == "smoke_test_passed":
            self.set_production(model_name, version, reason="its smoke test passed")
        else:
            log.info("%s: recorded %s for %s version %s; alias %r unchanged",
                     self._where(), outcome, model_name, version, PRODUCTION_ALIAS)

    def production_version(self, model_name: str) -> int | None:
        """The store version alias ``production`` points at, or None when nothing was promoted yet."""
        from mlflow.exceptions import MlflowException

        with self._errors(f"read alias {PRODUCTION_ALIAS!r}", model_name, None):
            try:
                mv = self.client.get_model_version_by_alias(model_name, PRODUCTION_ALIAS)
            except MlflowException as exc:
                if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                    return None
                raise
            tag = (mv.tags or {}).get(VERSION_TAG)
            return int(tag) if tag and tag.isdigit() else None

    def version_record(self, model_name: str, version: int) -> VersionRecord | None:
        with self._errors("read the version record", model_name, version):
            mv = self._find_version(model_name, version)
        if mv is None:
            return None
        tags = mv.tags or {}
        return VersionRecord(
            model_name=model_name,
            version=version,
            source_uri=tags.get("source_uri", ""),
            files={k.removeprefix("sha256."): v for k, v in tags.items() if k.startswith("sha256.")},
            metrics={k.removeprefix("metric."): float(v) for k, v in tags.items() if k.startswith("metric.")},
            run_id=tags.get("run_id", ""),
            state=tags.get(STATE_TAG, "candidate"),
        )

    def latest_version(self, model_name: str) -> int | None:
        with self._errors("list the versions", model_name, None):
            numbers = [
                int(tag) for mv in self._model_versions(model_name)
                if (tag := (mv.tags or {}).get(VERSION_TAG, "")).isdigit()
            ]
        return max(numbers, default=None)

    def production_history(self, model_name: str) -> list[int]:
        """From the audit trail when there is one (order and repeats kept); else the older history tag."""
        with self._errors("read the production history", model_name, None):
            model = self._registered_model(model_name)
        tags = (model.tags or {}) if model is not None else {}
        changes = self._changes_from_tags(model_name, tags)
        if changes:
            return history_from_changes(changes)
        raw = tags.get(HISTORY_TAG, "[]")
        try:
            return [int(v) for v in json.loads(raw)]
        except (ValueError, TypeError):
            log.warning("%s: tag %s of %s is not a JSON list of versions: %r", self._where(), HISTORY_TAG, model_name, raw)
            return []

    def set_production(self, model_name: str, version: int | None, reason: str) -> None:
        """Move alias `production` (MLflow's own record of production) and the versions' state tags."""
        current = self.production_version(model_name)
        with self._errors("change the production version", model_name, version):
            if version is None:
                if current is not None:
                    self.client.delete_registered_model_alias(model_name, PRODUCTION_ALIAS)
                    self._tag_state(model_name, current, "undeployed")
                log.info("%s: %s has no production version now (%s)", self._where(), model_name, reason)
                return
            mv = self._find_version(model_name, version)
            if mv is None:
                raise RegistryError(f"{self._where()}: {model_name} version {version} is not registered; it cannot become production")
            self.client.set_registered_model_alias(model_name, PRODUCTION_ALIAS, mv.version)
            self.client.set_model_version_tag(model_name, mv.version, STATE_TAG, "production")
            if current is not None and current != version:
                self._tag_state(model_name, current, "archived")
            history = [v for v in self.production_history(model_name) if v != version] + [version]
            self.client.set_registered_model_tag(model_name, HISTORY_TAG, json.dumps(history[-50:]))
        log.info("%s: %s version %s is production (alias %r on MLflow version %s): %s",
                 self._where(), model_name, version, PRODUCTION_ALIAS, mv.version, reason)

    def set_state(self, model_name: str, version: int, state: str, details: dict[str, str] | None = None) -> None:
        if state not in STATES:
            raise ValueError(f"unknown version state {state!r}; one of {', '.join(STATES)}")
        with self._errors(f"record state {state!r}", model_name, version):
            mv = self._find_version(model_name, version)
            if mv is None:
                raise RegistryError(f"{self._where()}: {model_name} version {version} is not registered")
            self.client.set_model_version_tag(model_name, mv.version, STATE_TAG, state)
            for key, value in (details or {}).items():
                self.client.set_model_version_tag(model_name, mv.version, _tag_key(key), _tag_value(value))

    def record_production_change(self, model_name: str, change: ProductionChange) -> None:
        """One registered-model tag per change, ``mlspec.audit.<seq>-<random>`` = the change as JSON (reason
        cut to 1,200 characters); the newest AUDIT_KEEP are kept, older ones deleted."""
        value = audit_entry_json(change)
        with self._errors(f"record the production change ({change.action})", model_name, change.to_version):
            model = self._registered_model(model_name)
            if model is None:
                raise RegistryError(
                    f"{self._where()}: model {model_name!r} is not registered, so its production change "
                    f"({change.action} {change.from_version} -> {change.to_version}) cannot be recorded; "
                    "register a version first."
                )
            keys = [k for k in (model.tags or {}) if k.startswith(AUDIT_TAG_PREFIX)]
            key = AUDIT_TAG_PREFIX + audit_key_suffix(keys, AUDIT_TAG_PREFIX)
            self.client.set_registered_model_tag(model_name, key, value)
            ordered = sorted(keys + [key], key=lambda k: audit_order(k, AUDIT_TAG_PREFIX))
            for old in ordered[: max(0, len(ordered) - AUDIT_KEEP)]:
                self.client.delete_registered_model_tag(model_name, old)
        log.info("%s: %s production change recorded: %s %s -> %s by %s (%s)", self._where(), model_name,
                 change.action, change.from_version, change.to_version, change.actor, change.reason)

    def production_changes(self, model_name: str) -> list[ProductionChange]:
        with self._errors("read the production audit trail", model_name, None):
            model = self._registered_model(model_name)
        return self._changes_from_tags(model_name, (model.tags or {}) if model is not None else {})

    def _changes_from_tags(self, model_name: str, tags: dict[str, str]) -> list[ProductionChange]:
        changes = []
        keys = [k for k in tags if k.startswith(AUDIT_TAG_PREFIX)]
        for key in sorted(keys, key=lambda k: audit_order(k, AUDIT_TAG_PREFIX)):
            try:
                changes.append(ProductionChange.from_dict(json.loads(tags[key])))
            except (ValueError, TypeError, AttributeError):
                log.warning("%s: tag %s of %s is not a production change; skipped: %.200r",
                            self._where(), key, model_name, tags[key])
        return changes

    def _tag_state(self, model_name: str, version: int, state: str) -> None:
        mv = self._find_version(model_name, version)
        if mv is not None:
            self.client.set_model_version_tag(model_name, mv.version, STATE_TAG, state)

    def _registered_model(self, model_name: str):
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_registered_model(model_name)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    # -- helpers -------------------------------------------------------------------------------
    def _ensure_registered_model(self, request: RegistrationRequest) -> None:
        from mlflow.exceptions import MlflowException

        name = request.model_name
        tags = {"owner": request.owner} if request.owner else {}
        try:
            model = self.client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            try:
                self.client.create_registered_model(name, tags=tags, description=request.description or None)
                log.info("%s: created registered model %r", self._where(), name)
                return
            except MlflowException as create_exc:
                if create_exc.error_code != "RESOURCE_ALREADY_EXISTS":  # another task won the race
                    raise
                model = self.client.get_registered_model(name)
        # the spec is the source of truth for description and owner
        if request.description and model.description != request.description:
            self.client.update_registered_model(name, description=request.description)
        for key, value in tags.items():
            if (model.tags or {}).get(key) != value:
                self.client.set_registered_model_tag(name, key, value)

    def _version_tags(self, request: RegistrationRequest) -> dict[str, str]:
        tags = {
            VERSION_TAG: str(request.version),
            STATE_TAG: "candidate",
            "data_source": request.data_source,
            "spec_hash": request.spec_hash,
            "dag_id": request.dag_id,
            "run_id": request.run_id,
            "model_uri": request.model_uri,
            "source_uri": request.source_uri,
            "onnx_opset": str(request.onnx_opset),
        }
        for metric, value in sorted(request.metrics.items()):
            tags[_tag_key(f"metric.{metric}")] = str(float(value))  # shortest exact repr, e.g. "0.9712"
        for file_name, digest in sorted(request.files.items()):
            tags[_tag_key(f"sha256.{file_name}")] = digest
        if request.storage_connection:
            tags["storage_connection"] = request.storage_connection
        tags["framework"] = request.framework
        tags["task"] = request.task
        for part, value in request.mlflow_signature().items():
            tags[f"signature.{part}"] = value
        if request.input_schema:
            tags["input_example"] = json.dumps(request.input_example())
        if request.output_schema.get("class_names"):
            tags["class_names"] = json.dumps(request.output_schema["class_names"])
        if request.best_trial is not None:
            tags["mlspec.best_trial"] = str(request.best_trial)
            tags["mlspec.best_params"] = json.dumps(request.trial_params, sort_keys=True)
        return {key: _tag_value(value) for key, value in tags.items()}

    @staticmethod
    def _version_description(request: RegistrationRequest) -> str:
        metrics = ", ".join(f"{k}={float(v):.4f}" for k, v in sorted(request.metrics.items()))
        lines = [
            request.description or request.model_name,
            f"mlspec store version {request.version}: {request.model_uri}",
            f"Trained by DAG {request.dag_id}, run {request.run_id}, on {request.data_source}.",
        ]
        if metrics:
            lines.append(f"Test metrics: {metrics}.")
        return "\n\n".join(lines)

    def _training_run_id(self, request: RegistrationRequest) -> str | None:
        """The MLflow run TrainingTracker made for this DAG run, for lineage: the newest finished one, or for a
        tuned run the winning trial's (tagged mlspec.trial)."""
        if "'" in request.run_id or "'" in request.dag_id:
            return None
        found = self.client.get_experiment_by_name(experiment_name(request.model_name))
        if found is None:
            return None
        runs = self.client.search_runs(
            [found.experiment_id],
            filter_string=f"tags.airflow_run_id = '{request.run_id}' and tags.dag_id = '{request.dag_id}'",
            order_by=["attributes.start_time DESC"],
            max_results=50,
        )
        finished = [r for r in runs if r.data.tags.get(ROLE_TAG) == "training" and r.info.status == "FINISHED"]
        if request.best_trial is not None:  # a tuned run: the winning trial's run, where evaluate logged
            best = [r for r in finished if r.data.tags.get("mlspec.trial") == str(request.best_trial)]
            finished = best or finished
        return str(finished[0].info.run_id) if finished else None

    def _source_for(self, request: RegistrationRequest, lineage_run: str | None):
        """(source, run_id, logged model or None) to register; see the module docstring."""
        source = request.source_uri.rstrip("/")
        scheme = urlsplit(source).scheme
        if scheme not in ("", "file"):
            return source, lineage_run, None  # s3:// and friends: servers and the embedded store read them
        from mlspec.storage import resolve_file_uri

        folder = resolve_file_uri(source) if scheme == "file" else Path(source)
        if not (folder / "model.onnx").is_file():
            raise RegistryError(
                f"{self._where()}: model {request.model_name!r} version {request.version}: the published "
                f"folder {source} has no model.onnx on this worker, so it cannot be logged to MLflow; "
                "use an s3:// storage.uri when tasks run on several machines."
            )
        run_id = lineage_run or self._registration_run_id(request)
        logged = self._log_model(request, folder, run_id)
        return f"models:/{logged.model_id}", run_id, logged

    def _log_model(self, request: RegistrationRequest, folder: Path, run_id: str):
        """Log the version folder as an MLflow model of run `run_id`: model.onnx, an MLmodel file with
        the ONNX flavor, signature and input example, and the version's other files (schemas, metrics,
        plots, model card). The plots and the model card are logged to the run as well, and the test
        metrics to both. A retry finds the logged model it made and uploads again (same paths)."""
        from mlflow.entities import LoggedModelOutput, LoggedModelStatus

        run = self.client.get_run(run_id)
        logged = self._logged_model_of(run.info.experiment_id, run_id, request)
        if logged is None:
            logged = self.client.create_logged_model(
                run.info.experiment_id,
                name=f"{request.model_name}-v{request.version}",
                source_run_id=run_id,
                tags={VERSION_TAG: str(request.version), "mlspec.model": request.model_name,
                      "airflow_run_id": request.run_id, "source_uri": request.source_uri},
                params={k: _tag_value(v) for k, v in list(run.data.params.items())[:100]},
                model_type="onnx",
            )
        outputs = run.outputs.model_outputs if run.outputs is not None else []
        if logged.model_id not in {output.model_id for output in outputs or []}:
            self.client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])

        import tempfile

        with tempfile.TemporaryDirectory(prefix="mlspec-mlflow-") as tmp:
            local = Path(tmp) / "model"
            self._save_mlflow_model(request, folder, local, logged, run_id)
            self.client.log_model_artifacts(logged.model_id, str(local))
        for path in _presentation_files(folder):
            parent = path.parent.relative_to(folder).as_posix()
            self.client.log_artifact(run_id, str(path), None if parent == "." else parent)
        if logged.status != LoggedModelStatus.READY:
            logged = self.client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
        self._log_test_metrics(request, run_id, logged.model_id)
        log.info("%s: logged %s version %s as MLflow model %s of run %s (%s)", self._where(),
                 request.model_name, request.version, logged.model_id, run_id, logged.artifact_location)
        return logged

    def _logged_model_of(self, experiment_id: str, run_id: str, request: RegistrationRequest):
        """The logged model an earlier try of this register task made for this version, if any."""
        page = self.client.search_logged_models(
            [experiment_id], filter_string=f"source_run_id = '{run_id}'", max_results=100
        )
        for model in page:
            if (model.tags or {}).get(VERSION_TAG) == str(request.version) and (
                (model.tags or {}).get("mlspec.model") == request.model_name
            ):
                return model
        return None

    @staticmethod
    def _save_mlflow_model(request: RegistrationRequest, folder: Path, local: Path, logged, run_id: str):
        import shutil
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as installed

        import mlflow.onnx
        import onnx
        from mlflow.models import Model

        onnx_bytes = (folder / "model.onnx").read_bytes()
        requirements = []
        for package in ("onnx", "onnxruntime"):
            with suppress(PackageNotFoundError):
                requirements.append(f"{package}=={installed(package)}")
        mlflow_model = Model(
            artifact_path=logged.artifact_location,
            model_uuid=logged.model_id,
            run_id=run_id,
            model_id=logged.model_id,
            metadata={"mlspec.version": str(request.version), "mlspec.source_uri": request.source_uri},
        )
        mlflow.onnx.save_model(
            onnx.load_from_string(onnx_bytes),
            str(local),
            mlflow_model=mlflow_model,
            signature=mlflow_signature(request),
            input_example=input_example(request),
            pip_requirements=requirements,
            save_as_external_data=False,
        )
        (local / "model.onnx").write_bytes(onnx_bytes)  # the store's own bytes: the manifest's sha256 holds
        for path in sorted(folder.rglob("*")):
            target = local / path.relative_to(folder)
            if path.is_file() and not path.name.startswith(".") and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)

    def _log_test_metrics(self, request: RegistrationRequest, run_id: str, model_id: str) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(f"test_{key}", float(value), now, 0, run_id=run_id, model_id=model_id)
            for key, value in sorted(request.metrics.items())
        ]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[i : i + 1000])

    def _registration_run_id(self, request: RegistrationRequest) -> str:
        """A run holding the uploaded files when no training run is tracked; reused by a retry."""
        experiment_id = ensure_experiment(self.client, self.tracking_uri, experiment_name(request.model_name))
        if "'" not in request.run_id:
            runs = self.client.search_runs(
                [experiment_id],
                filter_string=(
                    f"tags.airflow_run_id = '{request.run_id}' and tags.`{ROLE_TAG}` = 'registration'"
                ),
                max_results=50,
            )
            for run in runs:
                if run.data.tags.get(VERSION_TAG) == str(request.version):
                    return str(run.info.run_id)
        run = self.client.create_run(
            experiment_id,
            run_name=f"register-v{request.version}",
            tags={
                ROLE_TAG: "registration",
                VERSION_TAG: str(request.version),
                "airflow_run_id": request.run_id,
                "dag_id": request.dag_id,
            },
        )
        self.client.set_terminated(run.info.run_id, "FINISHED")
        return str(run.info.run_id)

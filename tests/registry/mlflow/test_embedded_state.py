"""The embedded MLflow database is created once, under a lock, by whichever task comes first; a half-made
one is repaired or rebuilt with one log line; reads never create it (issue 17)."""

from __future__ import annotations

import logging
import multiprocessing
import sqlite3
from pathlib import Path

import pytest
from tests.registry.mlflow.mlflow_testkit import tiny_onnx_model

from mlspec.errors import RegistryError
from mlspec.registry.base import RegistrationRequest

WORKERS = 4


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An MLSPEC_HOME nothing has used yet (the folder's module-wide home is not this one)."""
    home = tmp_path / "home"
    monkeypatch.setenv("MLSPEC_HOME", str(home))
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    return home


def publish(home: Path, name: str) -> RegistrationRequest:
    """One version of `name` published to a file store under `home`, and the register task's request."""
    from mlspec.storage import open_store

    published = open_store((home / "models").as_uri()).publish_version(
        name, {"model.onnx": tiny_onnx_model(2.0)}, run_id=f"manual__{name}"
    )
    return RegistrationRequest(
        model_name=name, version=published.version, source_uri=published.uri,
        model_uri=f"{published.uri}/model.onnx", metrics={"accuracy": 0.9}, data_source="builtin:digits",
        spec_hash="ab12", dag_id=name, run_id=published.run_id, onnx_opset=17, files=dict(published.files),
    )


def _register_at_once(home: str, name: str, barrier) -> tuple[str, list[str]]:
    """In a fresh process: publish, wait for the others, then open the embedded registry and register."""
    import os

    os.environ["MLSPEC_HOME"] = home
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger("mlspec.registry.mlflow_embedded")
    logger.addHandler(Keep())
    logger.setLevel(logging.INFO)
    request = publish(Path(home), name)
    import mlflow  # noqa: F401 - imported before the barrier: the race is between the database opens

    from mlspec.registry.mlflow_registry import MlflowRegistry

    barrier.wait(timeout=300)
    try:
        registry = MlflowRegistry()
        entry = registry.register(request)
        assert registry.latest_version(name) == entry.version == 1
        return "ok", records
    except Exception as exc:  # noqa: BLE001 - reported to the test
        return f"{type(exc).__name__}: {' '.join(str(exc).split())[:600]}", records


def mlflow_head() -> str:
    from mlflow.store.db.utils import _get_latest_schema_revision

    return _get_latest_schema_revision()


def revision(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]


def table_names(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_four_processes_open_a_fresh_registry_at_once(fresh_home: Path) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Manager().Barrier(WORKERS)
    with context.Pool(WORKERS) as pool:
        jobs = [(str(fresh_home), f"race-{i}", barrier) for i in range(WORKERS)]
        results = pool.starmap(_register_at_once, jobs)

    assert [outcome for outcome, _ in results] == ["ok"] * WORKERS, results
    lines = [line for _, logged in results for line in logged]
    created = [line for line in lines if line.startswith("created the embedded MLflow database")]
    assert len(created) == 1, created
    folder = fresh_home / "mlflow"
    assert sorted(p.name for p in folder.glob("mlflow.db*")) == ["mlflow.db", "mlflow.db.lock"]
    db = folder / "mlflow.db"
    assert revision(db) == [mlflow_head()]
    assert not {t for t in table_names(db) if t.startswith("_alembic_tmp_")}
    from mlspec.registry.mlflow_registry import MlflowRegistry

    assert [MlflowRegistry().latest_version(f"race-{i}") for i in range(WORKERS)] == [1] * WORKERS


def test_a_read_only_registry_never_creates_the_database(fresh_home: Path) -> None:
    from mlspec.registry.mlflow_embedded import embedded_db, embedded_store_exists
    from mlspec.registry.mlflow_registry import MlflowRegistry

    assert embedded_store_exists() is False
    with pytest.raises(RegistryError, match="does not exist yet: nothing has been registered"):
        MlflowRegistry(create=False).production_version("iris")
    assert not embedded_db().exists()


def make_registry_with_a_model(name: str = "kept") -> Path:
    from mlspec.registry.mlflow_embedded import embedded_db
    from mlspec.registry.mlflow_registry import MlflowRegistry

    registry = MlflowRegistry()
    registry.client.create_registered_model(name)
    return embedded_db()


def forget(db: Path) -> None:
    """Let the next use in this process check the database again (a task is a new process)."""
    from mlspec.registry import mlflow_embedded

    mlflow_embedded._PREPARED.discard(str(db))


def test_a_half_migrated_database_is_repaired_with_one_log_line(fresh_home, caplog) -> None:
    from mlspec.registry.mlflow_embedded import embedded_store_exists
    from mlspec.registry.mlflow_registry import MlflowRegistry

    db = make_registry_with_a_model()
    # What a raced creation left: alembic_version empty and a batch migration's stray table.
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM alembic_version")
        conn.execute("CREATE TABLE _alembic_tmp_metrics (key VARCHAR(250), value FLOAT)")
    forget(db)
    # A page reads nothing from it and repairs nothing: it says what is wrong.
    with pytest.raises(RegistryError, match=r"db is half-migrated \(stray table _alembic_tmp_metrics\)"):
        embedded_store_exists()
    assert revision(db) == []

    caplog.clear()  # only what opening the registry logs (the set-up may log too, at INFO in a full run)
    with caplog.at_level(logging.INFO, logger="mlspec.registry.mlflow_embedded"):
        registry = MlflowRegistry()
        assert registry.client.get_registered_model("kept").name == "kept"

    lines = [r.getMessage() for r in caplog.records if "embedded MLflow database" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "half-migrated" in lines[0] and "repaired it (dropped _alembic_tmp_metrics" in lines[0]
    assert "1 registered model(s)" in lines[0]
    assert revision(db) == [mlflow_head()]
    assert "_alembic_tmp_metrics" not in table_names(db)
    assert embedded_store_exists() is True


def test_an_older_revision_is_upgraded_under_the_lock(fresh_home, caplog) -> None:
    """A database of an older MLflow schema (MLflow was upgraded) is migrated by a task, not by a read."""
    from alembic import command
    from mlflow.store.db.utils import _get_alembic_config, create_sqlalchemy_engine

    from mlspec.registry.mlflow_embedded import embedded_store_exists
    from mlspec.registry.mlflow_registry import MlflowRegistry

    db = make_registry_with_a_model()
    engine = create_sqlalchemy_engine(f"sqlite:///{db}")
    config = _get_alembic_config(str(engine.url))
    with engine.begin() as connection:  # what an older MLflow made: its last migration undone
        config.attributes["connection"] = connection
        command.downgrade(config, "-1")
    engine.dispose()
    (older,) = revision(db)
    assert older != mlflow_head()
    forget(db)
    with pytest.raises(RegistryError, match=f"is at schema revision {older}, not MLflow's {mlflow_head()}"):
        embedded_store_exists()
    assert revision(db) == [older]  # reading changed nothing

    caplog.clear()  # only what opening the registry logs (the set-up may log too, at INFO in a full run)
    with caplog.at_level(logging.INFO, logger="mlspec.registry.mlflow_embedded"):
        assert MlflowRegistry().client.get_registered_model("kept").name == "kept"
    lines = [r.getMessage() for r in caplog.records if "embedded MLflow database" in r.getMessage()]
    assert len(lines) == 1, lines
    assert f"repaired it (upgraded it from revision {older} to {mlflow_head()})" in lines[0]
    assert "1 registered model(s)" in lines[0]
    assert revision(db) == [mlflow_head()]


def test_a_half_made_database_without_data_is_rebuilt(fresh_home, caplog) -> None:
    from mlspec.registry.mlflow_embedded import embedded_db
    from mlspec.registry.mlflow_registry import MlflowRegistry

    db = embedded_db()
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as conn:  # a creation that died after the first tables
        conn.execute("CREATE TABLE experiments (experiment_id INTEGER PRIMARY KEY, name VARCHAR(256))")
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")

    caplog.clear()  # only what opening the registry logs (the set-up may log too, at INFO in a full run)
    with caplog.at_level(logging.INFO, logger="mlspec.registry.mlflow_embedded"):
        MlflowRegistry().client.create_registered_model("fresh")

    lines = [r.getMessage() for r in caplog.records if "embedded MLflow database" in r.getMessage()]
    assert len(lines) == 1 and "no registered model and no run: rebuilt it" in lines[0], lines
    assert revision(db) == [mlflow_head()]


def break_beyond_repair(db: Path) -> None:
    """No revision, and a table MLflow's schema has is gone: nothing tells which revision it is at."""
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM alembic_version")
        conn.execute("DROP TABLE model_version_tags")


def test_beyond_repair_with_registered_models_fails_naming_the_file_and_the_way_out(fresh_home) -> None:
    from mlspec.registry.mlflow_registry import MlflowRegistry

    db = make_registry_with_a_model()
    break_beyond_repair(db)
    forget(db)
    with pytest.raises(RegistryError) as failure:
        _ = MlflowRegistry().client
    message = str(failure.value)
    assert str(db) in message and "has no schema revision" in message and "1 registered model(s)" in message
    assert f"mlflow db upgrade sqlite:///{db}" in message and f"mv {db} {db}.broken" in message
    assert db.exists() and not list(db.parent.glob("mlflow.db.broken-*"))


def test_beyond_repair_with_runs_but_no_model_is_moved_aside(fresh_home, caplog) -> None:
    from mlspec.registry.mlflow_registry import MlflowRegistry

    registry = MlflowRegistry()
    run = registry.client.create_run("0")
    db = Path(registry.tracking_uri.removeprefix("sqlite:///"))
    break_beyond_repair(db)
    forget(db)

    caplog.clear()  # only what opening the registry logs (the set-up may log too, at INFO in a full run)
    with caplog.at_level(logging.INFO, logger="mlspec.registry.mlflow_embedded"):
        fresh = MlflowRegistry().client
    (aside,) = db.parent.glob("mlflow.db.broken-*")
    lines = [r.getMessage() for r in caplog.records if "embedded MLflow database" in r.getMessage()]
    assert len(lines) == 1, lines
    assert f"moved aside to {aside}" in lines[0] and "its 1 run(s) are there" in lines[0]
    assert revision(db) == [mlflow_head()]
    with sqlite3.connect(aside) as conn:
        assert conn.execute("SELECT run_uuid FROM runs").fetchall() == [(run.info.run_id,)]
    assert fresh.search_registered_models() == []


def test_a_file_that_is_not_a_database_is_left_alone_with_a_clear_message(fresh_home) -> None:
    from mlspec.registry.mlflow_embedded import embedded_db
    from mlspec.registry.mlflow_registry import MlflowRegistry

    db = embedded_db()
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not SQLite " * 100)
    with pytest.raises(RegistryError) as failure:
        _ = MlflowRegistry().client
    assert f"embedded MLflow database {db} cannot be read (file is not a database)" in str(failure.value)
    assert f"mv {db} {db}.broken" in str(failure.value)
    assert db.read_bytes().startswith(b"this is not SQLite")


def test_status_on_a_fresh_home_reads_nothing_registered_and_creates_nothing(fresh_home, monkeypatch) -> None:
    from tests.fixtures.paths import SPECS
    from tests.fixtures.ports import free_port

    from mlspec.operations import status
    from mlspec.registry.mlflow_embedded import embedded_db
    from mlspec.spec import load_spec

    monkeypatch.setenv("MLSPEC_SERVER_URL", f"http://127.0.0.1:{free_port()}")
    report = status(load_spec(SPECS / "iris-forest.yaml"))
    assert (report["production"], report["history"], report["latest"]) == (None, [], None)
    assert not embedded_db().exists()


def test_a_held_lock_makes_others_wait_then_fail_naming_the_file_and_its_lock(tmp_path: Path) -> None:
    import os
    import threading

    from mlspec import embedded_state

    db = tmp_path / "state.db"
    taken, release, outcome = threading.Event(), threading.Event(), {}

    def holder() -> None:
        with embedded_state.locked(db):
            taken.set()
            release.wait(timeout=30)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert taken.wait(timeout=30)
        with pytest.raises(embedded_state.EmbeddedStateError) as failure:
            with embedded_state.locked(db, shared=True, timeout_s=0.3):
                outcome["read"] = True
        assert "read" not in outcome
        message = str(failure.value)
        assert f"{db} is being created or upgraded by another process; it holds {db}.lock" in message
        assert f"(pid {os.getpid()}: creating or upgrading state.db)" in message
        assert oct((tmp_path / "state.db.lock").stat().st_mode & 0o777) == "0o600"  # not readable by others
    finally:
        release.set()
        thread.join(timeout=30)
    with embedded_state.locked(db, shared=True, timeout_s=5):  # free again once the holder is done
        outcome["read"] = True
    assert outcome == {"read": True}

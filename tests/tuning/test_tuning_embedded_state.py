"""The embedded Optuna study database: created once under its lock when several runs start at once, and a
corrupted one named with what to do (issue 17)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from mlspec import tuning

WORKERS = 4


@pytest.fixture(autouse=True)
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("MLSPEC_HOME", str(home))
    return home


def _create_at_once(home: str, index: int, barrier) -> str:
    """In a fresh process: wait for the others, then create this DAG run's study."""
    import os

    os.environ["MLSPEC_HOME"] = home
    import optuna  # noqa: F401 - imported before the barrier: the race is between the database opens

    barrier.wait(timeout=300)
    try:
        study = tuning.create_study(name=f"mlspec/dag-{index}/run", connection=None, metric="val_accuracy",
                                    direction=None, seed=index, trials=4)
        trial = tuning.OptunaTrial.ask(study, {"model.params.units": {"choice": [8, 16]}}, 0)
        trial.tell(0.5)
        return "ok"
    except Exception as exc:  # noqa: BLE001 - reported to the test
        return f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}"


def test_four_runs_create_their_studies_at_once_on_a_fresh_home(fresh_home: Path) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Manager().Barrier(WORKERS)
    with context.Pool(WORKERS) as pool:
        results = pool.starmap(_create_at_once, [(str(fresh_home), i, barrier) for i in range(WORKERS)])
    assert results == ["ok"] * WORKERS, results

    import optuna

    storage = f"sqlite:///{fresh_home / 'tuning' / 'optuna.db'}"
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage))
    assert names == [f"mlspec/dag-{i}/run" for i in range(WORKERS)]
    assert sorted(p.name for p in (fresh_home / "tuning").iterdir()) == ["optuna.db", "optuna.db.lock"]


def test_a_corrupted_study_database_names_the_file_and_what_to_do(fresh_home: Path) -> None:
    db = fresh_home / "tuning" / "optuna.db"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"\x00garbage, not SQLite\n" * 200)

    with pytest.raises(tuning.TuningError) as failure:
        tuning.create_study(name="mlspec/t/run", connection=None, metric="val_accuracy", direction=None,
                            seed=1, trials=4)
    message = str(failure.value)
    assert f"the Optuna study database {db} cannot be read (file is not a database)" in message
    assert f"rm {db}" in message and "plan_trials" in message
    assert "only the trial history of tuning runs" in message  # what deleting it loses
    assert db.read_bytes().startswith(b"\x00garbage")  # left for the person to look at

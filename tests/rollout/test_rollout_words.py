"""What a person reads of a rollout: durations as written, a waiting step's progress, the wait of a paused or
held rollout, and the rollout's block in the run summary."""

from __future__ import annotations

import pytest

from mlspec.deadlines import format_duration, parse_duration
from mlspec.operators.promote import rollout_summary
from mlspec.operators.rollout import command_wait
from mlspec.rollout.metrics import StepMetrics
from mlspec.rollout.plan import Step
from mlspec.rollout.record import RolloutRecord
from mlspec.summary import NO_ROLLOUT, format_summary
from mlspec.triggers.rollout import progress_every_s, progress_line


@pytest.mark.parametrize(("seconds", "text"), [(172800, "48h"), (300, "5m"), (90, "90s"), (5400, "1h30m"),
                                               (1, "1s"), (3601, "1h1s"), (0.5, "0.5s")])
def test_durations_are_printed_as_written(seconds, text):
    assert format_duration(seconds) == text
    if seconds >= 1:
        assert parse_duration(text) == seconds


def test_a_waiting_step_says_what_it_saw_and_what_it_waits_for():
    canary = Step("canary", 10, 30)
    seen = StepMetrics(requests=45, errors=0, p95_ms=3.14, agreement=1.0, compared_rows=40, dropped=0)
    assert progress_line(canary, seen, 100, 12.7, compared=True) == (
        "canary 10%: 45 requests so far (min_requests 100), p95 3.1 ms, errors 0, agreement 1.000 on 40 rows; "
        "waiting 12s of 30s bake")
    quiet = StepMetrics(requests=0, errors=0, p95_ms=None, agreement=None, compared_rows=0, dropped=0)
    assert progress_line(Step("shadow", 100, 300), quiet, 200, 301, compared=True) == (
        "shadow 100%: 0 requests so far (min_requests 200), no latency yet, errors 0, no rows compared yet; "
        "the 5m bake is over; waiting for min_requests, at most 15m in all")
    # a 5m bake logs every 30s, a short one no more often than every 2s
    assert progress_every_s(300) == 30 and progress_every_s(1) == 2


def test_a_paused_rollout_says_how_long_it_waits_and_where_the_limit_comes_from():
    text = command_wait(172800)
    assert "at most 48h" in text and "rollout.approval.timeout" in text and "172800" not in text
    assert "for approval" not in text


def record(production: int | None) -> RolloutRecord:
    found = RolloutRecord(3 if production else 1, production, "rollback")
    if production:
        found.add_step("shadow", percent=100, traffic={"weights": {"2": 100}, "shadow": {"version": "3", "percent": 100}})
        found.finish_step("passed", metrics=StepMetrics(240, 0, 3.1, 1.0, 240, 0))
        found.add_step("approval", outcome="approved", by="alice")
        found.add_step("canary", percent=100, traffic={"weights": {"3": 100}})
        found.finish_step("passed", metrics=StepMetrics(300, 0, 2.9, 1.0, 300, 0))
    found.state = "completed"
    return found


def served(rollout: dict) -> dict:
    return {"model": "iris", "version": 3, "metrics": {"accuracy": 0.97}, "stored_uri": "file:///m/iris/3",
            "registry": {"backend": "mlflow", "model_name": "iris", "registry_version": "3"},
            "infer_url": "http://127.0.0.1:8555/v2/models/iris/infer",
            "smoke_test": {"samples": 32, "agreement": 1.0, "p95_ms": 2.0},
            "example": {"input": [0.1], "shape": [1, 1], "label": "setosa", "predicted": "setosa"},
            "rollout": rollout}


def test_the_run_summary_names_each_rollout_step_and_the_final_state():
    text = format_summary(served(rollout_summary(record(2))), "specs/iris.yaml")
    assert ("  rollout        completed, from production version 2\n"
            "    shadow 100%  240 requests, passed\n"
            "    approval     approved by alice\n"
            "    canary 100%  300 requests, passed\n") in text


def test_a_first_version_summary_says_there_was_nothing_to_roll_out_against():
    rollout = rollout_summary(record(None))
    assert rollout["steps"] == [] and rollout["production"] is None
    text = format_summary(served(rollout))
    assert ("  rollout        no production version: nothing to roll out against; version 1 takes every request "
            "after its smoke test") in text
    assert "None" not in text


def test_a_champion_that_holds_says_no_rollout_ran():
    summary = {"outcome": "champion_holds", "model": "iris", "version": 3, "stored_uri": "file:///m/iris/3",
               "champion": {"decision": "champion_holds", "metric": "accuracy", "challenger": 0.9, "champion": 0.95,
                            "champion_version": 2, "min_delta": 0.0},
               "rollout": NO_ROLLOUT}
    assert format_summary(summary).endswith(
        "  rollout        no rollout ran: the champion gate runs first, and a version that does not beat production "
        "is not rolled out")


def test_mlspec_run_reads_that_no_rollout_ran_when_the_champion_held(tmp_path, monkeypatch):
    from tests.rollout.rollout_testkit import SPEC

    from mlspec.spec import load_spec_text
    from mlspec.storage import open_store
    from mlspec.summary import read_summary

    monkeypatch.setenv("MLSPEC_HOME", str(tmp_path))
    held = {"outcome": "champion_holds", "model": "iris", "version": 3}
    for section, expected in (("rollout: {canary: {steps: [100], bake: 1s}}\n", NO_ROLLOUT), ("", None)):
        spec = load_spec_text(SPEC + section, "iris.yaml")
        store = open_store(spec.storage.uri, spec.storage.connection)
        store.write_json(f"{store.run_prefix(spec.name, 'manual__1')}/summary.json", held)
        assert read_summary(spec, "manual__1").get("rollout") == expected

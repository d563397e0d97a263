"""The rollout's Airflow side: the rollback notification's words, and (with a real `mlspec serve`) the
rollout operator's steps and its trigger."""

from __future__ import annotations

from mlspec.notify import ROLLBACK, rollback_message


def test_the_rollback_message_names_the_model_the_candidate_the_gate_and_what_serves():
    subject, paragraphs = rollback_message(
        {"model": "iris", "version": 3, "production": 2, "reason": "the shadow 100% step failed its gates: "
         "agreement 0.61 >= 0.95: FAILED (on 400 rows compared)", "gate": "agreement", "by": "the rollout's gates",
         "run_id": "manual__1"}, "specs/iris.yaml")
    assert subject == "[mlspec] iris: version 3 rolled back (agreement); production version 2 answers every request"
    text = "\n".join(paragraphs)
    assert "agreement 0.61 >= 0.95: FAILED" in text and "run manual__1" in text
    assert "`mlspec rollout specs/iris.yaml --status`" in text and "rolled_back" in text
    assert ROLLBACK == "rollback"


def test_a_first_version_rolled_back_says_nothing_is_served():
    subject, _ = rollback_message({"model": "iris", "version": 1, "production": None, "reason": "rejected",
                                   "gate": "rejected", "by": "alice"}, "")
    assert subject.endswith("version 1 rolled back (rejected); nothing is served")

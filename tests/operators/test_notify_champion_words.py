"""The champion_holds notification says what the gate decided: a tie (an identical retrain) is not a loss."""

from __future__ import annotations


def summary(decision: str, challenger: float) -> dict:
    verdict = {"decision": decision, "metric": "accuracy", "champion": 0.95, "challenger": challenger,
               "champion_version": 4, "min_delta": 0.0}
    return {"model": "iris", "version": 5, "stored_uri": "file:///models/iris/5", "dag_id": "iris",
            "run_id": "r1", "metrics": {"accuracy": challenger}, "champion": verdict}


def test_a_tie_is_worded_as_a_tie_in_the_subject_and_the_message():
    from mlspec.notify import champion_holds_message

    subject, paragraphs = champion_holds_message(summary("tie", 0.95), "specs/iris.yaml")
    assert subject == "[mlspec] iris: version 5 tied with production version 4 (the same score)"
    assert paragraphs[0] == ("Model iris: version 5 tied with production version 4 (the same score), "
                             "which keeps serving.")
    assert not any("did not beat" in p for p in [subject, *paragraphs])


def test_a_loss_still_reads_did_not_beat():
    from mlspec.notify import champion_holds_message

    subject, paragraphs = champion_holds_message(summary("champion_holds", 0.90), "specs/iris.yaml")
    assert subject == "[mlspec] iris: version 5 did not beat production version 4"
    assert paragraphs[0] == "Model iris: version 5 did not beat production version 4, which keeps serving."

"""specs/wine-xgboost.yaml through real Airflow (dag.test) on the embedded defaults: XGBoost trains with
early stopping and one log line per round, the ONNX export passes parity and the smoke test, a real v2
client (tritonclient) gets the served classes from raw features, and the model card and the Models page
describe it."""

from __future__ import annotations

import numpy as np
import pytest
from tests.e2e.e2e_testkit import kept_messages, served_version, task_states, xcom
from tests.e2e.test_e2e_frameworks import held_out, infer, version_dir
from tests.fixtures.paths import SPECS

pytestmark = pytest.mark.e2e


def test_xgboost_classifier_on_wine(run_spec, model_server):
    with kept_messages("mlspec.ml.frameworks.boosting") as logged:
        spec, dag_run = run_spec((SPECS / "wine-xgboost.yaml").read_text(), "wine-xgboost", n_estimators=40)
    assert str(dag_run.state) == "success", task_states(dag_run)
    trained = xcom(dag_run, "train")
    assert trained["framework"] == "xgboost" and sorted(trained["history"]) == ["mlogloss", "val_mlogloss"]
    # The trigger form's n_estimators, one line per round until early stopping.
    rounds = [line for line in logged if line.startswith("round ")]
    assert rounds[0].startswith("round 1/40: mlogloss=") and len(rounds) == trained["steps_run"]

    dataset = held_out(dag_run)
    answers = infer(model_server, "wine-xgboost", dataset.x_test, ["label", "probabilities"])
    assert answers["probabilities"].shape == (len(dataset.x_test), 3)
    assert np.array_equal(answers["label"], answers["probabilities"].argmax(1))
    accuracy = float((answers["label"] == dataset.y_test).mean())
    assert (
        accuracy == pytest.approx(xcom(dag_run, "evaluate")["metrics"]["accuracy"], abs=1e-6)
        and accuracy >= 0.85
    )
    assert xcom(dag_run, "export_onnx")["max_abs_diff"] <= spec.export.parity_atol
    assert xcom(dag_run, "smoke_test")["passed"]

    card = (version_dir(spec) / "model_card.md").read_text()
    assert "XGBoost XGBClassifier (" in card and "n_estimators=40" in card, card[:800]

    from fastapi.testclient import TestClient

    from mlspec.ui.app import create_app

    with TestClient(create_app(timeout_s=20)) as client:
        page = client.get("/models/wine-xgboost/versions/1")
    assert page.status_code == 200, page.text[-2000:]
    assert "xgboost · classification" in page.text


TUNING = """\
tuning:
  strategy: grid
  trials: 2
  objective: {metric: val_f1}
  space:
    model.params.max_depth: {choice: [2, 4]}
"""


def test_a_tuned_xgboost_spec_then_an_identical_retrain_meets_the_champion_gate(run_spec, model_server):
    text = (SPECS / "wine-xgboost.yaml").read_text().replace("name: wine-xgboost", "name: wine-xgb-tuned")
    text += TUNING
    spec, first = run_spec(text, "wine-xgb-tuned")
    assert str(first.state) == "success", task_states(first)
    best = xcom(first, "select_best")
    assert best["framework"] == "xgboost" and {row["state"] for row in best["trials"]} == {"success"}
    assert served_version(model_server, "wine-xgb-tuned") == "1"

    _, second = run_spec(text, "wine-xgb-tuned")
    states = task_states(second)
    assert str(second.state) == "success", states
    verdict = xcom(second, "evaluate")["champion"]
    assert verdict["decision"] == "tie" and states["deploy"] == "skipped", (verdict, states)
    assert served_version(model_server, "wine-xgb-tuned") == "1"

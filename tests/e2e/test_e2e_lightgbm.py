"""specs/diabetes-lightgbm.yaml through real Airflow (dag.test) on the embedded defaults: LightGBM trains with
one log line per round, the ONNX export passes parity and the smoke test, a real v2 client (tritonclient) gets
the served predictions from raw features, and the model card and the Models page describe it."""

from __future__ import annotations

import numpy as np
import pytest
from tests.e2e.e2e_testkit import kept_messages, task_states, xcom
from tests.e2e.test_e2e_frameworks import held_out, infer, version_dir
from tests.fixtures.paths import SPECS

from mlspec.ml.frameworks.boosting import shown_rounds

pytestmark = pytest.mark.e2e


def test_lightgbm_regressor_on_diabetes(run_spec, model_server):
    with kept_messages("mlspec.ml.frameworks.boosting") as logged:
        spec, dag_run = run_spec((SPECS / "diabetes-lightgbm.yaml").read_text(), "diabetes-lightgbm")
    assert str(dag_run.state) == "success", task_states(dag_run)
    trained = xcom(dag_run, "train")
    assert trained["framework"] == "lightgbm" and sorted(trained["history"]) == ["l2", "val_l2"]
    assert trained["steps_run"] == 80
    # 80 rounds: the first, every 2nd and the last are logged (about MAX_ROUND_LINES lines).
    rounds = [line for line in logged if line.startswith("round ")]
    assert rounds[0].startswith("round 1/80: l2=") and rounds[-1].startswith("round 80/80: l2=")
    assert len(rounds) == len(shown_rounds(80)) == 41

    dataset = held_out(dag_run)
    prediction = infer(model_server, "diabetes-lightgbm", dataset.x_test, ["prediction"])[
        "prediction"
    ].reshape(-1)
    rmse = float(np.sqrt(np.mean((prediction - dataset.y_test) ** 2)))
    metrics = xcom(dag_run, "evaluate")["metrics"]
    assert rmse == pytest.approx(metrics["rmse"], rel=1e-4) and rmse <= 65 and metrics["r2"] >= 0.3
    smoke = xcom(dag_run, "smoke_test")
    assert smoke["passed"] and smoke["agreement"] >= 0.99

    card = (version_dir(spec) / "model_card.md").read_text()
    assert (
        "LightGBM LGBMRegressor (learning_rate=0.05, min_child_samples=10, n_estimators=80, num_leaves=7, "
        "random_state=0)" in card
    ), card[:800]

    from fastapi.testclient import TestClient

    from mlspec.ui.app import create_app

    with TestClient(create_app(timeout_s=20)) as client:
        page = client.get("/models/diabetes-lightgbm/versions/1")
    assert page.status_code == 200, page.text[-2000:]
    assert "lightgbm · regression" in page.text

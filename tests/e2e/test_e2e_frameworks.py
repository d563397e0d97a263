"""scikit-learn beside TensorFlow, regression beside classification: each example runs through real
Airflow on the embedded defaults and ends with a smoke-tested local endpoint that a real v2 client
(tritonclient) queries with raw features."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.e2e.e2e_testkit import task_states, xcom
from tests.fixtures.paths import SPECS

pytestmark = pytest.mark.e2e

KERAS_REGRESSOR = """\
apiVersion: mlspec/v1
kind: ModelSpec
metadata: {name: diabetes-keras, description: Diabetes progression with a small Keras network}
data:
  source: builtin:diabetes
  split: {validation: 0.15, test: 0.2, seed: 3, stratify: false}
  preprocess: [{normalize: {}}]
model:
  task: regression
  layers:
    - dense: {units: 32, activation: relu}
    - dense: {units: 1}
training:
  epochs: 80
  batch_size: 32
  optimizer: {name: adam, learning_rate: 0.05}
evaluation:
  thresholds: {r2: {min: 0.2}}
export: {parity: {atol: 0.001}}
smoke_test: {atol: 0.01, rtol: 0.0001}
"""


def version_dir(spec, version: int = 1) -> Path:
    from mlspec.storage import resolve_file_uri

    return resolve_file_uri(spec.storage.uri) / spec.name / str(version)


def held_out(dag_run):
    from mlspec.ml.data import Dataset
    from mlspec.storage import resolve_file_uri

    return Dataset.from_npz_bytes(Path(resolve_file_uri(xcom(dag_run, "prepare_data")["data_uri"])).read_bytes())


def infer(server_url: str, model: str, x: np.ndarray, outputs: list[str]) -> dict[str, np.ndarray]:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=server_url.removeprefix("http://"))
    assert client.is_model_ready(model)
    infer_input = triton.InferInput("input", list(x.shape), "FP32")
    infer_input.set_data_from_numpy(x.astype(np.float32))
    answer = client.infer(model, [infer_input])
    return {name: answer.as_numpy(name) for name in outputs}


def test_sklearn_random_forest_on_iris(run_spec, model_server):
    spec, dag_run = run_spec((SPECS / "iris-forest.yaml").read_text(), "iris-forest")
    assert str(dag_run.state) == "success", task_states(dag_run)
    folder = version_dir(spec)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {"model.onnx", "input_schema.json", "output_schema.json"} <= set(manifest["files"])

    # Raw features in, the species out: the scaler is inside the exported pipeline.
    dataset = held_out(dag_run)
    answers = infer(model_server, "iris-forest", dataset.x_test, ["label", "probabilities"])
    assert answers["probabilities"].shape == (len(dataset.x_test), 3)
    assert np.array_equal(answers["label"], answers["probabilities"].argmax(1))
    accuracy = float((answers["label"] == dataset.y_test).mean())
    metrics = xcom(dag_run, "evaluate")["metrics"]
    assert accuracy == pytest.approx(metrics["accuracy"], abs=1e-6) and accuracy >= 0.85

    # Class names and feature statistics travel with the version.
    output_schema = json.loads((folder / "output_schema.json").read_text())
    assert output_schema["class_names"] == ["setosa", "versicolor", "virginica"]
    input_schema = json.loads((folder / "input_schema.json").read_text())
    assert input_schema["features"][0]["name"] == "sepal length (cm)"
    assert xcom(dag_run, "train")["framework"] == "sklearn"
    exported = xcom(dag_run, "export_onnx")
    assert exported["max_abs_diff"] <= spec.export.parity_atol


def test_sklearn_gradient_boosting_regression_on_diabetes(run_spec, model_server):
    spec, dag_run = run_spec((SPECS / "diabetes.yaml").read_text(), "diabetes")
    assert str(dag_run.state) == "success", task_states(dag_run)
    dataset = held_out(dag_run)
    answers = infer(model_server, "diabetes", dataset.x_test, ["prediction"])
    prediction = answers["prediction"].reshape(-1)
    rmse = float(np.sqrt(np.mean((prediction - dataset.y_test) ** 2)))
    metrics = xcom(dag_run, "evaluate")["metrics"]
    assert rmse == pytest.approx(metrics["rmse"], rel=1e-4) and rmse <= 65
    assert set(metrics) == {"rmse", "mae", "r2"} and metrics["r2"] >= 0.3
    smoke = xcom(dag_run, "smoke_test")
    assert smoke["passed"] and smoke["agreement"] >= 0.99
    assert json.loads((version_dir(spec) / "output_schema.json").read_text())["outputs"] == [
        {"name": "prediction", "datatype": "FP32", "shape": [-1, 1]}
    ]


def test_keras_regressor_on_diabetes(run_spec, model_server):
    spec, dag_run = run_spec(KERAS_REGRESSOR, "diabetes-keras")
    assert str(dag_run.state) == "success", task_states(dag_run)
    dataset = held_out(dag_run)
    prediction = infer(model_server, "diabetes-keras", dataset.x_test, ["prediction"])["prediction"].reshape(-1)
    metrics = xcom(dag_run, "evaluate")["metrics"]
    assert float(np.sqrt(np.mean((prediction - dataset.y_test) ** 2))) == pytest.approx(metrics["rmse"], rel=1e-3)
    assert metrics["r2"] >= 0.2
    assert "val_rmse" in xcom(dag_run, "train")["history"]


def test_a_sklearn_parity_failure_publishes_nothing(run_spec, model_server):
    # ONNX Runtime computes in float32, scikit-learn in float64: a logistic regression's probabilities
    # differ by more than 1e-30 (and no relative slack), so this parity gate must fail.
    text = (SPECS / "iris-forest.yaml").read_text().replace("name: iris-forest", "name: iris-parity")
    text = text.replace("estimator: random_forest", "estimator: logistic_regression")
    text = text.replace("params: {n_estimators: 100, max_depth: 6, random_state: 0}", "params: {C: 0.5}")
    text += "export: {parity: {atol: 1.0e-30, rtol: 0}}\n"
    spec, dag_run = run_spec(text, "iris-parity")
    states = task_states(dag_run)
    assert states["export_onnx"] == "failed" and states["store"] == "upstream_failed", states
    from mlspec.storage import open_store

    assert open_store(spec.storage.uri).list_versions("iris-parity") == []

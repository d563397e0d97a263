"""The scikit-learn adapter: every estimator of both tasks builds with scale+normalize, fits, predicts,
round-trips through joblib and exports to ONNX that answers like the pipeline on raw features."""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np
import pytest

from mlspec.ml.data import Dataset, split
from mlspec.ml.frameworks import TrainingError, TrainingPlan, get_adapter
from mlspec.ml.frameworks.sklearn_adapter import progress_steps
from mlspec.ml.onnx_export import ExportError, onnx_predict, onnx_signature
from mlspec.ml.frameworks.sklearn_estimators import ESTIMATORS
from mlspec.vocabulary import OUTPUTS

SKLEARN = get_adapter("sklearn")
PREPROCESS = ({"scale": {"divide_by": 2.0, "offset": -1.0}}, {"normalize": {}})
# Small settings so the whole file runs in seconds; every other parameter keeps its default.
FAST = {
    "random_forest": {"n_estimators": 15},
    "extra_trees": {"n_estimators": 15},
    "gradient_boosting": {"n_estimators": 25},
    "mlp": {"hidden_layer_sizes": [16], "max_iter": 300},
}
ALL = [(task, name) for task in ESTIMATORS for name in ESTIMATORS[task]]


def _split(x: np.ndarray, y: np.ndarray, *, stratify: bool, class_names: tuple[str, ...]) -> Dataset:
    return split(x, y, validation=0.2, test=0.2, seed=0, stratify=stratify, class_names=class_names)


@pytest.fixture(scope="module")
def datasets() -> dict[str, Dataset]:
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

    iris = load_iris()
    diabetes = load_diabetes()
    cancer = load_breast_cancer()
    return {
        "classification": _split(
            iris.data.astype(np.float32),
            iris.target.astype(np.int64),
            stratify=True,
            class_names=tuple(iris.target_names),
        ),
        "regression": _split(
            diabetes.data.astype(np.float32),
            diabetes.target.astype(np.float32),
            stratify=False,
            class_names=(),
        ),
        "binary": _split(
            cancer.data[:200].astype(np.float32),
            cancer.target[:200].astype(np.int64),
            stratify=True,
            class_names=tuple(cancer.target_names),
        ),
    }


def _plan(task: str, name: str, *, preprocess: Any = PREPROCESS, params: dict | None = None) -> TrainingPlan:
    return TrainingPlan(
        framework="sklearn",
        task=task,
        preprocess=tuple(preprocess),
        seed=7,
        estimator=name,
        params=FAST.get(name, {}) if params is None else params,
    )


def _fitted(plan: TrainingPlan, dataset: Dataset) -> Any:
    model = SKLEARN.build(plan, dataset)
    SKLEARN.fit(model, plan, dataset)
    return model


def _check_export(model: Any, task: str, dataset: Dataset) -> None:
    import onnx

    onnx_bytes = SKLEARN.to_onnx(model, task=task, opset=17, sample=dataset.x_train[:5])
    n_features = dataset.x_train.shape[1]
    signature = onnx_signature(onnx_bytes)
    assert signature["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, n_features]}]
    if task == "classification":
        width = dataset.num_classes
        assert signature["outputs"] == [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, width]},
            {"name": "label", "datatype": "INT64", "shape": [-1]},
        ]
    else:
        assert signature["outputs"] == [{"name": "prediction", "datatype": "FP32", "shape": [-1, 1]}]
    assert [o.name for o in onnx.load_from_string(onnx_bytes).graph.output] == list(OUTPUTS[task])

    x = np.concatenate([dataset.x_train, dataset.x_val, dataset.x_test])  # raw features, as served
    expected = SKLEARN.predict(model, x, task)
    answers = onnx_predict(onnx_bytes, x)
    assert set(answers) == set(OUTPUTS[task])
    if task == "classification":
        np.testing.assert_allclose(answers["probabilities"], expected["probabilities"], atol=1e-4)
        np.testing.assert_array_equal(answers["label"], expected["label"])
    else:
        np.testing.assert_allclose(answers["prediction"], expected["prediction"], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(("task", "name"), ALL, ids=[f"{t}-{n}" for t, n in ALL])
def test_every_estimator_trains_round_trips_and_exports(
    task: str, name: str, datasets: dict[str, Dataset]
) -> None:
    dataset = datasets[task]
    plan = _plan(task, name)
    model = SKLEARN.build(plan, dataset)
    report = SKLEARN.fit(model, plan, dataset)
    assert report.steps_run >= 1 and report.history

    answers = SKLEARN.predict(model, dataset.x_test, task)
    n = len(dataset.x_test)
    if task == "classification":
        assert answers["probabilities"].dtype == np.float32 and answers["probabilities"].shape == (n, 3)
        assert answers["label"].dtype == np.int64 and answers["label"].shape == (n,)
        np.testing.assert_allclose(answers["probabilities"].sum(axis=1), 1.0, rtol=1e-5)
        np.testing.assert_array_equal(answers["label"], answers["probabilities"].argmax(axis=1))
        assert (answers["label"] == dataset.y_test).mean() > 0.6
    else:
        assert answers["prediction"].dtype == np.float32 and answers["prediction"].shape == (n, 1)

    data = SKLEARN.save(model)
    assert isinstance(data, bytes) and SKLEARN.artifact_name == "model.joblib"
    loaded = SKLEARN.load(data)
    for key, value in SKLEARN.predict(loaded, dataset.x_test, task).items():
        np.testing.assert_array_equal(value, answers[key])

    _check_export(loaded, task, dataset)


@pytest.mark.parametrize(
    "name", ["logistic_regression", "linear_svc", "mlp", "gradient_boosting", "k_neighbors"]
)
def test_binary_classification_exports_two_probability_columns(
    name: str, datasets: dict[str, Dataset]
) -> None:
    dataset = datasets["binary"]
    model = _fitted(_plan("classification", name), dataset)
    _check_export(model, "classification", dataset)


def test_scale_is_fixed_and_normalize_learns_from_training_data(datasets: dict[str, Dataset]) -> None:
    dataset = datasets["classification"]
    model = _fitted(_plan("classification", "logistic_regression"), dataset)
    scaled = model[:1].transform(dataset.x_test)
    np.testing.assert_allclose(scaled, dataset.x_test / 2.0 - 1.0, rtol=1e-6)
    normalized = model[:2].transform(dataset.x_train)
    np.testing.assert_allclose(normalized.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(normalized.std(axis=0), 1.0, atol=1e-4)
    model.fit(dataset.x_train * 10, dataset.y_train)  # refitting the pipeline leaves the scale step alone
    np.testing.assert_allclose(model[:1].transform(dataset.x_test), scaled)


def test_without_preprocess_the_pipeline_is_the_estimator(datasets: dict[str, Dataset]) -> None:
    dataset = datasets["regression"]
    model = _fitted(_plan("regression", "ridge", preprocess=()), dataset)
    assert len(model.steps) == 1
    _check_export(model, "regression", dataset)


def test_linear_svc_is_calibrated(datasets: dict[str, Dataset]) -> None:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import LinearSVC

    dataset = datasets["classification"]
    model = _fitted(_plan("classification", "linear_svc", params={"C": 0.5}), dataset)
    final = model.steps[-1][1]
    assert isinstance(final, CalibratedClassifierCV) and isinstance(final.estimator, LinearSVC)
    assert final.estimator.C == 0.5 and final.estimator.random_state == 7
    probabilities = SKLEARN.predict(model, dataset.x_test, "classification")["probabilities"]
    assert 0.0 < probabilities.min() and probabilities.max() < 1.0  # real probabilities, not one-hot votes


def test_seed_sets_random_state_unless_params_do(datasets: dict[str, Dataset]) -> None:
    dataset = datasets["classification"]
    assert SKLEARN.build(_plan("classification", "random_forest"), dataset)[-1].random_state == 7
    plan = _plan("classification", "random_forest", params={"random_state": 3})
    assert SKLEARN.build(plan, dataset)[-1].random_state == 3
    assert (
        "random_state" not in SKLEARN.build(_plan("classification", "k_neighbors"), dataset)[-1].get_params()
    )


@pytest.mark.parametrize(
    ("step", "words"),
    [
        ({"reshape": [2, 2]}, "data.preprocess[1] (reshape): reshape is for Keras models"),
        ({"one_hot": {}}, "one_hot is for Keras"),
    ],
)
def test_keras_only_steps_are_refused(step: dict, words: str, datasets: dict[str, Dataset]) -> None:
    plan = _plan("classification", "random_forest", preprocess=[{"normalize": {}}, step])
    with pytest.raises(TrainingError, match=re.escape(words)):
        SKLEARN.build(plan, datasets["classification"])


def test_samples_must_be_feature_vectors(datasets: dict[str, Dataset]) -> None:
    from dataclasses import replace

    dataset = datasets["classification"]
    images = replace(dataset, x_train=dataset.x_train.reshape(-1, 2, 2))
    with pytest.raises(TrainingError, match=r"one feature vector per sample.*\(2, 2\).*data\.source"):
        SKLEARN.build(_plan("classification", "random_forest"), images)


def test_bad_params_name_model_params(datasets: dict[str, Dataset]) -> None:
    dataset = datasets["classification"]
    with pytest.raises(
        TrainingError, match=r"model\.params: unknown parameter `n_estimatorz`.*`n_estimators`"
    ):
        SKLEARN.build(_plan("classification", "random_forest", params={"n_estimatorz": 5}), dataset)
    with pytest.raises(TrainingError, match=r"model\.params: `max_depth` must be an integer >= 1 or null"):
        SKLEARN.build(_plan("classification", "random_forest", params={"max_depth": "deep"}), dataset)
    with pytest.raises(TrainingError, match=r"model\.estimator: unknown estimator `forest`"):
        SKLEARN.build(_plan("classification", "forest", params={}), dataset)
    # Combinations only scikit-learn knows are wrong still fail with the spec field named.
    plan = _plan("classification", "logistic_regression", params={"solver": "newton-cg", "l1_ratio": 1.0})
    model = SKLEARN.build(plan, dataset)
    with pytest.raises(TrainingError, match=r"fitting logistic_regression failed: .*\(check model\.params\)"):
        SKLEARN.fit(model, plan, dataset)


def test_training_split_must_hold_every_class(datasets: dict[str, Dataset]) -> None:
    from dataclasses import replace

    dataset = datasets["classification"]
    keep = dataset.y_train != 2
    partial = replace(dataset, x_train=dataset.x_train[keep], y_train=dataset.y_train[keep])
    plan = _plan("classification", "decision_tree")
    with pytest.raises(TrainingError, match=r"no samples of class virginica"):
        SKLEARN.fit(SKLEARN.build(plan, partial), plan, partial)


def test_progress_is_logged_per_stage(datasets: dict[str, Dataset], caplog: pytest.LogCaptureFixture) -> None:
    dataset = datasets["classification"]
    seen: list[tuple[int, dict[str, float]]] = []
    plan = _plan("classification", "gradient_boosting", params={"n_estimators": 60})
    with caplog.at_level(logging.INFO, logger="mlspec.ml.frameworks.sklearn_adapter"):
        report = SKLEARN.fit(
            SKLEARN.build(plan, dataset), plan, dataset, lambda step, values: seen.append((step, values))
        )
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stage ")]
    assert 10 <= len(lines) <= 21 and lines[-1].startswith("stage 60/60: loss=")
    assert [step for step, _ in seen] == [int(line.split()[1].split("/")[0]) for line in lines]
    assert report.steps_run == 60 and not report.stopped_early and len(report.history["loss"]) == 60
    assert seen[-1] == (60, {"loss": report.history["loss"][-1]})


def test_mlp_progress_and_early_stopping(
    datasets: dict[str, Dataset], caplog: pytest.LogCaptureFixture
) -> None:
    dataset = datasets["classification"]
    seen: list[int] = []
    params = {"hidden_layer_sizes": [8], "max_iter": 500, "early_stopping": True, "n_iter_no_change": 3}
    plan = _plan("classification", "mlp", params=params)
    with caplog.at_level(logging.INFO, logger="mlspec.ml.frameworks.sklearn_adapter"):
        report = SKLEARN.fit(
            SKLEARN.build(plan, dataset), plan, dataset, lambda step, values: seen.append(step)
        )
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("iteration ")]
    assert lines and len(lines) <= 21 and re.match(r"iteration \d+/500: loss=\S+ val_accuracy=\S+", lines[-1])
    assert report.stopped_early and report.steps_run < 500 and seen[-1] == report.steps_run
    assert set(report.history) == {"loss", "val_accuracy"}


def test_one_shot_estimators_log_one_line(
    datasets: dict[str, Dataset], caplog: pytest.LogCaptureFixture
) -> None:
    dataset = datasets["regression"]
    seen: list[tuple[int, dict[str, float]]] = []
    plan = _plan("regression", "ridge")
    with caplog.at_level(logging.INFO, logger="mlspec.ml.frameworks.sklearn_adapter"):
        report = SKLEARN.fit(
            SKLEARN.build(plan, dataset), plan, dataset, lambda step, values: seen.append((step, values))
        )
    assert [r.getMessage() for r in caplog.records if "fitted ridge" in r.getMessage()][0].endswith(
        f"r2={report.history['r2'][0]:.4f} val_r2={report.history['val_r2'][0]:.4f}"
    )
    assert report.steps_run == 1 and not report.stopped_early
    assert seen == [(1, {"r2": report.history["r2"][0], "val_r2": report.history["val_r2"][0]})]


def test_progress_steps() -> None:
    assert progress_steps(5) == [1, 2, 3, 4, 5]
    steps = progress_steps(1000)
    assert len(steps) <= 21 and steps[-1] == 1000 and steps == sorted(set(steps))
    assert progress_steps(21)[-1] == 21 and len(progress_steps(21)) <= 21


def test_load_errors_are_one_clear_line() -> None:
    with pytest.raises(
        TrainingError, match=r"^could not load the trained model \(joblib, 9 bytes\): [^\n]+$"
    ):
        SKLEARN.load(b"not a pkl")
    with pytest.raises(TrainingError, match="not a scikit-learn Pipeline"):
        SKLEARN.load(SKLEARN.save({"a": 1}))


def test_conversion_failures_are_export_errors(datasets: dict[str, Dataset]) -> None:
    from sklearn.dummy import DummyClassifier
    from sklearn.pipeline import Pipeline

    dataset = datasets["classification"]
    model = Pipeline([("estimator", DummyClassifier())]).fit(dataset.x_train, dataset.y_train)
    with pytest.raises(ExportError, match="skl2onnx could not convert DummyClassifier at opset 17"):
        SKLEARN.to_onnx(model, task="classification", opset=17, sample=dataset.x_train[:2])


def test_module_imports_no_heavy_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys, mlspec.ml.frameworks.sklearn_adapter\n"
        "heavy = [m for m in ('sklearn', 'skl2onnx', 'joblib', 'onnx') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr

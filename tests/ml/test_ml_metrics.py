"""Metrics on small hand-checked arrays, the threshold gate's messages and champion comparison."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mlspec.ml.metrics import (
    MetricsError,
    challenger_wins,
    check_thresholds,
    classification_metrics,
    compute_metrics,
    regression_metrics,
)

CLASSES = ("cat", "dog", "fox")
# true:      cat cat cat dog dog fox
# predicted: cat cat dog dog cat dog
Y_TRUE = np.array([0, 0, 0, 1, 1, 2])
Y_PRED = np.array([0, 0, 1, 1, 0, 1])


def test_metrics_match_hand_computation() -> None:
    names = ["accuracy", "precision", "recall", "f1"]
    m = classification_metrics(Y_TRUE, Y_PRED, class_names=CLASSES, metrics=names)
    assert m["accuracy"] == pytest.approx(3 / 6)
    # precision: cat 2/3, dog 1/3, fox never predicted -> 0 (zero_division=0)
    assert m["precision"] == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)
    # recall: cat 2/3, dog 1/2, fox 0/1
    assert m["recall"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    # f1 per class: cat 2/3, dog 2*(1/3*1/2)/(1/3+1/2) = 0.4, fox 0
    assert m["f1"] == pytest.approx((2 / 3 + 0.4 + 0) / 3)
    assert m["confusion_matrix"] == [[2, 1, 0], [1, 1, 0], [0, 1, 0]]
    assert m["support"] == [3, 2, 1]


def test_only_requested_metrics_and_one_hot_inputs() -> None:
    one_hot_true = np.eye(3)[Y_TRUE]
    probabilities = np.eye(3)[Y_PRED] * 0.7 + 0.1
    m = classification_metrics(one_hot_true, probabilities, class_names=CLASSES, metrics=["accuracy"])
    assert set(m) == {"accuracy", "confusion_matrix", "support"}
    assert m["accuracy"] == pytest.approx(0.5)


def test_class_missing_from_test_still_counts() -> None:
    m = classification_metrics(np.array([0, 1]), np.array([0, 1]), class_names=CLASSES, metrics=["recall"])
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]
    assert m["support"] == [1, 1, 0]
    assert m["recall"] == pytest.approx(2 / 3)  # fox has no samples: 0 by zero_division


def test_unknown_metric_and_length_mismatch() -> None:
    with pytest.raises(MetricsError, match="unknown metric 'auc'; classification metrics: accuracy, prec"):
        classification_metrics(Y_TRUE, Y_PRED, class_names=CLASSES, metrics=["auc"])
    with pytest.raises(MetricsError, match="6 true labels but 5 predictions"):
        classification_metrics(Y_TRUE, Y_PRED[:5], class_names=CLASSES, metrics=["accuracy"])


def test_compute_metrics_for_classification_outputs() -> None:
    probabilities = np.eye(3)[Y_PRED] * 0.7 + 0.1
    outputs = {"probabilities": probabilities, "label": Y_PRED}
    m = compute_metrics("classification", Y_TRUE, outputs, metrics=["accuracy", "f1"], class_names=CLASSES)
    assert set(m) == {"accuracy", "f1", "confusion_matrix", "support"}
    assert m["accuracy"] == pytest.approx(0.5) and m["f1"] == pytest.approx((2 / 3 + 0.4) / 3)
    json.dumps(m, allow_nan=False)
    # Without "label" the argmax of the probabilities is the prediction; one-hot y_true works too.
    only_prob = compute_metrics(
        "classification",
        np.eye(3)[Y_TRUE],
        {"probabilities": probabilities},
        metrics=["accuracy"],
        class_names=CLASSES,
    )
    assert only_prob["confusion_matrix"] == m["confusion_matrix"]
    with pytest.raises(MetricsError, match="outputs are prediction; a classification model answers prob"):
        compute_metrics("classification", Y_TRUE, {"prediction": Y_PRED}, metrics=["f1"], class_names=CLASSES)
    with pytest.raises(MetricsError, match="need the data set's class names"):
        compute_metrics("classification", Y_TRUE, outputs, metrics=["f1"])


def test_metric_of_the_other_task_lists_this_tasks_metrics() -> None:
    with pytest.raises(
        MetricsError,
        match="'rmse' is a regression metric but model.task is classification; "
        "classification metrics: accuracy, precision, recall, f1",
    ):
        compute_metrics("classification", Y_TRUE, {"label": Y_PRED}, metrics=["rmse"], class_names=CLASSES)
    with pytest.raises(MetricsError, match="'f1' is a classification metric.*regression metrics: rmse, mae"):
        compute_metrics("regression", np.zeros(3), {"prediction": np.zeros(3)}, metrics=["f1"])
    with pytest.raises(MetricsError, match="unknown metric 'loss'; regression metrics: rmse, mae, mse, r2"):
        compute_metrics("regression", np.zeros(3), {"prediction": np.zeros(3)}, metrics=["loss"])
    with pytest.raises(MetricsError, match="model.task 'ranking' is not known"):
        compute_metrics("ranking", np.zeros(3), {"prediction": np.zeros(3)}, metrics=[])


# true:      3.0  -1.0  2.0  7.0
# predicted: 2.5   0.0  2.0  8.0   -> residuals (true - predicted): 0.5 -1.0 0.0 -1.0
R_TRUE = np.array([3.0, -1.0, 2.0, 7.0], dtype=np.float32)
R_PRED = np.array([[2.5], [0.0], [2.0], [8.0]], dtype=np.float32)  # [n, 1], as the ONNX output


def test_regression_metrics_match_hand_computation() -> None:
    m = compute_metrics("regression", R_TRUE, {"prediction": R_PRED}, metrics=["rmse", "mae", "mse", "r2"])
    assert m["mse"] == pytest.approx((0.25 + 1 + 0 + 1) / 4)
    assert m["rmse"] == pytest.approx(math.sqrt(2.25 / 4))
    assert m["mae"] == pytest.approx((0.5 + 1 + 0 + 1) / 4)
    # mean of true is 2.75: SS_tot = 0.0625 + 14.0625 + 0.5625 + 18.0625 = 32.75
    assert m["r2"] == pytest.approx(1 - 2.25 / 32.75)
    residuals = m["residuals"]
    assert residuals["mean"] == pytest.approx(-1.5 / 4)
    assert residuals["std"] == pytest.approx(float(np.std([0.5, -1.0, 0.0, -1.0])))
    assert residuals["max_abs"] == pytest.approx(1.0)
    histogram = residuals["histogram"]
    assert len(histogram["edges"]) == len(histogram["counts"]) + 1 == 11
    assert histogram["edges"][0] == pytest.approx(-1.0) and histogram["edges"][-1] == pytest.approx(0.5)
    assert sum(histogram["counts"]) == 4 and histogram["counts"][0] == 2 and histogram["counts"][-1] == 1
    json.dumps(m, allow_nan=False)
    # A 1-D prediction is accepted as well, and only the asked metrics are returned.
    only = compute_metrics("regression", R_TRUE, {"prediction": R_PRED.ravel()}, metrics=["mae"])
    assert set(only) == {"mae", "residuals"} and only["mae"] == pytest.approx(m["mae"])


def test_regression_metrics_agree_with_numpy_on_real_sizes() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(150.0, 75.0, size=200).astype(np.float32)
    p = (y + rng.normal(0.0, 40.0, size=200)).astype(np.float32)
    m = regression_metrics(y, p[:, None], metrics=["rmse", "r2"])
    err = y.astype(np.float64) - p.astype(np.float64)
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean(err**2)))
    assert m["r2"] == pytest.approx(1 - np.sum(err**2) / np.sum((y - y.astype(np.float64).mean()) ** 2))


def test_regression_metrics_edge_cases() -> None:
    constant = np.full(3, 5.0)
    assert regression_metrics(constant, constant, metrics=["r2"])["r2"] == 1.0
    assert regression_metrics(constant, constant + 1, metrics=["r2"])["r2"] == 0.0
    with pytest.raises(MetricsError, match="1 of 3 predictions are NaN or infinite"):
        regression_metrics(constant, np.array([1.0, np.nan, 2.0]), metrics=["rmse"])
    with pytest.raises(MetricsError, match="4 true values but 3 predictions"):
        regression_metrics(R_TRUE, R_PRED[:3], metrics=["rmse"])
    with pytest.raises(MetricsError, match=r"shape \(4, 2\)"):
        regression_metrics(R_TRUE, np.zeros((4, 2)), metrics=["rmse"])
    with pytest.raises(MetricsError, match="a regression model answers prediction"):
        compute_metrics("regression", R_TRUE, {"label": R_PRED}, metrics=["rmse"])


def test_challenger_wins_follows_the_metric_direction() -> None:
    # rmse: lower is better
    assert challenger_wins("rmse", 50.0, 60.0, 0.0)
    assert not challenger_wins("rmse", 60.0, 50.0, 0.0)
    assert not challenger_wins("rmse", 55.0, 55.0, 0.0)  # a tie keeps the champion, even with min_delta 0
    assert not challenger_wins("rmse", 50.0, 60.0, 10.0)  # better by exactly min_delta is not enough
    assert challenger_wins("rmse", 50.0, 60.0, 9.5)
    assert not challenger_wins("rmse", 50.0, 60.0, 10.5)
    # f1: higher is better
    assert challenger_wins("f1", 0.75, 0.5, 0.0)
    assert not challenger_wins("f1", 0.5, 0.75, 0.0)
    assert not challenger_wins("f1", 0.75, 0.75, 0.01)  # a tie does not beat a positive min_delta
    assert not challenger_wins("f1", 0.75, 0.5, min_delta=0.3)
    assert not challenger_wins("f1", 0.75, 0.5, min_delta=0.25)  # better by MORE than min_delta wins
    assert challenger_wins("f1", 0.75, 0.5, min_delta=0.2)
    assert not challenger_wins("f1", 0.9737, 0.9737, 0.0)  # an identical retrain does not replace production
    # r2 is higher-is-better although unbounded below
    assert challenger_wins("r2", -0.5, -2.0, 0.0)
    assert not challenger_wins("f1", float("nan"), 0.5, 0.0) and challenger_wins("f1", 0.1, float("nan"), 0.0)
    with pytest.raises(MetricsError, match="unknown metric 'loss'"):
        challenger_wins("loss", 0.1, 0.2, 0.0)
    with pytest.raises(MetricsError, match="min_delta must be a number >= 0"):
        challenger_wins("f1", 0.9, 0.8, -0.01)


def test_thresholds_messages() -> None:
    metrics = {"accuracy": 0.81234, "f1": 0.95, "loss": 0.62, "confusion_matrix": [[1]]}
    thresholds = {
        "accuracy": {"min": 0.9},
        "f1": {"min": 0.9, "max": 0.99},
        "loss": {"max": 0.5},
        "auc": {"min": 0.8},
        "confusion_matrix": {"min": 1},
    }
    assert check_thresholds(metrics, thresholds) == [
        "accuracy 0.8123 is below the minimum 0.9",
        "loss 0.6200 is above the maximum 0.5",
        "threshold on 'auc' but that metric was not computed",
        "threshold on 'confusion_matrix' but its value [[1]] is not a number",
    ]
    assert check_thresholds({"accuracy": 0.9}, {"accuracy": {"min": 0.9}}) == []  # the bound itself passes
    assert check_thresholds({"accuracy": 0.95}, {"accuracy": {"minimum": 0.9}}) == [
        "threshold on 'accuracy' has unknown bound 'minimum'; use min or max"
    ]


def test_thresholds_take_any_real_bound() -> None:
    metrics = {"rmse": 58.25, "r2": -0.25}
    assert check_thresholds(metrics, {"rmse": {"max": 60}, "r2": {"min": -1}}) == []
    assert check_thresholds(metrics, {"rmse": {"max": 50.5}, "r2": {"min": 0.3}}) == [
        "rmse 58.2500 is above the maximum 50.5",
        "r2 -0.2500 is below the minimum 0.3",
    ]
    assert check_thresholds(metrics, {"rmse": {"max": "sixty"}}) == [
        "threshold on 'rmse' has a max of 'sixty', which is not a number"
    ]

"""Metrics on small hand-checked arrays, and the threshold gate's messages."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlspec.ml.metrics import MetricsError, check_thresholds, classification_metrics

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


def test_probability_metrics() -> None:
    prob = np.array([[0.8, 0.1, 0.1], [0.2, 0.6, 0.2], [0.1, 0.1, 0.8]])
    m = classification_metrics(
        np.array([0, 1, 2]), prob.argmax(axis=1), class_names=CLASSES, metrics=["loss", "auc"], y_prob=prob
    )
    assert m["loss"] == pytest.approx(-(math.log(0.8) + math.log(0.6) + math.log(0.8)) / 3)
    assert m["auc"] == pytest.approx(1.0)
    with pytest.raises(MetricsError, match="needs the predicted probabilities"):
        classification_metrics(Y_TRUE, Y_PRED, class_names=CLASSES, metrics=["loss"])


def test_unknown_metric_and_length_mismatch() -> None:
    with pytest.raises(MetricsError, match="unknown metric mae.*accuracy"):
        classification_metrics(Y_TRUE, Y_PRED, class_names=CLASSES, metrics=["mae"])
    with pytest.raises(MetricsError, match="6 true labels but 5 predictions"):
        classification_metrics(Y_TRUE, Y_PRED[:5], class_names=CLASSES, metrics=["accuracy"])


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

"""Evaluation metrics and the quality gate (`evaluation.thresholds`).

Averages are macro over the spec's classes with zero_division=0, so a class the model never
predicts pulls the score down instead of raising.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlspec.errors import MlspecError

log = logging.getLogger(__name__)

LABEL_METRICS = ("accuracy", "precision", "recall", "f1")
PROBABILITY_METRICS = ("loss", "auc")  # need y_prob
SUPPORTED_METRICS = LABEL_METRICS + PROBABILITY_METRICS


class MetricsError(MlspecError):
    """Metrics were asked for that cannot be computed from what the caller gave."""


def to_class_indices(y: np.ndarray) -> np.ndarray:
    """Class indices from indices, one-hot rows or probability rows (argmax)."""
    y = np.asarray(y)
    if y.ndim == 2:
        return np.argmax(y, axis=1).astype(np.int64)
    return y.astype(np.int64).ravel()


def classification_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    class_names: Sequence[str],
    metrics: Sequence[str],
    y_prob: np.ndarray | None = None,
) -> dict[str, Any]:
    """Requested metrics plus "confusion_matrix" (rows: true class, columns: predicted) and
    "support" (true samples per class), both in `class_names` order.

    y_true/y_pred are class indices; 2-D inputs (one-hot, probabilities) are argmax'ed. "loss"
    (cross-entropy) and "auc" (macro one-vs-rest) need `y_prob`, the predicted probabilities.
    """
    from sklearn import metrics as skm

    unknown = [m for m in metrics if m not in SUPPORTED_METRICS]
    if unknown:
        raise MetricsError(
            f"evaluation.metrics: unknown metric {', '.join(unknown)}; "
            f"supported: {', '.join(SUPPORTED_METRICS)}"
        )
    true = to_class_indices(y_true)
    pred = to_class_indices(y_pred)
    if len(true) != len(pred):
        raise MetricsError(f"{len(true)} true labels but {len(pred)} predictions")
    if len(true) == 0:
        raise MetricsError("no samples to evaluate; set data.split.test above 0")
    labels = list(range(len(class_names)))
    macro = {"labels": labels, "average": "macro", "zero_division": 0}
    result: dict[str, Any] = {}
    for name in metrics:
        if name == "accuracy":
            result[name] = float(skm.accuracy_score(true, pred))
        elif name == "precision":
            result[name] = float(skm.precision_score(true, pred, **macro))
        elif name == "recall":
            result[name] = float(skm.recall_score(true, pred, **macro))
        elif name == "f1":
            result[name] = float(skm.f1_score(true, pred, **macro))
        else:
            result[name] = _probability_metric(skm, name, true, y_prob, labels)
    matrix = skm.confusion_matrix(true, pred, labels=labels)
    result["confusion_matrix"] = matrix.astype(int).tolist()
    result["support"] = matrix.sum(axis=1).astype(int).tolist()
    log.info(
        "metrics on %d samples: %s",
        len(true),
        " ".join(f"{k}={v:.4f}" for k, v in result.items() if isinstance(v, float)),
    )
    return result


def _probability_metric(
    skm: Any, name: str, true: np.ndarray, y_prob: np.ndarray | None, labels: list[int]
) -> float:
    if y_prob is None:
        raise MetricsError(f"metric {name!r} needs the predicted probabilities (y_prob)")
    prob = np.asarray(y_prob, dtype=np.float64)
    if prob.ndim != 2 or prob.shape != (len(true), len(labels)):
        raise MetricsError(f"y_prob has shape {prob.shape}; expected ({len(true)}, {len(labels)})")
    if name == "loss":
        return float(skm.log_loss(true, prob, labels=labels))
    try:
        return float(skm.roc_auc_score(true, prob, multi_class="ovr", average="macro", labels=labels))
    except ValueError as exc:
        raise MetricsError(f"cannot compute auc: {exc}") from exc


def check_thresholds(metrics: Mapping[str, Any], thresholds: Mapping[str, Mapping[str, float]]) -> list[str]:
    """One message per violated threshold; an empty list means the model passes the gate.

    A threshold on a metric that was not computed, or with a bound other than min/max, is a
    violation too: a gate that cannot be checked must not let a model through.
    """
    violations: list[str] = []
    for name, bounds in thresholds.items():
        if name not in metrics:
            violations.append(f"threshold on {name!r} but that metric was not computed")
            continue
        value = metrics[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(float(value)):
            violations.append(f"threshold on {name!r} but its value {value!r} is not a number")
            continue
        value = float(value)
        for bound, limit in (bounds or {}).items():
            if bound == "min":
                if value < float(limit):
                    violations.append(f"{name} {value:.4f} is below the minimum {float(limit):g}")
            elif bound == "max":
                if value > float(limit):
                    violations.append(f"{name} {value:.4f} is above the maximum {float(limit):g}")
            else:
                violations.append(f"threshold on {name!r} has unknown bound {bound!r}; use min or max")
    return violations

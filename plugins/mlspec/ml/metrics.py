"""Evaluation metrics, the quality gate (`evaluation.thresholds`) and champion/challenger comparison.

The metric names, the task each belongs to and its direction come from `vocabulary.METRICS`.
`compute_metrics` takes the model's answers keyed like its ONNX outputs (`vocabulary.OUTPUTS`).

classification: precision, recall and f1 are macro averages over the spec's classes with
zero_division=0, so a class the model never predicts pulls the score down instead of raising.
regression: rmse, mae, mse and r2 (coefficient of determination), computed in float64.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlspec.errors import MlspecError
from mlspec.vocabulary import METRICS, OUTPUTS, TASKS, metrics_for

log = logging.getLogger(__name__)

RESIDUAL_BINS = 10
# The most classes a confusion matrix is built for (the schema's ceiling of data.limits.max_classes):
# k x k int64 counts, 800 MB at 10,000. 100,000 classes asked for 74.5 GiB.
MAX_CONFUSION_CLASSES = 10_000


class MetricsError(MlspecError):
    """Metrics were asked for that cannot be computed from what the caller gave."""


def check_metric_names(task: str, metrics: Sequence[str]) -> None:
    """MetricsError unless every name is a metric of `task`; the message lists that task's metrics."""
    if task not in TASKS:
        raise MetricsError(f"model.task {task!r} is not known; use one of {', '.join(TASKS)}")
    allowed = metrics_for(task)
    for name in metrics:
        if name not in METRICS:
            raise MetricsError(
                f"evaluation.metrics: unknown metric {name!r}; {task} metrics: {', '.join(allowed)}"
            )
        if METRICS[name].task != task:
            raise MetricsError(
                f"evaluation.metrics: {name!r} is a {METRICS[name].task} metric but model.task is {task}; "
                f"{task} metrics: {', '.join(allowed)}"
            )


def compute_metrics(
    task: str,
    y_true: np.ndarray,
    outputs: Mapping[str, np.ndarray],
    *,
    metrics: Sequence[str],
    class_names: Sequence[str] = (),
) -> dict[str, Any]:
    """The requested metrics (floats) plus the task's extras, for the model's `outputs`.

    outputs: classification {"probabilities": [n, K], "label": [n]} ("label" is used; without it
    the argmax of "probabilities"); regression {"prediction": [n, 1] or [n]}.
    y_true: class indices or one-hot rows (classification), targets (regression).
    Extras: classification "confusion_matrix" and "support" (see `classification_metrics`);
    regression "residuals" (see `regression_metrics`).
    """
    check_metric_names(task, metrics)
    if task == "classification":
        if "label" in outputs:
            predicted = np.asarray(outputs["label"])
        elif "probabilities" in outputs:
            predicted = np.asarray(outputs["probabilities"])
        else:
            raise MetricsError(_missing_outputs(task, outputs))
        if not class_names:
            raise MetricsError("classification metrics need the data set's class names")
        return classification_metrics(y_true, predicted, class_names=class_names, metrics=metrics)
    if "prediction" not in outputs:
        raise MetricsError(_missing_outputs(task, outputs))
    return regression_metrics(y_true, outputs["prediction"], metrics=metrics)


def _missing_outputs(task: str, outputs: Mapping[str, Any]) -> str:
    return (
        f"the model's outputs are {', '.join(outputs) or '(none)'}; a {task} model answers "
        f"{', '.join(OUTPUTS[task])}"
    )


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
) -> dict[str, Any]:
    """Requested metrics plus "confusion_matrix" (rows: true class, columns: predicted) and
    "support" (true samples per class), both in `class_names` order.

    y_true/y_pred are class indices; 2-D inputs (one-hot, probabilities) are argmax'ed.
    """
    from sklearn import metrics as skm

    check_metric_names("classification", metrics)
    classes = len(class_names)
    if classes > MAX_CONFUSION_CLASSES:
        raise MetricsError(
            f"{classes:,} classes: their confusion matrix would take {classes * classes * 8 / 2**30:.1f} GiB; at most "
            f"{MAX_CONFUSION_CLASSES:,} classes are scored (data.limits.max_classes refuses such data when it is loaded)"
        )
    true = to_class_indices(y_true)
    pred = to_class_indices(y_pred)
    _check_lengths(true, pred, "true labels")
    labels = list(range(classes))
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
    matrix = skm.confusion_matrix(true, pred, labels=labels)
    result["confusion_matrix"] = matrix.astype(int).tolist()
    result["support"] = matrix.sum(axis=1).astype(int).tolist()
    _log_scores(len(true), result)
    return result


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray, *, metrics: Sequence[str]) -> dict[str, Any]:
    """Requested metrics plus "residuals" (true - predicted): {"mean", "std", "max_abs",
    "histogram": {"edges": [RESIDUAL_BINS + 1 floats], "counts": [RESIDUAL_BINS ints]}}.

    r2 is 1 - SS_res / SS_tot; when the true values are all equal (SS_tot = 0) it is 1.0 for
    a perfect prediction and 0.0 otherwise, as in scikit-learn.
    """
    check_metric_names("regression", metrics)
    true = _as_column(y_true, "true values")
    pred = _as_column(y_pred, "predictions")
    _check_lengths(true, pred, "true values")
    bad = int(np.count_nonzero(~np.isfinite(pred)))
    if bad:
        raise MetricsError(
            f"{bad} of {len(pred)} predictions are NaN or infinite; the model cannot be scored"
        )
    if not np.all(np.isfinite(true)):
        raise MetricsError("the true values contain NaN or infinite values")
    residuals = true - pred
    mse = float(np.mean(residuals**2))
    scores = {"mse": mse, "rmse": math.sqrt(mse), "mae": float(np.mean(np.abs(residuals)))}
    ss_res = float(np.sum(residuals**2))
    ss_tot = float(np.sum((true - true.mean()) ** 2))
    scores["r2"] = 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0)
    result: dict[str, Any] = {name: scores[name] for name in metrics}
    counts, edges = np.histogram(residuals, bins=RESIDUAL_BINS)
    result["residuals"] = {
        "mean": float(residuals.mean()),
        "std": float(residuals.std()),
        "max_abs": float(np.abs(residuals).max()),
        "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
    }
    _log_scores(len(true), result)
    return result


def _as_column(values: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise MetricsError(f"{what} have shape {arr.shape}; expected one number per sample, [n] or [n, 1]")
    if arr.dtype.kind not in "iuf":
        raise MetricsError(f"{what} are not numbers (dtype {arr.dtype})")
    return arr.astype(np.float64)


def _check_lengths(true: np.ndarray, pred: np.ndarray, what: str) -> None:
    if len(true) != len(pred):
        raise MetricsError(f"{len(true)} {what} but {len(pred)} predictions")
    if len(true) == 0:
        raise MetricsError("no samples to evaluate; set data.split.test above 0")


def _log_scores(samples: int, result: Mapping[str, Any]) -> None:
    # Detail only: each caller logs the scores once at INFO, saying whose they are (evaluate: the
    # challenger's and production's).
    log.debug(
        "metrics on %d samples: %s",
        samples,
        " ".join(f"{k}={v:.4f}" for k, v in result.items() if isinstance(v, float)),
    )


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and not math.isnan(float(value))


def check_thresholds(metrics: Mapping[str, Any], thresholds: Mapping[str, Mapping[str, float]]) -> list[str]:
    """One message per violated threshold; an empty list means the model passes the gate.

    Bounds are any real numbers (rmse max 60 is as valid as accuracy min 0.9). A threshold on a
    metric that was not computed, with a bound other than min/max, or with a bound that is not a
    number, is a violation too: a gate that cannot be checked must not let a model through.
    """
    violations: list[str] = []
    for name, bounds in thresholds.items():
        if name not in metrics:
            violations.append(f"threshold on {name!r} but that metric was not computed")
            continue
        value = metrics[name]
        if not _is_number(value):
            violations.append(f"threshold on {name!r} but its value {value!r} is not a number")
            continue
        value = float(value)
        for bound, limit in (bounds or {}).items():
            if bound not in ("min", "max"):
                violations.append(f"threshold on {name!r} has unknown bound {bound!r}; use min or max")
            elif not _is_number(limit):
                violations.append(f"threshold on {name!r} has a {bound} of {limit!r}, which is not a number")
            elif bound == "min" and value < float(limit):
                violations.append(f"{name} {value:.4f} is below the minimum {float(limit):g}")
            elif bound == "max" and value > float(limit):
                violations.append(f"{name} {value:.4f} is above the maximum {float(limit):g}")
    return violations


def challenger_wins(metric: str, challenger: float, champion: float, min_delta: float = 0.0) -> bool:
    """Whether `challenger` is better than `champion` on `metric` by MORE than `min_delta` (>= 0), in
    the metric's direction (vocabulary.METRICS: higher is better for f1, lower for rmse).

    A tie never wins, not even with min_delta 0 (evaluation.champion.min_delta): an identical retrain
    keeps the champion. A NaN challenger never wins; a NaN champion (a score that could not be
    computed) loses to any number.
    """
    if metric not in METRICS:
        raise MetricsError(f"unknown metric {metric!r}; known metrics: {', '.join(METRICS)}")
    if not _is_number(min_delta) or min_delta < 0:
        raise MetricsError(f"min_delta must be a number >= 0, got {min_delta!r}")
    if not _is_number(challenger):
        return False
    if not _is_number(champion):
        return True
    gain = float(challenger) - float(champion)
    if not METRICS[metric].higher_is_better:
        gain = -gain
    return gain > float(min_delta)

"""The input and output schemas every published model version carries (pure numpy).

`input_schema` describes what the endpoint takes, raw features, with per-feature statistics
measured on the training split (a reference for drift checks and for people writing clients).
`output_schema` describes what it answers, from the exported model's ONNX signature.
Both are plain JSON (no NaN or infinity: a statistic that does not exist is null).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mlspec.errors import MlspecError
from mlspec.vocabulary import INPUT_NAME, OUTPUTS, TASKS

if TYPE_CHECKING:
    from mlspec.ml.data import Dataset

SIGNIFICANT_DIGITS = 6


class SchemaError(MlspecError):
    """The exported model's signature does not answer what its task needs."""


def _round(value: float) -> float | None:
    """`value` to SIGNIFICANT_DIGITS significant digits; None when it is NaN or infinite."""
    value = float(value)
    if not math.isfinite(value):
        return None
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def feature_names(dataset: Dataset) -> list[str]:
    """One name per flattened feature: the data set's own names when there is one per feature,
    else the flattened position, "x[0]", "x[1]", ..."""
    width = int(np.prod(dataset.x_train.shape[1:], dtype=np.int64))
    if len(dataset.feature_names) == width:
        return [str(n) for n in dataset.feature_names]
    return [f"x[{i}]" for i in range(width)]


def input_schema(dataset: Dataset) -> dict[str, Any]:
    """{"name": "input", "datatype": "FP32", "shape": [-1, *per-sample shape], "features": [...]}.

    One feature entry per flattened position: {"name", "dtype": "FP32", "min", "max", "mean",
    "std" (population), "missing" (count of NaN)}, measured on the training split only and
    rounded to 6 significant digits.
    """
    x = np.asarray(dataset.x_train)
    flat = x.reshape(len(x), -1).astype(np.float64)
    missing = np.isnan(flat).sum(axis=0)
    features = []
    for index, name in enumerate(feature_names(dataset)):
        column = flat[:, index]
        values = column[~np.isnan(column)]
        stats: dict[str, float | None] = dict.fromkeys(("min", "max", "mean", "std"))
        if values.size:
            stats = {
                "min": _round(values.min()),
                "max": _round(values.max()),
                "mean": _round(values.mean()),
                "std": _round(values.std()),
            }
        features.append({"name": name, "dtype": "FP32", **stats, "missing": int(missing[index])})
    return {
        "name": INPUT_NAME,
        "datatype": "FP32",
        "shape": [-1, *(int(d) for d in x.shape[1:])],
        "features": features,
    }


def output_schema(task: str, class_names: Sequence[str], signature: Mapping[str, Any]) -> dict[str, Any]:
    """{"task", "outputs": [{"name", "datatype", "shape"}...], "class_names": [...]}.

    outputs come from `signature["outputs"]` (as read by `onnx_export.onnx_signature`) and must
    include the task's outputs (vocabulary.OUTPUTS); class_names is [] for regression.
    """
    if task not in TASKS:
        raise SchemaError(f"model.task {task!r} is not known; use one of {', '.join(TASKS)}")
    outputs = [
        {"name": str(o["name"]), "datatype": str(o["datatype"]), "shape": [int(d) for d in o["shape"]]}
        for o in signature.get("outputs", ())
    ]
    missing = [name for name in OUTPUTS[task] if name not in {o["name"] for o in outputs}]
    if missing:
        raise SchemaError(
            f"the exported model has outputs {', '.join(o['name'] for o in outputs) or '(none)'}; a {task} "
            f"model must answer {', '.join(OUTPUTS[task])} (missing {', '.join(missing)})"
        )
    return {
        "task": task,
        "outputs": outputs,
        "class_names": [str(c) for c in class_names] if task == "classification" else [],
    }

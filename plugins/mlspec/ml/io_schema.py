"""The input and output schemas every published model version carries (pure numpy).

`input_schema` describes what the endpoint takes, raw features, with per-feature statistics
measured on the training split (a reference for drift checks and for people writing clients).
A table model takes one input per column: its schema lists the columns (type, datatype, how a gap
is filled, the categories seen in training) and a few real test rows as the example clients send.
`output_schema` describes what it answers, from the exported model's ONNX signature.
Both are plain JSON (no NaN or infinity: a statistic that does not exist is null).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mlspec.errors import MlspecError
from mlspec.ml import model_io
from mlspec.ml.columns import gaps
from mlspec.vocabulary import INPUT_NAME, OUTPUTS, TASKS

if TYPE_CHECKING:
    from mlspec.ml.data import Dataset

SIGNIFICANT_DIGITS = 6
# A table model's input_schema.json publishes this many real test rows as its example.
EXAMPLE_ROWS = 3


class SchemaError(MlspecError):
    """The exported model's signature does not answer what its task needs."""


def significant(value: float) -> float | None:
    """`value` to SIGNIFICANT_DIGITS significant digits; None when it is NaN or infinite."""
    value = float(value)
    if not math.isfinite(value):
        return None
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def number_statistics(present: np.ndarray) -> dict[str, float | None]:
    """{"min", "max", "mean", "std" (population)} of the values present (no NaN), rounded to SIGNIFICANT_DIGITS;
    all None when there are none. The one definition input_schema.json and the data profile share."""
    if not present.size:
        return dict.fromkeys(("min", "max", "mean", "std"))
    return {
        "min": significant(present.min()),
        "max": significant(present.max()),
        "mean": significant(present.mean()),
        "std": significant(present.std()),
    }


def feature_names(dataset: Dataset) -> list[str]:
    """One name per flattened feature: the data set's own names when there is one per feature,
    else the flattened position, "x[0]", "x[1]", ..."""
    width = int(np.prod(dataset.x_train.shape[1:], dtype=np.int64))
    if len(dataset.feature_names) == width:
        return [str(n) for n in dataset.feature_names]
    return [f"x[{i}]" for i in range(width)]


def input_schema(
    dataset: Dataset, fills: Mapping[str, Any] | None = None, categories: Mapping[str, Sequence[str]] | None = None
) -> dict[str, Any]:
    """{"name": "input", "datatype": "FP32", "shape": [-1, *per-sample shape], "features": [...]}.

    One feature entry per flattened position: {"name", "dtype": "FP32", "min", "max", "mean",
    "std" (population), "missing" (count of NaN)}, measured on the training split only and
    rounded to 6 significant digits. A table model (dataset.columns set) is described by
    `table_schema` instead, with the trained model's fills and categories (mlspec.ml.tabular's
    fill_values and categories).
    """
    if dataset.columns:
        return table_schema(dataset, fills or {}, categories or {})
    x = np.asarray(dataset.x_train)
    flat = x.reshape(len(x), -1).astype(np.float64)
    missing = np.isnan(flat).sum(axis=0)
    features = []
    for index, name in enumerate(feature_names(dataset)):
        column = flat[:, index]
        stats = number_statistics(column[~np.isnan(column)])
        features.append({"name": name, "dtype": "FP32", **stats, "missing": int(missing[index])})
    return {
        "name": INPUT_NAME,
        "datatype": "FP32",
        "shape": [-1, *(int(d) for d in x.shape[1:])],
        "features": features,
    }


def table_schema(dataset: Dataset, fills: Mapping[str, Any], categories: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """{"columns": [...], "example": [...]}: what a table model's endpoint takes, one input per column.

    Each column: {"name", "type", "datatype", "shape": [-1, 1], "missing" (its strategy), "fill" (the
    value a null becomes, or null where nulls are refused), "missing_count" (gaps in the training split),
    for a category "encode" and "categories" (the values the encoder knows: `categories`, else every
    training value), else "min", "max", "mean", "std" measured on the training split. "example": a few real test rows as {column: raw
    value or null}, including one with a gap where the test split has one.
    """
    x = dataset.x_train
    columns = []
    for column in dataset.columns:
        values = x[column.name]
        entry: dict[str, Any] = {
            "name": column.name,
            "type": column.type,
            "datatype": column.datatype,
            "shape": [-1, 1],
            "missing": column.missing,
            "fill": _json_scalar(fills.get(column.name)) if column.filled else None,
        }
        if column.type == "category":
            seen = values[~gaps(values)]
            known = categories.get(column.name) or sorted({str(v) for v in seen})
            entry.update(encode=column.encode, categories=[str(c) for c in known], missing_count=int(len(values) - len(seen)))
        else:
            numbers = np.asarray(values, dtype=np.float64)
            present = numbers[~np.isnan(numbers)]
            entry.update(number_statistics(present), missing_count=int(numbers.size - present.size))
        columns.append(entry)
    return {"columns": columns, "example": example_rows(dataset)}


def example_rows(dataset: Dataset) -> list[dict[str, Any]]:
    """The first EXAMPLE_ROWS test rows as JSON rows; when none of them has a gap and a later test row
    has one, that row takes the last place (the first row stays the first test sample)."""
    x = dataset.x_test
    count = min(EXAMPLE_ROWS, len(x))
    with_gap = np.zeros(len(x), dtype=bool)
    for column in dataset.columns:
        with_gap |= gaps(x[column.name])
    picked = list(range(count))
    later = np.flatnonzero(with_gap[count:])
    if count and not with_gap[:count].any() and later.size:
        picked[-1] = count + int(later[0])
    return model_io.json_rows(x.iloc[picked], dataset.columns)


def _json_scalar(value: Any) -> Any:
    """A fill as plain JSON (numpy scalars unwrapped; NaN is no fill)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def output_schema(
    task: str, class_names: Sequence[str], signature: Mapping[str, Any], label_datatype: str = ""
) -> dict[str, Any]:
    """{"task", "outputs": [{"name", "datatype", "shape"}...], "class_names": [...]} (+ "label_datatype").

    outputs come from `signature["outputs"]` (as read by `onnx_export.onnx_signature`) and must
    include the task's outputs (vocabulary.OUTPUTS); class_names is [] for regression.
    "label_datatype" (Dataset.label_datatype) is there when `label` answers the class value itself
    (BYTES or INT64) instead of its index.
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
    schema = {
        "task": task,
        "outputs": outputs,
        "class_names": [str(c) for c in class_names] if task == "classification" else [],
    }
    if label_datatype and task == "classification":  # absent: label is the class index, as before tables
        schema["label_datatype"] = label_datatype
    return schema


def endpoint_inputs(schema: Mapping[str, Any]) -> dict[str, str]:
    """{input name: its datatype} of a published input_schema.json: a table model's columns, else the single
    input with its shape ("FP32 [-1, 4]"); {} for a version published without a schema."""
    if schema.get("columns"):
        return {str(c["name"]): str(c["datatype"]) for c in schema["columns"]}
    if schema.get("name"):
        return {str(schema["name"]): f"{schema.get('datatype', 'FP32')} {list(schema.get('shape') or [])}"}
    return {}


def input_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """What a client of the endpoint must change when the version published with `after` replaces the one
    published with `before` (two input_schema.json): "+ bill_depth_mm (FP32); - year; island FP32 -> BYTES";
    "" when the inputs are the same, or either version has no schema to compare."""
    old, new = endpoint_inputs(before), endpoint_inputs(after)
    if not old or not new:
        return ""
    added = [f"+ {name} ({kind})" for name, kind in new.items() if name not in old]
    removed = [f"- {name}" for name in old if name not in new]
    changed = [f"{name} {old[name]} -> {kind}" for name, kind in new.items() if name in old and old[name] != kind]
    return "; ".join(added + removed + changed)


def class_diff(before: Sequence[Any], after: Sequence[Any]) -> dict[str, list[str]]:
    """The classes `after` adds to `before` and the ones it drops, by name: {"classes_added": [...] in after's
    order, "classes_removed": [...] in before's order} (the champion's verdict and the version's tags carry
    these keys); {} where either has no classes to compare (regression, a version published before the
    schemas)."""
    old, new = [str(name) for name in before], [str(name) for name in after]
    if not old or not new:
        return {}
    return {"classes_added": [n for n in new if n not in old], "classes_removed": [n for n in old if n not in new]}


def class_diff_words(diff: Mapping[str, Sequence[str]]) -> str:
    """A class_diff (or a verdict holding its keys) in words: "classes added: Chinstrap; classes removed: Gentoo",
    each part only when it names a class; "" for no change."""
    return "; ".join(
        f"{words}: {', '.join(diff[key])}"
        for key, words in (("classes_added", "classes added"), ("classes_removed", "classes removed"))
        if diff.get(key)
    )


def class_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """What a client reading the endpoint's answers must know when the version published with `after` replaces
    the one published with `before` (two output_schema.json): "classes added: Chinstrap; label 1 now means
    Chinstrap (was Gentoo), label 2 is new (Gentoo)". A `label` that answers the class index (no label_datatype)
    changes meaning when the class list moves; one that answers the class itself only gains or loses classes.
    "" when the classes are the same, or either version has none to compare (regression, older versions)."""
    old = [str(name) for name in before.get("class_names") or ()]
    new = [str(name) for name in after.get("class_names") or ()]
    if not old or not new or old == new:
        return ""
    words = class_diff_words(class_diff(old, new))
    parts = [words] if words else []
    if not after.get("label_datatype"):
        moved = [f"label {i} now means {name} (was {old[i]})" for i, name in enumerate(new[: len(old)]) if name != old[i]]
        fresh = [f"label {i} is new ({name})" for i, name in enumerate(new) if i >= len(old)]
        if moved or fresh:
            parts.append(", ".join(moved + fresh))
    return "; ".join(parts)

"""What an exported model takes and answers, for every step after training (export's parity check, the
champion gate, the smoke test, promote's example, an operation's release).

A table model (Dataset.columns set) takes one input per column, named as it ([N, 1] each, built by
`mlspec.ml.tabular.feeds`); any other model takes one float32 array. Rows travel in two forms: the
normalized raw table a Dataset holds (pandas; NaN or "" where a value is missing), and JSON rows,
{column: raw value or None}, which is what input_schema.json publishes as its example and what a
client sends. A classifier whose Dataset.label_datatype is BYTES or INT64 answers the class VALUE as
its label; the trained model (and the metrics) speak class indices.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlspec.ml import tabular
from mlspec.ml.columns import Column, category_text, is_gap


def model_inputs(rows: Any, columns: Sequence[Column], fills: Mapping[str, Any]) -> np.ndarray | dict[str, np.ndarray]:
    """What the exported model takes for `rows` (a slice of a Dataset's x): one feed per column for a
    table model (`fills`: a gap in an integer or boolean column, whose tensor cannot carry one), else
    the float32 array."""
    if not columns:
        return np.asarray(rows, dtype=np.float32)
    return tabular.feeds(tuple(columns), rows, dict(fills))


# -- the published form: input_schema.json's columns and example rows ----------------------------
def schema_columns(input_schema: Mapping[str, Any]) -> tuple[Column, ...]:
    """The columns a published table model takes (none for any other model)."""
    columns = []
    for entry in input_schema.get("columns") or ():
        missing = str(entry.get("missing") or "error")
        constant = entry.get("fill") if missing == "constant" else None
        columns.append(Column(name=str(entry["name"]), type=str(entry["type"]), missing=missing, constant=constant))
    return tuple(columns)


def schema_fills(input_schema: Mapping[str, Any]) -> dict[str, Any]:
    """{column: fill} of the columns whose gaps the model fills (input_schema.json's "fill")."""
    return {str(c["name"]): c["fill"] for c in input_schema.get("columns") or () if c.get("fill") is not None}


def json_rows(frame: Any, columns: Sequence[Column]) -> list[dict[str, Any]]:
    """Rows of a normalized raw table as JSON values: numbers as floats, integers as ints, booleans as
    true/false, categories as text; None where a value is missing."""
    rows: list[dict[str, Any]] = [{} for _ in range(len(frame))]
    for column in columns:
        for row, value in zip(rows, frame[column.name].tolist(), strict=True):
            row[column.name] = _json_value(column, value)
    return rows


def frame_of(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> Any:
    """JSON rows back as the normalized raw table (what `json_rows` reads): NaN or "" for a gap, a
    category's value as training holds it (2007.0 -> "2007")."""
    import pandas as pd

    data: dict[str, Any] = {}
    for column in columns:
        values = [row.get(column.name) for row in rows]
        if column.type == "category":
            data[column.name] = pd.Series(["" if is_gap(v) else category_text(v) for v in values], dtype=object)
        else:
            data[column.name] = pd.Series([math.nan if is_gap(v) else float(v) for v in values], dtype="float64")
    return pd.DataFrame(data, columns=[c.name for c in columns])


def rows_inputs(rows: Sequence[Mapping[str, Any]], input_schema: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The feeds of a published table model for JSON rows: what the endpoint computes from the same request."""
    columns = schema_columns(input_schema)
    return model_inputs(frame_of(rows, columns), columns, schema_fills(input_schema))


def _json_value(column: Column, value: Any) -> Any:
    if is_gap(value):
        return None
    if column.type == "category":
        return category_text(value)
    if column.type == "integer":
        return int(value)
    if column.type == "boolean":
        return bool(value)
    return float(value)


# -- labels: class values at the endpoint, class indices in training and metrics -----------------
def class_indices(
    labels: np.ndarray, class_names: Sequence[str], label_datatype: str, model_classes: Sequence[str] | None = None
) -> np.ndarray:
    """What a model answered as `label` as class indices of `class_names`, matched by class name: the class
    value itself for a BYTES or INT64 label, else (label_datatype "") the name its index has in
    `model_classes`, the classes the model was trained on (its output_schema.json class_names; default
    `class_names`, the same model). -1 (a wrong answer for every metric) for a class `class_names` does not hold."""
    labels = np.asarray(labels).reshape(-1)
    index = {str(name): i for i, name in enumerate(class_names)}
    if label_datatype:
        return np.asarray([index.get(_label_text(v), -1) for v in labels.tolist()], dtype=np.int64)
    labels = labels.astype(np.int64)
    if model_classes is None or [str(c) for c in model_classes] == [str(c) for c in class_names]:
        return labels
    # One more slot, -1, for an index outside the model's classes.
    renumbered = np.asarray([*(index.get(str(name), -1) for name in model_classes), -1], dtype=np.int64)
    return renumbered[np.where((labels >= 0) & (labels < len(model_classes)), labels, len(model_classes))]


def class_columns(probabilities: np.ndarray, model_classes: Sequence[str], class_names: Sequence[str]) -> np.ndarray:
    """Probabilities a model answered over its own classes (`model_classes`, in its order) as columns of
    `class_names`: 0 for a class the model does not know; a class `class_names` lacks is left out."""
    probabilities = np.asarray(probabilities)
    columns = np.zeros((len(probabilities), len(class_names)), dtype=probabilities.dtype)
    index = {str(name): i for i, name in enumerate(class_names)}
    for column, name in enumerate(model_classes):
        if str(name) in index:
            columns[:, index[str(name)]] = probabilities[:, column]
    return columns


def label_name(label: Any, class_names: Sequence[str], label_datatype: str) -> str:
    """The class name of one answered label."""
    return _label_text(label) if label_datatype else str(class_names[int(label)])


def _label_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

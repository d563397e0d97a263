"""The columns of a table model as its published input_schema.json describes them.

A table model takes one v2 input per feature column, named as the column. The server needs two
things from the published schema: which columns may carry a gap (JSON null, or NaN in a binary FP
tensor) because the model fills it, and what an INT64 or BOOL input holds in a gap's place (those
tensors cannot carry one, so the published "fill" value goes in). Everything else about a column
(its encoding, categories, statistics) is the graph's business. The schema is read by
mlspec.ml.model_io, as every other step after training reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlspec.errors import MlspecError
from mlspec.inference_protocol import BYTES_DATATYPE, FLOAT_DATATYPES
from mlspec.ml.model_io import schema_columns, schema_fills
from mlspec.server.errors import BadRequest


@dataclass(frozen=True)
class InputColumn:
    """One feature column input of a table model."""

    name: str
    datatype: str  # the model input's v2 datatype
    fills_gaps: bool  # its spec has a filling `missing:` strategy
    gap_value: Any = None  # what a gap becomes in the tensor: NaN, "" or the published fill; None: none
    missing: str = "error"  # its spec's `missing:` strategy (mlspec.ml.columns.MISSING_STRATEGIES)

    def gap_refused(self, what: str, row: int) -> str | None:
        """Why a gap (`what`: "a null", "NaN") in `row` is refused; None when it is accepted."""
        if self.missing == "drop_row":
            return (
                f"column {self.name} has {what} in row {row}; its spec's missing: drop_row leaves such rows out "
                "of training only, so the endpoint needs a value"
            )
        if not self.fills_gaps:
            return f"column {self.name} has {what} in row {row}; its spec has no missing: strategy, so send a value"
        if self.gap_value is None:
            return (
                f"column {self.name} has {what} in row {row}, and the model's published input_schema.json "
                "gives no fill value for it; send a value"
            )
        return None


@dataclass(frozen=True)
class TableInputs:
    """The column inputs of one model version, in the published column order."""

    columns: dict[str, InputColumn]

    @property
    def all_numbers(self) -> bool:
        """Every column is a floating-point input: today's single `input` [N, F] can be split into them."""
        return all(column.datatype in FLOAT_DATATYPES for column in self.columns.values())


def _gap_value(datatype: str, fill: Any) -> Any:
    if datatype in FLOAT_DATATYPES:
        return float("nan")
    if datatype == BYTES_DATATYPE:
        return ""
    if datatype == "BOOL":
        return fill if isinstance(fill, bool) else (bool(fill) if fill in (0, 1) else None)
    if isinstance(fill, bool):
        return int(fill)
    if isinstance(fill, int):
        return fill
    if isinstance(fill, float) and fill.is_integer():
        return int(fill)
    return None


def table_inputs(input_schema: Any, datatypes: Mapping[str, str]) -> TableInputs | None:
    """The column inputs of a model from its published input schema and its inputs' v2 datatypes (by
    name); None for a model of one array input (no `columns` in its schema, or none of them an input).
    BadRequest where the schema's columns are not what mlspec publishes."""
    if not isinstance(input_schema, dict) or not isinstance(input_schema.get("columns"), list):
        return None
    try:
        published, fills = schema_columns(input_schema), schema_fills(input_schema)
    except (MlspecError, KeyError, TypeError, ValueError) as exc:
        raise BadRequest(f"the model's input_schema.json does not describe its columns as mlspec does: {exc}") from None
    columns: dict[str, InputColumn] = {}
    for column in published:
        if column.name not in datatypes:
            continue
        datatype = datatypes[column.name]
        # `error` refuses a gap and `drop_row` drops the row in training, which a request cannot do;
        # the other strategies are fills the model applies.
        gap_value = _gap_value(datatype, fills.get(column.name)) if column.filled else None
        columns[column.name] = InputColumn(column.name, datatype, column.filled, gap_value, column.missing)
    return TableInputs(columns) if columns else None

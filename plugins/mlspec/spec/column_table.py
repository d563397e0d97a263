"""`mlspec render`'s table of a spec's feature columns: each column's name, type (declared, or inferred from the
data), encoding, missing-value strategy and the v2 datatype of its endpoint input. For a table on this machine the
types come from the first rows lint reads, resolved by mlspec.ml.columns as prepare_data resolves the whole
table; elsewhere the undeclared ones are resolved when prepare_data reads the data."""

from __future__ import annotations

from mlspec.errors import DataError
from mlspec.ml.columns import Column, resolve_columns
from mlspec.spec.lint import local_table_sample
from mlspec.spec.lint.columns import not_a_table
from mlspec.spec.model import ModelSpec
from mlspec.spec.yaml_loader import LoadedYaml

HEADER = ("name", "type", "encode", "missing", "input")


def column_table(doc: LoadedYaml, spec: ModelSpec) -> list[str]:
    """The lines `mlspec render` prints under "columns"."""
    data = spec.data
    resolved = spec.to_dict()
    other = not_a_table(resolved["data"])
    if other is not None:
        return [f"columns: none; {other} is served as one FP32 tensor `input`"]
    sample = local_table_sample(doc, resolved)
    if sample is None:
        columns = [column or name for name, column in data.declared_columns.items()]
        if not columns:
            label = data.label or "label"
            return [f"columns: every column but the label {label}{_but(data.exclude)}, typed when prepare_data reads the data"]
        where = "the source is not on this machine" + (
            "; a column without a type is typed when prepare_data reads the data"
            if any(isinstance(column, str) or column.type is None for column in columns)
            else ""
        )
    else:
        frame, shown = sample
        rows = f"the first {len(frame):,} rows of {shown}"
        try:
            columns = list(resolve_columns(rows, frame, data.features, data.label, data.exclude))
        except DataError as exc:
            return [f"columns: not resolved from {rows}: {exc}"]
        where = f"resolved with {rows}"
    table = [HEADER, *(_row(column) for column in columns)]
    widths = [max(len(row[index]) for row in table) for index in range(len(HEADER))]
    lines = [f"columns ({where}); one endpoint input each:"]
    lines += ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in table]
    return lines


def _row(column: Column | str) -> tuple[str, ...]:
    if isinstance(column, str):  # listed without a type, data not here
        return (column, "resolved at run time", "", "", "")
    if column.type is None:  # declared without a type ({missing: median}), data not here
        return (column.name, "resolved at run time", "", _missing(column), "")
    kind = column.type + (" (inferred)" if column.inferred else "")
    encode = ""
    if column.type == "category":
        encode = column.encode + (f", max {column.max_categories}" if column.max_categories is not None else "")
    return (column.name, kind, encode, _missing(column), column.datatype)


def _missing(column: Column) -> str:
    return f"constant {column.constant!r}" if column.missing == "constant" else column.missing


def _but(exclude: tuple[str, ...]) -> str:
    return f" and data.exclude ({', '.join(exclude)})" if exclude else ""

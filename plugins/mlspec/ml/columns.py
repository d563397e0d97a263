"""Typed table columns: what `data.features` declares, what the data implies for the columns it does not
declare, and the raw feature table a model's preprocessor takes (issue 13).

- `declared_columns` reads the spec's shapes (a name, a list of names, or a mapping of names to a type or to
  `{type, missing, encode, max_categories}`) without any data: lint and render use it.
- `resolve_columns` adds the data's view: every feature column with its type, inferred where not declared
  (numbers: number, booleans: boolean, text with at most MAX_INFERRED_CATEGORIES values: category; other text
  and dates are an error that says to declare or exclude the column).
- `raw_features` gives the normalized raw table: unlabeled rows and `missing: drop_row` gaps dropped (and
  logged), gaps in a `missing: error` column refused, every column in one form the preprocessor and the
  npz file both take: number/integer/boolean -> float64 with NaN for a gap (booleans 1.0/0.0), category ->
  Python str with "" for a gap.

pandas and numpy are imported inside the functions that need data, so lint can import this module cheaply.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, NamedTuple

from mlspec.errors import DataError
from mlspec.sources.columns import did_you_mean, some_names
from mlspec.vocabulary import OUTPUTS

log = logging.getLogger(__name__)

COLUMN_TYPES = ("number", "integer", "boolean", "category")
MISSING_STRATEGIES = ("error", "mean", "median", "most_frequent", "constant", "drop_row")
ENCODINGS = ("one_hot", "ordinal")
# An undeclared text column with more distinct values than this is refused rather than one-hot encoded.
MAX_INFERRED_CATEGORIES = 50
# The v2 (Open Inference Protocol) datatype of each column type's endpoint input.
DATATYPES = {"number": "FP32", "integer": "INT64", "boolean": "BOOL", "category": "BYTES"}
# A feature column may not be named as a model output: its endpoint input would share the output's name.
OUTPUT_NAMES = tuple(dict.fromkeys(name for names in OUTPUTS.values() for name in names))
# Strategies that leave a gap for the model's imputer to fill.
FILLED = ("mean", "median", "most_frequent", "constant")
# Text a boolean column may hold (case does not matter).
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})
# Text that looks like a date (2024-05-01, 2024/5/1 12:00, 05/01/2024, 1.5.2024): not a category to infer.
_DATE = re.compile(
    r"^\s*(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}([ T].*)?|\d{1,2}[-/]\d{1,2}[-/]\d{2,4}|\d{1,2}\.\d{1,2}\.\d{4})\s*$"
)
# pandas.api.types.infer_dtype's names for dates and times in an object column (a database's DATE column).
_DATE_KINDS = frozenset({"date", "datetime", "datetime64", "time", "timedelta", "timedelta64", "period"})
_SHOWN_ROWS = 5  # a message quotes at most this many row numbers


class EmptyColumn(DataError):
    """A feature column with no value in the rows a model learns from: nothing to learn or fill from."""


@dataclass(frozen=True)
class Column:
    """One feature column of a table: its type, what fills its gaps and how a category is encoded."""

    name: str
    type: str | None  # COLUMN_TYPES; None only in a declaration that leaves the type to the data (declared_columns)
    missing: str = "error"  # MISSING_STRATEGIES
    constant: Any = None  # the fill value when missing == "constant"
    encode: str = "one_hot"  # category only
    max_categories: int | None = None  # one-hot categories only: the rarest values share an "other" column
    inferred: bool = False  # True when the type was inferred from the data

    def __post_init__(self) -> None:
        where = f"data.features.{self.name}"
        if self.type is not None and self.type not in COLUMN_TYPES:
            raise DataError(f"{where}: type {self.type!r} is not known; use one of {', '.join(COLUMN_TYPES)}")
        if self.missing not in MISSING_STRATEGIES:
            raise DataError(
                f"{where}: missing {self.missing!r} is not known; use error, mean, median, most_frequent, "
                "{constant: value} or drop_row"
            )
        if self.missing in ("mean", "median") and self.type == "category":
            raise DataError(
                f"{where}: missing: {self.missing} needs numbers, but the column is a category; use "
                "most_frequent or {constant: value}"
            )
        if self.missing == "constant":
            _check_constant(where, self.type, self.constant)
        elif self.constant is not None:
            raise DataError(f"{where}: a constant is used only with missing: {{constant: value}}")
        if self.encode not in ENCODINGS:
            raise DataError(f"{where}: encode {self.encode!r} is not known; use {' or '.join(ENCODINGS)}")
        if self.encode != "one_hot" and self.type not in (None, "category"):
            raise DataError(f"{where}: encode applies to category columns only, not to a {self.type}")
        if self.max_categories is not None:
            if self.type not in (None, "category") or self.encode != "one_hot":
                raise DataError(f"{where}: max_categories applies to one-hot encoded category columns only")
            if (
                not isinstance(self.max_categories, int)
                or isinstance(self.max_categories, bool)
                or (self.max_categories < 2)
            ):
                raise DataError(f"{where}: max_categories must be a whole number of at least 2")

    @property
    def datatype(self) -> str:
        """The v2 datatype of this column's endpoint input: FP32, INT64, BOOL or BYTES."""
        return DATATYPES[self.type]

    @property
    def filled(self) -> bool:
        """True when the model fills this column's gaps (mean, median, most_frequent, constant)."""
        return self.missing in FILLED

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Column:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


def _check_constant(where: str, column_type: str | None, value: Any) -> None:
    if value is None:
        raise DataError(f"{where}: missing: constant needs the value, e.g. missing: {{constant: 0}}")
    if column_type is None:
        return  # checked once the data gives the type
    number = isinstance(value, int | float) and not isinstance(value, bool)
    fits = {
        "number": number,
        "integer": number and float(value).is_integer(),
        "boolean": isinstance(value, bool),
        "category": isinstance(value, str),
    }[column_type]
    if not fits:
        kind = {
            "number": "a number",
            "integer": "a whole number",
            "boolean": "true or false",
            "category": "text",
        }
        raise DataError(
            f"{where}: the constant {value!r} does not fit a {column_type} column; give {kind[column_type]}"
        )


# --------------------------------------------------------------------------- the spec's declarations


def declared_columns(features: Any, exclude: Sequence[str] | None = None) -> dict[str, Column | None]:
    """data.features as `{name: declared Column, or None where the data decides its type}`, in spec order.

    features: None (every column but the label and `exclude`: {}), one name, a list of names (all inferred),
    or a mapping of names to a type (`number`), to `{type, missing, encode, max_categories}` (missing may be
    `{constant: value}`; without `type` the Column's type is None: the data decides it, the settings stay), or
    to nothing (inferred). `exclude` picks columns when features is omitted; beside a
    features list it only has to name no listed column (the issue's own example writes both). DataError when a
    declaration is malformed or a column is both listed and excluded; the message names its place in the spec.
    """
    both = [name for name in exclude or () if features is not None and name in _listed_names(features)]
    if both:
        raise DataError(f"data.exclude names {both[0]!r}, which data.features lists; keep it in one of them")
    if features is None:
        return {}
    if isinstance(features, str):
        return {features: None}
    if isinstance(features, Mapping):
        return {str(name): _declared(str(name), value) for name, value in features.items()}
    if isinstance(features, Sequence) and all(isinstance(name, str) for name in features):
        return dict.fromkeys(features)
    raise DataError("data.features must be a column name, a list of names or a mapping of names to types")


def category_names(features: Any) -> tuple[str, ...]:
    """The columns data.features declares as categories. A reader keeps their text as written (a CSV's "02134"
    stays "02134", not the number 2134), so training sees the values a client sends."""
    return tuple(
        name for name, column in declared_columns(features).items() if column is not None and column.type == "category"
    )


def _listed_names(features: Any) -> set[str]:
    if isinstance(features, str):
        return {features}
    if isinstance(features, Mapping | Sequence):
        return {str(name) for name in features}
    return set()


def _declared(name: str, value: Any) -> Column | None:
    where = f"data.features.{name}"
    if value is None:
        return None
    if isinstance(value, str):
        return Column(name, value)
    if not isinstance(value, Mapping):
        raise DataError(
            f"{where}: give a type ({', '.join(COLUMN_TYPES)}) or a mapping, e.g. {{type: number}}"
        )
    unknown = sorted(set(value) - {"type", "missing", "encode", "max_categories"})
    if unknown:
        raise DataError(
            f"{where}: unknown key {', '.join(map(str, unknown))}; keys: type, missing, encode, max_categories"
        )
    missing, constant = value.get("missing", "error"), None
    if isinstance(missing, Mapping):
        if set(missing) != {"constant"}:
            raise DataError(f"{where}.missing: a mapping here is {{constant: value}}")
        missing, constant = "constant", missing["constant"]
        if value.get("type") == "category" and isinstance(constant, int | float | bool):
            constant = category_text(constant)  # {constant: 0} in a category column fills the text "0"
    elif missing == "constant":
        raise DataError(f"{where}.missing: give the value to fill, e.g. missing: {{constant: 0}}")
    return Column(
        name,
        value.get("type"),  # None: the data decides (resolve_columns)
        missing=missing,
        constant=constant,
        encode=value.get("encode", "one_hot"),
        max_categories=value.get("max_categories"),
    )


# --------------------------------------------------------------------------- the data's view


def table_label(source: str, columns: Sequence[str], label: str | None) -> str:
    """The label column's name: data.label, else a column named `label`; DataError when there is none."""
    if label is None:
        if "label" not in columns:
            raise DataError(
                f"{source}: set data.label to the label column; its columns: {some_names(columns)}"
            )
        return "label"
    if label not in columns:
        raise DataError(not_a_column("data.label", label, source, columns))
    return label


def not_a_column(field: str, name: str, source: str, columns: Sequence[str]) -> str:
    """`data.label 'Species' is not a column of <source>; did you mean 'species'?` (else its columns)."""
    meant = did_you_mean(name, columns)
    hint = f"did you mean {meant!r}?" if meant else f"its columns are: {some_names(columns)}"
    return f"{field} {some_names([name])!r} is not a column of {source}; {hint}"


def resolve_columns(
    source: str, frame: Any, features: Any, label: str | None, exclude: Sequence[str] | None = None
) -> tuple[Column, ...]:
    """Every feature column of a table (a pandas DataFrame), in feature order: the declared ones as declared,
    the others with the type their values imply (`inferred=True`, missing: error). DataError names a column
    that does not exist, a text column with too many values to be a category, or dates."""
    names = [str(c) for c in frame.columns]
    label = table_label(source, names, label)
    declared = declared_columns(features, exclude)
    for field, wanted in (("data.features", declared), ("data.exclude", exclude or ())):
        for name in wanted:
            if name not in names:
                raise DataError(not_a_column(field, name, source, names))
    if label in declared:
        raise DataError(f"{source}: the label column {label!r} is also listed in data.features")
    skipped = {label, *(exclude or ())}
    wanted = list(declared) if declared else [name for name in names if name not in skipped]
    if not wanted:
        raise DataError(f"{source}: no feature columns left besides the label {label!r}")
    clash = [name for name in wanted if name in OUTPUT_NAMES]
    if clash:
        # Each column is an endpoint input named as the column, beside outputs with these names.
        hint = "leave it out of data.features" if declared else "add it to data.exclude"
        raise DataError(
            f"{source}: column {some_names(clash[:1])!r} has the name of a model output "
            f"({', '.join(OUTPUT_NAMES)}), and each column is an endpoint input of its name; {hint}, or rename it "
            "in the data (in data.query: SELECT ... AS another_name)"
        )
    position = {name: index for index, name in enumerate(names)}
    columns = []
    for name in wanted:
        column = declared.get(name)
        series = frame.iloc[:, position[name]]
        if column is None:
            column = _inferred(source, name, series, listed=bool(declared))
        elif column.type is None:  # declared without a type: the data's type, the declaration's settings
            column = _typed(source, column, _inferred(source, name, series, listed=True).type)
        elif _holds_dates(series) and column.type != "category":
            hint = _date_hint(name, bool(declared))
            raise DataError(f"{source}: column {some_names([name])!r} holds dates; {hint}")
        columns.append(column)
    return tuple(columns)


def _typed(source: str, declared: Column, column_type: str) -> Column:
    """A declaration without a type, given the type its data implies (and its settings checked against it)."""
    constant = declared.constant
    if column_type == "category" and isinstance(constant, int | float | bool):
        constant = category_text(constant)  # as _declared does for a declared category
    try:
        return replace(declared, type=column_type, constant=constant, inferred=True)
    except DataError as exc:
        raise DataError(f"{source}: {exc} (the type inferred from its values; declare it if that is wrong)") from exc


def _inferred(source: str, name: str, series: Any, *, listed: bool) -> Column:
    import pandas as pd

    shown = some_names([name])
    if pd.api.types.is_bool_dtype(series):
        return Column(name, "boolean", inferred=True)
    if pd.api.types.is_numeric_dtype(series):
        return Column(name, "number", inferred=True)
    if _holds_dates(series):
        raise DataError(f"{source}: column {shown!r} holds dates; {_date_hint(name, listed)}")
    kind = pd.api.types.infer_dtype(series, skipna=True)
    if kind == "boolean":
        return Column(name, "boolean", inferred=True)
    if kind in ("integer", "floating", "mixed-integer-float", "decimal"):  # numbers in an object column (SQL)
        return Column(name, "number", inferred=True)
    distinct = series[~gaps(series)].nunique()
    if distinct > MAX_INFERRED_CATEGORIES:
        where = "declare its type under data.features" + (
            f" (e.g. {name}: {{type: category, max_categories: 20}}) or leave it out of data.features"
            if listed
            else f" (e.g. {name}: {{type: category, max_categories: 20}}) or add it to data.exclude"
        )
        raise DataError(
            f"{source}: column {shown!r} is text with {distinct:,} distinct values, more than the "
            f"{MAX_INFERRED_CATEGORIES} a category is inferred for; {where}"
        )
    return Column(name, "category", inferred=True)


def _date_hint(name: str, listed: bool) -> str:
    leave_out = "leave it out of data.features" if listed else "add it to data.exclude"
    return (
        f"mlspec takes no dates as features: {leave_out}, derive a number from it before training, or "
        f"declare it as text (data.features.{name}: {{type: category}})"
    )


def _holds_dates(series: Any) -> bool:
    """Dates and times: a datetime column, dates a database returned, or text that is all dates."""
    import pandas as pd

    if isinstance(series.dtype, pd.CategoricalDtype):  # Parquet text arrives dictionary-encoded
        series = pd.Series(series.cat.categories)
    if pd.api.types.is_datetime64_any_dtype(series) or pd.api.types.is_timedelta64_dtype(series):
        return True
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return False
    kind = pd.api.types.infer_dtype(series, skipna=True)
    if kind in _DATE_KINDS:
        return True
    if kind != "string":
        return False
    values = [v for v in series.dropna().unique()[:1000] if not is_gap(v)]
    return bool(values) and all(_DATE.match(v) for v in values)


# --------------------------------------------------------------------------- the raw feature table


class RawTable(NamedTuple):
    """What raw_features gives: the rows training uses, which rows of the source they are and why the others
    were dropped."""

    features: Any  # the normalized raw feature table: a DataFrame with the columns in order, index 0..n-1
    labels: Any  # the label column's values (a numpy array)
    kept: Any  # a numpy bool mask over the source's rows: True for each row in features
    dropped: dict[str, int]  # why rows were dropped -> how many: "no label", "missing in <column> (drop_row)"


def raw_features(
    source: str, frame: Any, columns: Sequence[Column], label: str | None, *, feature_names: Sequence[str] = ()
) -> RawTable:
    """The normalized raw feature table and the label column's values for the rows training uses (RawTable).

    Rows with no label are dropped, then rows with a gap in a `missing: drop_row` column (both logged with
    their counts and reported in RawTable.dropped); a gap left in a `missing: error` column is a DataError that names the column, how many
    rows and the strategies that would fill it. Numbers, integers and booleans become float64 (NaN for a
    gap; booleans 1.0/0.0), categories Python str ("" for a gap; a number in a category becomes its text).
    `feature_names` (default: the columns') are every feature of the spec, for the data.features mapping a
    message suggests when no column is declared (lint checks one column at a time).
    """
    import pandas as pd

    names = [str(c) for c in frame.columns]
    label = table_label(source, names, label)
    position = {name: index for index, name in enumerate(names)}
    labels = frame.iloc[:, position[label]]
    unlabeled = gaps(labels)
    keep = ~unlabeled
    drops: dict[str, int] = {}
    if unlabeled.any():
        count = drops["no label"] = int(unlabeled.sum())
        log.info("%s: dropped %d of %d rows that have no label (%s)", source, count, len(frame), label)
    table, holes = {}, {}
    for column in columns:
        values, gap = _normalized(source, column, frame.iloc[:, position[column.name]])
        table[column.name], holes[column.name] = values, gap
    for column in columns:  # a column that errs on gaps says so below, with its count
        if column.missing != "error" and not (keep & ~holes[column.name]).any():
            rows = f"any of the {int(keep.sum()):,} rows" + (" with a label" if unlabeled.any() else "")
            raise EmptyColumn(no_value_message(source, column.name, rows))
    for column in columns:
        if column.missing == "drop_row":
            dropped = holes[column.name] & keep
            if dropped.any():
                count = drops[f"missing in {column.name} (drop_row)"] = int(dropped.sum())
                log.info(
                    "%s: dropped %d rows with no %s value (missing: drop_row)", source, count, column.name
                )
            keep &= ~holes[column.name]
    unfilled = [column for column in columns if column.missing == "error" and (holes[column.name] & keep).any()]
    if unfilled:
        column = unfilled[0]
        message = _gaps_message(source, column, holes[column.name] & keep)
        if all(c == Column(c.name, c.type, inferred=True) for c in columns):  # nothing declared: no mapping yet
            names = feature_names or [c.name for c in columns]
            message += "; " + _mapping_hint(names, {c.name: c for c in unfilled})
        elif column.inferred:  # a name with no value in the mapping: give it its declaration
            message += (
                f" (declare it under data.features, e.g. {some_names([column.name])}: {{type: {column.type}, "
                f"missing: {_suggested_fill(column)}}})"
            )
        if not (keep & ~holes[column.name]).any():
            message += "; no row here has a value: if none has, add it to data.exclude instead"
        raise DataError(message)
    dropped = len(frame) - int(keep.sum())
    if dropped:
        log.info("%s: %d of %d rows dropped in all, %d left", source, dropped, len(frame), int(keep.sum()))
    if not keep.any():
        raise DataError(
            f"{source}: no rows left once rows without a label or with gaps in drop_row columns are dropped"
            if len(frame)
            else f"{source}: the table has no rows"
        )
    # An explicit dtype per column: pandas 3 would otherwise turn an object array of str into its string dtype.
    every_row = bool(keep.all())
    features = pd.DataFrame(
        {name: pd.Series(values if every_row else values[keep], dtype=values.dtype) for name, values in table.items()}
    )
    return RawTable(features, labels.to_numpy()[keep], keep, drops)


def no_value_message(source: str, name: str, rows: str) -> str:
    """Why a column with no value in `rows` (`any of the 344 rows`, `the 240 training rows`) is refused."""
    return (
        f"{source}: column {some_names([name])} has no value in {rows}; a model learns nothing from it and a fill "
        "would be made up: add it to data.exclude (or leave it out of data.features)"
    )


def _gaps_message(source: str, column: Column, holes: Any) -> str:
    """The gaps `holes` marks in a `missing: error` column and the strategies that would fill them."""
    count = int(holes.sum())
    name = some_names([column.name])
    fill = (
        f"set data.features.{name}.missing to most_frequent, {{constant: ...}} or drop_row"
        if column.type in ("category", "boolean")
        else f"set data.features.{name}.missing to mean, median, most_frequent, {{constant: ...}} or drop_row"
    )
    values = "values" if count > 1 else "value"
    return f"{source}: column {name} has {count:,} missing {values} ({data_rows(holes)}); {fill}"


def _suggested_fill(column: Column) -> str:
    return "median" if column.type in ("number", "integer") else "most_frequent"


def _mapping_hint(names: Sequence[str], unfilled: Mapping[str, Column], shown: int = 8) -> str:
    """data.features as a mapping that fills every column of `unfilled` and keeps every other name, with no
    value, inferred: a mapping names the features, so one that declares only the columns with gaps would
    train a model on those alone."""
    entries = [
        f"{name}: {{type: {unfilled[name].type}, missing: {_suggested_fill(unfilled[name])}}}"
        if name in unfilled
        else f"{name}: null"
        for name in names
    ]
    hidden = [entry for entry in entries[shown:] if entry.endswith(": null")]
    entries = entries[:shown] + [entry for entry in entries[shown:] if not entry.endswith(": null")]
    more = f", ... and the other {len(hidden):,} names: null" if hidden else ""
    return (
        "a mapping names the features, so list them all (a name with no value keeps its inferred type): "
        f"data.features: {{{', '.join(entries)}{more}}}"
    )


def _normalized(source: str, column: Column, series: Any) -> tuple[Any, Any]:
    """(values, gaps): a column as float64 (NaN gaps) or as an object array of str ("" gaps); its gap mask."""
    if column.type == "category":
        values = category_texts(series)
        return values, values == ""
    import numpy as np

    values = (
        _boolean_values(source, column, series)
        if column.type == "boolean"
        else (_number_values(source, column, series))
    )
    infinite = np.isinf(values)
    if infinite.any():
        raise DataError(
            f"{source}: column {some_names([column.name])} has {int(infinite.sum()):,} infinite values "
            f"({data_rows(infinite)}); replace them with numbers, or leave them empty to fill as gaps"
        )
    return values, np.isnan(values)


def data_rows(mask: Any) -> str:
    """The rows a boolean mask over a table marks, as a user finds them: `data rows 4 and 272`, counting the
    data rows from 1 (a CSV's first line below the header is data row 1; a folder's files count on as one
    table); at most _SHOWN_ROWS of them."""
    import numpy as np

    numbers = [str(n) for n in np.flatnonzero(mask)[: _SHOWN_ROWS + 1] + 1]
    if len(numbers) == 1:
        return f"data row {numbers[0]}"
    if len(numbers) > _SHOWN_ROWS:
        return f"data rows {', '.join(numbers[:_SHOWN_ROWS])} ..."
    return f"data rows {', '.join(numbers[:-1])} and {numbers[-1]}"


# --------------------------------------------------------------------------- what a gap is


def is_gap(value: Any) -> bool:
    """A raw value is missing: None, NaN (pandas' NA and NaT too), or text that is empty or only spaces. The one
    rule for training data, published example rows and an endpoint's request alike."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    try:
        return bool(value != value)  # NaN and NaT differ from themselves
    except TypeError:  # pandas' NA answers NA, which has no truth value
        return type(value).__name__ == "NAType"


def gaps(values: Any) -> Any:
    """is_gap over a pandas Series (or anything pandas.Series takes) as a numpy bool mask, vectorized."""
    import numpy as np
    import pandas as pd

    series = values if isinstance(values, pd.Series) else pd.Series(values)
    mask = series.isna().to_numpy()
    if not pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        codes, distinct = pd.factorize(series, use_na_sentinel=True)  # each distinct value checked once
        blank = np.array([isinstance(v, str) and not v.strip() for v in distinct] + [False], dtype=bool)
        mask = mask | blank[codes]
    return mask


def _number_values(source: str, column: Column, series: Any) -> Any:
    import numpy as np
    import pandas as pd

    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        holes = gaps(series)
        numbers = pd.to_numeric(series.where(~holes, None), errors="coerce")
        wrong = numbers.isna().to_numpy() & ~holes
        if wrong.any():
            raise _values_do_not_fit(source, column, series, wrong, "numbers")
        values = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    if column.type == "integer":
        with np.errstate(invalid="ignore"):
            fractional = np.isfinite(values) & (values != np.round(values))
        if fractional.any():
            raise DataError(
                f"{source}: column {some_names([column.name])} is an integer column, but "
                f"{int(fractional.sum()):,} of its values have a fraction (e.g. {values[fractional][0]:g}; "
                f"{data_rows(fractional)}); declare it as a number"
            )
    return values


def _boolean_values(source: str, column: Column, series: Any) -> Any:
    import numpy as np
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    holes = gaps(series)
    meaning = {}
    for value in pd.unique(series[~holes]):
        if isinstance(value, bool | np.bool_):
            meaning[value] = float(value)
        elif isinstance(value, int | float | np.integer | np.floating) and value in (0, 1):
            meaning[value] = float(value)
        elif isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            meaning[value] = 1.0 if value.strip().lower() in _TRUE else 0.0
    mapped = series.map(meaning).to_numpy(dtype=np.float64, na_value=np.nan)
    wrong = np.isnan(mapped) & ~holes
    if wrong.any():
        raise _values_do_not_fit(source, column, series, wrong, "true/false, yes/no or 1/0")
    return mapped  # a gap maps to NaN: it has no meaning


def _values_do_not_fit(source: str, column: Column, series: Any, wrong: Any, expected: str) -> DataError:
    """The error for values of a number, integer or boolean column that are not `expected`: how many, a few
    examples and their data rows."""
    import pandas as pd

    examples = some_names(pd.unique(series[wrong].astype(str))[:3])
    return DataError(
        f"{source}: column {some_names([column.name])} is a {column.type} column, but {int(wrong.sum()):,} of "
        f"its values are not {expected} (e.g. {examples}; {data_rows(wrong)}); "
        "declare it as a category, or correct the data"
    )


def category_texts(series: Any) -> Any:
    """An object array of str: each value's category_text, "" for a gap (is_gap). Each distinct value is one str
    object that every row holding it shares: a million rows of a category cost 8 bytes each, not a str object
    each. Number, boolean and plain text columns are converted without a Python call per distinct value (row ids
    of a million-row key take well under a second per column)."""
    import numpy as np
    import pandas as pd

    codes, distinct = pd.factorize(series, use_na_sentinel=True)  # NA is code -1: the last text, ""
    distinct = np.asarray(distinct)
    if distinct.dtype.kind in "biu":
        texts = distinct.astype(str).astype(object)
    elif distinct.dtype.kind == "f":
        texts = np.array(list(map(str, distinct.tolist())), dtype=object)  # faster than numpy's astype(str)
        whole = np.isfinite(distinct) & (distinct == np.floor(distinct))
        small = whole & (np.abs(distinct) < 2.0**63)
        texts[small] = distinct[small].astype(np.int64).astype(str)
        texts[whole & ~small] = [category_text(value) for value in distinct[whole & ~small].tolist()]
    elif distinct.dtype == object and pd.api.types.infer_dtype(distinct, skipna=False) == "string":
        texts = distinct.copy()
        texts[(pd.Series(distinct, dtype=object).str.strip() == "").to_numpy()] = ""
    else:
        texts = np.array(["" if is_gap(value) else category_text(value) for value in distinct], dtype=object)
    return np.append(texts, "")[codes]


def category_text(value: Any) -> str:
    """A value as a category column holds it: text as is, a number as its text with whole numbers without ".0"
    (2007 and 2007.0 -> "2007": pandas reads integers with gaps as floats), True -> "True". The one rule for
    training data, a declared constant, published rows and an endpoint's request alike (a gap: is_gap)."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "item") and not isinstance(value, str):  # a numpy scalar
        return category_text(value.item())
    return str(value)

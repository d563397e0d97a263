"""data.features and data.exclude (issue 13): each column declaration makes sense on its own and beside the
label and data.exclude (check_columns, no data needed); where `mlspec lint` has a local table's first rows, each
feature column's declared or inferred type fits its values and its gaps have a strategy (check_sample_columns).

Every rule is mlspec.ml.columns' own (declared_columns, resolve_columns, raw_features): lint runs them on the
spec and on the sample, so it reports what prepare_data would refuse, in the same words, at the spec's line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mlspec.errors import DataError
from mlspec.ml.columns import EmptyColumn, declared_columns, gaps, raw_features, resolve_columns
from mlspec.sources import source_kind
from mlspec.spec.errors import SpecProblem, quote
from mlspec.spec.yaml_loader import LoadedYaml

Where = tuple  # a node of the spec: ("data", "features", "island")


def label_name(data: dict) -> str:
    """The label column a spec names: data.label, else `label` (ml.columns.table_label checks it against data)."""
    return data.get("label") or "label"


def feature_places(features: object) -> list[tuple[str, Where]] | None:
    """(column, where in the spec) of each feature data.features names; None when it names none (all columns)."""
    if isinstance(features, str):
        return [(features, ("data", "features"))]
    if isinstance(features, list):
        return [(str(feature), ("data", "features", index)) for index, feature in enumerate(features)]
    if isinstance(features, dict):
        return [(str(feature), ("data", "features", feature)) for feature in features]
    return None


def not_a_table(data: dict) -> str | None:
    """What a source that is not a table is (a named data set, an npz file), for a message; None for a table."""
    kind = source_kind(data["source"])
    if kind is not None and kind.load_dataset is not None:
        return f"a named data set ({data['source']})"
    if data.get("format") == "npz" or (data.get("format") is None and data["source"].lower().endswith(".npz")):
        return "an npz file (one features array)"
    return None


def check_columns(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    """The declarations alone: each column's type, missing strategy and encoding agree (mean on a category,
    encode on a number ...), no column both a feature and
    excluded, the label not a feature."""
    data = spec["data"]
    features, exclude = data["features"], data.get("exclude") or []
    if isinstance(features, dict) or exclude:
        other = not_a_table(data)
        if other is not None:
            at = ("data", "features") if isinstance(features, dict) else ("data", "exclude")
            message = f"column types and data.exclude are for a table (csv, parquet or sql://), not {other}"
            yield doc.problem(at, message, at_key=True)
            return
    if isinstance(features, dict):
        for name, value in features.items():
            try:
                declared_columns({name: value})
            except DataError as exc:
                yield doc.problem(("data", "features", name), _without_place(str(exc)))
    places = feature_places(features) or []
    label = label_name(data)
    for name, at in places:
        if name == label and not isinstance(features, str):
            yield doc.problem(at, f"{quote(name)} is the label column; a model does not read its own answer as a feature")
    listed = {name for name, _at in places}
    for index, name in enumerate(exclude):
        if name in listed:
            yield doc.problem(("data", "exclude", index), f"{quote(name)} is both a feature (data.features) and excluded")
        elif name == label:
            yield doc.problem(
                ("data", "exclude", index),
                f"{quote(name)} is the label, which is never a feature; it needs no data.exclude",
                severity="warning",
            )


def _without_place(message: str) -> str:
    """A declaration's DataError without its leading `data.features.<name>: `: lint shows the place itself."""
    place, sep, rest = message.partition(": ")
    return rest if sep and place.startswith("data.features.") else message


def check_sample_columns(doc: LoadedYaml, spec: dict, sample: Any, shown: str) -> Iterator[SpecProblem]:
    """The first rows of a local table (a pandas DataFrame whose columns include every name the spec gives):
    each feature column's type, declared or inferred, fits its values, and a column with gaps has a strategy
    for them. Rows with no label are left out first, as prepare_data leaves them out (a warning). A table that
    fails is checked again column by column, so every column's problem is reported at its place in the spec."""
    data = spec["data"]
    features, exclude, label = data["features"], data.get("exclude") or [], label_name(data)
    rows = f"the first {len(sample):,} rows of {shown}"
    unlabeled = int(gaps(sample[label]).sum())
    label_at = ("data", "label") if data.get("label") else ("data", "source")
    if unlabeled:
        yield doc.problem(
            label_at,
            f"{unlabeled:,} of {rows} have no {quote(label)}; prepare_data leaves such rows out",
            severity="warning",
        )
    if unlabeled == len(sample):
        return  # no row to check (prepare_data says so of the whole table, if it is so there)
    try:  # most tables are fine: one pass over every column says so
        raw_features(rows, sample, resolve_columns(rows, sample, features, label, exclude), label)
        return
    except DataError:
        pass  # find every problem, column by column
    places = feature_places(features)
    if places is None:
        skipped = {label, *exclude}
        places = [(str(name), ("data", "source")) for name in sample.columns if str(name) not in skipped]
    whole = bool(sample.attrs.get("whole"))
    for name, at in places:
        if name == label:
            continue  # check_columns reports it
        if name not in sample.columns:
            continue  # check_sample reports it
        # The column as the spec gives it: its declaration, or listed (type inferred), or one of all columns.
        one = {name: features[name]} if isinstance(features, dict) else None if features is None else [name]
        subset = sample[[name, label]]
        try:
            (column,) = resolve_columns(rows, subset, one, label)
            raw_features(rows, subset, (column,), label, feature_names=[n for n, _at in places if n != label])
        except EmptyColumn as exc:  # empty in the first rows only: later rows may hold values
            later = "" if whole else "; the rows after these may hold values, and prepare_data refuses it if none does"
            yield doc.problem(at, f"{exc}{later}", severity="error" if whole else "warning")
        except DataError as exc:
            yield doc.problem(at, str(exc))

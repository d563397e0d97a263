"""data: the source is of a known kind (mlspec.sources: a known data set, or a file of a known format), and the
split leaves data to train on, with settings of its method; `mlspec lint` also checks a local file source
(check_local_source): where it is, and a sample of its rows against data.label, data.features, data.exclude and
data.split.key (check_sample, then lint.columns.check_sample_columns); `mlspec render` types its columns from
the same sample (local_sample)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from mlspec.errors import DataError, StoreError
from mlspec.ml.columns import category_names
from mlspec.sources import SourceRead, schemes_text, source_kind
from mlspec.sources.columns import did_you_mean, partition_values, sample_table
from mlspec.sources.file import is_pattern, pattern_root
from mlspec.spec.errors import SpecProblem, quote
from mlspec.spec.lint.columns import Where, check_sample_columns, feature_places, label_name, not_a_table
from mlspec.spec.lint.templates import check_templates, is_template, rendered_today, value_at
from mlspec.spec.lint.uris import uri_problem
from mlspec.spec.model import parse_bytes
from mlspec.spec.yaml_loader import LoadedYaml
from mlspec.storage import check_data_path, max_source_bytes, resolve_file_uri, source_cap_hint
from mlspec.storage.file import file_kind

# A missing file's did-you-mean looks at most this many entries of its folder.
MAX_LISTED_ENTRIES = 1000


def check_data_source(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    """The source's kind (mlspec.sources) must be known; then its own rules, then the URI's form."""
    source = spec["data"]["source"]
    kind = source_kind(source)
    if kind is None:
        yield doc.problem(("data", "source"), f"unsupported source {quote(source)}; use {schemes_text()}")
    else:
        for field, message in kind.problems(source, quote, spec["data"]):
            yield doc.problem(("data", field), message)
        if kind.read_table is None and spec["data"].get("query") is not None:
            yield doc.problem(("data", "query"), f"data.query is read by a sql:// source only, not {kind.prefix}")
    yield from check_templates(doc, spec)
    problem = uri_problem(source, names_an_object=True)
    if problem:
        yield doc.problem(("data", "source"), problem)


def check_split(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    """The shares leave rows to train on; each setting applies to the method in use (seed and stratify to
    random, key to hash, test to a source with no evaluation.holdout); a key names columns of a table."""
    split = spec["data"]["split"]
    written = (doc.data.get("data") or {}).get("split") or {}
    holdout = spec["evaluation"].get("holdout") is not None
    test = 0 if holdout else split["test"]  # with a holdout, the source's rows go to train and validation only
    if split["validation"] + test >= 0.9:
        shares = "validation" if holdout else "validation + test"
        yield doc.problem(("data", "split"), f"{shares} leave less than 10% of the data for training")
    if holdout and "test" in written:
        yield doc.problem(
            ("data", "split", "test"),
            "data.split.test is not used: evaluation.holdout is the test split, and the source's rows are split "
            "between train and validation only",
            severity="warning",
        )
    if split["method"] == "hash":
        for setting in ("seed", "stratify"):
            if setting in written:
                yield doc.problem(
                    ("data", "split", setting),
                    f"{setting} applies to method random only; with method hash (the default) a row's split follows "
                    f"from its key, so remove {setting} or set data.split.method: random",
                    severity="warning",
                )
    elif split["key"] is not None:
        yield doc.problem(
            ("data", "split", "key"),
            "key applies to method hash only; method random shuffles the rows, so remove key or set "
            "data.split.method: hash",
            severity="warning",
        )
    other = not_a_table(spec["data"]) if split["key"] is not None else None
    if other is not None:
        yield doc.problem(
            ("data", "split", "key"),
            f"data.split.key names columns of a table (csv, parquet or sql://), not {other}; without key a row "
            "is identified by its feature values and label",
        )


SAMPLE_ROWS = 1_000  # lint reads at most this many rows of a local table


def check_local_source(doc: LoadedYaml, spec: dict, home: Callable[[], Path], specs_dir: Path | None) -> list[SpecProblem]:
    """A data source on this machine (a file:// source) within the allowed data folders and, when it exists
    here, a regular file within the size cap whose first rows fit the spec (`mlspec lint` only)."""
    found = local_file(doc, spec, home, specs_dir)
    return found if isinstance(found, list) else list(check_sample(doc, spec, *found))


def check_local_holdout(
    doc: LoadedYaml, spec: dict, home: Callable[[], Path], specs_dir: Path | None
) -> list[SpecProblem]:
    """A local evaluation.holdout as check_local_source checks data.source: within the allowed data folders and,
    when it exists here, a regular file within the size cap whose first rows hold the label and listed features
    (it is read with data's settings)."""
    if spec["evaluation"].get("holdout") is None:
        return []
    at = ("evaluation", "holdout", "source")
    found = local_file(doc, spec, home, specs_dir, at)
    if isinstance(found, list):
        return found
    path, name, one_file = found
    try:
        read = read_sample(spec, path, name, one_file)
    except Exception as exc:  # noqa: BLE001 - any parser failure means the same to the user
        fmt = spec["data"].get("format") or _table_format(path.name)
        return [doc.problem(at, f"{quote(value_at(spec, at))} ({path}) is not a readable {fmt} file: {exc}")]
    if read is None:
        return []
    _sample, columns, shown = read
    data = spec["data"]
    listed = feature_places(data.get("features")) or ()
    needed = [("data.label", label_name(data)), *(("data.features", name) for name, _at in listed)]
    return [doc.problem(at, _not_a_column(field, name, shown, columns)) for field, name in needed if name not in columns]


def local_sample(doc: LoadedYaml, spec: dict, home: Callable[[], Path], specs_dir: Path | None) -> tuple[Any, str] | None:
    """(the first SAMPLE_ROWS rows of a local table source as a DataFrame, where they come from in words), or
    None when the source is no table on this machine that lint could read (`mlspec render`'s column types)."""
    found = local_file(doc, spec, home, specs_dir)
    if isinstance(found, list):
        return None
    try:
        read = read_sample(spec, *found)
    except Exception:  # noqa: BLE001 - lint reports an unreadable file; render then resolves nothing here
        return None
    return None if read is None else (read[0], read[2])


def local_file(
    doc: LoadedYaml, spec: dict, home: Callable[[], Path], specs_dir: Path | None, at: Where = ("data", "source")
) -> tuple[Path, str, bool] | list[SpecProblem]:
    """(the local file a table source reads first, its name below the source's folder, whether that file is the
    whole source), or the problems that stop lint from reading it ([] where the source is not on this machine).
    `at`: the source's place in the spec, data.source or evaluation.holdout.source."""
    source = value_at(spec, at)
    kind = source_kind(source)
    if kind is None or kind.local_path is None:
        return []
    pattern = source if is_template(source) else None
    if pattern is not None:  # the file a run today reads; each run reads the file of its own date
        source = rendered_today(pattern)
        if source is None:
            return []  # check_templates reports a template that does not compile; this one names run-time values
    try:
        path = kind.local_path(source, home)
        check_data_path(path, what=quote(source), specs_dir=specs_dir)
    except StoreError as exc:
        return [doc.problem(at, str(exc))]
    limit = max_source_bytes(parse_bytes(spec["data"].get("limits", {}).get("max_bytes", 0)))
    name, one_file = path.name, True
    if kind.list_files is not None and (is_pattern(str(path)) or path.is_dir()):  # a folder or a glob: its first file
        if is_pattern(str(path)) and not pattern_root(path).is_dir():
            return []  # the data may live only where the tasks run
        try:
            files = kind.list_files(source, SourceRead(connection=None, max_bytes=limit, specs_dir=specs_dir))
        except StoreError as exc:
            return [doc.problem(at, str(exc))]
        path, name, one_file = resolve_file_uri(files[0][0]), files[0][1], len(files) == 1
    try:
        info = os.stat(path)  # follows symlinks: a link to /dev/zero is a device
    except (FileNotFoundError, NotADirectoryError):
        if pattern is None:
            return [doc.problem(at, _no_such_file(source, path), severity="warning")]
        return [
            doc.problem(
                at,
                f"no file {quote(source)} for today's date ({path}); a run reads the file its own date names, so "
                "check the pattern if today's should exist",
                severity="warning",
            ),
        ]
    except OSError as exc:
        return [doc.problem(at, f"cannot check {quote(source)} ({path}): {exc.strerror or exc}")]
    if not stat.S_ISREG(info.st_mode):
        return [
            doc.problem(
                at,
                f"{quote(source)} ({path}) is a {file_kind(info.st_mode)}, not a regular file; a data source must "
                "be a file (a device or a pipe would be read without end)",
            ),
        ]
    if info.st_size > limit:
        return [
            doc.problem(
                at,
                f"{quote(source)} is {info.st_size} bytes; data sources are limited to {limit} bytes: "
                f"{source_cap_hint()}",
            ),
        ]
    return path, name, one_file


def _no_such_file(source: str, path: Path) -> str:
    """A local source with no file here: where lint looked, the name it likely meant, and why only a warning."""
    try:  # a did-you-mean needs no more than the folder's first entries: a huge folder costs lint nothing
        with os.scandir(path.parent) as entries:
            names = sorted(entry.name for entry in islice(entries, MAX_LISTED_ENTRIES) if entry.is_file())
    except OSError:
        names = None
    meant = did_you_mean(path.name, names) if names else None
    where = f"; did you mean {quote(meant)} beside it?" if meant else "" if names is not None else (
        f"; its folder {path.parent} does not exist here either"
    )
    return (
        f"{quote(source)} is {path}, which does not exist on this machine{where} (a warning: the file may exist "
        "where the tasks run; lint checks its columns only where it can read it)"
    )


def read_sample(spec: dict, path: Path, name: str, one_file: bool) -> tuple[Any, list[str], str] | None:
    """(the first SAMPLE_ROWS rows of a local CSV or Parquet file as a DataFrame, with a folder's partition
    folders as columns; every column name of the file; the file in words), or None when it is no such table
    or its first rows are too long to sample. The DataFrame's `attrs["whole"]` says the rows are the whole
    source (`one_file`: it has no other file). Only the sample is read, so lint stays fast on a huge file; a
    parser's exception passes through."""
    data = spec["data"]
    fmt = data.get("format") or _table_format(path.name)
    if fmt not in ("csv", "parquet"):
        return None
    listed = feature_places(data.get("features"))
    wanted = None if listed is None else [*(feature for feature, _at in listed), label_name(data)]
    try:
        text = category_names(data.get("features"))
    except DataError:
        text = ()  # check_columns reports a malformed declaration
    sample = sample_table(path, fmt, SAMPLE_ROWS, wanted, text)
    if sample is None:
        return None
    sample.attrs["whole"] = one_file and sample.attrs["whole"]
    partitions = partition_values(name)
    for key, value in partitions.items():
        sample[key] = value
    shown = str(path) if path.name == name else f"{path} (the first of its files)"
    return sample, [*sample.attrs["columns"], *partitions], shown


def check_sample(doc: LoadedYaml, spec: dict, path: Path, name: str, one_file: bool) -> Iterator[SpecProblem]:
    """The first rows of a local CSV or Parquet file (a folder's first file): the label, every listed feature,
    every excluded column and every key column are columns, and each feature column fits the spec
    (check_sample_columns)."""
    data = spec["data"]
    try:
        read = read_sample(spec, path, name, one_file)
    except Exception as exc:  # noqa: BLE001 - any parser failure means the same to the user
        fmt = data.get("format") or _table_format(path.name)
        yield doc.problem(("data", "source"), f"{quote(data['source'])} ({path}) is not a readable {fmt} file: {exc}")
        return
    if read is None:
        return
    sample, columns, shown = read
    label = label_name(data)
    label_at = ("data", "label") if data.get("label") else ("data", "source")
    listed = feature_places(data.get("features"))
    if label not in columns:
        yield doc.problem(label_at, _not_a_column("data.label", label, shown, columns))
    for feature, at in listed or ():
        if feature not in columns:
            yield doc.problem(at, _not_a_column("data.features", feature, shown, columns))
    for index, excluded in enumerate(data.get("exclude") or ()):
        if excluded not in columns:
            yield doc.problem(("data", "exclude", index), _not_a_column("data.exclude", excluded, shown, columns))
    for index, key in enumerate(data["split"].get("key") or ()):  # any column of the source, not only features
        if key not in columns:
            yield doc.problem(("data", "split", "key", index), _not_a_column("data.split.key", key, shown, columns))
    if label in sample.columns:
        yield from check_sample_columns(doc, spec, sample, shown)


def _table_format(name: str) -> str | None:
    name = name.lower().removesuffix(".gz")
    return "csv" if name.endswith(".csv") else "parquet" if name.endswith((".parquet", ".pq")) else None


def _not_a_column(field: str, name: str, where: str, columns: list[str]) -> str:
    meant = did_you_mean(name, columns)
    listed = ", ".join(quote(c) for c in columns[:10]) + (f" and {len(columns) - 10} more" if len(columns) > 10 else "")
    hint = f"did you mean {quote(meant)}?" if meant else f"its columns are: {listed}"
    return f"{field} {quote(name)} is not a column of {where}; {hint}"

"""Training data: load a spec's `data.source`, split it, and describe its preprocess steps.

Callers can rely on:
- `load_source` returns a `Loaded` (x, y, class_names, feature_names, columns, label_datatype, and each row's
  row_id and content_id, the rows read and the rows dropped by reason). A table
  (CSV/Parquet files, a folder, glob or prefix of them, a sql:// query) gives x as the normalized raw
  pandas DataFrame of its typed feature columns (mlspec.ml.columns: declared in data.features or inferred;
  the model's preprocessor encodes and fills them); any other source (npz, builtin:, keras:) float32 features
  with the samples on axis 0 and no columns. y: for `task="classification"`, int64 class indices `0..K-1`
  that index `class_names`; for `task="regression"`, a float32 target per sample and no class names.
- `split` assigns each row by its row id (mlspec.ml.splits; method hash, the default), so a row keeps its split
  as the table grows; method random is the seeded shuffle of before issue 14, stratified for classification only.
  An evaluation.holdout is the test split. Each split's row ids and content ids travel with it (Dataset.ids_*,
  Dataset.content_ids_*).
- Feature steps (scale, normalize, reshape) are *not* applied here: the framework adapter
  turns them into the first steps of the model, so the exported ONNX model and the served
  endpoint take raw features. Only label steps (one_hot) change the data (`apply_label_steps`).
- Every problem with the data is a `DataError` that names the source and what is wrong; it quotes at
  most a few column or array names, each cut short (`some_names`).
- A source is checked against `data.limits` (spec.model.DataLimits) before it is loaded: its unpacked
  size (gzip read in chunks up to the cap, npz members' declared sizes and npy headers, Parquet metadata,
  a CSV's header and line count), its columns and its classes. Small files that unpack to gigabytes fail
  with a clear message instead of exhausting memory.

The known data sets, formats and step names come from `mlspec.vocabulary`.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Any, NamedTuple
from urllib.parse import urlparse

import numpy as np

from mlspec.errors import DataError, MlspecError
from mlspec.ml import splits
from mlspec.ml.columns import (
    Column,
    EmptyColumn,
    category_names,
    gaps,
    no_value_message,
    raw_features,
    resolve_columns,
    table_label,
)
from mlspec.sources import source_kind
from mlspec.sources.columns import partition_values, some_names
from mlspec.spec.model import DataLimits
from mlspec.vocabulary import DATA_FORMATS, DATA_SOURCES, FEATURE_STEPS, LABEL_STEPS, TASKS

log = logging.getLogger(__name__)

_EXTENSIONS = {".npz": "npz", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_CHUNK = 1 << 20
SPLITS = ("train", "val", "test")
# label_datatype: how an endpoint answers the class. "" the class index (npz, builtin:, keras:, regression);
# INT64 the original integer label; BYTES the class name (text labels).
LABEL_DATATYPES = ("", "INT64", "BYTES")
_NO_IDS = np.zeros(0, dtype=np.uint64)


def _size(count: int) -> str:
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= factor:
            return f"{count / factor:.1f} {unit}"
    return f"{count} bytes"


def _too_big(source: str, what: str, limits: DataLimits) -> DataError:
    return DataError(
        f"{source}: {what}, more than data.limits.max_bytes ({_size(limits.max_bytes)}); it was not loaded. "
        "If the data really is that big, raise data.limits.max_bytes in the spec (e.g. max_bytes: 4GB) on a "
        "worker with the memory for it (it raises the cap on the source file too, unless the workers' admin "
        "set MLSPEC_MAX_SOURCE_BYTES, which then has to be raised as well)"
    )


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise DataError(f"model.task {task!r} is not known; use one of {', '.join(TASKS)}")


@dataclass(frozen=True)
class Dataset:
    """A split data set. x arrays are float32 with the samples on axis 0; with `columns` (a table source) the
    x splits are pandas DataFrames of those columns in the normalized raw form of mlspec.ml.columns
    (numbers float64 with NaN gaps, categories str with "" gaps), which len(), [:k] and .shape serve alike.

    classification: y arrays are int64 class indices into `class_names`, or float32 one-hot rows
    once the one_hot label step ran; `label_datatype` says how an endpoint answers the class (LABEL_DATATYPES).
    regression: y arrays are 1-D float32 targets, `class_names` is empty and `label_datatype` "".
    """

    x_train: Any
    y_train: np.ndarray
    x_val: Any
    y_val: np.ndarray
    x_test: Any
    y_test: np.ndarray
    class_names: tuple[str, ...]
    feature_names: tuple[str, ...] = ()
    task: str = "classification"
    columns: tuple[Column, ...] = ()
    label_datatype: str = ""
    # Each split's row ids and content ids (mlspec.ml.splits), aligned with its rows; empty for an npz written
    # before issue 14 (content ids fall back to the row ids where an npz has none).
    ids_train: np.ndarray = field(default_factory=lambda: _NO_IDS)
    ids_val: np.ndarray = field(default_factory=lambda: _NO_IDS)
    ids_test: np.ndarray = field(default_factory=lambda: _NO_IDS)
    content_ids_train: np.ndarray = field(default_factory=lambda: _NO_IDS)
    content_ids_val: np.ndarray = field(default_factory=lambda: _NO_IDS)
    content_ids_test: np.ndarray = field(default_factory=lambda: _NO_IDS)

    def __post_init__(self) -> None:
        _check_task(self.task)
        if self.task == "regression" and self.class_names:
            raise DataError("a regression data set has no class names")
        if self.label_datatype not in LABEL_DATATYPES or (self.label_datatype and self.task == "regression"):
            raise DataError(f"label_datatype {self.label_datatype!r} does not fit a {self.task} data set")

    @property
    def num_classes(self) -> int:
        """Number of classes; 0 for regression."""
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Raw per-sample feature shape (what the model and the endpoint take); a table's: its column count."""
        if self.columns:
            return (len(self.columns),)
        return tuple(int(d) for d in self.x_train.shape[1:])

    def to_npz_bytes(self) -> bytes:
        """Serialise to one npz (no pickles), so a later task can read it from a store.

        Array features that are all whole numbers 0..255 (pixels: digits, mnist, cifar10) are stored as
        uint8, a quarter of the size; `from_npz_bytes` gives back the same float32 values. A table's splits
        are stored column by column, uncompressed (`x_<split>.<i>`: float64; a category as codes into its
        distinct values as numpy unicode), with the columns as JSON text. Labels keep their dtype (int64
        classes, float32 one-hot rows or regression targets).
        """
        xs = {f"x_{split}": getattr(self, f"x_{split}") for split in SPLITS}
        if self.columns:
            features = {key: array for name, x in xs.items() for key, array in _column_arrays(name, x, self.columns)}
            features["columns"] = np.array(json.dumps([c.to_json() for c in self.columns]), dtype=np.str_)
        else:
            as_bytes = all(_fits_uint8(x) for x in xs.values())
            features = {k: x.astype(np.uint8) if as_bytes else x for k, x in xs.items()}
        return _npz(
            {
                **features,
                "y_train": self.y_train,
                "y_val": self.y_val,
                "y_test": self.y_test,
                "class_names": np.array(self.class_names, dtype=np.str_),
                "feature_names": np.array(self.feature_names, dtype=np.str_),
                "task": np.array(self.task, dtype=np.str_),
                "label_datatype": np.array(self.label_datatype, dtype=np.str_),
                **{f"ids_{split}": np.asarray(getattr(self, f"ids_{split}"), dtype=np.uint64) for split in SPLITS},
                **self._content_id_arrays(),
            },
            compress=not self.columns,
        )

    @classmethod
    def from_npz_bytes(cls, data: bytes) -> Dataset:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
        except Exception as exc:  # noqa: BLE001 - any decode failure means the same thing to a user
            raise DataError(f"prepared data set is not a readable npz file: {exc}") from exc
        # Files written before tables (issue 13) have no "columns" and "label_datatype", before regression no
        # "task": they are array (and classification) data; before issue 14 no row ids ("ids_<split>"). Content
        # ids ("content_ids_<split>") are stored only where they differ from the row ids.
        columns = tuple(Column.from_json(c) for c in json.loads(str(arrays["columns"]))) if "columns" in arrays else ()
        xs = [] if columns else [f"x_{split}" for split in SPLITS]
        missing = [k for k in [*xs, *(f"y_{s}" for s in SPLITS), "class_names", "feature_names"] if k not in arrays]
        if missing:
            raise DataError(f"prepared data set lacks {', '.join(missing)}; re-run the prepare_data task")
        try:
            features = {
                f"x_{split}": _column_frame(arrays, f"x_{split}", columns)
                if columns
                else arrays[f"x_{split}"].astype(np.float32)
                for split in SPLITS
            }
        except KeyError as exc:
            raise DataError(f"prepared data set lacks the array {exc}; re-run the prepare_data task") from exc
        return cls(
            **features,
            **{f"y_{split}": arrays[f"y_{split}"] for split in SPLITS},
            class_names=tuple(str(c) for c in arrays["class_names"].tolist()),
            feature_names=tuple(str(c) for c in arrays["feature_names"].tolist()),
            task=str(arrays["task"]) if "task" in arrays else "classification",
            columns=columns,
            label_datatype=str(arrays["label_datatype"]) if "label_datatype" in arrays else "",
            **{f"ids_{split}": arrays.get(f"ids_{split}", _NO_IDS) for split in SPLITS},
            **{f"content_ids_{split}": arrays.get(f"content_ids_{split}", arrays.get(f"ids_{split}", _NO_IDS))
               for split in SPLITS},
        )

    def _content_id_arrays(self) -> dict[str, np.ndarray]:
        """`content_ids_<split>` for the npz, only where they are not the row ids (data.split.key set): random
        64-bit numbers do not compress, and without a key they would double the ids' size for nothing."""
        arrays = {f"content_ids_{split}": np.asarray(getattr(self, f"content_ids_{split}"), dtype=np.uint64)
                  for split in SPLITS}  # fmt: skip
        same = all(np.array_equal(arrays[f"content_ids_{split}"], getattr(self, f"ids_{split}")) for split in SPLITS)
        return {} if same else arrays


def _npz(arrays: Mapping[str, np.ndarray], *, compress: bool) -> bytes:
    """An npz file (np.load reads it; no pickles), deflated at level 1 (numpy's savez_compressed uses 6: 4x the
    time for 8 % less) or, for a table's columns, stored: floats and category codes shrink by a third at best,
    and deflating a million rows took longer than reading and checking them."""
    import zipfile

    from numpy.lib import format as npy

    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", method, compresslevel=1 if compress else None) as archive:
        for key, array in arrays.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                npy.write_array(member, np.asanyarray(array), allow_pickle=False)
    return buf.getvalue()


def _column_arrays(name: str, frame: Any, columns: Sequence[Column]) -> list[tuple[str, np.ndarray]]:
    """A table split's npz arrays: `<name>.<i>` float64 per number column, `<name>.<i>.codes` (the smallest unsigned int) and
    `<name>.<i>.values` (numpy unicode) per category column, so repeated text is stored once."""
    import pandas as pd

    arrays = []
    for index, column in enumerate(columns):
        values = frame.iloc[:, index].to_numpy()
        if column.type == "category":
            codes, distinct = pd.factorize(values)  # no gaps to code as -1: a gap is the text ""
            arrays += [
                (f"{name}.{index}.codes", codes.astype(np.min_scalar_type(max(len(distinct) - 1, 0)))),
                (f"{name}.{index}.values", np.array(distinct, dtype=np.str_)),
            ]
        else:
            arrays.append((f"{name}.{index}", values.astype(np.float64)))
    return arrays


def _column_frame(arrays: Mapping[str, np.ndarray], name: str, columns: Sequence[Column]) -> Any:
    """The DataFrame `_column_arrays` stored: float64 numbers, categories as Python str (object dtype)."""
    import pandas as pd

    data = {}
    for index, column in enumerate(columns):
        if column.type == "category":
            distinct = arrays[f"{name}.{index}.values"].astype(object)  # numpy unicode -> Python str
            data[column.name] = pd.Series(distinct[arrays[f"{name}.{index}.codes"]], dtype=object)
        else:
            data[column.name] = pd.Series(arrays[f"{name}.{index}"], dtype=np.float64)
    return pd.DataFrame(data)


def _fits_uint8(x: np.ndarray) -> bool:
    if x.size == 0:
        return True
    return bool(x.min() >= 0 and x.max() <= 255 and np.array_equal(x, np.round(x)))


# --------------------------------------------------------------------------- loading


class Loaded(NamedTuple):
    """What `load_source` read: `split(*loaded.splittable, ...)` splits it."""

    x: Any  # float32 array (samples on axis 0), or a table's normalized raw DataFrame (mlspec.ml.columns)
    y: np.ndarray
    class_names: tuple[str, ...]
    feature_names: tuple[str, ...]
    columns: tuple[Column, ...] = ()  # a table's feature columns; () for npz, builtin: and keras: data
    label_datatype: str = ""  # LABEL_DATATYPES
    row_ids: np.ndarray | None = None  # each row's id (mlspec.ml.splits), aligned with x
    content_ids: np.ndarray | None = None  # each row's content id (mlspec.ml.splits), aligned with x
    rows_read: int = 0  # the source's rows, before any was dropped
    dropped: Mapping[str, int] = MappingProxyType({})  # why rows were dropped -> how many (raw_features)

    @property
    def splittable(self) -> tuple:
        """`split`'s positional arguments: (x, y, class_names, feature_names, columns, label_datatype, row_ids,
        content_ids)."""
        return tuple(self[:8])


def load_source(
    source: str,
    *,
    fmt: str | None,
    features: Any,
    label: str | None,
    read_bytes: Callable[[str], bytes],
    task: str = "classification",
    limits: DataLimits | None = None,
    read_table: Callable[[str], Any] | None = None,
    list_files: Callable[[str], list[tuple[str, str]]] | None = None,
    exclude: Sequence[str] | None = None,
    key: Sequence[str] | None = None,
) -> Loaded:
    """Load `(x, y, class_names, feature_names, columns, label_datatype, row_ids, content_ids, rows_read, dropped)` from a
    spec's data source for a `model.task`.

    A data set by name (builtin:*, keras:*; mlspec.sources) ignores fmt/features/label/exclude (its layout is
    fixed) and must be a data set for `task`. A table kind (sql://) is read through `read_table(source)`, a
    pandas DataFrame. Any other source is read through `read_bytes(source)` and parsed as npz, csv or parquet.
    `list_files(source)` names the files of a folder, glob or prefix (mlspec.sources' list_files): their tables
    are read in name order into one (`_read_files`). A table's feature columns are data.features (a name, names,
    or names with types; mlspec.ml.columns) or, with features None, every column but the label and `exclude`;
    x is their normalized raw DataFrame. The label becomes class indices (classification) or a float32 target
    (regression, with `class_names == ()`). `limits` (default: the schema's) bound what a file may grow to.

    Each kept row gets its row id (mlspec.ml.splits): a table's from the source's `key` columns (data.split.key:
    any columns of the source, features or not) or, without a key, from its feature and label columns; an array
    data set's from its features and label (a key is a DataError: arrays have no named columns). Its content
    id is the id of its feature and label columns: its row id unless `key` names other columns.
    """
    _check_task(task)
    limits = limits or DataLimits()
    kind = source_kind(source)
    columns: tuple[Column, ...] = ()
    ids = contents = None
    dropped: Mapping[str, int] = {}
    if kind is not None and kind.load_dataset is not None:  # a data set by name (builtin:, keras:)
        known = DATA_SOURCES.get(source)
        if known is None:
            raise DataError(
                f"data.source {source!r} is not a known data set; known ones: {', '.join(DATA_SOURCES)}"
            )
        if known.task != task:
            raise DataError(
                f"{source} is a {known.task} data set but model.task is {task}; "
                f"set model.task: {known.task}, or pick a {task} data set"
            )
        x, y, class_names, feature_names = kind.load_dataset(source)
    else:
        frame = None
        if kind is not None and kind.read_table is not None:  # a table a query returns (sql://)
            if read_table is None:
                raise DataError(f"data.source {source!r} is a table source; this caller cannot read one")
            frame = read_table(source)
            _check_frame_size(source, frame, limits)
        else:
            files = list_files(source) if list_files is not None else [(source, source)]
            if [uri for uri, _name in files] != [source]:
                frame = _read_files(source, files, fmt, limits, read_bytes, category_names(features))
            elif (fmt or infer_format(source)) == "npz":
                if exclude:
                    raise DataError(f"{source}: data.exclude names table columns; npz data has arrays")
                raw = _read_bytes(source, read_bytes)
                x, labels, feature_names, label_name = _parse_npz(source, raw, features, label, task, limits)
            else:
                text = category_names(features)
                frame = _read_table_file(source, fmt or infer_format(source), limits, read_bytes, text)
        if frame is not None:
            frame.columns = [str(c) for c in frame.columns]
            label_name = table_label(source, list(frame.columns), label)
            columns = resolve_columns(source, frame, features, label_name, exclude)
            rows_read = len(frame)
            # The feature and label columns in name order (what row_ids(..., None) hashes), without copying them.
            contents = splits.row_ids(frame, sorted([column.name for column in columns] + [label_name]))
            ids = contents if key is None else splits.row_ids(frame, key)
            x, labels, kept, dropped = raw_features(source, frame, columns, label_name)
            ids, contents = ids[kept], contents[kept]
            del frame
            labels = _numbers_as_numbers(labels)
            feature_names = tuple(column.name for column in columns)
        if task == "regression":
            y, class_names = regression_target(source, labels, label_name), ()
        else:
            y, class_names = encode_labels(source, labels, max_classes=limits.max_classes)
    _check_loaded(source, x, y)
    if ids is None:  # array data: its features and the label's text (the class name: stable as classes change)
        if key is not None:
            raise DataError(
                f"data.split.key names columns, but {source} is array data without named columns; remove "
                "data.split.key (a sample's id is its features and label)"
            )
        rows_read = len(x)
        ids = contents = _array_row_ids(x, y, class_names)
    label_datatype = _label_datatype(labels) if columns and task == "classification" else ""
    log.info(
        "loaded %s: %d samples, %s, %s",
        source,
        len(x),
        f"{len(columns)} columns" if columns else f"feature shape {tuple(x.shape[1:])}",
        f"{len(class_names)} classes" if task == "classification" else "regression target",
    )
    return Loaded(x, y, class_names, feature_names, columns, label_datatype, ids, contents, rows_read, dropped)


def _numbers_as_numbers(labels: np.ndarray) -> np.ndarray:
    """A label column a database returned as Python numbers (object dtype: Decimal, int) as a numeric array,
    so integer classes sort as numbers and a regression target is numeric; anything else as it is. Booleans
    left in an object array (a column that had gaps before its unlabeled rows were dropped, a database's
    nullable boolean) become a bool array, so they give the classes 0/1 and INT64 as a column without gaps."""
    import pandas as pd

    if labels.dtype != object:
        return labels
    kind = pd.api.types.infer_dtype(labels, skipna=True)
    if kind == "boolean":
        return labels.astype(bool)
    if kind in ("integer", "floating", "decimal", "mixed-integer-float"):
        return pd.to_numeric(pd.Series(labels)).to_numpy()
    return labels


def _label_datatype(labels: np.ndarray) -> str:
    """How a table classifier's endpoint answers the class: INT64 for numeric (or true/false) labels, which
    encode_labels accepted as whole numbers; BYTES, the class name, for text."""
    return "INT64" if labels.dtype.kind in "biuf" else "BYTES"


def _read_table_file(
    source: str, fmt: str, limits: DataLimits, read_bytes: Callable[[str], bytes], text: Sequence[str] = ()
) -> Any:
    """The DataFrame of a single CSV or Parquet file source; the `text` columns as written (read_frame)."""
    if fmt not in ("csv", "parquet"):
        raise DataError(
            f"data.format {fmt!r} for {source!r} is not supported; use one of {', '.join(DATA_FORMATS)}"
        )
    return read_frame(source, _read_bytes(source, read_bytes), fmt, limits, text)


def _read_files(
    source: str,
    files: list[tuple[str, str]],
    fmt: str | None,
    limits: DataLimits,
    read_bytes: Callable[[str], bytes],
    text: Sequence[str] = (),
) -> Any:
    """One table of a folder's, glob's or prefix's files (`(uri, name below the folder)`, in name order): each
    file's `key=value` folders become columns (numbers where every value is one, unless it is one of the `text`
    columns), and every file must have the first one's columns. Together they must fit data.limits (bytes read,
    cells) as one file would."""
    import pandas as pd

    frames, read, rows, first, columns = [], 0, 0, "", None
    for uri, name in files:
        file_format = fmt or infer_format(uri)
        if file_format == "npz":
            raise DataError(f"{source}: {name} is an npz file; a folder, glob or prefix reads csv or parquet files")
        raw = _read_bytes(uri, read_bytes)
        read += len(raw)
        if read > limits.max_bytes:
            raise _too_big(source, f"its files up to {name} are {_size(read)} together", limits)
        frame = read_frame(uri, raw, file_format, limits, text)
        del raw
        frame.columns = [str(c) for c in frame.columns]
        for key, value in partition_values(name).items():
            if key in frame.columns:
                raise DataError(f"{source}: {name} has a column {key!r} and a folder {key}=...; rename one of them")
            frame[key] = value
        if columns is None:
            first, columns = name, list(frame.columns)
        elif set(frame.columns) != set(columns):
            extra = [c for c in frame.columns if c not in columns]
            lacking = [c for c in columns if c not in frame.columns]
            differences = [f"has {some_names(extra)}, which {first} has not"] if extra else []
            differences += [f"lacks {some_names(lacking)}, which {first} has"] if lacking else []
            raise DataError(
                f"{source}: the files' columns differ: {name} {'; '.join(differences)}. Every file of a folder, glob "
                "or prefix must have the same columns"
            )
        rows += len(frame)
        _check_cells(source, rows, len(columns), limits)
        frames.append(frame[columns])
    table = pd.concat(frames, ignore_index=True)
    for key in partition_values(files[0][1]):
        if key in text:
            continue
        numbers = pd.to_numeric(table[key], errors="coerce")
        if numbers.notna().sum() == table[key].notna().sum():
            table[key] = numbers
    log.info("read %d files of %s: %d rows", len(files), source, len(table))
    return table


def _read_bytes(uri: str, read_bytes: Callable[[str], bytes]) -> bytes:
    """A file's bytes, not empty; a reader's own exceptions become one clear line."""
    try:
        raw = read_bytes(uri)
    except MlspecError:
        raise
    except Exception as exc:  # noqa: BLE001 - a reader's own errors become one clear line
        raise DataError(f"could not read data.source {uri!r}: {exc}") from exc
    if not raw:
        raise DataError(f"data.source {uri!r} is empty (0 bytes)")
    return raw


def infer_format(source: str) -> str:
    """npz | csv | parquet from the source's file extension (a trailing .gz is allowed for csv)."""
    name = PurePosixPath(urlparse(source).path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    suffix = PurePosixPath(name).suffix
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    raise DataError(
        f"cannot tell the format of data.source {source!r} from its extension {suffix or '(none)'!r}; "
        f"set data.format to one of {', '.join(DATA_FORMATS)}"
    )


def _npz_cost(source: str, raw: bytes, keys: Sequence[str], limits: DataLimits) -> None:
    """Refuse an npz whose arrays `keys` would take more than max_bytes once loaded (features as float32
    too), from each member's declared size and npy header, before any array is read."""
    import zipfile

    from numpy.lib import format as npy

    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DataError(f"{source}: not a readable npz file ({exc}); save it with numpy.savez") from exc
    total, parts = 0, []
    with archive:
        for index, key in enumerate(keys):
            try:
                info = archive.getinfo(f"{key}.npy")
            except KeyError:
                continue  # np.load reports a missing array with the list of the others
            if info.file_size > limits.max_bytes:
                raise _too_big(source, f"array {some_names([key])} unpacks to {_size(info.file_size)}", limits)
            try:
                with archive.open(info) as member:
                    version = npy.read_magic(member)
                    read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
                    shape, _fortran, dtype = read(member)
            except Exception as exc:  # noqa: BLE001 - a broken member or header: not an npz we can read
                raise DataError(f"{source}: array {some_names([key])} is not a readable .npy ({exc})") from exc
            values = 1
            for dim in shape:
                values *= int(dim)
            cost = values * dtype.itemsize + (values * 4 if index == 0 and dtype != np.float32 else 0)
            total += max(cost, info.file_size)
            parts.append(f"{some_names([key])} {tuple(int(d) for d in shape)} {dtype}")
    if total > limits.max_bytes:
        raise _too_big(source, f"arrays {'; '.join(parts)} take about {_size(total)} once loaded", limits)


def _parse_npz(
    source: str,
    raw: bytes,
    features: Any,
    label: str | None,
    task: str,
    limits: DataLimits | None = None,
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], str]:
    if isinstance(features, Mapping):
        raise DataError(f"{source}: npz data has arrays, not typed columns; data.features is one array key")
    if isinstance(features, Sequence) and not isinstance(features, str):
        if len(features) != 1:
            raise DataError(f"{source}: for npz data, data.features is one array key, got {list(features)}")
        features = features[0]
    x_key = features or "x"
    y_key = label or "y"
    _npz_cost(source, raw, [x_key, y_key], limits or DataLimits())
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            keys = list(npz.files)
            for role, key in (("features", x_key), ("label", y_key)):
                if key not in keys:
                    raise DataError(
                        f"{source}: npz has no array {some_names([key])!r} (data.{role}); available arrays: "
                        f"{some_names(keys)}"
                    )
            x_raw, y_raw = npz[x_key], npz[y_key]
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - zip/pickle errors mean "not an npz we can read"
        raise DataError(f"{source}: not a readable npz file ({exc}); save it with numpy.savez") from exc
    if x_raw.ndim < 2:
        raise DataError(
            f"{source}: features array {x_key!r} has shape {x_raw.shape}; it needs samples on axis 0 and "
            "at least one feature axis, e.g. (n_samples, n_features)"
        )
    x = _as_float32(source, x_raw, f"features array {x_key!r}")
    labels = y_raw
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels.ravel()
    if labels.ndim != 1:
        what = (
            "one target value per sample"
            if task == "regression"
            else "one class label per sample (use the one_hot preprocess step instead of storing one-hot "
            "labels)"
        )
        raise DataError(f"{source}: label array {y_key!r} has shape {y_raw.shape}; it must hold {what}")
    return x, labels, (), y_key


def _gunzip(source: str, raw: bytes, limits: DataLimits) -> bytearray:
    """The unpacked bytes of a .csv.gz source, read in chunks: refused as soon as they pass max_bytes, the
    header has more than max_columns columns, or the lines so far make more cells than max_bytes holds."""
    import gzip
    import zlib

    out = bytearray()
    columns, rows = 0, 0
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            while chunk := stream.read(min(_CHUNK, limits.max_bytes + 1 - len(out))):
                out += chunk
                if len(out) > limits.max_bytes:
                    raise _too_big(source, f"the {_size(len(raw))} gzip file unpacks to more than that", limits)
                rows += chunk.count(b"\n")
                if not columns and rows:
                    columns = _header_columns(source, out[: out.find(b"\n")], limits)
                if columns:
                    _check_cells(source, rows - 1, columns, limits)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{source}: not a readable gzip file ({exc})") from exc
    return out


def _check_columns(source: str, count: int, limits: DataLimits) -> None:
    if count > limits.max_columns:
        raise DataError(
            f"{source}: the table has {count:,} columns, more than data.limits.max_columns ({limits.max_columns:,}); "
            "it was not parsed. Select fewer columns before training, or raise data.limits.max_columns"
        )


def _check_cells(source: str, rows: int, columns: int, limits: DataLimits) -> None:
    cost = rows * columns * 8
    if cost > limits.max_bytes:
        raise _too_big(
            source, f"{rows:,} rows x {columns:,} columns take about {_size(cost)} as 8-byte numbers", limits
        )


def _header_columns(source: str, header: bytes | bytearray, limits: DataLimits) -> int:
    """The number of columns of a CSV header line, refused over max_columns."""
    import csv

    count = header.count(b",") + 1  # an upper bound (a quoted comma counts too): exact only when needed
    if count > limits.max_columns:
        count = len(next(csv.reader([bytes(header).decode("utf-8", "replace")]), []))
    _check_columns(source, count, limits)
    return count


def _csv_shape(source: str, data: bytes | bytearray, limits: DataLimits) -> None:
    """Columns from the header line and rows from the line count, checked before pandas parses anything."""
    end = data.find(b"\n")
    count = _header_columns(source, data if end < 0 else data[:end], limits)
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    _check_cells(source, max(lines - 1, 0), count, limits)  # rows below the header


def _read_parquet(source: str, raw: bytes, limits: DataLimits):
    """A DataFrame from Parquet bytes once its metadata (columns, rows, row groups' unpacked sizes) fits the
    limits; text columns stay dictionary-encoded (pandas categoricals) so repeated strings cost no more."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(io.BytesIO(raw)).metadata
    _check_columns(source, metadata.num_columns, limits)
    unpacked = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    if unpacked > limits.max_bytes:
        raise _too_big(source, f"its row groups unpack to {_size(unpacked)}", limits)
    _check_cells(source, metadata.num_rows, metadata.num_columns, limits)
    schema = pq.ParquetFile(io.BytesIO(raw)).schema_arrow
    text = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
            or pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]  # fmt: skip
    return pq.ParquetFile(io.BytesIO(raw), read_dictionary=text).read().to_pandas()


def read_frame(source: str, raw: bytes, fmt: str, limits: DataLimits, text: Sequence[str] = ()) -> Any:
    """The DataFrame of one CSV (.csv.gz too) or Parquet file's bytes, once its shape fits the limits. A CSV's
    `text` columns (declared categories) are read as written, not parsed as numbers or booleans first."""
    import pandas as pd

    try:
        if fmt == "csv":
            data = _gunzip(source, raw, limits) if urlparse(source).path.endswith(".gz") else raw
            if len(data) > limits.max_bytes:
                raise _too_big(source, f"the file is {_size(len(data))}", limits)
            _csv_shape(source, data, limits)
            frame = pd.read_csv(io.BytesIO(data), dtype=dict.fromkeys(text, str))
            del data
        else:
            frame = _read_parquet(source, raw, limits)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - parser errors become one clear line
        raise DataError(f"{source}: not a readable {fmt} file ({exc})") from exc
    return frame


def _check_frame_size(source: str, frame: Any, limits: DataLimits) -> None:
    """A table read whole (a query's result) against data.limits: its columns, and its cells as numbers."""
    _check_columns(source, len(frame.columns), limits)
    _check_cells(source, len(frame), len(frame.columns), limits)


def _as_float32(source: str, arr: np.ndarray, what: str) -> np.ndarray:
    try:
        return np.asarray(arr, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{source}: {what} is not numeric (dtype {arr.dtype})") from exc


def encode_labels(
    source: str, labels: np.ndarray, *, max_classes: int = DataLimits.max_classes
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Map class labels to class indices 0..K-1 over their sorted unique values.

    Integer labels 0..K-1 keep their value; other integer sets (e.g. 1..3) map to their rank so
    that `class_names[index]` is always the original label. Floats that are whole numbers count
    as integers (pandas reads integer columns with gaps as floats). More than `max_classes` distinct
    labels is a DataError (data.limits.max_classes): the confusion matrix has that many squared cells.
    """
    labels = np.asarray(labels)
    if labels.size == 0:
        raise DataError(f"{source}: no labels")
    if labels.dtype.kind == "b":
        labels = labels.astype(np.int64)
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)):
            raise DataError(f"{source}: labels contain NaN or infinite values")
        if not np.all(labels == np.round(labels)):
            raise DataError(
                f"{source}: labels are fractional numbers but model.task is classification, which needs "
                "class labels; for a numeric target set model.task: regression"
            )
        labels = labels.astype(np.int64)
    if labels.dtype.kind in "iu":
        values, index = np.unique(labels, return_inverse=True)
        _check_classes(source, values, max_classes)
        return index.astype(np.int64).ravel(), tuple(str(int(v)) for v in values)
    values, index = np.unique(labels.astype(str), return_inverse=True)
    _check_classes(source, values, max_classes)
    return index.astype(np.int64).ravel(), tuple(str(v) for v in values)


def _check_classes(source: str, values: np.ndarray, max_classes: int) -> None:
    if len(values) > max_classes:
        raise DataError(
            f"{source}: the label has {len(values):,} distinct values ({some_names(values.tolist())}), more than "
            f"data.limits.max_classes ({max_classes:,}). For a numeric target set model.task: regression; for "
            "really that many classes raise data.limits.max_classes"
        )


def regression_target(source: str, labels: np.ndarray, column: str) -> np.ndarray:
    """The label column/array `column` as a 1-D float32 target; DataError unless every value is a
    finite number."""
    labels = np.asarray(labels)
    if labels.size == 0:
        raise DataError(f"{source}: no target values in {column!r}")
    if labels.dtype.kind not in "iuf":
        raise DataError(
            f"{source}: the regression target {column!r} is not numeric (dtype {labels.dtype}); "
            "model.task regression needs a number per sample "
            "(for class labels set model.task: classification)"
        )
    target = labels.astype(np.float32).ravel()
    bad = int(np.count_nonzero(~np.isfinite(target)))
    if bad:
        raise DataError(
            f"{source}: the regression target {column!r} has {bad} NaN or infinite "
            f"value{'s' if bad > 1 else ''} (or values too large for float32); fill or drop those rows"
        )
    return target


def _check_loaded(source: str, x: Any, y: np.ndarray) -> None:
    """Samples and labels match; array features are finite. A table's gaps were checked column by column
    (mlspec.ml.columns.raw_features): NaN is left only where the column's missing strategy fills it."""
    if len(x) == 0:
        raise DataError(f"{source}: the data set has no samples")
    if len(x) != len(y):
        raise DataError(f"{source}: {len(x)} feature rows but {len(y)} labels")
    if isinstance(x, np.ndarray) and not np.all(np.isfinite(x)):
        raise DataError(f"{source}: features contain NaN or infinite values")


# --------------------------------------------------------------------------- splitting


def split(
    x: Any,
    y: np.ndarray,
    class_names: Sequence[str],
    feature_names: Sequence[str] = (),
    columns: Sequence[Column] = (),
    label_datatype: str = "",
    row_ids: np.ndarray | None = None,
    content_ids: np.ndarray | None = None,
    *,
    validation: float,
    test: float,
    seed: int,
    stratify: bool,
    task: str = "classification",
    method: str = "hash",
    holdout: Loaded | None = None,
) -> Dataset:
    """Split into train/validation/test; `validation` and `test` are shares of the whole set. The
    positional arguments are what `load_source` read: `split(*loaded.splittable, validation=..., ...)`.

    method "hash" (data.split.method's default): a row's split follows from its row id alone
    (mlspec.ml.splits.hash_assign), so a row keeps its split as the table grows; `seed` and `stratify` do not
    apply. A split with a share that the hash leaves empty (a tiny table) is a DataError. method "random": a
    seeded shuffle, the same for a seed; `stratify` keeps class shares per split for classification (never for
    regression targets: the flag is ignored with a log line).

    `holdout` (evaluation.holdout, as load_source read it) is the test split: the rows are split between train
    and validation only, and a row whose id is also in the holdout is dropped.

    `row_ids` and `content_ids` are load_source's. An array data set's may be left out (a caller that built its
    own arrays): they are computed as load_source does. A table's row ids come only from load_source (they hash
    the source's raw cells, which x no longer holds). Content ids default to the row ids (as they are without
    data.split.key).

    x is an array or a table's DataFrame (its splits get a fresh 0..n-1 index). A share of 0 gives an
    empty split with the right feature shape. Each split's row ids and content ids are kept beside it
    (Dataset.ids_*, Dataset.content_ids_*).
    """
    _check_task(task)
    if method not in splits.SPLIT_METHODS:
        raise DataError(f"data.split.method {method!r} is not known; use one of {', '.join(splits.SPLIT_METHODS)}")
    for name, share in (("validation", validation), ("test", test)):
        if not 0.0 <= share < 1.0:
            raise DataError(f"data.split.{name} must be in [0, 1), got {share}")
    if validation + test >= 1.0:
        raise DataError(
            f"data.split.validation + data.split.test is {validation + test:g}; it must be below 1 "
            "to leave training data"
        )
    if row_ids is None:
        if hasattr(x, "iloc"):
            raise ValueError("a table's row ids come from load_source: pass its row_ids (split(*loaded.splittable))")
        row_ids = _array_row_ids(x, y, class_names)
    ids = np.asarray(row_ids, dtype=np.uint64)
    contents = ids if content_ids is None else np.asarray(content_ids, dtype=np.uint64)
    test_x = test_y = test_ids = test_contents = None
    if holdout is not None:
        test_x, test_y, test_ids, test_contents = _holdout_rows(holdout, x, class_names, columns, task)
        rows = np.flatnonzero(~np.isin(ids, test_ids))
        if len(rows) < len(ids):
            log.info("dropped %d rows that are in the holdout (evaluation.holdout)", len(ids) - len(rows))
        test = 0.0  # the holdout is the test split; validation stays a share of the source's rows
    else:
        rows = np.arange(len(y))
    if method == "hash":
        train_rows, val_rows, test_rows = _hash_rows(ids, rows, validation, test)
    else:
        train_rows, val_rows, test_rows = _random_rows(y, rows, validation, test, seed, stratify, task)

    def take(data: Any, rows: np.ndarray | None) -> Any:
        """The rows of an array or a table (a fresh 0..n-1 index), in that order; all of them uncopied."""
        if rows is None:
            return data
        if hasattr(data, "iloc"):
            return data.iloc[rows].reset_index(drop=True)
        return data[rows]

    every = len(rows) == len(y) and not len(val_rows) and not len(test_rows)
    parts = (None if every else train_rows, val_rows, test_rows)
    x_train, x_val, x_test = (take(x, part) for part in parts)
    y_train, y_val, y_test = (take(y, part) for part in parts)
    ids_train, ids_val, ids_test = (take(ids, part) for part in parts)
    contents_train, contents_val, contents_test = (take(contents, part) for part in parts)
    if holdout is not None:
        x_test, y_test, ids_test, contents_test = test_x, test_y, test_ids, test_contents
    if len(x_train) == 0:
        raise DataError(
            "the split leaves no training samples; lower data.split.validation or data.split.test"
        )
    if task == "regression":  # r2 (and a variance) of one row is not a number: evaluate would score NaN
        for name, part in (("validation split", y_val), ("holdout" if holdout is not None else "test split", y_test)):
            if len(part) == 1:
                fix = "add rows to evaluation.holdout.source" if name == "holdout" else (
                    f"add rows, or raise its share in data.split (of {len(y):,} rows)")
                raise DataError(
                    f"the {name} has 1 row: a regression cannot be scored on one row (r2 is not defined); {fix}"
                )
    for column in columns:  # a fill learned from no value would be made up
        if gaps(x_train[column.name]).all():
            raise EmptyColumn(no_value_message("the split", column.name, f"the {len(x_train):,} training rows"))
    how = f"seed {seed}" if method == "random" else "by row id"
    log.info("split (%s): %d train, %d validation, %d test%s", how, len(x_train), len(x_val), len(x_test),
             " (the holdout)" if holdout is not None else "")  # fmt: skip
    return Dataset(
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        class_names=tuple(class_names),
        feature_names=tuple(feature_names),
        task=task,
        columns=tuple(columns),
        label_datatype=label_datatype,
        ids_train=ids_train,
        ids_val=ids_val,
        ids_test=ids_test,
        content_ids_train=contents_train,
        content_ids_val=contents_val,
        content_ids_test=contents_test,
    )


def _array_row_ids(x: np.ndarray, y: np.ndarray, class_names: Sequence[str]) -> np.ndarray:
    """An array data set's row ids: its features and the label's text, the class NAME for classification (stable
    as classes are added)."""
    return splits.array_row_ids(x, np.asarray(class_names, dtype=object)[y] if len(class_names) else y)


def _hash_rows(
    ids: np.ndarray, rows: np.ndarray, validation: float, test: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows (of `rows`) in train, validation and test by their ids; a split with a share that gets no row
    is a DataError."""
    codes = splits.hash_assign(ids[rows], validation=validation, test=test)
    parts = tuple(rows[codes == code] for code in range(len(splits.SPLIT_NAMES)))
    for name, share, part in zip(splits.SPLIT_NAMES[1:], (validation, test), parts[1:], strict=True):
        if share > 0 and not len(part):
            raise DataError(
                f"data.split.method hash put none of the {len(rows):,} rows in the {name} split "
                f"(data.split.{name}: {share:g}): each row's split follows from its row id, and a small table can "
                "miss a share; use data.split.method: random or add rows"
            )
    return parts


def _random_rows(
    y: np.ndarray, rows: np.ndarray, validation: float, test: float, seed: int, stratify: bool, task: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows (of `rows`) in train, validation and test by a seeded shuffle (scikit-learn's train_test_split):
    today's split for a seed, stratified on request."""
    from sklearn.model_selection import train_test_split

    if stratify and task == "regression":
        log.info("data.split.stratify applies to classification only; splitting regression data at random")
        stratify = False

    def cut(rows: np.ndarray, share: float, what: str) -> tuple[np.ndarray, np.ndarray]:
        """(rest, cut off) row numbers of `rows`."""
        if share == 0.0:
            return rows, np.arange(0)
        try:
            rest, part = train_test_split(
                rows, test_size=share, random_state=seed, stratify=y[rows] if stratify else None, shuffle=True
            )
        except ValueError as exc:
            hint = " (set data.split.stratify: false, or add samples)" if stratify else ""
            raise DataError(
                f"cannot split off the {what} set ({share:g} of {len(rows)} samples): {exc}{hint}"
            ) from exc
        return rest, part

    # Row numbers are split, not the data: each split's rows are copied once, in the order the cut gives them.
    rest, test_rows = cut(rows, test, "test")
    # The validation share is of the whole set, so rescale it to what remains after the test cut.
    train_rows, val_rows = cut(rest, validation / (1.0 - test) if validation else 0.0, "validation")
    return train_rows, val_rows, test_rows


def _holdout_rows(
    holdout: Loaded, source_x: Any, class_names: Sequence[str], columns: Sequence[Column], task: str
) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    """The holdout's (x, y, row ids, content ids) as load_source read it, its classes as indices into the
    training data's `class_names`. Its columns (or an array's sample shape) must be the training data's, its
    classes among the training data's."""
    x, y = holdout.x, holdout.y
    if columns:
        theirs = {column.name: column.type for column in holdout.columns}
        differ = [c.name for c in columns if theirs.get(c.name) != c.type]
        if differ or len(theirs) != len(columns):
            raise DataError(
                f"evaluation.holdout's columns differ from the training data's ({some_names(differ or list(theirs))}); "
                "it must hold the same feature columns with the same types (declare their types in data.features)"
            )
    elif hasattr(x, "iloc") or tuple(x.shape[1:]) != tuple(source_x.shape[1:]):
        raise DataError(
            f"evaluation.holdout's samples have the shape {tuple(x.shape[1:])}, the training data's "
            f"{tuple(source_x.shape[1:])}; it must be the same kind of data"
        )
    if task == "classification":
        index = {name: position for position, name in enumerate(class_names)}
        unknown = [name for name in holdout.class_names if name not in index]
        if unknown:
            raise DataError(
                f"evaluation.holdout has classes the training data has not ({some_names(unknown)}); a model "
                "cannot answer a class it never saw"
            )
        y = np.array([index[name] for name in holdout.class_names], dtype=np.int64)[y]
    ids = np.asarray(holdout.row_ids, dtype=np.uint64)
    contents = ids if holdout.content_ids is None else np.asarray(holdout.content_ids, dtype=np.uint64)
    return x, y, ids, contents


# --------------------------------------------------------------------------- preprocess steps


def parse_steps(steps: Sequence[Mapping[str, Any]] | None) -> list[tuple[str, Any]]:
    """Validate `data.preprocess` into `(name, params)` pairs; DataError on unknown or malformed steps."""
    parsed: list[tuple[str, Any]] = []
    for index, step in enumerate(steps or ()):
        where = f"data.preprocess[{index}]"
        if not isinstance(step, Mapping) or len(step) != 1:
            raise DataError(
                f"{where}: each step is a mapping with exactly one key, e.g. {{scale: {{divide_by: 255}}}}"
            )
        ((name, params),) = step.items()
        if name not in FEATURE_STEPS + LABEL_STEPS:
            raise DataError(
                f"{where}: unknown preprocess step {name!r}; "
                f"known steps: {', '.join(FEATURE_STEPS + LABEL_STEPS)}"
            )
        parsed.append((name, _check_step_params(where, name, params)))
    return parsed


def _check_step_params(where: str, name: str, params: Any) -> Any:
    if name == "reshape":
        if not isinstance(params, Sequence) or isinstance(params, str) or not params:
            raise DataError(f"{where} (reshape): give the per-sample shape as a list of ints, e.g. [8, 8, 1]")
        if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in params):
            raise DataError(f"{where} (reshape): every dimension must be a positive int, got {list(params)}")
        return tuple(params)
    params = {} if params is None else params
    if not isinstance(params, Mapping):
        raise DataError(f"{where} ({name}): expected a mapping of options, got {params!r}")
    allowed = {"scale": {"divide_by", "multiply_by", "offset"}, "normalize": set(), "one_hot": set()}[name]
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise DataError(
            f"{where} ({name}): unknown option {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(allowed)) or 'none'}"
        )
    if name == "scale":
        if not params:
            raise DataError(f"{where} (scale): give divide_by, or multiply_by and/or offset")
        for key, value in params.items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise DataError(f"{where} (scale): {key} must be a number, got {value!r}")
        if params.get("divide_by", 1) == 0:
            raise DataError(f"{where} (scale): divide_by must not be 0")
    return dict(params)


def scale_factors(params: Mapping[str, float]) -> tuple[float, float]:
    """`(scale, offset)` such that a scale step computes `x * scale + offset`."""
    scale = float(params.get("multiply_by", 1.0)) / float(params.get("divide_by", 1.0))
    return scale, float(params.get("offset", 0.0))


def feature_steps(steps: Sequence[Mapping[str, Any]] | None) -> list[tuple[str, Any]]:
    """The steps that become model layers, in order."""
    return [(name, params) for name, params in parse_steps(steps) if name in FEATURE_STEPS]


def apply_label_steps(dataset: Dataset, steps: Sequence[Mapping[str, Any]] | None) -> Dataset:
    """Apply label steps (one_hot) to every split; feature steps are left to the model."""
    for name, _params in parse_steps(steps):
        if name == "one_hot":
            if dataset.task != "classification":
                raise DataError(
                    f"data.preprocess: one_hot encodes class labels, but model.task is {dataset.task}; "
                    "remove the one_hot step"
                )
            if dataset.y_train.ndim != 1:
                raise DataError(
                    "data.preprocess: one_hot applies to class indices, but the labels are one-hot already"
                )
            eye = np.eye(dataset.num_classes, dtype=np.float32)
            dataset = replace(
                dataset, y_train=eye[dataset.y_train], y_val=eye[dataset.y_val], y_test=eye[dataset.y_test]
            )
    return dataset

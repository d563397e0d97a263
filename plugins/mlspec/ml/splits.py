"""Which split a row belongs to, and the record of it every version publishes (issue 14).

- A row id is a uint64 that depends on the row's values only: ONE function for every version of every model,
  no seed and no salt, so a row that comes back in a grown table gets the same id.
  A table's row (`row_ids`): its key cells (data.split.key, or every column of the frame given -- the caller
  passes the feature and label columns -- in name order, so an unrelated column added to the source moves no
  row). Two cells are the same when their canonical texts are (mlspec.ml.columns.category_text: 1970, 1970.0
  and "1970" are all "1970"; a gap -- NaN, None, blank text -- is ""). Each cell is hashed by what that text
  means, without printing every number: a whole number (int64) and any other finite float by their 64 bits
  through the splitmix64 finalizer, each with its own tag; text that is the canonical text of such a number as
  that number; other text by SipHash-2-4 of its UTF-8 (pandas.util.hash_array with its fixed default key); a
  gap by a constant. The cells' hashes are folded in key order (`_fold`).
  An array data set's row (`array_row_ids`): the first 8 bytes of BLAKE2b over the row's float32 values
  (little-endian) and its label's text; images have thousands of cells, too many to hash one by one.
- `hash_assign`: u = row_id / 2**64; u < test -> test, u < test + validation -> validation, else train.
  A row keeps its split while the table grows, so a champion is never scored on rows it was trained on.
- A row's content id: the row id of its feature and label columns (`row_ids(..., None)`), whatever the key.
  With data.split.key it differs from the row id: a row re-sent under the same key with a value changed (a
  weight in kilograms) keeps its row id, and so its split, but gets a new content id. Without a key the two
  are the same number.
- `splits_parquet` / `read_splits`: splits.parquet, one row per prepared row (row_id, split, content_id), the
  training rows first in the training split's order, with the data digest and the counts per split in its
  key-value metadata (`mlspec.digest`, `mlspec.counts`).
- `unseen_training_rows`: which of this run's training rows a reference version did not train on, by content
  id (the rows validate_data tests for drift on their own).

numpy, pandas and pyarrow are imported inside the functions: operators import this module at DAG parse time.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlspec.errors import DataError
from mlspec.ml.columns import category_text, category_texts
from mlspec.sources.columns import some_names

SPLIT_NAMES = ("train", "validation", "test")  # the names in splits.parquet and in every message
SPLIT_METHODS = ("hash", "random")
# The text between an array row's features and its label.
KEY_SEPARATOR = "\x1f"
# pandas' default SipHash key, written out so that a pandas release that changed its default moves no row.
HASH_KEY = "0123456789123456"
DIGEST_METADATA = b"mlspec.digest"
COUNTS_METADATA = b"mlspec.counts"

if TYPE_CHECKING:
    import numpy as np


def row_ids(frame: Any, key: Sequence[str] | None) -> np.ndarray:
    """A uint64 id per row of `frame` (a pandas DataFrame of the source's raw values): the hash of the canonical
    text of the `key` columns, or of every column in name order when `key` is None. DataError when a key column
    is not in the frame."""
    import numpy as np

    names = [str(c) for c in frame.columns]
    if key is None:
        chosen = sorted(names)
    else:
        missing = [name for name in key if name not in names]
        if missing:
            raise DataError(
                f"data.split.key names {some_names(missing)}, which the data has not; its columns are "
                f"{some_names(names)}"
            )
        chosen = list(key)
    if not chosen:
        raise DataError("a row id needs at least one column; data.split.key is empty")
    position = {name: index for index, name in enumerate(names)}
    ids = np.zeros(len(frame), dtype=np.uint64)
    for name in chosen:
        ids = _fold(ids, _cell_hashes(frame.iloc[:, position[name]]))
    return ids


# Tags that keep a whole number, a fraction and the gap apart before mixing (arbitrary odd 64-bit constants).
_INT_TAG, _FLOAT_TAG, _GAP = 0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9
_INT_TEXT = re.compile(r"-?[1-9][0-9]{0,18}|0")  # the canonical text of an int64 (no "+", no leading zeros)
_FLOAT_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?e[-+][0-9]+|-?[0-9]+\.[0-9]+")  # as str(float) writes a fraction


def _mix(bits: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer over uint64 values (wrapping arithmetic)."""
    import numpy as np

    with np.errstate(over="ignore"):
        bits = (bits ^ (bits >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        bits = (bits ^ (bits >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return bits ^ (bits >> np.uint64(31))


def _fold(ids: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """The row ids so far with one more key column's cell hashes (order matters: [a, b] is not [b, a])."""
    import numpy as np

    with np.errstate(over="ignore"):
        return _mix(ids * np.uint64(0x100000001B3) + cells)


def _number_hashes(values: np.ndarray) -> np.ndarray:
    """Cell hashes of a number column (ints, or floats with NaN gaps): whole numbers within int64 by their int64,
    other finite floats by their bits; infinities and whole floats past int64 by their canonical text."""
    import numpy as np

    if values.dtype.kind == "i":
        return _mix(values.astype(np.int64).view(np.uint64) ^ np.uint64(_INT_TAG))
    if values.dtype.kind == "u":  # past int64: by its text, as a whole float that large is
        big = values >= np.uint64(2**63)
        hashes = _mix(values.astype(np.uint64) ^ np.uint64(_INT_TAG))
        if big.any():
            hashes[big] = _text_hashes(np.array([str(v) for v in values[big].tolist()], dtype=object))
        return hashes
    values = values.astype(np.float64)
    hashes = np.full(len(values), _GAP, dtype=np.uint64)
    finite = np.isfinite(values)
    whole = finite & (values == np.floor(values)) & (np.abs(values) < 2.0**63)
    fraction = finite & (values != np.floor(values))
    odd = ~np.isnan(values) & ~whole & ~fraction  # infinities, and whole numbers too large for int64
    hashes[whole] = _mix(values[whole].astype(np.int64).view(np.uint64) ^ np.uint64(_INT_TAG))
    hashes[fraction] = _mix(values[fraction].view(np.uint64) ^ np.uint64(_FLOAT_TAG))
    if odd.any():
        hashes[odd] = _text_hashes(np.array([category_text(v) for v in values[odd].tolist()], dtype=object))
    return hashes


def _text_hashes(texts: np.ndarray) -> np.ndarray:
    """Cell hashes of canonical texts ("" a gap): text that is the canonical text of a number hashes as that
    number, any other text by SipHash of its UTF-8."""
    import numpy as np
    import pandas as pd

    hashes = pd.util.hash_array(texts, encoding="utf8", hash_key=HASH_KEY, categorize=False).astype(np.uint64)
    hashes[texts == ""] = _GAP
    series = pd.Series(texts, dtype=object)
    for pattern, kind in ((_INT_TEXT, "int"), (_FLOAT_TEXT, "float")):
        candidates = np.flatnonzero(series.str.fullmatch(pattern.pattern).to_numpy(dtype=bool, na_value=False))
        if not len(candidates):
            continue
        if kind == "int":
            numbers = np.array([int(texts[i]) for i in candidates], dtype=object)
            fits = np.array([-(2**63) <= n < 2**63 for n in numbers], dtype=bool)
            hashes[candidates[fits]] = _number_hashes(numbers[fits].astype(np.int64))
        else:
            numbers = np.array([float(texts[i]) for i in candidates])
            same = np.array([category_text(n) == texts[i] for n, i in zip(numbers.tolist(), candidates, strict=True)],
                            dtype=bool)  # fmt: skip
            hashes[candidates[same]] = _number_hashes(numbers[same])
    return hashes


def _cell_hashes(series: Any) -> np.ndarray:
    """A uint64 per cell of one column by its canonical text's meaning (the module's rule)."""
    import numpy as np
    import pandas as pd

    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) and not series.hasnans:
        true, false = _text_hashes(np.array(["True", "False"], dtype=object))
        return np.where(series.to_numpy(dtype=bool), true, false).astype(np.uint64)
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        if dtype.kind in "iu" and not series.hasnans:
            return _number_hashes(series.to_numpy())
        return _number_hashes(series.to_numpy(dtype=np.float64, na_value=np.nan))
    codes, distinct = pd.factorize(series, use_na_sentinel=True)  # each distinct value once; NA is code -1
    hashes = _text_hashes(np.asarray(category_texts(pd.Series(np.asarray(distinct, dtype=object), dtype=object))))
    return np.append(hashes, np.uint64(_GAP))[codes]


def array_row_ids(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A uint64 id per sample of an array data set: BLAKE2b of its float32 feature values (-0.0 as 0.0) and the
    canonical text of its label (the class name, or the target)."""
    import numpy as np

    rows = np.ascontiguousarray(np.asarray(x, dtype="<f4").reshape(len(x), -1) + np.float32(0.0))
    labels = [category_text(value).encode() for value in np.asarray(y).tolist()]
    ids = np.empty(len(rows), dtype=np.uint64)
    for index, (row, label) in enumerate(zip(rows, labels, strict=True)):
        digest = hashlib.blake2b(row.data, digest_size=8)
        digest.update(KEY_SEPARATOR.encode() + label)
        ids[index] = int.from_bytes(digest.digest(), "little")
    return ids


def hash_assign(ids: np.ndarray, *, validation: float, test: float) -> np.ndarray:
    """Each id's split as an int8 code into SPLIT_NAMES (0 train, 1 validation, 2 test), from its place in
    [0, 1): below `test` test, then `validation` validation, the rest train."""
    import numpy as np

    share = np.asarray(ids, dtype=np.uint64).astype(np.float64) / 2.0**64
    codes = np.zeros(len(share), dtype=np.int8)
    codes[share < test + validation] = SPLIT_NAMES.index("validation")
    codes[share < test] = SPLIT_NAMES.index("test")
    return codes


def splits_parquet(dataset: Any, digest: str) -> bytes:
    """splits.parquet of a prepared Dataset (mlspec.ml.data): row_id (uint64), split and content_id (uint64) per
    row, the training rows first in x_train's order, then validation and test; its metadata holds the data digest
    and the counts per split (JSON). A Dataset without content ids (built by hand) uses its row ids."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts, contents = [], []
    for split in ("train", "val", "test"):
        ids = np.asarray(getattr(dataset, f"ids_{split}"), dtype=np.uint64)
        content = np.asarray(getattr(dataset, f"content_ids_{split}", ()), dtype=np.uint64)
        parts.append(ids)
        contents.append(content if len(content) == len(ids) else ids)
    counts = {name: len(part) for name, part in zip(SPLIT_NAMES, parts, strict=True)}
    names = np.repeat(np.arange(len(SPLIT_NAMES), dtype=np.int8), [len(part) for part in parts])
    table = pa.table(
        {
            "row_id": pa.array(np.concatenate(parts), type=pa.uint64()),
            "split": pa.DictionaryArray.from_arrays(pa.array(names), pa.array(SPLIT_NAMES)),
            "content_id": pa.array(np.concatenate(contents), type=pa.uint64()),
        }
    )
    metadata = {DIGEST_METADATA: digest.encode(), COUNTS_METADATA: json.dumps(counts).encode()}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def read_splits(data: bytes) -> Any:
    """splits.parquet as a DataFrame (row_id uint64, split str, content_id uint64) in the file's row order; its
    `attrs` hold "digest", "counts" and "content_ids" (False for a file written before content ids, issue 14's
    first versions: its row ids stand in as content ids)."""
    import numpy as np
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - any decode failure means the same thing to a user
        raise DataError(f"splits.parquet is not a readable Parquet file: {exc}") from exc
    if not {"row_id", "split"} <= set(table.column_names):
        raise DataError(f"splits.parquet has columns {table.column_names}; it needs row_id and split")
    metadata = table.schema.metadata or {}
    content = "content_id" in table.column_names
    frame = table.select(["row_id", "split", *(["content_id"] if content else [])]).to_pandas()
    frame["split"] = frame["split"].astype(str).astype(object)
    frame["row_id"] = frame["row_id"].astype(np.uint64)
    frame["content_id"] = (frame["content_id"] if content else frame["row_id"]).astype(np.uint64)
    frame.attrs["digest"] = metadata.get(DIGEST_METADATA, b"").decode()
    frame.attrs["counts"] = json.loads(metadata.get(COUNTS_METADATA, b"{}"))
    frame.attrs["content_ids"] = content
    return frame


def unseen_training_rows(this_run: bytes, reference: bytes) -> np.ndarray:
    """A bool per training row of this run (in x_train's order, as splits.parquet lists them): True where the
    reference version did not train on that content, i.e. the row's content_id is not among the reference's
    training content ids. `this_run` and `reference` are the two versions' splits.parquet bytes. A row re-sent
    under the same data.split.key with a value changed is unseen; a row that came back unchanged is not. A
    reference written before content ids is compared by row id."""
    import numpy as np

    current, before = read_splits(this_run), read_splits(reference)
    trained = before["split"].to_numpy() == "train"
    train = current["split"].to_numpy() == "train"
    column = "content_id" if before.attrs["content_ids"] else "row_id"
    return ~np.isin(current[column].to_numpy()[train], before[column].to_numpy()[trained])


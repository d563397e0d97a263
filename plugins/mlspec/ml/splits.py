"""Which split a row belongs to, and the record of it every version publishes (issue 14).

- A row id is a uint64 that depends on the row's values only: ONE function for every version of every model,
  no seed and no salt, so a row that comes back in a grown table gets the same id.
  A table's row (`row_ids`): the canonical text of each key cell (mlspec.ml.columns.category_text: 1970,
  1970.0 and "1970" are all "1970"; a gap is ""), joined with "\\x1f", hashed with pandas' SipHash
  (`pandas.util.hash_array`, its fixed default key). The key is data.split.key, or every column of the
  frame given (the caller passes the feature and label columns) in name order, so an unrelated column
  added to the source moves no row.
  An array data set's row (`array_row_ids`): the first 8 bytes of BLAKE2b over the row's float32 values
  (little-endian) and its label's text; images have thousands of cells, too many to print as text.
- `hash_assign`: u = row_id / 2**64; u < test -> test, u < test + validation -> validation, else train.
  A row keeps its split while the table grows, so a champion is never scored on rows it was trained on.
- `splits_parquet` / `read_splits`: splits.parquet, one row per prepared row (row_id, split), with the data
  digest and the counts per split in its key-value metadata (`mlspec.digest`, `mlspec.counts`).

numpy, pandas and pyarrow are imported inside the functions: operators import this module at DAG parse time.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlspec.errors import DataError
from mlspec.ml.columns import category_text, category_texts
from mlspec.sources.columns import some_names

SPLIT_NAMES = ("train", "validation", "test")  # the names in splits.parquet and in every message
SPLIT_METHODS = ("hash", "random")
# The text between two key cells: a character no CSV field or category name holds in practice.
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
    import pandas as pd

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
    joined = None
    for name in chosen:
        text = category_texts(frame.iloc[:, position[name]])
        joined = text if joined is None else joined + KEY_SEPARATOR + text
    return pd.util.hash_array(joined, encoding="utf8", hash_key=HASH_KEY, categorize=False).astype(np.uint64)


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
    """splits.parquet of a prepared Dataset (mlspec.ml.data): row_id (uint64) and split per row, train rows
    first; its metadata holds the data digest and the counts per split (JSON)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = [np.asarray(getattr(dataset, f"ids_{split}"), dtype=np.uint64) for split in ("train", "val", "test")]
    counts = {name: len(part) for name, part in zip(SPLIT_NAMES, parts, strict=True)}
    names = np.repeat(np.arange(len(SPLIT_NAMES), dtype=np.int8), [len(part) for part in parts])
    table = pa.table(
        {
            "row_id": pa.array(np.concatenate(parts), type=pa.uint64()),
            "split": pa.DictionaryArray.from_arrays(pa.array(names), pa.array(SPLIT_NAMES)),
        }
    )
    metadata = {DIGEST_METADATA: digest.encode(), COUNTS_METADATA: json.dumps(counts).encode()}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def read_splits(data: bytes) -> Any:
    """splits.parquet as a DataFrame (row_id uint64, split str); its `attrs` hold "digest" and "counts"."""
    import numpy as np
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - any decode failure means the same thing to a user
        raise DataError(f"splits.parquet is not a readable Parquet file: {exc}") from exc
    if not {"row_id", "split"} <= set(table.column_names):
        raise DataError(f"splits.parquet has columns {table.column_names}; it needs row_id and split")
    metadata = table.schema.metadata or {}
    frame = table.select(["row_id", "split"]).to_pandas()
    frame["split"] = frame["split"].astype(str).astype(object)
    frame["row_id"] = frame["row_id"].astype(np.uint64)
    frame.attrs["digest"] = metadata.get(DIGEST_METADATA, b"").decode()
    frame.attrs["counts"] = json.loads(metadata.get(COUNTS_METADATA, b"{}"))
    return frame

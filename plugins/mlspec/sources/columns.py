"""The columns of a table source, as lint and prepare_data both name them: the column a misspelled name most
likely meant, the `key=value` folders of a partitioned folder's file (hive style), which become columns, and
the sample of a local file that `mlspec lint` checks (pandas and pyarrow are imported only then)."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote

# Hive's name for a partition whose value was null.
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
# Lint reads at most this much of a CSV file for its sample (the first 1,000 rows of a sane table).
SAMPLE_BYTES = 8 * 1024 * 1024
# An error quotes at most this many names (columns, arrays, labels), each cut to this many characters.
MAX_QUOTED_NAMES = 5
MAX_NAME_CHARS = 20  # enough for a column name; a secret read as a header would leak little


def some_names(names: Sequence[object], most: int = MAX_QUOTED_NAMES) -> str:
    """`a, b, c, d, e ... and 999995 more`: a few names for a message, each printable and cut short."""
    names = list(names)
    shown = []
    for name in names[:most]:
        text = "".join(c if c.isprintable() else "?" for c in str(name)[: MAX_NAME_CHARS + 1])
        shown.append(text if len(text) <= MAX_NAME_CHARS else text[: MAX_NAME_CHARS - 1] + "…")
    more = f" ... and {len(names) - most} more" if len(names) > most else ""
    return (", ".join(shown) or "(none)") + more


def did_you_mean(name: str, columns: Sequence[str]) -> str | None:
    """The column `name` most likely meant: the same name in another case (`Species`: `species`), else the
    closest spelling; None when nothing is close."""
    same_case = [column for column in columns if column.lower() == name.lower()]
    if same_case:
        return same_case[0]
    lowered = {column.lower(): column for column in columns}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.75)
    return lowered[close[0]] if close else None


def partition_values(name: str) -> dict[str, str | None]:
    """The `key=value` folders of a file's name below its folder (`year=2024/month=05/part-0.parquet`:
    {"year": "2024", "month": "05"}), percent-decoded; Hive's null partition is None."""
    values: dict[str, str | None] = {}
    for folder in name.split("/")[:-1]:
        key, equals, value = folder.partition("=")
        if equals and key:
            value = unquote(value)
            values[unquote(key)] = None if value == NULL_PARTITION else value
    return values


def sample_table(
    path: Path, fmt: str, rows: int, columns: Sequence[str] | None = None, text: Sequence[str] = ()
) -> Any:
    """The header and at most `rows` first rows of a CSV (.csv.gz too) or Parquet file as a DataFrame, reading
    only that much (a CSV's first SAMPLE_BYTES, a Parquet file's first batch of `columns`); None when a CSV's
    first rows do not fit in SAMPLE_BYTES. Parquet's header is the DataFrame's `attrs["columns"]`; `attrs["whole"]`
    says the rows are all the file's. A CSV's `text` columns (declared categories) are read as written, as
    prepare_data reads them."""
    import gzip
    import io

    import pandas as pd

    if fmt == "parquet":
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        names = parquet.schema_arrow.names
        wanted = [name for name in (columns if columns is not None else names) if name in names]
        batch = next(parquet.iter_batches(batch_size=rows, columns=wanted), None)
        frame = batch.to_pandas() if batch is not None else pd.DataFrame(columns=wanted)
        frame.attrs["columns"] = names
        frame.attrs["whole"] = parquet.metadata.num_rows <= rows
        return frame
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        head = handle.read(SAMPLE_BYTES + 1)
    whole = len(head) <= SAMPLE_BYTES
    if not whole:
        head = head[: head.rfind(b"\n") + 1]
        if not head:
            return None
    frame = pd.read_csv(io.BytesIO(head), nrows=rows, dtype=dict.fromkeys(text, str))
    frame.attrs["columns"] = [str(c) for c in frame.columns]
    frame.attrs["whole"] = whole and len(frame) < rows
    return frame

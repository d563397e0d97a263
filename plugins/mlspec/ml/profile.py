"""The data profile: what a version's training rows looked like, published as profile.json beside the model,
so the next run's drift and schema checks (mlspec.ml.drift) compare against the data production learned from
without reading that data again (issue 14 §3).

Per column of the normalized raw table (mlspec.ml.columns.raw_features: numbers float64 with NaN gaps,
categories str with "" gaps):

- every column: its name, type (mlspec.ml.columns.COLUMN_TYPES), `missing_count` and `missing_share`;
- numbers, integers and booleans ("numeric"): min, max, mean, std (io_schema.number_statistics, the statistics
  input_schema.json publishes), QUANTILES quantiles (0 %, 1 %, ..., 100 %; linear interpolation, as numpy's
  default) and `sample`: a uniform random sample of at most `sample_rows` of the values present, drawn with a
  fixed seed (the same data gives the same profile) and sorted. With at most `sample_rows` values the sample
  is every value, so the exact tests (Kolmogorov-Smirnov, chi-squared) on a reference of at most 1,000 rows
  see all of its data;
- categories: `frequencies`, the rows per value, most frequent first (ties by value), at most MAX_CATEGORIES
  values; the rows of every rarer value are counted together in `other` (0 when every value is listed) and
  `distinct` counts the values present.

The profile is plain JSON (no NaN: a statistic that does not exist is null). Its `format` is PROFILE_FORMAT, to
be raised when a field changes meaning: drift.compare refuses a reference of another format, naming its version.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mlspec.ml.columns import Column, category_text, is_gap
from mlspec.ml.io_schema import number_statistics

PROFILE_FORMAT = 1
SAMPLE_ROWS = 5000
QUANTILES = 101  # 0 %, 1 %, ..., 100 %
MAX_CATEGORIES = 1000  # rarer values share the `other` count
SAMPLE_SEED = 0
NUMERIC_TYPES = frozenset({"number", "integer", "boolean"})


def is_numeric(column_type: str | None) -> bool:
    """Numbers, integers and booleans are compared as numbers; categories by their frequencies."""
    return column_type in NUMERIC_TYPES


def build_profile(frame: Any, columns: Sequence[Column], *, sample_rows: int = SAMPLE_ROWS) -> dict[str, Any]:
    """profile.json's content for `frame` (a pandas DataFrame holding every column of `columns`)."""
    return {
        "format": PROFILE_FORMAT,
        "rows": len(frame),
        "sample_rows": sample_rows,
        "columns": [
            numeric_profile(column, frame[column.name], sample_rows)
            if is_numeric(column.type)
            else category_profile(column, frame[column.name])
            for column in columns
        ],
    }


def numeric_values(values: Any) -> np.ndarray:
    """A column as float64 (NaN for a gap or for text that is no number: compared, not refused)."""
    try:
        return np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        import pandas as pd

        return pd.to_numeric(pd.Series(np.asarray(values, dtype=object).ravel()), errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )


def numeric_profile(column: Column, values: Any, sample_rows: int = SAMPLE_ROWS) -> dict[str, Any]:
    numbers = numeric_values(values)
    present = np.sort(numbers[np.isfinite(numbers)])
    entry = _common(column, numbers.size, numbers.size - present.size)
    entry.update(number_statistics(present))
    entry["quantiles"] = [float(q) for q in quantiles(present)] if present.size else []
    entry["sample"] = [float(v) for v in sample(present, sample_rows)]
    return entry


def quantiles(ordered: np.ndarray, count: int = QUANTILES) -> np.ndarray:
    """`count` evenly spaced quantiles (0 to 1) of sorted values, interpolated linearly (numpy's default)."""
    position = np.linspace(0.0, 1.0, count) * (ordered.size - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, ordered.size - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def sample(ordered: np.ndarray, rows: int) -> np.ndarray:
    """At most `rows` of sorted values, picked uniformly at random with the fixed seed; still sorted."""
    if ordered.size <= rows:
        return ordered
    picked = np.random.default_rng(SAMPLE_SEED).choice(ordered.size, size=rows, replace=False)
    return ordered[np.sort(picked)]


def category_counts(values: Any) -> Any:
    """Rows per value of a category column as a pandas Series, gaps left out, most frequent first (ties by
    value); a number in the column counts as its text (mlspec.ml.columns.category_text)."""
    import pandas as pd

    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values, dtype=object).ravel())
    counts = series.value_counts(dropna=True)  # each distinct value is looked at once below, not each row
    keys = [None if is_gap(value) else category_text(value) for value in counts.index]
    counts = pd.Series(counts.to_numpy(dtype=np.int64), index=pd.Index(keys, dtype=object))
    counts = counts[counts.index.notna()]
    if not counts.index.is_unique:  # 1970 and "1970" are one category
        counts = counts.groupby(level=0).sum()
    order = np.lexsort((counts.index.to_numpy(dtype=object).astype(str), -counts.to_numpy()))
    return counts.iloc[order]


def category_profile(column: Column, values: Any) -> dict[str, Any]:
    counts = category_counts(values)
    rows = len(values)
    entry = _common(column, rows, rows - int(counts.sum()))
    listed = counts.iloc[:MAX_CATEGORIES]
    entry["distinct"] = len(counts)
    entry["frequencies"] = {str(value): int(count) for value, count in listed.items()}
    entry["other"] = int(counts.iloc[MAX_CATEGORIES:].sum())
    return entry


def _common(column: Column, rows: int, missing: int) -> dict[str, Any]:
    return {
        "name": column.name,
        "type": column.type,
        "missing_count": int(missing),
        "missing_share": round(missing / rows, 6) if rows else 0.0,
    }

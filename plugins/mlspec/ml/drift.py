"""Drift and schema checks of this run's data against a reference profile (mlspec.ml.profile; issue 14 §3).

Drift per column, with Evidently's tests and defaults:

- a reference of at most EXACT_TEST_ROWS rows: Kolmogorov-Smirnov (numbers) or chi-squared (categories)
  against the reference's values (its profile sample and frequencies hold every one of them); the score is the
  p-value and the column drifts when it is below the threshold (default 0.05, i.e. 95 % confidence);
- a larger reference: the Wasserstein distance divided by the reference's standard deviation (at least
  MIN_STD: Evidently's floor, so a constant reference column divides by something) for numbers, against the
  reference sample; the Jensen-Shannon distance (natural logarithm, as scipy's default) between the two
  distributions of category shares for categories; the column drifts when the distance is at least the
  threshold (default 0.1).

`threshold` replaces the default of whichever test runs. The p-value tests of one run share it (Bonferroni:
each is judged at the threshold divided by their count), so a retrain of unchanged data raises a false alarm
with at most that chance, however many columns it has; the row's threshold is the divided one. Chi-squared is a test of homogeneity on the 2 x k
table of reference and current counts (scipy's chi2_contingency, without Yates' correction): a category that
only one side has is a column of that table, so a category the reference never had raises the statistic
instead of dividing by an expected count of zero. Gaps are left out of every test (the missing share is a
schema check). Given a `new_rows` mask (this run's rows the reference did not train on), each column gets a
second row, the same test on those rows only ("drift (new rows)"); a column drifts when either says so. The
data set drifts when the drifted columns are at least `share` of the columns compared.

Schema checks (skipped with schema="off"): a column added or missing, a type changed, categories the reference
never had (with their share of this data's rows; not judged when the reference listed only its MAX_CATEGORIES
most frequent values), and a missing share above the reference's by more than MISSING_SHARE_RISE.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from mlspec.errors import DataError
from mlspec.ml.columns import Column
from mlspec.ml.io_schema import significant
from mlspec.ml.profile import PROFILE_FORMAT, category_counts, is_numeric, numeric_values
from mlspec.vocabulary import DRIFT_CHECK, DRIFT_NEW_ROWS_CHECK, P_VALUE_TESTS, PROFILE_FILE

EXACT_TEST_ROWS = (
    1000  # at most this many reference rows: KS / chi-squared; more: Wasserstein / Jensen-Shannon
)
P_VALUE_THRESHOLD = 0.05
DISTANCE_THRESHOLD = 0.1
MIN_STD = 0.001
MISSING_SHARE_RISE = 0.1
SCHEMA_MODES = ("fail", "warn", "off")

COLUMN_ADDED = "column added"
COLUMN_MISSING = "column missing"
TYPE_CHANGED = "type changed"
NEW_CATEGORIES = "new categories"
MISSING_SHARE = "missing share"
DRIFT_CHECKS = (DRIFT_CHECK, DRIFT_NEW_ROWS_CHECK)
SCHEMA_CHECKS = (COLUMN_ADDED, COLUMN_MISSING, TYPE_CHANGED, NEW_CATEGORIES, MISSING_SHARE)
# A test's score is a p-value (P_VALUE_TESTS: drifted below the threshold) or a distance (drifted at or above it).
DISTANCE_TESTS = ("wasserstein", "jensenshannon")
_SHOWN_CATEGORIES = 5


@dataclass(frozen=True)
class DriftRow:
    """One line of the table: a drift test on a column, or a schema problem (test "", drifted True)."""

    column: str
    check: str  # DRIFT_CHECKS or SCHEMA_CHECKS
    test: str  # P_VALUE_TESTS, DISTANCE_TESTS, or "" for a schema check
    score: float | None  # None when there was nothing to compare
    threshold: float | None
    drifted: bool
    detail: str = ""


@dataclass
class DriftReport:
    """The checks' table and what it adds up to: the drifted columns, the schema problems, the data set's
    drift. to_json gives drift.json's content (read as plain JSON by the card, the Models page and tracking)."""

    rows: list[DriftRow]
    reference_version: int | None = None
    reference_rows: int = 0
    current_rows: int = 0
    new_rows: int | None = None  # rows the new_rows mask selected; None without a mask
    columns_compared: int = 0  # columns a drift test ran on: the denominator of drift_share
    schema: str = "warn"
    threshold: float | None = None
    share: float = 0.5

    @property
    def drifted_columns(self) -> list[str]:
        return list(
            dict.fromkeys(row.column for row in self.rows if row.check in DRIFT_CHECKS and row.drifted)
        )

    @property
    def schema_problems(self) -> list[str]:
        return [row.detail for row in self.rows if row.check in SCHEMA_CHECKS]

    @property
    def drift_share(self) -> float:
        return len(self.drifted_columns) / self.columns_compared if self.columns_compared else 0.0

    @property
    def dataset_drift(self) -> bool:
        return bool(self.columns_compared) and self.drift_share >= self.share

    def to_json(self) -> dict[str, Any]:
        """drift.json's content; "outcome", "accepted_by" and settings' "on_drift" are the operator's to set (null
        here)."""
        return {
            "reference": {"version": self.reference_version, "rows": self.reference_rows},
            "current": {"rows": self.current_rows, "new_rows": self.new_rows},
            "settings": {
                "schema": self.schema,
                "threshold": self.threshold,
                "share": self.share,
                "on_drift": None,  # the operator's, as outcome
            },
            "rows": [asdict(row) for row in self.rows],
            "columns_compared": self.columns_compared,
            "drifted_columns": self.drifted_columns,
            "drift_share": round(self.drift_share, 4),
            "dataset_drift": self.dataset_drift,
            "schema_problems": self.schema_problems,
            "outcome": None,
            "accepted_by": None,
        }

    def log_lines(self) -> list[str]:
        """One aligned line per row: column, check, test, score, threshold, verdict, detail."""
        cells = [
            (
                row.column,
                row.check,
                row.test or "-",
                "-" if row.score is None else f"{row.score:.4g}",
                "-" if row.threshold is None else f"{_comparison(row.test)} {row.threshold:g}",
                ("DRIFTED" if row.drifted else "ok") if row.check in DRIFT_CHECKS else "PROBLEM",
                row.detail,
            )
            for row in self.rows
        ]
        widths = [max((len(line[index]) for line in cells), default=0) for index in range(6)]
        return [
            (
                "  ".join(cell.ljust(width) for cell, width in zip(line[:6], widths, strict=True))
                + f"  {line[6]}"
            ).rstrip()
            for line in cells
        ]


def _comparison(test: str) -> str:
    """How a score is judged against its threshold: a p-value drifts below it, a distance at or above it, a
    schema check's share (the missing share's rise) above it."""
    return "<" if test in P_VALUE_TESTS else ">=" if test in DISTANCE_TESTS else ">"


def compare(
    reference: Mapping[str, Any],
    frame: Any,
    columns: Sequence[Column],
    *,
    new_rows: Any = None,
    schema: str = "warn",
    threshold: float | None = None,
    share: float = 0.5,
    reference_version: int | None = None,
) -> DriftReport:
    """Drift and schema checks of `frame` (this run's training rows, the normalized raw table with `columns`)
    against `reference` (a profile.json's content). `new_rows`: a boolean mask over frame's rows. A reference
    whose "format" is not PROFILE_FORMAT is a DataError naming its version: its columns may mean other things."""
    if schema not in SCHEMA_MODES:
        raise ValueError(f"schema must be one of {', '.join(SCHEMA_MODES)}, not {schema!r}")
    _check_format(reference, reference_version)
    known = {str(entry["name"]): entry for entry in reference.get("columns", ())}
    reference_rows = int(reference.get("rows") or 0)
    exact = reference_rows <= EXACT_TEST_ROWS
    mask = None if new_rows is None else np.asarray(new_rows, dtype=bool).ravel()
    if mask is not None and mask.size != len(frame):
        raise ValueError(f"new_rows has {mask.size} entries for {len(frame)} rows")
    selected = int(mask.sum()) if mask is not None else None
    rows: list[DriftRow] = []
    current = {column.name for column in columns}
    if schema != "off":
        rows += [_added(column) for column in columns if column.name not in known]
        rows += [_missing(entry) for name, entry in known.items() if name not in current]
    compared = 0
    for column in columns:
        entry = known.get(column.name)
        if entry is None:
            continue
        values = frame[column.name]
        numeric = is_numeric(column.type)
        present = _present(values, numeric)
        if schema != "off":
            rows += _schema_rows(column, entry, present, len(values))
        if numeric != is_numeric(entry.get("type")):
            continue  # a number against categories has no common test; the type change is the finding
        compared += 1
        rows.append(_drift_row(column.name, DRIFT_CHECK, entry, present, exact, threshold))
        if selected:
            new = _present(values[mask], numeric)
            rows.append(_drift_row(column.name, DRIFT_NEW_ROWS_CHECK, entry, new, exact, threshold))
    return DriftReport(
        rows=_family_wise(rows, threshold),
        reference_version=reference_version,
        reference_rows=reference_rows,
        current_rows=len(frame),
        new_rows=selected,
        columns_compared=compared,
        schema=schema,
        threshold=threshold,
        share=share,
    )


def _check_format(reference: Mapping[str, Any], version: int | None) -> None:
    found = reference.get("format")
    if found == PROFILE_FORMAT:
        return
    whose = f"production version {version}'s {PROFILE_FILE}" if version is not None else f"the reference {PROFILE_FILE}"
    written = (
        "a newer mlspec wrote it: upgrade mlspec where the tasks run"
        if isinstance(found, int) and found > PROFILE_FORMAT
        else "mlspec did not write it"
    )
    raise DataError(f"{whose} has format {found!r}; this mlspec reads format {PROFILE_FORMAT} only ({written})")


def _present(values: Any, numeric: bool) -> Any:
    """What the checks read of a column, worked out once: its finite numbers, sorted, or its rows per category
    (mlspec.ml.profile.category_counts); gaps left out."""
    if numeric:
        numbers = numeric_values(values)
        return np.sort(numbers[np.isfinite(numbers)])
    return category_counts(values)


# --------------------------------------------------------------------------- schema checks


def _added(column: Column) -> DriftRow:
    return DriftRow(
        column.name, COLUMN_ADDED, "", None, None, True, f"column {column.name}: not in the reference (added)"
    )


def _missing(entry: Mapping[str, Any]) -> DriftRow:
    name = str(entry["name"])
    return DriftRow(
        name, COLUMN_MISSING, "", None, None, True, f"column {name}: in the reference, not in this data"
    )


def _schema_rows(column: Column, entry: Mapping[str, Any], present: Any, rows: int) -> list[DriftRow]:
    found = []
    name = column.name
    if column.type != entry.get("type"):
        found.append(
            DriftRow(
                name,
                TYPE_CHANGED,
                "",
                None,
                None,
                True,
                f"column {name}: type changed from {entry.get('type')} to {column.type}",
            )
        )
    if not rows:
        return found
    missing = rows - (present.size if is_numeric(column.type) else int(present.sum()))
    if not is_numeric(column.type) and not is_numeric(entry.get("type")) and not entry.get("other"):
        seen = entry.get("frequencies") or {}  # every reference value is listed: the others are new
        new = present[~present.index.isin(list(seen))]
        if len(new):
            new_share = float(new.sum()) / rows
            shown = ", ".join(str(value) for value in new.index[:_SHOWN_CATEGORIES])
            more = f" and {len(new) - _SHOWN_CATEGORIES:,} more" if len(new) > _SHOWN_CATEGORIES else ""
            found.append(
                DriftRow(
                    name,
                    NEW_CATEGORIES,
                    "",
                    significant(new_share),
                    None,
                    True,
                    f"column {name}: categories the reference never had: {shown}{more} "
                    f"({_percent(new_share)} of rows)",
                )
            )
    share = missing / rows
    before = float(entry.get("missing_share") or 0.0)
    if share - before > MISSING_SHARE_RISE:
        found.append(
            DriftRow(
                name,
                MISSING_SHARE,
                "",
                significant(share - before),
                MISSING_SHARE_RISE,
                True,
                f"column {name}: {_percent(share)} of rows missing, the reference {_percent(before)} "
                f"(up by more than {MISSING_SHARE_RISE:g})",
            )
        )
    return found


# --------------------------------------------------------------------------- drift tests


def _drift_row(
    name: str, check: str, entry: Mapping[str, Any], present: Any, exact: bool, threshold: float | None
) -> DriftRow:
    numeric = is_numeric(entry.get("type"))
    test = ("ks" if numeric else "chi2") if exact else ("wasserstein" if numeric else "jensenshannon")
    limit = threshold if threshold is not None else (P_VALUE_THRESHOLD if exact else DISTANCE_THRESHOLD)
    score, detail = (_numeric_test if numeric else _category_test)(entry, present, test)
    if score is None:
        return DriftRow(name, check, test, None, limit, False, detail)
    drifted = score < limit if test in P_VALUE_TESTS else score >= limit
    return DriftRow(name, check, test, significant(score), limit, bool(drifted), detail)


def _family_wise(rows: list[DriftRow], threshold: float | None) -> list[DriftRow]:
    """The p-value rows judged at the run's level divided by their count (Bonferroni): with 0.05 per test,
    20 columns tested twice raise about two false alarms on every retrain of unchanged data, and on_drift acts
    on any drifted column. The whole run keeps a 0.05 (or `threshold`) chance of a false alarm; a real shift
    (a unit change) still scores p-values many orders below it."""
    tested = {id(row) for row in rows if row.test in P_VALUE_TESTS and row.score is not None}
    if len(tested) < 2:
        return rows
    limit = (threshold if threshold is not None else P_VALUE_THRESHOLD) / len(tested)
    return [
        replace(row, threshold=significant(limit), drifted=bool(row.score < limit)) if id(row) in tested else row
        for row in rows
    ]


def _numeric_test(entry: Mapping[str, Any], current: np.ndarray, test: str) -> tuple[float | None, str]:
    reference = np.sort(np.asarray(entry.get("sample") or (), dtype=np.float64))
    if not reference.size or not current.size:
        return None, "no values to compare in " + ("the reference" if not reference.size else "this data")
    detail = (
        f"mean {_number(entry.get('mean'))} -> {_number(current.mean())}, "
        f"std {_number(entry.get('std'))} -> {_number(current.std())}"
    )
    if test == "ks":
        from scipy.stats import ks_2samp

        return float(ks_2samp(reference, current).pvalue), detail
    spread = max(float(entry.get("std") or 0.0), MIN_STD)
    return wasserstein(reference, current) / spread, detail


def wasserstein(reference: np.ndarray, current: np.ndarray) -> float:
    """The Wasserstein (earth mover's) distance between two samples given SORTED: the area between their
    cumulative distributions, as scipy.stats.wasserstein_distance computes it, without its two argsorts (a
    third of the time on a million rows; tests/ml/test_drift.py checks the two agree)."""
    both = np.concatenate([reference, current])
    both.sort(kind="stable")  # two sorted runs: merged
    in_reference = np.searchsorted(reference, both[:-1], "right")  # values <= each edge
    # Past the last of equal values, i + 1 values of both are <= the edge; elsewhere the step is 0 wide.
    in_current = np.arange(1, both.size) - in_reference
    return float(np.abs(in_reference / reference.size - in_current / current.size) @ np.diff(both))


def _category_test(entry: Mapping[str, Any], counts: Any, test: str) -> tuple[float | None, str]:
    reference = {str(key): int(count) for key, count in (entry.get("frequencies") or {}).items()}
    other = int(entry.get("other") or 0)
    if not sum(reference.values()) + other or not len(counts):
        return None, "no values to compare in " + ("the reference" if len(counts) else "this data")
    keys = list(reference)
    current = {str(key): int(count) for key, count in counts.items()}
    if other:  # the reference counted its rarest values together: so does this data, for values not listed
        listed = {key: current.get(key, 0) for key in keys}
        listed["(other)"] = sum(count for key, count in current.items() if key not in reference)
        current, reference, keys = listed, {**reference, "(other)": other}, [*keys, "(other)"]
    else:
        keys += [key for key in current if key not in reference]
    table = np.array(
        [[reference.get(key, 0) for key in keys], [current.get(key, 0) for key in keys]], dtype=np.float64
    )
    before, after = table[0] / table[0].sum(), table[1] / table[1].sum()
    moved = int(np.argmax(np.abs(after - before)))
    detail = f"largest change: {keys[moved]} {_percent(before[moved])} -> {_percent(after[moved])}"
    if test == "chi2":
        if len(keys) < 2:
            return 1.0, detail  # one category on both sides: nothing can differ
        from scipy.stats import chi2_contingency

        return float(chi2_contingency(table, correction=False).pvalue), detail
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(before, after)), detail


# --------------------------------------------------------------------------- formatting


def _percent(share: float) -> str:
    return f"{100 * share:.0f}%" if share >= 0.01 or share == 0 else f"{100 * share:.2g}%"


def _number(value: Any) -> str:
    return "-" if value is None else f"{float(value):.4g}"

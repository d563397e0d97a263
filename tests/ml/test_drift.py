"""Drift and schema checks against a reference profile (issue 14 §3): Evidently's tests and defaults, the unit
change of the cars story caught by both test families, the new-rows test, each schema check, odd data."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from mlspec.errors import DataError
from mlspec.ml import drift, profile
from mlspec.ml.columns import Column
from mlspec.ml.drift import DriftReport, compare
from mlspec.ml.profile import build_profile

LBS_PER_KG = 2.20462
COLUMNS = [Column("Weight_in_lbs", "number"), Column("Origin", "category")]


def cars(rows: int, seed: int, *, kilograms: int = 0, origins=("USA", "Japan", "Europe")) -> pd.DataFrame:
    """`rows` cars; the last `kilograms` of them weigh in kilograms under the same column name (run 3)."""
    rng = np.random.default_rng(seed)
    weight = rng.normal(2970, 850, rows).clip(1600, 5200)
    if kilograms:
        weight[-kilograms:] /= LBS_PER_KG
    origin = rng.choice(np.array(origins, dtype=object), rows, p=[0.62, 0.25, 0.13][: len(origins)])
    return pd.DataFrame({"Weight_in_lbs": weight, "Origin": pd.Series(origin, dtype=object)})


def reference(rows: int, seed: int = 1) -> dict:
    return json.loads(json.dumps(build_profile(cars(rows, seed), COLUMNS)))  # as read back from the store


def drift_rows(report: DriftReport, check: str = "drift") -> dict[str, drift.DriftRow]:
    return {row.column: row for row in report.rows if row.check == check}


@pytest.mark.parametrize(
    ("reference_rows", "test", "threshold"), [(300, "ks", 0.05 / 2), (3000, "wasserstein", 0.1)]  # 2 p-value tests
)
def test_a_unit_change_drifts_with_either_test_family(
    reference_rows: int, test: str, threshold: float
) -> None:
    current = cars(reference_rows, seed=2, kilograms=reference_rows // 2)
    report = compare(reference(reference_rows), current, COLUMNS, reference_version=1)
    weight = drift_rows(report)["Weight_in_lbs"]
    assert (weight.test, weight.threshold, weight.drifted) == (test, threshold, True)
    assert report.drifted_columns == ["Weight_in_lbs"] and report.schema_problems == []
    assert report.dataset_drift is True  # 1 of 2 columns: share 0.5
    assert "mean" in weight.detail


@pytest.mark.parametrize(
    ("reference_rows", "tests"), [(300, ("ks", "chi2")), (3000, ("wasserstein", "jensenshannon"))]
)
def test_the_same_data_and_a_fresh_draw_of_it_do_not_drift(
    reference_rows: int, tests: tuple[str, str]
) -> None:
    for current in (cars(reference_rows, seed=1), cars(reference_rows, seed=7)):
        report = compare(reference(reference_rows), current, COLUMNS)
        rows = drift_rows(report)
        assert (rows["Weight_in_lbs"].test, rows["Origin"].test) == tests
        assert report.drifted_columns == [] and not report.dataset_drift and report.columns_compared == 2
    same = drift_rows(compare(reference(reference_rows), cars(reference_rows, seed=1), COLUMNS))
    if reference_rows <= drift.EXACT_TEST_ROWS:
        assert same["Weight_in_lbs"].score == same["Origin"].score == 1.0
    else:
        assert same["Origin"].score == 0.0 and same["Weight_in_lbs"].score < 0.01


def test_a_small_reference_is_tested_exactly_against_all_of_its_values() -> None:
    before, after = cars(300, seed=1), cars(200, seed=5, kilograms=20)
    row = drift_rows(compare(reference(300), after, COLUMNS))["Weight_in_lbs"]
    expected = ks_2samp(before["Weight_in_lbs"], after["Weight_in_lbs"]).pvalue
    assert row.score == pytest.approx(expected, rel=1e-5)


def test_the_threshold_replaces_the_default_of_the_test_that_runs() -> None:
    small = compare(reference(300), cars(300, 2, kilograms=150), COLUMNS, threshold=1e-200)
    assert drift_rows(small)["Weight_in_lbs"].threshold == 1e-200 / 2 and small.drifted_columns == []  # 2 p-values
    large = compare(reference(3000), cars(3000, 2, kilograms=1500), COLUMNS, threshold=5.0)
    assert drift_rows(large)["Weight_in_lbs"].threshold == 5.0 and large.drifted_columns == []
    strict = compare(reference(3000), cars(3000, seed=7), COLUMNS, threshold=0.001)
    assert strict.drifted_columns == ["Weight_in_lbs", "Origin"]  # any distance is at least 0.001


def test_new_rows_get_their_own_row_and_drift_the_column_on_their_own() -> None:
    current = cars(320, seed=1)  # the reference's 300 rows again, then 20 new cars weighed in kilograms
    current.iloc[300:] = cars(20, seed=9, kilograms=20).to_numpy()
    new = np.arange(320) >= 300
    report = compare(reference(300), current, COLUMNS, new_rows=new, reference_version=1)
    assert drift_rows(report)["Weight_in_lbs"].drifted is False  # 20 of 320 rows do not move the whole column
    assert drift_rows(report, "drift (new rows)")["Weight_in_lbs"].drifted is True
    assert report.drifted_columns == ["Weight_in_lbs"] and report.new_rows == 20
    assert report.to_json()["current"] == {"rows": 320, "new_rows": 20}
    none = compare(reference(300), current, COLUMNS, new_rows=np.zeros(320, dtype=bool))
    assert drift_rows(none, "drift (new rows)") == {} and none.new_rows == 0
    with pytest.raises(ValueError, match="new_rows has 3 entries for 320 rows"):
        compare(reference(300), current, COLUMNS, new_rows=[True, False, True])


def test_the_data_set_drifts_when_the_drifted_share_reaches_share() -> None:
    current = cars(300, 2, kilograms=150)
    assert compare(reference(300), current, COLUMNS, share=0.5).dataset_drift is True
    report = compare(reference(300), current, COLUMNS, share=0.6)
    assert report.dataset_drift is False and report.drift_share == 0.5


def test_schema_checks_name_added_missing_and_retyped_columns() -> None:
    current = cars(300, seed=1).rename(columns={"Origin": "Country"})
    current["Weight_in_lbs"] = current["Weight_in_lbs"].round().astype(int).astype(str).astype(object)
    columns = [Column("Weight_in_lbs", "category"), Column("Country", "category")]
    report = compare(reference(300), current, columns)
    assert report.schema_problems == [
        "column Country: not in the reference (added)",
        "column Origin: in the reference, not in this data",
        "column Weight_in_lbs: type changed from number to category",
    ]
    assert [row.check for row in report.rows] == ["column added", "column missing", "type changed"]
    assert all(row.drifted and row.test == "" for row in report.rows)
    assert report.columns_compared == 0 and report.dataset_drift is False  # a number against text: no test
    assert compare(reference(300), current, columns, schema="off").rows == []


def test_a_category_the_reference_never_had_is_named_with_its_share() -> None:
    current = cars(300, seed=1)
    current.loc[:29, "Origin"] = "Mars"
    report = compare(reference(300), current, COLUMNS)
    assert report.schema_problems == ["column Origin: categories the reference never had: Mars (10% of rows)"]
    row = next(row for row in report.rows if row.check == "new categories")
    assert (row.column, row.score, row.threshold) == ("Origin", 0.1, None)
    chi2 = drift_rows(report)["Origin"]  # a category only this data has: a column of the contingency table
    assert chi2.test == "chi2" and chi2.drifted and 0.0 <= chi2.score < 1e-6
    distance = drift_rows(compare(reference(3000), current, COLUMNS))["Origin"]
    assert distance.test == "jensenshannon" and distance.drifted and "Mars 0% -> 10%" in distance.detail


def test_new_categories_are_not_judged_against_a_reference_that_listed_only_its_commonest_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(profile, "MAX_CATEGORIES", 2)
    capped = json.loads(json.dumps(build_profile(cars(3000, 1), COLUMNS)))
    assert capped["columns"][1]["other"] > 0
    current = cars(3000, seed=7)
    current.loc[:899, "Origin"] = "Mars"
    report = compare(capped, current, COLUMNS)
    assert report.schema_problems == []  # Mars may be among the rare values the reference counted together
    assert drift_rows(report)["Origin"].drifted  # ... but the "other" share grew from 13% to about 39%


def test_a_missing_share_rising_by_more_than_a_tenth_is_a_problem() -> None:
    current = cars(300, seed=1)
    current.loc[:44, "Weight_in_lbs"] = np.nan  # 15 % gaps, the reference had none
    current.loc[:19, "Origin"] = ""  # 7 %: within 0.1
    report = compare(reference(300), current, COLUMNS)
    assert report.schema_problems == [
        "column Weight_in_lbs: 15% of rows missing, the reference 0% (up by more than 0.1)"
    ]
    row = next(row for row in report.rows if row.check == "missing share")
    assert (row.score, row.threshold) == (0.15, 0.1)


def test_odd_data_is_compared_without_raising() -> None:
    columns = [Column("flat", "number"), Column("empty", "number"), Column("c", "category")]
    before = pd.DataFrame(
        {"flat": [5.0] * 1500, "empty": np.arange(1500.0), "c": pd.Series(["a"] * 1500, dtype=object)}
    )
    profile_json = build_profile(before, columns)
    after = pd.DataFrame(
        {"flat": [5.0] * 10 + [6.0] * 10, "empty": [np.nan] * 20, "c": pd.Series(["a"] * 20, dtype=object)}
    )
    report = compare(profile_json, after, columns)
    rows = drift_rows(report)
    assert rows["flat"].test == "wasserstein" and rows["flat"].drifted  # std 0: divided by Evidently's floor
    assert np.isfinite(rows["flat"].score)
    assert (rows["empty"].score, rows["empty"].drifted) == (None, False)
    assert rows["empty"].detail == "no values to compare in this data"  # this data's column is empty
    assert "column empty: 100% of rows missing" in report.schema_problems[0]
    assert rows["c"].score == 0.0 and not rows["c"].drifted
    small = compare(build_profile(before.iloc[:10], columns), after.iloc[:, :], columns)
    assert drift_rows(small)["c"].score == 1.0  # one category on both sides: chi-squared has nothing to test
    empty = compare(profile_json, after.iloc[:0], columns)
    assert (
        empty.current_rows == 0 and all(row.score is None for row in empty.rows) and not empty.dataset_drift
    )
    with pytest.raises(ValueError, match="schema must be one of fail, warn, off"):
        compare(profile_json, after, columns, schema="strict")


def test_the_report_is_drift_json_and_round_trips() -> None:
    current = cars(320, seed=2, kilograms=20)
    current.loc[:9, "Origin"] = "Mars"
    report = compare(reference(300), current, COLUMNS, new_rows=np.arange(320) >= 300, reference_version=3)
    data = json.loads(json.dumps(report.to_json(), allow_nan=False))
    assert data["reference"] == {"version": 3, "rows": 300}
    assert data["settings"] == {"schema": "warn", "threshold": None, "share": 0.5, "on_drift": None}
    assert data["drifted_columns"] == ["Weight_in_lbs", "Origin"] and data["dataset_drift"] is True
    assert data["drift_share"] == 1.0 and data["outcome"] is None and data["accepted_by"] is None
    assert set(data["rows"][0]) == {"column", "check", "test", "score", "threshold", "drifted", "detail"}
    assert {row["test"] for row in data["rows"]} == {"ks", "chi2", ""}
    assert [{key: row[key] for key in ("column", "check", "drifted")} for row in data["rows"]] == [
        {"column": row.column, "check": row.check, "drifted": row.drifted} for row in report.rows
    ]


@pytest.mark.parametrize(
    ("found", "says"), [(2, "format 2; this mlspec reads format 1 only (a newer mlspec wrote it"), (None, "format None")]
)
def test_a_profile_of_another_format_is_refused_naming_the_version(found, says) -> None:
    other = {**reference(300), "format": found}
    with pytest.raises(DataError, match=r"production version 3's profile\.json has " + re.escape(says)):
        compare(other, cars(300, seed=2), COLUMNS, reference_version=3)


def test_log_lines_are_one_aligned_line_per_row() -> None:
    current = cars(320, seed=2, kilograms=20)
    current.loc[:9, "Origin"] = "Mars"
    report = compare(reference(300), current, COLUMNS, new_rows=np.arange(320) >= 300)
    lines = report.log_lines()
    assert len(lines) == len(report.rows) == 5
    starts = {line.index(row.check) for line, row in zip(lines, report.rows, strict=True)}
    assert len(starts) == 1  # the check column starts at the same place on every line
    assert "DRIFTED" in lines[1] and "< 0.0125" in lines[1] and "PROBLEM" in lines[2]  # 0.05 over 4 p-values


def test_the_wasserstein_distance_is_scipys() -> None:
    from scipy.stats import wasserstein_distance

    rng = np.random.default_rng(4)
    for reference, current in (
        (rng.normal(0, 1, 5000), rng.normal(0.3, 2, 20_000)),
        (
            rng.integers(0, 5, 40).astype(float),
            rng.integers(2, 9, 300).astype(float),
        ),  # ties within and across
        (np.array([5.0]), np.array([5.0, 7.0])),
    ):
        expected = wasserstein_distance(reference, current)
        assert drift.wasserstein(np.sort(reference), np.sort(current)) == pytest.approx(expected, rel=1e-9)


def test_p_value_tests_share_the_threshold_so_unchanged_wide_data_raises_no_alarm() -> None:
    """Twenty columns tested on all and on new rows are forty tests: at 0.05 each, a fresh draw of unchanged data
    flagged about two columns on every retrain. The run's tests share 0.05 (Bonferroni); a unit change still drifts."""
    rng = np.random.default_rng(3)
    wide = [Column(f"n{i}", "number") for i in range(20)]

    def draw(rows: int) -> pd.DataFrame:
        return pd.DataFrame({column.name: rng.normal(100, 15, rows) for column in wide})

    profile = json.loads(json.dumps(build_profile(draw(800), wide)))
    alarms = []
    for _ in range(5):
        current = draw(880)
        report = compare(profile, current, wide, new_rows=np.arange(880) >= 800)
        assert {row.threshold for row in report.rows} == {0.05 / 40}
        alarms += report.drifted_columns
    assert alarms == []
    current = draw(880)
    current.loc[800:, "n3"] /= LBS_PER_KG
    assert compare(profile, current, wide, new_rows=np.arange(880) >= 800).drifted_columns == ["n3"]


def test_an_empty_side_of_a_category_column_is_named_right() -> None:
    """The final read: a category column with no value in the reference said 'no values to compare in this data'."""
    column = [Column("c", "category", missing="most_frequent")]
    empty = pd.DataFrame({"c": pd.Series([""] * 50, dtype=object)})
    full = pd.DataFrame({"c": pd.Series(["a", "b"] * 25, dtype=object)})
    against_empty = drift_rows(compare(build_profile(empty, column), full, column))["c"]
    assert (against_empty.score, against_empty.detail) == (None, "no values to compare in the reference")
    on_empty = drift_rows(compare(build_profile(full, column), empty, column))["c"]
    assert (on_empty.score, on_empty.detail) == (None, "no values to compare in this data")

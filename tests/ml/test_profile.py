"""The data profile (issue 14 §3): the statistics drift tests read, plain JSON, the same for the same data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlspec.ml import profile
from mlspec.ml.columns import Column
from mlspec.ml.io_schema import number_statistics
from mlspec.ml.profile import build_profile

COLUMNS = [
    Column("weight", "number"),
    Column("cylinders", "integer"),
    Column("turbo", "boolean"),
    Column("origin", "category"),
]


def frame(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    weight = rng.normal(3000, 800, rows)
    weight[::10] = np.nan
    origin = rng.choice(np.array(["USA", "Japan", "Europe"], dtype=object), rows, p=[0.6, 0.25, 0.15])
    origin[::25] = ""
    return pd.DataFrame(
        {
            "weight": weight,
            "cylinders": rng.choice([4.0, 6.0, 8.0], rows),
            "turbo": rng.choice([0.0, 1.0], rows),
            "origin": pd.Series(origin, dtype=object),
        }
    )


def column(result: dict, name: str) -> dict:
    return next(entry for entry in result["columns"] if entry["name"] == name)


def test_numbers_carry_the_schema_statistics_quantiles_and_every_value_of_a_small_table() -> None:
    data = frame()
    result = build_profile(data, COLUMNS)
    assert result["format"] == profile.PROFILE_FORMAT and result["rows"] == 200
    weight = column(result, "weight")
    present = data["weight"].dropna().to_numpy()
    assert weight["type"] == "number" and weight["missing_count"] == 20 and weight["missing_share"] == 0.1
    assert {key: weight[key] for key in ("min", "max", "mean", "std")} == number_statistics(present)
    assert len(weight["quantiles"]) == profile.QUANTILES == 101
    np.testing.assert_allclose(weight["quantiles"], np.quantile(present, np.linspace(0, 1, 101)))
    assert weight["sample"] == sorted(present.tolist())  # at most sample_rows values: all of them
    assert column(result, "turbo")["type"] == "boolean" and "sample" in column(result, "turbo")


def test_a_large_column_is_sampled_uniformly_with_a_fixed_seed() -> None:
    values = np.arange(20_000, dtype=np.float64)
    data = pd.DataFrame({"x": values})
    first = build_profile(data, [Column("x", "number")], sample_rows=500)
    again = build_profile(data.sample(frac=1.0, random_state=3), [Column("x", "number")], sample_rows=500)
    sample = column(first, "x")["sample"]
    assert len(sample) == 500 and sample == sorted(sample) and len(set(sample)) == 500
    assert set(sample) <= set(values.tolist())
    assert (
        column(again, "x")["sample"] == sample
    )  # the row order does not matter: the same data, the same profile
    assert 8_000 < np.mean(sample) < 12_000  # spread over the whole range, not the first rows


def test_categories_count_values_most_frequent_first_without_gaps() -> None:
    data = frame()
    origin = column(build_profile(data, COLUMNS), "origin")
    counts = data["origin"][data["origin"] != ""].value_counts()
    assert origin["missing_count"] == 8 and origin["missing_share"] == 0.04
    assert origin["frequencies"] == {key: int(counts[key]) for key in counts.index}
    assert list(origin["frequencies"]) == sorted(
        origin["frequencies"], key=lambda k: -origin["frequencies"][k]
    )
    assert origin["other"] == 0 and origin["distinct"] == 3


def test_rare_categories_beyond_the_cap_share_the_other_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profile, "MAX_CATEGORIES", 2)
    data = pd.DataFrame({"c": pd.Series(["a"] * 5 + ["b"] * 4 + ["c"] * 2 + ["d"], dtype=object)})
    entry = column(build_profile(data, [Column("c", "category")]), "c")
    assert entry["frequencies"] == {"a": 5, "b": 4} and entry["other"] == 3 and entry["distinct"] == 4


def test_ties_are_ordered_by_value_and_numbers_in_a_category_count_as_their_text() -> None:
    data = pd.DataFrame({"year": pd.Series(["b", 1970, "a", 1970.0, "1970", None], dtype=object)})
    entry = column(build_profile(data, [Column("year", "category")]), "year")
    assert entry["frequencies"] == {"1970": 3, "a": 1, "b": 1} and entry["missing_count"] == 1


def test_a_column_with_no_value_and_an_empty_table_profile_without_numbers() -> None:
    data = pd.DataFrame({"x": [np.nan, np.nan], "c": pd.Series(["", ""], dtype=object)})
    result = build_profile(data, [Column("x", "number"), Column("c", "category")])
    assert column(result, "x") == {
        "name": "x",
        "type": "number",
        "missing_count": 2,
        "missing_share": 1.0,
        "min": None,
        "max": None,
        "mean": None,
        "std": None,
        "quantiles": [],
        "sample": [],
    }
    assert column(result, "c")["frequencies"] == {} and column(result, "c")["missing_share"] == 1.0
    empty = build_profile(data.iloc[:0], [Column("x", "number"), Column("c", "category")])
    assert empty["rows"] == 0 and column(empty, "x")["missing_share"] == 0.0


def test_the_profile_is_plain_json_that_round_trips() -> None:
    result = build_profile(frame(), COLUMNS)
    text = json.dumps(result, allow_nan=False)
    assert json.loads(text) == result

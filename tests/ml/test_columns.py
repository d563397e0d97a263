"""mlspec.ml.columns: declared and inferred column types, missing-value strategies, and the normalized raw
feature table (issue 13 §1)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from mlspec.errors import DataError
from mlspec.ml.columns import (
    COLUMN_TYPES,
    MAX_INFERRED_CATEGORIES,
    MISSING_STRATEGIES,
    Column,
    declared_columns,
    raw_features,
    resolve_columns,
)

SOURCE = "file:///data/penguins.csv"


def penguins() -> pd.DataFrame:
    """A few penguins as pandas reads them from CSV: text, gaps, an integer year, a missing label."""
    return pd.DataFrame(
        {
            "species": ["Adelie", "Gentoo", "Chinstrap", "Adelie", None, "Gentoo"],
            "island": ["Torgersen", "Biscoe", "Dream", None, "Dream", "Biscoe"],
            "bill_length_mm": [39.1, np.nan, 46.5, 36.7, 40.0, 47.3],
            "sex": ["male", "female", None, "female", "male", "male"],
            "year": [2007, 2008, 2009, 2007, 2008, 2009],
            "tagged": [True, False, True, True, False, False],
        }
    )


# --------------------------------------------------------------------------- declarations


def test_vocabulary():
    assert COLUMN_TYPES == ("number", "integer", "boolean", "category")
    assert MISSING_STRATEGIES == ("error", "mean", "median", "most_frequent", "constant", "drop_row")
    assert MAX_INFERRED_CATEGORIES == 50
    assert [Column("c", t).datatype for t in COLUMN_TYPES] == ["FP32", "INT64", "BOOL", "BYTES"]


def test_declared_shapes():
    assert declared_columns(None, ["year"]) == {}
    assert declared_columns("a", None) == {"a": None}
    assert declared_columns(["a", "b"], None) == {"a": None, "b": None}
    declared = declared_columns(
        {
            "island": {"type": "category"},
            "bill_length_mm": {"type": "number", "missing": "median"},
            "body_mass_g": "number",
            "sex": {
                "type": "category",
                "missing": {"constant": "unknown"},
                "encode": "one_hot",
                "max_categories": 10,
            },
            "year": {"type": "category", "missing": {"constant": 0}, "encode": "ordinal"},
            "guess": None,
        },
        None,
    )
    assert declared["island"] == Column("island", "category")
    assert declared["bill_length_mm"] == Column("bill_length_mm", "number", missing="median")
    assert declared["body_mass_g"] == Column("body_mass_g", "number")
    assert declared["sex"] == Column(
        "sex", "category", missing="constant", constant="unknown", max_categories=10
    )
    assert declared["year"].constant == "0" and declared["year"].encode == "ordinal"  # a category fills text
    assert declared["guess"] is None
    assert list(declared) == ["island", "bill_length_mm", "body_mass_g", "sex", "year", "guess"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"a": "text"}, "data.features.a: type 'text' is not known"),
        ({"a": {"missing": "mean", "encode": "ordinal", "max_categories": 3}}, "data.features.a: max_categories"),
        ({"a": {"missing": "constant"}}, "data.features.a.missing: give the value"),
        ({"a": {"type": "number", "missing": "zero"}}, "data.features.a: missing 'zero' is not known"),
        ({"a": {"type": "category", "missing": "mean"}}, "missing: mean needs numbers"),
        ({"a": {"type": "category", "missing": "median"}}, "missing: median needs numbers"),
        ({"a": {"type": "number", "missing": "constant"}}, "data.features.a.missing: give the value"),
        (
            {"a": {"type": "number", "missing": {"constant": "x"}}},
            "the constant 'x' does not fit a number column",
        ),
        ({"a": {"type": "integer", "missing": {"constant": 1.5}}}, "does not fit a integer column"),
        ({"a": {"type": "boolean", "missing": {"constant": 1}}}, "does not fit a boolean column"),
        ({"a": {"type": "number", "missing": {"value": 1}}}, "a mapping here is {constant: value}"),
        (
            {"a": {"type": "number", "encode": "one_hot", "max_categories": 3}},
            "max_categories applies to one-hot",
        ),
        ({"a": {"type": "number", "encode": "ordinal"}}, "encode applies to category columns only"),
        ({"a": {"type": "category", "encode": "hash"}}, "encode 'hash' is not known"),
        ({"a": {"type": "category", "encode": "ordinal", "max_categories": 3}}, "max_categories applies"),
        ({"a": {"type": "category", "max_categories": 1}}, "at least 2"),
        ({"a": {"type": "category", "max_categories": True}}, "at least 2"),
        ({"a": {"type": "number", "fill": 0}}, "unknown key fill"),
        ({"a": 3}, "give a type"),
    ],
)
def test_declaration_errors_name_the_place(spec, message):
    with pytest.raises(DataError, match=None) as caught:
        declared_columns(spec, None)
    assert message in str(caught.value)


def test_every_fill_strategy_is_accepted_where_it_fits():
    for missing in ("error", "mean", "median", "most_frequent", "drop_row"):
        for column_type in ("number", "integer", "boolean"):
            assert (
                declared_columns({"a": {"type": column_type, "missing": missing}}, None)["a"].missing
                == missing
            )
    for missing in ("error", "most_frequent", "drop_row"):
        assert declared_columns({"a": {"type": "category", "missing": missing}}, None)["a"].missing == missing
    assert declared_columns({"a": {"type": "integer", "missing": {"constant": 3}}}, None)["a"].constant == 3
    assert (
        declared_columns({"a": {"type": "boolean", "missing": {"constant": False}}}, None)["a"].constant
        is False
    )


def test_exclude_beside_features_may_not_name_a_listed_column():
    # The issue's own example writes a features mapping and exclude: [year] together.
    assert list(declared_columns({"a": "number"}, ["year"])) == ["a"]
    with pytest.raises(DataError, match="data.exclude names 'a', which data.features lists"):
        declared_columns(["a"], ["a", "b"])


def test_json_round_trip():
    column = Column(
        "sex", "category", missing="constant", constant="unknown", max_categories=4, inferred=True
    )
    assert Column.from_json(column.to_json()) == column
    assert column.to_json()["missing"] == "constant"


# --------------------------------------------------------------------------- inference


def test_inference_numbers_booleans_text():
    columns = resolve_columns(SOURCE, penguins(), None, "species", None)
    assert [(c.name, c.type, c.inferred) for c in columns] == [
        ("island", "category", True),
        ("bill_length_mm", "number", True),
        ("sex", "category", True),
        ("year", "number", True),
        ("tagged", "boolean", True),
    ]
    assert all(c.missing == "error" and c.encode == "one_hot" for c in columns)


def test_declared_columns_keep_their_declaration_and_order():
    columns = resolve_columns(
        SOURCE,
        penguins(),
        {
            "year": {"type": "category"},
            "bill_length_mm": {"type": "number", "missing": "mean"},
            "island": None,
        },
        "species",
        None,
    )
    assert columns == (
        Column("year", "category"),
        Column("bill_length_mm", "number", missing="mean"),
        Column("island", "category", inferred=True),
    )


def test_exclude_and_label_default():
    frame = penguins().rename(columns={"species": "label"})
    assert [c.name for c in resolve_columns(SOURCE, frame, None, None, ["year", "tagged"])] == [
        "island",
        "bill_length_mm",
        "sex",
    ]
    with pytest.raises(DataError, match="data.exclude 'yaer' is not a column of .*did you mean 'year'"):
        resolve_columns(SOURCE, frame, None, None, ["yaer"])
    with pytest.raises(DataError, match="data.features 'Island' is not a column .*did you mean 'island'"):
        resolve_columns(SOURCE, frame, ["Island"], None, None)
    with pytest.raises(DataError, match="set data.label"):
        resolve_columns(SOURCE, penguins(), None, None, None)
    with pytest.raises(DataError, match="also listed in data.features"):
        resolve_columns(SOURCE, penguins(), ["species"], "species", None)


def test_text_with_up_to_50_values_is_a_category_more_is_an_error():
    frame = pd.DataFrame(
        {"y": [0, 1] * 30, "few": [f"v{i % 50}" for i in range(60)], "name": [f"car {i}" for i in range(60)]}
    )
    with pytest.raises(DataError) as caught:
        resolve_columns(SOURCE, frame, None, "y", None)
    message = str(caught.value)
    assert "column 'name' is text with 60 distinct values, more than the 50" in message
    assert "declare its type under data.features" in message and "add it to data.exclude" in message
    columns = resolve_columns(SOURCE, frame, None, "y", ["name"])
    assert [(c.name, c.type) for c in columns] == [("few", "category")]
    with pytest.raises(DataError, match="leave it out of data.features"):
        resolve_columns(SOURCE, frame, ["few", "name"], "y", None)
    assert resolve_columns(SOURCE, frame, {"name": "category"}, "y", None)[0].type == "category"


@pytest.mark.parametrize(
    "dates",
    [
        ["1970-01-01", "1971-01-01", None],
        ["05/01/2024", "06/01/2024", "07/01/2024"],
        pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]),
    ],
)
def test_dates_are_an_error_that_says_what_to_do(dates):
    frame = pd.DataFrame({"y": [0, 1, 0], "Year": dates})
    with pytest.raises(DataError, match="column 'Year' holds dates; .*add it to data.exclude"):
        resolve_columns(SOURCE, frame, None, "y", None)
    with pytest.raises(DataError, match="holds dates"):
        resolve_columns(SOURCE, frame, {"Year": "number"}, "y", None)
    assert resolve_columns(SOURCE, frame, {"Year": "category"}, "y", None)[0].type == "category"


def test_dates_in_a_parquet_dictionary_column_are_dates():
    frame = pd.DataFrame({"y": [0, 1, 0], "day": pd.Categorical(["2024-01-01", "2024-01-02", None])})
    with pytest.raises(DataError, match="column 'day' holds dates"):
        resolve_columns(SOURCE, frame, None, "y", None)


def test_version_strings_are_not_dates():
    frame = pd.DataFrame({"y": [0, 1, 0], "v": ["1.2.10", "1.3.0", "2.0.1"]})
    assert resolve_columns(SOURCE, frame, None, "y", None)[0].type == "category"


def test_numbers_and_booleans_in_object_columns():
    from decimal import Decimal

    frame = pd.DataFrame(
        {"y": [0, 1, 0], "price": [Decimal("1.5"), None, Decimal("3")], "ok": [True, None, False]}
    )
    columns = resolve_columns(SOURCE, frame, None, "y", None)
    assert [(c.name, c.type) for c in columns] == [("price", "number"), ("ok", "boolean")]
    filled = tuple(Column(c.name, c.type, missing="most_frequent") for c in columns)
    features, *_ = raw_features(SOURCE, frame, filled, "y")
    np.testing.assert_array_equal(features["price"], [1.5, np.nan, 3.0])
    np.testing.assert_array_equal(features["ok"], [1.0, np.nan, 0.0])


# --------------------------------------------------------------------------- the raw table


def test_raw_features_normalizes_each_type():
    frame = pd.DataFrame(
        {
            "y": ["a", "b", "a", "b"],
            "n": [1.5, np.nan, 2.0, 3.0],
            "i": [1, 2, 3, 4],
            "b": [True, False, True, False],
            "yes": ["yes", "no", "Y", None],
            "c": ["x", None, "z", "x"],
            "year": [2007.0, 2008.0, np.nan, 2007.0],
        }
    )
    columns = (
        Column("n", "number", missing="mean"),
        Column("i", "integer"),
        Column("b", "boolean"),
        Column("yes", "boolean", missing="most_frequent"),
        Column("c", "category", missing="constant", constant="?"),
        Column("year", "category", missing="most_frequent"),
    )
    features, labels, *_ = raw_features(SOURCE, frame, columns, "y")
    assert list(features.columns) == ["n", "i", "b", "yes", "c", "year"]
    assert list(labels) == ["a", "b", "a", "b"]
    for name in ("n", "i", "b", "yes"):
        assert features[name].dtype == np.float64
    np.testing.assert_array_equal(features["n"], [1.5, np.nan, 2.0, 3.0])
    np.testing.assert_array_equal(features["b"], [1.0, 0.0, 1.0, 0.0])
    np.testing.assert_array_equal(features["yes"], [1.0, 0.0, 1.0, np.nan])
    assert features["c"].dtype == object and list(features["c"]) == ["x", "", "z", "x"]
    assert list(features["year"]) == ["2007", "2008", "", "2007"]  # numbers in a category become their text
    assert all(type(v) is str for v in features["year"])
    assert list(features.index) == [0, 1, 2, 3]


def test_parquet_categoricals_become_text():
    frame = pd.DataFrame({"y": [0, 1, 0], "c": pd.Categorical(["x", None, "y"])})
    features, *_ = raw_features(SOURCE, frame, (Column("c", "category", missing="most_frequent"),), "y")
    assert list(features["c"]) == ["x", "", "y"]


def test_missing_error_names_the_column_rows_and_strategies():
    frame = penguins()
    columns = resolve_columns(SOURCE, frame, None, "species", None)
    with pytest.raises(DataError) as caught:
        raw_features(SOURCE, frame, columns, "species")
    message = str(caught.value)
    assert "column island has 1 missing value (data row 4)" in message
    assert "set data.features.island.missing to most_frequent, {constant: ...} or drop_row" in message
    assert "island: {type: category, missing: most_frequent}" in message  # an inferred column's declaration
    number = Column("bill_length_mm", "number")
    with pytest.raises(
        DataError,
        match=r"column bill_length_mm has 1 missing value \(data row 2\); set "
        r"data.features.bill_length_mm.missing to mean, median, most_frequent",
    ):
        raw_features(SOURCE, frame, (number,), "species")


def test_unlabeled_and_drop_row_rows_are_dropped_and_counted(caplog):
    frame = penguins()
    columns = (
        Column("island", "category", missing="drop_row"),
        Column("bill_length_mm", "number", missing="drop_row"),
        Column("sex", "category", missing="most_frequent"),
    )
    with caplog.at_level(logging.INFO, logger="mlspec.ml.columns"):
        features, labels, kept, dropped = raw_features(SOURCE, frame, columns, "species")
    # the drops are reported by reason (prepare_data's lineage) with the rows kept of the source
    assert dropped == {"no label": 1, "missing in island (drop_row)": 1, "missing in bill_length_mm (drop_row)": 1}
    assert kept.tolist() == [True, False, True, False, False, True]
    assert list(labels) == [
        "Adelie",
        "Chinstrap",
        "Gentoo",
    ]  # rows 1 (no bill), 3 (no island), 4 (no label) dropped
    assert list(features["island"]) == ["Torgersen", "Dream", "Biscoe"]
    assert list(features["sex"]) == ["male", "", "male"]
    assert list(features.index) == [0, 1, 2]
    text = caplog.text
    assert "dropped 1 of 6 rows that have no label (species)" in text
    assert "dropped 1 rows with no island value (missing: drop_row)" in text
    assert "dropped 1 rows with no bill_length_mm value (missing: drop_row)" in text
    assert "3 of 6 rows dropped in all, 3 left" in text


def test_a_gap_in_a_dropped_row_is_not_an_error():
    frame = pd.DataFrame({"y": [0, 1, None], "a": [1.0, 2.0, np.nan], "b": [1.0, np.nan, 3.0]})
    features, labels, *_ = raw_features(
        SOURCE, frame, (Column("a", "number"), Column("b", "number", missing="drop_row")), "y"
    )
    assert list(features["a"]) == [1.0] and list(labels) == [0]


def test_no_rows_left_is_an_error():
    frame = pd.DataFrame({"y": [0, 1], "a": [np.nan, 1.0], "b": [2.0, np.nan]})  # each row has a gap
    drop = (Column("a", "number", missing="drop_row"), Column("b", "number", missing="drop_row"))
    with pytest.raises(DataError, match="no rows left"):
        raw_features(SOURCE, frame, drop, "y")


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        (Column("a", "number"), ["1", "x", "3"], "a number column, but 1 of its values are not numbers"),
        (Column("a", "integer"), [1.0, 2.5, 3.0], "an integer column, but 1 of its values have a fraction"),
        (
            Column("a", "boolean"),
            ["yes", "maybe", "no"],
            "a boolean column, but 1 of its values are not true/false",
        ),
        (Column("a", "boolean"), [0, 2, 1], "a boolean column, but 1 of its values"),
        (Column("a", "number"), [1.0, np.inf, 3.0], "1 infinite values"),
    ],
)
def test_values_that_do_not_fit_the_declared_type(column, values, message):
    frame = pd.DataFrame({"y": [0, 1, 0], "a": values})
    with pytest.raises(DataError, match="data row 2") as caught:
        raw_features(SOURCE, frame, (column,), "y")
    assert message in str(caught.value)


def test_numbers_as_text_are_numbers():
    frame = pd.DataFrame({"y": [0, 1, 0], "a": ["1", "", "3.5"]})
    features, *_ = raw_features(SOURCE, frame, (Column("a", "number", missing="median"),), "y")
    np.testing.assert_array_equal(features["a"], [1.0, np.nan, 3.5])


def test_a_csv_as_pandas_reads_it(tmp_path):
    import io

    text = "species,island,bill,sex,year\nAdelie,Torgersen,39.1,male,2007\nGentoo,,46.5,,2008\n,Dream,40,female,2009\n"
    frame = pd.read_csv(io.StringIO(text))
    columns = resolve_columns(
        SOURCE,
        frame,
        {
            "island": {"type": "category", "missing": "most_frequent"},
            "sex": {"type": "category", "missing": {"constant": "unknown"}},
            "bill": "number",
            "year": "category",
        },
        "species",
        None,
    )
    features, labels, *_ = raw_features(SOURCE, frame, columns, "species")
    assert list(labels) == ["Adelie", "Gentoo"]
    assert features.to_dict("list") == {
        "island": ["Torgersen", ""],
        "sex": ["male", ""],
        "bill": [39.1, 46.5],
        "year": ["2007", "2008"],
    }
    assert [str(features[c].dtype) for c in features] == ["object", "object", "float64", "object"]


def test_importing_the_module_loads_no_numpy_or_pandas():
    import subprocess
    import sys

    code = "import sys, mlspec.ml.columns; print(sorted(m for m in ('numpy', 'pandas') if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]"


def test_data_rows_count_from_one():
    from mlspec.ml.columns import data_rows

    assert data_rows(np.array([False, True])) == "data row 2"
    assert data_rows(np.array([True, False, True, True])) == "data rows 1, 3 and 4"
    assert data_rows(np.ones(7, bool)) == "data rows 1, 2, 3, 4, 5 ..."


@pytest.mark.parametrize(
    "column",
    [
        Column("empty", "number", missing="mean"),
        Column("empty", "category", missing="most_frequent"),
        Column("empty", "boolean", missing="drop_row"),
        Column("empty", "number", inferred=True),
    ],
)
def test_a_column_with_no_value_is_an_error_that_says_to_exclude_it(column):
    frame = pd.DataFrame({"y": [0, 1, 0], "a": [1.0, 2.0, 3.0], "empty": [None, None, None]})
    with pytest.raises(DataError) as caught:
        raw_features(SOURCE, frame, (Column("a", "number"), column), "y")
    message = str(caught.value)
    if column.missing == "error":  # its gaps are the error; the message says it has no value at all
        assert "column empty has 3 missing values (data rows 1, 2 and 3)" in message
        assert "no row here has a value: if none has, add it to data.exclude instead" in message
    else:
        assert "column empty has no value in any of the 3 rows; a model learns nothing from it" in message
        assert "add it to data.exclude" in message


def test_a_column_whose_values_are_all_in_unlabeled_rows_has_no_value():
    frame = pd.DataFrame({"y": [0, None, 1], "a": [1.0, 2.0, 3.0], "b": [np.nan, 5.0, np.nan]})
    with pytest.raises(DataError, match="column b has no value in any of the 2 rows"):
        raw_features(SOURCE, frame, (Column("a", "number"), Column("b", "number", missing="median")), "y")


def test_one_gap_rule_and_one_category_text():
    from mlspec.ml.columns import category_text, gaps, is_gap

    missing = [None, float("nan"), np.float32("nan"), pd.NA, pd.NaT, "", "  "]
    present = [0, 0.0, False, "x", " x ", "NA", np.int64(3)]
    assert [is_gap(v) for v in missing] == [True] * len(missing)
    assert [is_gap(v) for v in present] == [False] * len(present)
    assert gaps(pd.Series(missing + present, dtype=object)).tolist() == [True] * 7 + [False] * 7
    assert [category_text(v) for v in (2007, 2007.0, np.float64(2007.0), 1.5, True, "02134")] == [
        "2007", "2007", "2007", "1.5", "True", "02134"
    ]
    # raw_features holds a category by the same rules: spaces are a gap, numbers their text
    frame = pd.DataFrame({"y": [0, 1, 0], "c": [" ", 2007.0, "b"]})
    features, *_ = raw_features(SOURCE, frame, (Column("c", "category", missing="most_frequent"),), "y")
    assert list(features["c"]) == ["", "2007", "b"]


def test_with_features_omitted_the_gaps_message_offers_the_mapping_of_every_feature():
    frame = penguins()
    with pytest.raises(DataError) as caught:
        raw_features(SOURCE, frame, resolve_columns(SOURCE, frame, None, "species", None), "species")
    # declaring only the columns with gaps would train on them alone: the mapping keeps every feature
    assert str(caught.value).endswith(
        "; a mapping names the features, so list them all (a name with no value keeps its inferred type): "
        "data.features: {island: {type: category, missing: most_frequent}, bill_length_mm: {type: number, missing: "
        "median}, sex: {type: category, missing: most_frequent}, year: null, tagged: null}"
    )
    assert declared_columns({"island": {"type": "category", "missing": "most_frequent"}, "year": None})["year"] is None


def test_a_boolean_with_gaps_is_offered_most_frequent_first():
    frame = pd.DataFrame({"y": [0, 1, 0], "flag": [True, None, False], "x": [1.0, 2.0, 3.0]})
    columns = resolve_columns(SOURCE, frame, {"flag": None, "x": "number"}, "y", None)
    with pytest.raises(DataError) as caught:
        raw_features(SOURCE, frame, columns, "y")
    assert str(caught.value).endswith(
        "set data.features.flag.missing to most_frequent, {constant: ...} or drop_row "
        "(declare it under data.features, e.g. flag: {type: boolean, missing: most_frequent})"
    )


def test_a_declaration_without_a_type_keeps_its_settings_and_infers_the_type():
    frame = pd.DataFrame(
        {
            "y": [0, 1, 0],
            "n": [1.5, np.nan, 2.5],
            "b": [True, None, False],
            "c": ["x", None, "y"],
        }
    )
    features = {
        "n": {"missing": "median"},
        "b": {"missing": "most_frequent"},
        "c": {"missing": {"constant": 0}, "encode": "ordinal"},
    }
    assert declared_columns(features)["n"] == Column("n", None, missing="median")
    columns = resolve_columns(SOURCE, frame, features, "y", None)
    assert columns == (
        Column("n", "number", missing="median", inferred=True),
        Column("b", "boolean", missing="most_frequent", inferred=True),
        Column("c", "category", missing="constant", constant="0", encode="ordinal", inferred=True),
    )
    raw_features(SOURCE, frame, columns, "y")  # every gap has a fill
    with pytest.raises(DataError, match="data.features.c: missing: median needs numbers, but the column is a category"):
        resolve_columns(SOURCE, frame, {"c": {"missing": "median"}}, "y", None)
    with pytest.raises(DataError, match="data.features.n: encode applies to category columns only, not to a number"):
        resolve_columns(SOURCE, frame, {"n": {"encode": "ordinal"}}, "y", None)


def test_a_mapping_of_declarations_without_types_gets_no_mapping_that_would_drop_them():
    frame = pd.DataFrame({"y": [0, 1, 0], "n": [1.5, np.nan, 2.5], "m": [np.nan, 1.0, 2.0]})
    columns = resolve_columns(SOURCE, frame, {"n": {"missing": "median"}, "m": None}, "y", None)
    with pytest.raises(DataError) as caught:
        raw_features(SOURCE, frame, columns, "y")
    assert str(caught.value).endswith("(declare it under data.features, e.g. m: {type: number, missing: median})")


@pytest.mark.parametrize(("features", "exclude", "hint"), [
    (None, None, "add it to data.exclude"),
    (["label", "a"], None, "leave it out of data.features"),
])
def test_a_feature_named_as_a_model_output_is_refused_before_training(features, exclude, hint):
    frame = pd.DataFrame({"a": [1.0, 2.0], "label": ["x", "y"], "species": ["s", "t"]})
    with pytest.raises(DataError, match=f"column 'label' has the name of a model output .*; {hint}"):
        resolve_columns("t.csv", frame, features, "species", exclude)
    assert [c.name for c in resolve_columns("t.csv", frame, None, "species", ["label"])] == ["a"]

"""Input and output schemas of real data sets: names, training-split statistics, ONNX outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlspec.ml.data import Dataset, load_source, split
from mlspec.ml.io_schema import SchemaError, input_changes, input_schema, output_schema


def _never(uri: str) -> bytes:
    raise AssertionError(f"unexpected read of {uri}")


def _dataset(source: str, task: str) -> Dataset:
    x, y, class_names, feature_names, *_ = load_source(
        source, fmt=None, features=None, label=None, read_bytes=_never, task=task
    )
    return split(
        x,
        y,
        validation=0.2,
        test=0.2,
        seed=0,
        stratify=task == "classification",
        class_names=class_names,
        feature_names=feature_names,
        task=task,
    )


def _six_digits(value: float) -> float:
    return float(f"{value:.6g}")


@pytest.fixture(scope="module")
def iris() -> Dataset:
    return _dataset("builtin:iris", "classification")


def test_iris_input_schema_is_measured_on_the_training_split(iris: Dataset) -> None:
    schema = input_schema(iris)
    assert (schema["name"], schema["datatype"], schema["shape"]) == ("input", "FP32", [-1, 4])
    names = [f["name"] for f in schema["features"]]
    assert names == ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
    x = iris.x_train.astype(np.float64)
    for index, feature in enumerate(schema["features"]):
        column = x[:, index]
        assert feature["dtype"] == "FP32" and feature["missing"] == 0
        assert feature["min"] == _six_digits(column.min())
        assert feature["max"] == _six_digits(column.max())
        assert feature["mean"] == pytest.approx(column.mean(), rel=1e-5)
        assert feature["std"] == pytest.approx(column.std(), rel=1e-5)
    # Training split only: the whole data set has other means.
    whole = np.concatenate([iris.x_train, iris.x_val, iris.x_test]).astype(np.float64)
    assert any(
        f["mean"] != _six_digits(whole[:, i].mean()) for i, f in enumerate(schema["features"])
    )
    json.dumps(schema, allow_nan=False)


def test_iris_output_schema_from_an_onnx_signature(iris: Dataset) -> None:
    signature = {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
            {"name": "label", "datatype": "INT64", "shape": [-1]},
        ],
    }
    schema = output_schema("classification", list(iris.class_names), signature)
    assert schema == {
        "task": "classification",
        "outputs": signature["outputs"],
        "class_names": ["setosa", "versicolor", "virginica"],
    }
    json.dumps(schema, allow_nan=False)


def test_regression_schemas() -> None:
    diabetes = _dataset("builtin:diabetes", "regression")
    schema = input_schema(diabetes)
    assert schema["shape"] == [-1, 10]
    assert [f["name"] for f in schema["features"]][:3] == ["age", "sex", "bmi"]
    age = diabetes.x_train[:, 0].astype(np.float64)
    assert schema["features"][0]["min"] == _six_digits(age.min())
    assert schema["features"][0]["mean"] == pytest.approx(age.mean(), rel=1e-5)
    json.dumps(schema, allow_nan=False)
    signature = {"outputs": [{"name": "prediction", "datatype": "FP32", "shape": [-1, 1]}]}
    out = output_schema("regression", (), signature)
    assert out == {"task": "regression", "outputs": signature["outputs"], "class_names": []}
    with pytest.raises(SchemaError, match="a regression model must answer prediction"):
        output_schema("regression", (), {"outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]}]})


def test_unnamed_multi_axis_features_and_missing_values() -> None:
    x = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2) / 7.0
    x[1, 2, 1] = np.nan
    empty_y = np.zeros(0, dtype=np.int64)
    dataset = Dataset(
        x_train=x,
        y_train=np.array([0, 1]),
        x_val=x[:0],
        y_val=empty_y,
        x_test=x[:0],
        y_test=empty_y,
        class_names=("a", "b"),
    )
    schema = input_schema(dataset)
    assert schema["shape"] == [-1, 3, 2]
    features = schema["features"]
    assert [f["name"] for f in features] == [f"x[{i}]" for i in range(6)]
    assert features[1] == {
        "name": "x[1]",
        "dtype": "FP32",
        "min": _six_digits(1 / 7),
        "max": _six_digits(7 / 7),
        "mean": _six_digits(4 / 7),
        "std": _six_digits(3 / 7),
        "missing": 0,
    }
    # The NaN is counted and left out of the statistics; a column with no numbers gets nulls.
    assert features[5]["missing"] == 1 and features[5]["mean"] == _six_digits(5 / 7)
    x[:, 0, 0] = np.nan
    nulls = input_schema(dataset)["features"][0]
    assert nulls["missing"] == 2 and nulls["min"] is None and nulls["std"] is None
    json.dumps(input_schema(dataset), allow_nan=False)


def _columns(**datatypes: str) -> dict:
    return {"columns": [{"name": name, "datatype": datatype, "shape": [-1, 1]} for name, datatype in datatypes.items()]}


def test_input_changes_name_what_a_client_must_send_differently() -> None:
    before = _columns(island="FP32", bill_length_mm="FP32", year="INT64")
    after = _columns(island="BYTES", bill_length_mm="FP32", bill_depth_mm="FP32")
    assert input_changes(before, after) == "+ bill_depth_mm (FP32); - year; island FP32 -> BYTES"
    assert input_changes(after, after) == ""
    # A version published without an input schema cannot be compared: nothing is claimed.
    assert input_changes({}, after) == ""


def test_input_changes_from_one_input_to_columns_and_of_its_shape() -> None:
    single = {"name": "input", "datatype": "FP32", "shape": [-1, 4], "features": []}
    assert input_changes(single, _columns(bill="FP32")) == "+ bill (FP32); - input"
    assert input_changes(single, {**single, "shape": [-1, 5]}) == "input FP32 [-1, 4] -> FP32 [-1, 5]"
    assert input_changes(single, dict(single)) == ""


def test_class_changes_name_the_classes_and_the_label_numbers_that_change_meaning():
    """Issue 14: a client reading `label: 1` must hear when it starts meaning Chinstrap instead of Gentoo."""
    from mlspec.ml.io_schema import class_changes

    before = {"class_names": ["Adelie", "Gentoo"]}
    after = {"class_names": ["Adelie", "Chinstrap", "Gentoo"]}
    assert class_changes(before, after) == (
        "classes added: Chinstrap; label 1 now means Chinstrap (was Gentoo), label 2 is new (Gentoo)"
    )
    named = {"label_datatype": "BYTES"}  # label answers the class name: numbers mean nothing to a client
    assert class_changes({**before, **named}, {**after, **named}) == "classes added: Chinstrap"
    assert class_changes(after, before) == "classes removed: Chinstrap; label 1 now means Gentoo (was Chinstrap)"
    assert class_changes(before, before) == "" and class_changes({}, after) == "" and class_changes(before, {}) == ""


def test_class_diff_is_the_one_class_diff_and_its_words_the_one_wording():
    """The champion's verdict, the version's tags and a release's endpoint change all say a class-set change the
    same way (io_schema.class_diff and class_diff_words)."""
    from mlspec.champion import verdict_line
    from mlspec.ml.io_schema import class_diff, class_diff_words

    diff = class_diff(["Adelie", "Gentoo", "Emperor"], ["Adelie", "Chinstrap", "Gentoo"])
    assert diff == {"classes_added": ["Chinstrap"], "classes_removed": ["Emperor"]}
    assert class_diff_words(diff) == "classes added: Chinstrap; classes removed: Emperor"
    assert class_diff_words({"classes_added": [], "classes_removed": ["Emperor"]}) == "classes removed: Emperor"
    assert class_diff(["a"], ["a"]) == {"classes_added": [], "classes_removed": []} and class_diff_words({}) == ""
    assert class_diff([], ["a"]) == {} and class_diff(["a"], []) == {}
    verdict = {"decision": "champion_holds", "champion_version": 1, "metric": "accuracy", "champion": 0.9,
               "challenger": 0.8, "min_delta": 0.0, **diff}
    assert verdict_line("penguins", verdict).endswith("; classes added: Chinstrap; classes removed: Emperor")

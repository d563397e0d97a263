"""Loading, splitting and label steps with real files read through file:// URIs."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlspec.errors import MlspecError
from mlspec.ml.data import (
    FEATURE_STEPS,
    DataError,
    Dataset,
    apply_label_steps,
    feature_steps,
    infer_format,
    load_source,
    parse_steps,
    scale_factors,
    split,
)
from mlspec.vocabulary import DATA_SOURCES

Reader = Callable[[str], bytes]


def _never(uri: str) -> bytes:
    raise AssertionError(f"unexpected read of {uri}")


def test_builtin_digits_loads_raw_pixels() -> None:
    x, y, class_names, feature_names, *_ = load_source(
        "builtin:digits", fmt=None, features=None, label=None, read_bytes=_never
    )
    assert x.shape == (1797, 64) and x.dtype == np.float32
    assert y.dtype == np.int64 and set(np.unique(y)) == set(range(10))
    # Raw values, not scaled: the endpoint takes these same numbers.
    assert x.min() == 0.0 and x.max() == 16.0
    assert class_names == tuple(str(i) for i in range(10))
    assert len(feature_names) == 64 and feature_names[0] == "pixel_0_0"


def test_builtin_iris_uses_species_names() -> None:
    x, y, class_names, feature_names, *_ = load_source(
        "builtin:iris", fmt=None, features=None, label=None, read_bytes=_never
    )
    assert x.shape == (150, 4)
    assert class_names == ("setosa", "versicolor", "virginica")
    assert Counter(y.tolist()) == {0: 50, 1: 50, 2: 50}
    assert feature_names[0] == "sepal length (cm)"


def test_unknown_builtin_lists_known_sources() -> None:
    with pytest.raises(DataError, match="'builtin:titanic' is not a known.*builtin:digits.*builtin:diabetes"):
        load_source("builtin:titanic", fmt=None, features=None, label=None, read_bytes=_never)
    with pytest.raises(DataError, match="keras:fashion_mnist"):
        load_source("keras:imagenet", fmt=None, features=None, label=None, read_bytes=_never)


@pytest.mark.parametrize("source", [name for name, known in DATA_SOURCES.items() if known.offline])
def test_offline_builtins_match_the_vocabulary(source: str) -> None:
    known = DATA_SOURCES[source]
    x, y, class_names, feature_names, *_ = load_source(
        source, fmt=None, features=None, label=None, read_bytes=_never, task=known.task
    )
    assert x.dtype == np.float32 and x.shape[1:] == known.shape
    assert len(feature_names) == int(np.prod(known.shape))
    if known.task == "classification":
        assert y.dtype == np.int64 and len(class_names) == known.classes
        assert set(np.unique(y)) == set(range(known.classes))
    else:
        assert y.dtype == np.float32 and y.shape == (len(x),) and class_names == ()


def test_new_builtins_shapes_and_class_names() -> None:
    x, y, class_names, feature_names, *_ = load_source(
        "builtin:wine", fmt=None, features=None, label=None, read_bytes=_never
    )
    assert x.shape == (178, 13) and class_names == ("class_0", "class_1", "class_2")
    assert feature_names[0] == "alcohol"
    x, y, class_names, _, *_ = load_source(
        "builtin:breast_cancer", fmt=None, features=None, label=None, read_bytes=_never
    )
    assert x.shape == (569, 30) and class_names == ("malignant", "benign")
    assert Counter(y.tolist()) == {0: 212, 1: 357}


def test_builtin_diabetes_is_raw_regression_data() -> None:
    x, y, class_names, feature_names, *_ = load_source(
        "builtin:diabetes", fmt=None, features=None, label=None, read_bytes=_never, task="regression"
    )
    assert x.shape == (442, 10) and x.dtype == np.float32
    assert y.shape == (442,) and y.dtype == np.float32
    assert class_names == ()
    assert feature_names[:3] == ("age", "sex", "bmi")
    # Unscaled measurements (age in years), the same numbers an endpoint would be sent.
    assert x[0, 0] == 59.0 and y[:3].tolist() == [151.0, 75.0, 141.0]


def test_builtin_of_the_wrong_task_says_which_task_it_is_for() -> None:
    with pytest.raises(DataError, match="diabetes is a regression data set.*set model.task: regression"):
        load_source("builtin:diabetes", fmt=None, features=None, label=None, read_bytes=_never)
    with pytest.raises(DataError, match="iris is a classification data set.*model.task: classification"):
        load_source("builtin:iris", fmt=None, features=None, label=None, read_bytes=_never, task="regression")
    # keras data sets are checked before anything is downloaded.
    with pytest.raises(DataError, match="keras:fashion_mnist is a classification data set"):
        load_source(
            "keras:fashion_mnist", fmt=None, features=None, label=None, read_bytes=_never, task="regression"
        )
    with pytest.raises(DataError, match="model.task 'ranking' is not known"):
        load_source("builtin:iris", fmt=None, features=None, label=None, read_bytes=_never, task="ranking")


def test_csv_with_a_float_target_for_regression(tmp_path: Path, read_file_uri: Reader) -> None:
    frame = pd.DataFrame(
        {"rooms": [3, 4, 2, 5], "area": [70.5, 92.0, 48.25, 120.0], "price": [210.5, 305.25, 150.0, 401.75]}
    )
    path = tmp_path / "houses.csv"
    frame.to_csv(path, index=False)
    x, y, class_names, feature_names, *_ = load_source(
        path.as_uri(), fmt=None, features=None, label="price", read_bytes=read_file_uri, task="regression"
    )
    assert y.dtype == np.float32 and y.tolist() == [210.5, 305.25, 150.0, 401.75]
    assert class_names == () and feature_names == ("rooms", "area")
    # A table loads as its raw DataFrame: numbers as float64 (the model's preprocessor makes them float32).
    assert list(x.columns) == ["rooms", "area"] and all(x.dtypes == np.float64)
    np.testing.assert_array_equal(x.iloc[2], [2.0, 48.25])
    # The same table as a classification is refused with a hint at the task.
    with pytest.raises(DataError, match="fractional.*set model.task: regression"):
        load_source(path.as_uri(), fmt=None, features=None, label="price", read_bytes=read_file_uri)


def test_regression_target_errors_name_source_and_column(tmp_path: Path, read_file_uri: Reader) -> None:
    path = tmp_path / "bad.csv"
    _frame().to_csv(path, index=False)
    with pytest.raises(DataError) as info:
        load_source(
            path.as_uri(),
            fmt=None,
            features=["petal"],
            label="species",
            read_bytes=read_file_uri,
            task="regression",
        )
    message = str(info.value)
    assert path.as_uri() in message and "'species' is not numeric" in message
    inf_path = tmp_path / "inf.csv"
    inf_path.write_text("a,y\n1,2.5\n2,inf\n3,-inf\n")
    with pytest.raises(DataError, match=r"inf.csv: the regression target 'y' has 2 NaN or infinite values"):
        load_source(
            inf_path.as_uri(), fmt=None, features=None, label="y", read_bytes=read_file_uri, task="regression"
        )
    npz_path = tmp_path / "t.npz"
    np.savez(npz_path, x=np.zeros((3, 2)), target=np.array([1.0, np.nan, 2.0]))
    with pytest.raises(DataError, match=r"npz: the regression target 'target' has 1 NaN or infinite value "):
        load_source(
            npz_path.as_uri(),
            fmt=None,
            features=None,
            label="target",
            read_bytes=read_file_uri,
            task="regression",
        )
    np.savez(npz_path, x=np.zeros((3, 2)), y=np.zeros((3, 2)))
    with pytest.raises(DataError, match="one target value per sample"):
        load_source(
            npz_path.as_uri(), fmt=None, features=None, label=None,
            read_bytes=read_file_uri, task="regression"
        )


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "petal": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            "sepal": [0.5, 0.25, 0.125, 1.0, 2.0, 4.0],
            "note": ["a", "b", "c", "d", "e", "f"],
            "species": ["virginica", "setosa", "versicolor", "setosa", "virginica", "versicolor"],
        }
    )


def test_csv_with_string_labels_and_listed_columns(mlspec_home: Path, read_file_uri: Reader) -> None:
    (mlspec_home / "data").mkdir()
    _frame().to_csv(mlspec_home / "data" / "flowers.csv", index=False)
    x, y, class_names, feature_names, *_ = load_source(
        "file://data/flowers.csv",
        fmt=None,
        features=["sepal", "petal"],
        label="species",
        read_bytes=read_file_uri,
    )
    assert class_names == ("setosa", "versicolor", "virginica")  # sorted
    assert y.tolist() == [2, 0, 1, 0, 2, 1]
    assert feature_names == ("sepal", "petal")  # the order asked for
    np.testing.assert_array_equal(x.iloc[0], [0.5, 1.0])
    assert list(x.columns) == ["sepal", "petal"] and all(x.dtypes == np.float64)


def test_parquet_with_integer_labels_and_default_features(tmp_path: Path, read_file_uri: Reader) -> None:
    frame = pd.DataFrame({"a": [1, 2, 3, 4], "b": [0.1, 0.2, 0.3, 0.4], "label": [2, 0, 1, 2]})
    path = tmp_path / "t.parquet"
    frame.to_parquet(path)
    x, y, class_names, feature_names, *_ = load_source(
        path.as_uri(), fmt=None, features=None, label=None, read_bytes=read_file_uri
    )
    assert feature_names == ("a", "b")  # every column except the label
    assert y.tolist() == [2, 0, 1, 2]  # 0..K-1 integers keep their value
    assert class_names == ("0", "1", "2")
    assert x.shape == (4, 2)


def test_integer_labels_with_gaps_index_class_names(tmp_path: Path, read_file_uri: Reader) -> None:
    frame = pd.DataFrame({"f": [1.0, 2.0, 3.0], "grade": [3, 7, 3]})
    path = tmp_path / "grades.csv"
    frame.to_csv(path, index=False)
    _, y, class_names, _, *_ = load_source(
        path.as_uri(), fmt="csv", features=None, label="grade", read_bytes=read_file_uri
    )
    assert class_names == ("3", "7")
    assert [class_names[i] for i in y] == ["3", "7", "3"]


def test_npz_with_custom_keys(tmp_path: Path, read_file_uri: Reader) -> None:
    buf = io.BytesIO()
    images = np.arange(5 * 4 * 4, dtype=np.uint8).reshape(5, 4, 4)
    np.savez(buf, images=images, targets=np.array([[1], [0], [1], [1], [0]]))
    path = tmp_path / "imgs.bin"
    path.write_bytes(buf.getvalue())
    x, y, class_names, feature_names, *_ = load_source(
        path.as_uri(), fmt="npz", features="images", label="targets", read_bytes=read_file_uri
    )
    assert x.shape == (5, 4, 4) and x.dtype == np.float32
    np.testing.assert_array_equal(x, images.astype(np.float32))
    assert y.tolist() == [1, 0, 1, 1, 0]
    assert class_names == ("0", "1") and feature_names == ()


def test_npz_missing_key_lists_available(tmp_path: Path, read_file_uri: Reader) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, features=np.zeros((3, 2)), y=np.zeros(3))
    with pytest.raises(DataError) as info:
        load_source(path.as_uri(), fmt=None, features=None, label=None, read_bytes=read_file_uri)
    message = str(info.value)
    assert path.as_uri() in message and "'x'" in message and "features, y" in message


def test_csv_missing_column_lists_columns(tmp_path: Path, read_file_uri: Reader) -> None:
    path = tmp_path / "f.csv"
    _frame().to_csv(path, index=False)
    with pytest.raises(DataError, match=r"data.features 'width' is not a column of .*; its columns are: petal, sepal, note, species"):
        load_source(path.as_uri(), fmt=None, features=["width"], label="species", read_bytes=read_file_uri)
    with pytest.raises(DataError, match=r"data.label 'Species' is not a column of .*f.csv; did you mean 'species'\?"):
        load_source(path.as_uri(), fmt=None, features=["petal"], label="Species", read_bytes=read_file_uri)
    with pytest.raises(DataError, match=r"data.label 'kind' is not a column"):
        load_source(path.as_uri(), fmt=None, features=["petal"], label="kind", read_bytes=read_file_uri)
    # Every column except the label includes the text column "note": a category now (issue 13), not refused.
    loaded = load_source(path.as_uri(), fmt=None, features=None, label="species", read_bytes=read_file_uri)
    assert [(c.name, c.type, c.inferred) for c in loaded.columns] == [
        ("petal", "number", True), ("sepal", "number", True), ("note", "category", True)
    ]
    assert loaded.x["note"].tolist() == ["a", "b", "c", "d", "e", "f"]


def test_format_errors(tmp_path: Path, read_file_uri: Reader) -> None:
    with pytest.raises(DataError, match="set data.format"):
        infer_format("s3://bucket/data/table.xlsx")
    assert infer_format("s3://bucket/data/table.csv.gz?versionId=3") == "csv"
    assert infer_format("file:///d/t.PQ") == "parquet"
    path = tmp_path / "t.csv"
    path.write_text("a,label\n1,x\n")
    with pytest.raises(DataError, match="data.format 'json'.*not supported"):
        load_source(path.as_uri(), fmt="json", features=None, label=None, read_bytes=read_file_uri)


def test_empty_and_unreadable_sources(tmp_path: Path, read_file_uri: Reader) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        load_source(empty.as_uri(), fmt=None, features=None, label="label", read_bytes=read_file_uri)
    header_only = tmp_path / "header.csv"
    header_only.write_text("a,label\n")
    with pytest.raises(DataError, match="no rows"):
        load_source(header_only.as_uri(), fmt=None, features=None, label="label", read_bytes=read_file_uri)
    with pytest.raises(DataError, match="could not read.*missing.csv"):
        missing = (tmp_path / "missing.csv").as_uri()
        load_source(missing, fmt=None, features=None, label=None, read_bytes=read_file_uri)
    assert issubclass(DataError, MlspecError)


def test_split_is_deterministic_and_stratified() -> None:
    x, y, class_names, _, *_ = load_source("builtin:iris", fmt=None, features=None, label=None, read_bytes=_never)
    def cut(seed: int) -> Dataset:
        return split(x, y, validation=0.2, test=0.2, seed=seed, stratify=True, class_names=class_names, method="random")

    a, b, c = cut(3), cut(3), cut(4)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)
    assert (len(a.x_train), len(a.x_val), len(a.x_test)) == (90, 30, 30)
    # Iris has 50 of each class: stratified splits keep the thirds exactly.
    assert Counter(a.y_test.tolist()) == {0: 10, 1: 10, 2: 10}
    assert Counter(a.y_val.tolist()) == {0: 10, 1: 10, 2: 10}
    # Together the splits are the whole set, each sample once.
    rows = np.concatenate([a.x_train, a.x_val, a.x_test])
    assert sorted(map(tuple, rows.tolist())) == sorted(map(tuple, x.tolist()))


def test_split_without_validation_gives_empty_split() -> None:
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    y = np.array([0, 1] * 10)
    ds = split(x, y, validation=0.0, test=0.25, seed=0, stratify=False, class_names=("a", "b"), method="random")
    assert ds.x_val.shape == (0, 2) and ds.y_val.shape == (0,)
    assert len(ds.x_train) == 15 and len(ds.x_test) == 5
    by_id = split(x, y, validation=0.0, test=0.25, seed=0, stratify=False, class_names=("a", "b"))
    assert by_id.x_val.shape == (0, 2) and len(by_id.x_train) + len(by_id.x_test) == 20


def test_split_errors_are_clear() -> None:
    x = np.zeros((6, 2), dtype=np.float32)
    y = np.array([0, 0, 0, 0, 0, 1])  # one sample of class 1 cannot be stratified
    with pytest.raises(DataError, match="stratify: false"):
        split(x, y, validation=0.0, test=0.5, seed=0, stratify=True, class_names=("a", "b"), method="random")
    with pytest.raises(DataError, match="below 1"):
        split(x, y, validation=0.5, test=0.5, seed=0, stratify=False, class_names=("a", "b"))
    with pytest.raises(DataError, match="data.split.method 'ordered' is not known; use one of hash, random"):
        split(x, y, validation=0.1, test=0.2, seed=0, stratify=False, class_names=("a", "b"), method="ordered")


def test_npz_round_trip_keeps_names(digits_dataset: Dataset) -> None:
    back = Dataset.from_npz_bytes(digits_dataset.to_npz_bytes())
    for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        original, restored = getattr(digits_dataset, field), getattr(back, field)
        assert restored.dtype == original.dtype
        np.testing.assert_array_equal(restored, original)
    assert back.class_names == digits_dataset.class_names
    assert back.feature_names == digits_dataset.feature_names
    assert back.num_classes == 10
    # Pixels 0..16 are stored as bytes, which keeps the artifact small without changing values.
    assert len(digits_dataset.to_npz_bytes()) < digits_dataset.x_train.nbytes / 4
    fractional = replace(digits_dataset, x_test=digits_dataset.x_test / 16.0)
    np.testing.assert_array_equal(Dataset.from_npz_bytes(fractional.to_npz_bytes()).x_test, fractional.x_test)
    empty_names = replace(digits_dataset, feature_names=())
    assert Dataset.from_npz_bytes(empty_names.to_npz_bytes()).feature_names == ()
    with pytest.raises(DataError, match="not a readable npz"):
        Dataset.from_npz_bytes(b"not a zip")


@pytest.fixture(scope="module")
def diabetes() -> Dataset:
    x, y, _, feature_names, *_ = load_source(
        "builtin:diabetes", fmt=None, features=None, label=None, read_bytes=_never, task="regression"
    )
    # stratify: true is ignored for regression (a float target cannot be stratified).
    return split(
        x, y, validation=0.1, test=0.2, seed=3, stratify=True, class_names=(), feature_names=feature_names,
        task="regression", method="random",
    )


def test_regression_split_is_random_and_keeps_float_targets(diabetes: Dataset) -> None:
    assert diabetes.task == "regression" and diabetes.class_names == () and diabetes.num_classes == 0
    assert (len(diabetes.x_train), len(diabetes.x_val), len(diabetes.x_test)) == (308, 45, 89)
    for y in (diabetes.y_train, diabetes.y_val, diabetes.y_test):
        assert y.dtype == np.float32 and y.ndim == 1
    assert diabetes.input_shape == (10,)
    with pytest.raises(DataError, match="no class names"):
        replace(diabetes, class_names=("a",))


def test_npz_round_trip_of_a_regression_dataset(diabetes: Dataset) -> None:
    back = Dataset.from_npz_bytes(diabetes.to_npz_bytes())
    assert back.task == "regression" and back.class_names == ()
    assert back.feature_names == diabetes.feature_names
    for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        original, restored = getattr(diabetes, field), getattr(back, field)
        assert restored.dtype == original.dtype
        np.testing.assert_array_equal(restored, original)


def test_npz_without_task_is_classification(digits_dataset: Dataset) -> None:
    # Data sets prepared before regression existed carry no task.
    with np.load(io.BytesIO(digits_dataset.to_npz_bytes())) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "task"}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    assert Dataset.from_npz_bytes(buf.getvalue()).task == "classification"


def test_one_hot_is_refused_for_regression(diabetes: Dataset) -> None:
    with pytest.raises(DataError, match="one_hot encodes class labels, but model.task is regression"):
        apply_label_steps(diabetes, [{"one_hot": {}}])
    assert apply_label_steps(diabetes, [{"normalize": {}}]) is diabetes


def test_label_steps_one_hot_only_changes_labels(digits_dataset: Dataset) -> None:
    steps = [{"scale": {"divide_by": 16.0}}, {"reshape": [8, 8, 1]}, {"one_hot": {}}]
    encoded = apply_label_steps(digits_dataset, steps)
    assert encoded.y_train.shape == (len(digits_dataset.y_train), 10)
    assert encoded.y_train.dtype == np.float32
    np.testing.assert_array_equal(encoded.y_test.argmax(axis=1), digits_dataset.y_test)
    assert encoded.y_test.sum(axis=1).tolist() == [1.0] * len(digits_dataset.y_test)
    # Feature steps are model layers: the features stay raw.
    assert encoded.x_train is digits_dataset.x_train


def test_preprocess_step_validation() -> None:
    with pytest.raises(DataError, match=r"data.preprocess\[1\]: unknown preprocess step 'standardize'"):
        parse_steps([{"scale": {"divide_by": 2}}, {"standardize": {}}])
    with pytest.raises(DataError, match=r"data.preprocess\[0\] \(reshape\)"):
        parse_steps([{"reshape": [8, -8]}])
    with pytest.raises(DataError, match="divide_by must not be 0"):
        parse_steps([{"scale": {"divide_by": 0}}])
    with pytest.raises(DataError, match="unknown option factor"):
        parse_steps([{"scale": {"factor": 2}}])
    with pytest.raises(DataError, match="exactly one key"):
        parse_steps([{"scale": {"divide_by": 2}, "reshape": [2]}])
    parsed = parse_steps([{"normalize": None}, {"reshape": [8, 8, 1]}])
    assert parsed == [("normalize", {}), ("reshape", (8, 8, 1))]


def test_step_helpers_the_keras_adapter_imports() -> None:
    assert FEATURE_STEPS == ("scale", "normalize", "reshape")
    assert feature_steps([{"scale": {"divide_by": 4}}, {"one_hot": {}}]) == [("scale", {"divide_by": 4})]
    assert scale_factors({"divide_by": 4, "offset": 1.0}) == (0.25, 1.0)

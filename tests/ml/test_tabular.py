"""Table models (mlspec.ml.tabular): the columns' preprocessing fitted on the raw table, inside the saved
model and in front of every framework's ONNX graph, answering raw rows (gaps, unseen categories) exactly
as the trained model does."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from mlspec.ml import tabular
from mlspec.ml.columns import Column
from mlspec.ml.data import Dataset
from mlspec.ml.frameworks import TrainingPlan, get_adapter
from mlspec.ml.onnx_export import onnx_predict, onnx_signature

COLUMNS = (
    Column("bill length", "number", missing="median"),  # a space: skl2onnx would rename it
    Column("count", "integer", missing="mean"),
    Column("flag", "boolean", missing="most_frequent"),
    Column("island", "category", missing="constant", constant="unknown"),
    Column("many", "category", max_categories=4),
    Column("size", "category", encode="ordinal"),
)
CLASSES = ("Adelie", "Chinstrap", "Gentoo")


def raw_table(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A table in the normalized raw form (NaN / "" for gaps), and class indices that depend on it."""
    rng = np.random.default_rng(seed)
    number = rng.normal(size=n)
    number[::9] = np.nan
    count = rng.integers(0, 5, n).astype(np.float64)
    count[::11] = np.nan
    flag = rng.integers(0, 2, n).astype(np.float64)
    flag[::13] = np.nan
    island = rng.choice(["Biscoe", "Dream", "Torgersen", ""], n, p=[0.4, 0.3, 0.2, 0.1]).astype(object)
    many = rng.choice([f"v{i}" for i in range(8)], n, p=[0.3, 0.2, 0.15, 0.1, 0.1, 0.05, 0.05, 0.05]).astype(
        object
    )
    size = rng.choice(["small", "medium", "large"], n).astype(object)
    frame = pd.DataFrame(
        {"bill length": number, "count": count, "flag": flag, "island": island, "many": many, "size": size}
    )
    score = np.nan_to_num(number) + (island == "Biscoe") - (size == "small") + 0.3 * np.nan_to_num(count)
    return frame, ((score > 0.5).astype(np.int64) + (score > 1.5)).astype(np.int64)


def table_dataset(
    *, task: str = "classification", label_datatype: str = "BYTES", class_names=CLASSES
) -> Dataset:
    frame, y = raw_table(300)
    if task == "regression":
        y = y.astype(np.float32) + np.float32(0.5)
        class_names, label_datatype = (), ""
    parts = [slice(0, 200), slice(200, 250), slice(250, 300)]
    xs = [frame[part].reset_index(drop=True) for part in parts]
    ys = [y[part] for part in parts]
    return Dataset(
        xs[0],
        ys[0],
        xs[1],
        ys[1],
        xs[2],
        ys[2],
        tuple(class_names),
        task=task,
        columns=COLUMNS,
        label_datatype=label_datatype,
    )


def raw_rows(dataset: Dataset) -> pd.DataFrame:
    """Test rows with a gap in every filled column and values never seen in training."""
    rows = dataset.x_test.copy()
    rows.loc[0, ["bill length", "count", "flag", "island"]] = [np.nan, np.nan, np.nan, ""]
    rows.loc[1, "island"] = "Atlantis"
    rows.loc[2, "many"] = "v99"
    rows.loc[3, "size"] = "huge"
    return rows


def plan_for(framework: str, task: str = "classification") -> TrainingPlan:
    if framework == "tensorflow":
        head = (
            {"dense": {"units": 3, "activation": "softmax"}}
            if task == "classification"
            else {"dense": {"units": 1}}
        )
        return TrainingPlan(
            framework=framework,
            task=task,
            preprocess=(),
            seed=0,
            layers=({"dense": {"units": 8, "activation": "relu"}}, head),
            training={
                "epochs": 3,
                "batch_size": 32,
                "optimizer": {"name": "adam", "learning_rate": 0.01},
                "loss": "sparse_categorical_crossentropy" if task == "classification" else "mse",
            },
        )
    if framework == "sklearn":
        estimator = "logistic_regression" if task == "classification" else "linear_regression"
        return TrainingPlan(framework=framework, task=task, preprocess=(), seed=0, estimator=estimator)
    return TrainingPlan(framework=framework, task=task, preprocess=(), seed=0, params={"n_estimators": 10})


def trained(framework: str, dataset: Dataset, task: str = "classification"):
    adapter = tabular.wrap(get_adapter(framework))
    plan = plan_for(framework, task)
    model = adapter.build(plan, dataset)
    adapter.fit(model, plan, dataset)
    return adapter, model


# ----------------------------------------------------------------------------- the preprocessor


def test_fills_are_fitted_on_training_rows_and_whole_for_integer_and_boolean_columns():
    dataset = table_dataset()
    fills = tabular.fitted_fills(COLUMNS, dataset.x_train)
    train = dataset.x_train
    assert fills["bill length"] == pytest.approx(float(train["bill length"].median()))
    assert fills["count"] == round(float(train["count"].mean())) and isinstance(fills["count"], int)
    assert fills["flag"] is bool(train["flag"].mode()[0])
    assert fills["island"] == "unknown"
    assert set(fills) == {"bill length", "count", "flag", "island"}  # missing: error columns have none


def test_category_folder_keeps_the_most_frequent_values_and_folds_the_rest():
    folder = tabular.CategoryFolder(3)
    values = np.array([["a"]] * 5 + [["b"]] * 4 + [["c"]] * 2 + [["d"]] * 2, dtype=object)
    folder.fit(values)
    assert folder.kept_ == ["a", "b"]  # c and d tie: neither is among the max_categories - 1 kept
    assert folder.transform(np.array([["a"], ["c"], ["zzz"]], dtype=object)).ravel().tolist() == [
        "a",
        "other",
        "other",
    ]
    few = tabular.CategoryFolder(3).fit(np.array([["other"], ["x"]], dtype=object))
    assert few.kept_ == ["other", "x"] and few.other_ == "_other"  # never a training value


def test_preprocessor_onnx_equals_scikit_learn_exactly_on_gaps_and_unseen_values():
    dataset = table_dataset()
    adapter, model = trained("sklearn", dataset)
    rows = raw_rows(dataset)
    proto = tabular.preprocessor_onnx(model, opset=17, ml_opset=3)
    import onnxruntime

    session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, tabular.feeds(COLUMNS, rows, tabular.fill_values(model)))
    want = model.transform(rows).toarray()  # logistic regression takes the one-hot columns sparse
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    # one-hot of an unseen island is all zeros; an unseen size is -1; v99 is the "other" column
    assert tabular.categories(model)["many"] == ["v0", "v1", "v2"]


def test_feeds_are_typed_per_column_and_fill_integer_and_boolean_gaps():
    dataset = table_dataset()
    _, model = trained("sklearn", dataset)
    fills = tabular.fill_values(model)
    rows = pd.DataFrame(
        {
            "bill length": [None, 1.5],
            "count": [None, 3],
            "flag": [None, True],
            "island": [None, "Dream"],
            "many": ["v1", 2007.0],
            "size": ["small", ""],
        }
    )
    fed = tabular.feeds(COLUMNS, rows, fills)
    assert {name: (array.dtype.kind, array.shape) for name, array in fed.items()} == {
        "bill length": ("f", (2, 1)),
        "count": ("i", (2, 1)),
        "flag": ("b", (2, 1)),
        "island": ("O", (2, 1)),
        "many": ("O", (2, 1)),
        "size": ("O", (2, 1)),
    }
    assert (
        np.isnan(fed["bill length"][0, 0])
        and fed["count"][0, 0] == fills["count"]
        and fed["flag"][0, 0] == fills["flag"]
    )
    assert fed["island"].ravel().tolist() == ["", "Dream"] and fed["many"][1, 0] == "2007"
    with pytest.raises(Exception, match="size"):
        tabular.feeds((Column("size", "integer"),), pd.DataFrame({"size": [None]}), {})


# ----------------------------------------------------------------------------- every framework


@pytest.mark.parametrize("framework", ["sklearn", "xgboost", "lightgbm", "tensorflow"])
def test_table_model_exports_one_graph_that_answers_raw_rows_as_the_trained_model(framework):
    dataset = table_dataset()
    adapter, model = trained(framework, dataset)
    onnx_bytes = adapter.to_onnx(model, task="classification", opset=17, sample=dataset.x_train[:8])

    signature = onnx_signature(onnx_bytes)
    assert [(i["name"], i["datatype"], i["shape"]) for i in signature["inputs"]] == [
        (column.name, column.datatype, [-1, 1]) for column in COLUMNS
    ]
    assert {o["name"]: o["datatype"] for o in signature["outputs"]} == {
        "probabilities": "FP32",
        "label": "BYTES",
    }

    rows = raw_rows(dataset)
    predicted = adapter.predict(model, rows, "classification")
    assert predicted["label"].dtype == np.int64  # the metrics speak class indices
    want = tabular.served_outputs(model, predicted)
    got = onnx_predict(onnx_bytes, tabular.feeds(COLUMNS, rows, tabular.fill_values(model)))
    assert set(got["label"].tolist()) <= set(CLASSES)
    np.testing.assert_array_equal(got["label"], want["label"])
    np.testing.assert_allclose(got["probabilities"], want["probabilities"], atol=1e-5)

    saved = adapter.save(model)
    assert tabular.is_tabular(saved)
    loaded = adapter.load(saved)
    assert loaded.columns == COLUMNS and loaded.class_values == CLASSES
    np.testing.assert_array_equal(
        adapter.predict(loaded, rows, "classification")["probabilities"], predicted["probabilities"]
    )
    assert tabular.fill_values(loaded) == tabular.fill_values(model)


def test_integer_labels_come_out_as_their_values():
    dataset = table_dataset(label_datatype="INT64", class_names=("1999", "2007", "2024"))
    adapter, model = trained("sklearn", dataset)
    onnx_bytes = adapter.to_onnx(model, task="classification", opset=17, sample=dataset.x_train[:8])
    rows = raw_rows(dataset)
    got = onnx_predict(onnx_bytes, tabular.feeds(COLUMNS, rows, tabular.fill_values(model)))
    assert got["label"].dtype == np.int64 and set(got["label"].tolist()) <= {1999, 2007, 2024}
    np.testing.assert_array_equal(
        got["label"], tabular.served_outputs(model, adapter.predict(model, rows, "classification"))["label"]
    )


def test_index_labels_and_regression_keep_the_framework_outputs():
    dataset = table_dataset(label_datatype="")
    adapter, model = trained("sklearn", dataset)
    assert tabular.class_values(model) is None
    onnx_bytes = adapter.to_onnx(model, task="classification", opset=17, sample=dataset.x_train[:8])
    assert {o["name"]: o["datatype"] for o in onnx_signature(onnx_bytes)["outputs"]}["label"] == "INT64"

    regression = table_dataset(task="regression")
    adapter, model = trained("sklearn", regression, task="regression")
    onnx_bytes = adapter.to_onnx(model, task="regression", opset=17, sample=regression.x_train[:8])
    rows = raw_rows(regression)
    got = onnx_predict(onnx_bytes, tabular.feeds(COLUMNS, rows, tabular.fill_values(model)))
    np.testing.assert_allclose(
        got["prediction"], adapter.predict(model, rows, "regression")["prediction"], atol=1e-4
    )


def test_without_columns_the_adapter_is_the_frameworks_own():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    dataset = Dataset(x[:40], y[:40], x[40:50], y[40:50], x[50:], y[50:], ("no", "yes"))
    inner = get_adapter("sklearn")
    adapter = tabular.wrap(inner)
    assert (adapter.name, adapter.artifact_name) == (inner.name, inner.artifact_name)
    plan = plan_for("sklearn")
    model = adapter.build(plan, dataset)
    adapter.fit(model, plan, dataset)
    assert type(model).__name__ == "Pipeline"
    saved = adapter.save(model)
    assert not tabular.is_tabular(saved) and type(inner.load(saved)).__name__ == "Pipeline"
    onnx_bytes = adapter.to_onnx(adapter.load(saved), task="classification", opset=17, sample=x[:8])
    assert [i["name"] for i in onnx_signature(onnx_bytes)["inputs"]] == ["input"]


def test_one_hot_columns_reach_only_a_model_that_takes_sparse_features_sparse():
    import dataclasses

    import scipy.sparse

    dataset = table_dataset()
    sklearn = tabular.wrap(get_adapter("sklearn"))
    assert scipy.sparse.issparse(sklearn.build(plan_for("sklearn"), dataset).transform(dataset.x_test))
    assert not scipy.sparse.issparse(
        tabular.wrap(get_adapter("xgboost")).build(plan_for("xgboost"), dataset).transform(dataset.x_test)
    )
    # A StandardScaler cannot center a sparse matrix: with data.preprocess normalize the features are dense.
    normalized = dataclasses.replace(plan_for("sklearn"), preprocess=({"normalize": {}},))
    model = sklearn.build(normalized, dataset)
    sklearn.fit(model, normalized, dataset)
    assert isinstance(model.transform(dataset.x_test), np.ndarray)
    onnx_bytes = sklearn.to_onnx(model, task="classification", opset=17, sample=dataset.x_train[:8])
    rows = raw_rows(dataset)
    got = onnx_predict(onnx_bytes, tabular.feeds(COLUMNS, rows, tabular.fill_values(model)))
    want = tabular.served_outputs(model, sklearn.predict(model, rows, "classification"))
    np.testing.assert_array_equal(got["label"], want["label"])
    np.testing.assert_allclose(got["probabilities"], want["probabilities"], atol=1e-5)


def test_a_column_named_like_an_output_is_refused_at_export():
    from mlspec.ml.onnx_export import ExportError

    frame, y = raw_table(60)
    frame = frame[["bill length"]].rename(columns={"bill length": "label"})
    columns = (Column("label", "number", missing="median"),)
    dataset = Dataset(
        frame[:40], y[:40], frame[40:50], y[40:50], frame[50:], y[50:], CLASSES, columns=columns
    )
    adapter, model = trained("sklearn", dataset)
    with pytest.raises(ExportError, match="column label has the name of one of the exported model's outputs"):
        adapter.to_onnx(model, task="classification", opset=17, sample=dataset.x_train[:8])


def test_a_network_gets_its_number_and_integer_columns_standardized_in_the_graph_too():
    dataset = table_dataset()
    scaled = dataset.x_train.copy()
    scaled["bill length"] = scaled["bill length"] * 1000 + 4000  # grams beside millimetres
    dataset = dataclasses.replace(dataset, x_train=scaled)
    adapter, model = trained("tensorflow", dataset)
    width = model.preprocessor.output_indices_
    features = model.transform(dataset.x_train)
    for index in (0, 1):  # bill length (number), count (integer), after their fills
        values = features[:, width[f"column_{index}"]].ravel()
        assert abs(values.mean()) < 1e-3 and abs(values.std() - 1) < 1e-3
    flag = features[:, width["column_2"]].ravel()
    assert set(np.unique(flag).tolist()) <= {0.0, 1.0}  # a boolean stays 0/1
    # scikit-learn and boosting get the numbers as they are
    _, forest = trained("sklearn", dataset)
    assert forest.transform(dataset.x_train)[:, 0].toarray().max() > 1000

    proto = tabular.preprocessor_onnx(model, opset=17, ml_opset=3)
    import onnxruntime

    session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    rows = raw_rows(dataset)
    (got,) = session.run(None, tabular.feeds(COLUMNS, rows, tabular.fill_values(model)))
    np.testing.assert_allclose(got, model.transform(rows), rtol=1e-5, atol=1e-5)

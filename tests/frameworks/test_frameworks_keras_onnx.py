"""ONNX export of Keras models: the signature a server sees, both classification outputs, regression,
and parity with Keras through the framework-neutral check."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from mlspec.ml.data import Dataset
from mlspec.ml.frameworks import TrainingPlan, get_adapter
from mlspec.ml.frameworks.keras_adapter import build_model, export_onnx
from mlspec.ml.onnx_export import ParityError, check_parity, onnx_predict, onnx_signature

KERAS = get_adapter("tensorflow")


def test_signature_is_what_onnxruntime_sees(digits_onnx: tuple[bytes, dict[str, Any]]) -> None:
    import onnx

    onnx_bytes, signature = digits_onnx
    assert signature["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]
    assert signature["outputs"] == [
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
        {"name": "label", "datatype": "INT64", "shape": [-1]},
    ]
    proto = onnx.load_from_string(onnx_bytes)
    assert {op.domain: op.version for op in proto.opset_import}[""] == 17


def test_parity_on_raw_digits(
    trained_digits: dict[str, Any], digits_onnx: tuple[bytes, dict[str, Any]], digits_dataset: Dataset
) -> None:
    onnx_bytes, _ = digits_onnx
    x = digits_dataset.x_test[:64]
    assert x.max() == 16.0  # raw pixels go in; scaling and normalization are inside the model
    answers = onnx_predict(onnx_bytes, x)
    diff = check_parity(KERAS.predict(trained_digits["model"], x, "classification"), answers, atol=1e-4)
    assert 0.0 <= diff <= 1e-4
    assert answers["probabilities"].shape == (64, 10) and answers["label"].dtype == np.int64
    np.testing.assert_allclose(answers["probabilities"].sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(answers["label"], answers["probabilities"].argmax(axis=1))


def test_parity_failure_names_output_difference_and_sample(
    digits_onnx: tuple[bytes, dict[str, Any]],
    digits_dataset: Dataset,
    build_digits_model: Callable[[int], Any],
) -> None:
    onnx_bytes, _ = digits_onnx
    other = build_digits_model(99)  # same architecture, untrained: a different model
    x = digits_dataset.x_test[:16]
    theirs = KERAS.predict(other, x, "classification")
    ours = onnx_predict(onnx_bytes, x)
    expected = np.abs(theirs["probabilities"] - ours["probabilities"]).max(axis=1)
    with pytest.raises(ParityError) as info:
        check_parity({"probabilities": theirs["probabilities"]}, ours, atol=1e-4)
    pattern = r"on 'probabilities': max abs difference (\S+) at sample (\d+) exceeds export.parity.atol 0.0001"
    match = re.search(pattern, str(info.value))
    assert match, str(info.value)
    assert float(match.group(1)) == pytest.approx(expected.max(), rel=1e-2)
    assert int(match.group(2)) == int(expected.argmax())


def test_label_disagreement_fails_parity(digits_onnx: tuple[bytes, dict[str, Any]], digits_dataset: Dataset) -> None:
    ours = onnx_predict(digits_onnx[0], digits_dataset.x_test[:8])
    wrong = {"label": (ours["label"] + 1) % 10}
    with pytest.raises(ParityError, match=r"'label' differs from the trained model's on 8 of 8 samples"):
        check_parity(wrong, ours, atol=1e-4)


def test_reloaded_model_exports_like_the_trained_one(
    trained_digits: dict[str, Any], digits_onnx: tuple[bytes, dict[str, Any]], digits_dataset: Dataset
) -> None:
    # The pipeline exports in a later task, from the bytes the training task stored.
    restored = KERAS.load(KERAS.save(trained_digits["model"]))
    onnx_bytes = KERAS.to_onnx(restored, task="classification", opset=17, sample=digits_dataset.x_train[:2])
    assert onnx_signature(onnx_bytes) == {k: digits_onnx[1][k] for k in ("inputs", "outputs")}
    x = digits_dataset.x_val[:32]
    assert check_parity(KERAS.predict(trained_digits["model"], x, "classification"), onnx_predict(onnx_bytes, x), atol=1e-4) <= 1e-4


def test_conv_model_with_reshape_exports_with_parity(digits_dataset: Dataset) -> None:
    model = build_model(
        input_shape=(64,),
        preprocess=[{"scale": {"divide_by": 16.0}}, {"reshape": [8, 8, 1]}, {"normalize": {}}],
        layers=[
            {"conv2d": {"filters": 4, "kernel_size": 3, "activation": "relu", "padding": "same"}},
            {"batch_normalization": {}},
            {"average_pooling2d": {"pool_size": 2}},
            {"global_average_pooling2d": {}},
            {"dropout": {"rate": 0.5}},
            {"dense": {"units": 10, "activation": "softmax"}},
        ],
        x_train=digits_dataset.x_train,
        seed=3,
    )
    onnx_bytes = export_onnx(model, task="classification", opset=13)
    assert onnx_signature(onnx_bytes)["inputs"][0]["shape"] == [-1, 64]
    x = digits_dataset.x_test[:32]
    assert check_parity(KERAS.predict(model, x, "classification"), onnx_predict(onnx_bytes, x), atol=1e-4) <= 1e-4


def test_keras_regressor_fits_exports_and_agrees() -> None:
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    x, y = x.astype(np.float32), y.astype(np.float32)
    dataset = Dataset(x_train=x[:300], y_train=y[:300], x_val=x[300:350], y_val=y[300:350], x_test=x[350:], y_test=y[350:], class_names=())
    plan = TrainingPlan(
        framework="tensorflow",
        task="regression",
        preprocess=({"normalize": {}},),
        seed=5,
        layers=({"dense": {"units": 16, "activation": "relu"}}, {"dense": {"units": 1}}),
        training={"epochs": 30, "batch_size": 32, "optimizer": {"name": "adam", "learning_rate": 0.05}, "loss": "mean_squared_error", "early_stopping": None},
    )
    model = KERAS.build(plan, dataset)
    report = KERAS.fit(model, plan, dataset)
    assert report.steps_run == 30 and "val_rmse" in report.history
    assert report.history["rmse"][-1] < report.history["rmse"][0]  # it learned something
    onnx_bytes = KERAS.to_onnx(model, task="regression", opset=17, sample=x[:2])
    assert onnx_signature(onnx_bytes)["outputs"] == [{"name": "prediction", "datatype": "FP32", "shape": [-1, 1]}]
    ours = onnx_predict(onnx_bytes, dataset.x_test)
    assert check_parity(KERAS.predict(model, dataset.x_test, "regression"), ours, atol=1e-3) <= 1e-3
    rmse = float(np.sqrt(np.mean((ours["prediction"].ravel() - dataset.y_test) ** 2)))
    assert rmse < float(np.std(dataset.y_test))  # better than always predicting the mean


def test_regression_model_must_end_with_one_unit(digits_dataset: Dataset) -> None:
    from mlspec.ml.frameworks.keras_adapter import ModelBuildError

    with pytest.raises(ModelBuildError, match=r"model\.layers\[0\] \(dense\): outputs 3 values per sample; a regression model ends with dense: \{units: 1\}"):
        build_model(input_shape=(64,), preprocess=[], layers=[{"dense": {"units": 3}}], x_train=digits_dataset.x_train, seed=0, task="regression")


def test_parity_allows_a_relative_difference_on_large_predictions() -> None:
    # float32 keeps about 7 digits: a regressor's 300.0 and ONNX Runtime's 300.0004 are the same number to it.
    trained = {"prediction": np.array([[300.0], [12.0]], dtype=np.float32)}
    onnx = {"prediction": np.array([[300.0004], [12.00001]], dtype=np.float32)}
    with pytest.raises(ParityError, match=r"max abs difference 0.000397 at sample 0 exceeds export.parity.atol 0.0001 \(1 of 2"):
        check_parity(trained, onnx, atol=1e-4)
    assert check_parity(trained, onnx, atol=1e-4, rtol=1e-5) == pytest.approx(3.97e-4, rel=1e-2)
    onnx_far = {"prediction": np.array([[300.01], [12.0]], dtype=np.float32)}
    with pytest.raises(ParityError, match=r"exceeds export.parity.atol 0.0001 \+ rtol 1e-05 x \|value\|"):
        check_parity(trained, onnx_far, atol=1e-4, rtol=1e-5)

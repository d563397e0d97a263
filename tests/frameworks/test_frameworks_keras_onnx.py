"""ONNX export of trained models, the signature a server sees, and parity with Keras."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from mlspec.ml.data import Dataset
from mlspec.ml.keras_model import build_model
from mlspec.ml.onnx_export import ParityError, check_parity, export_onnx, onnx_predict, onnx_signature


def test_signature_is_what_onnxruntime_sees(digits_onnx: tuple[bytes, dict[str, Any]]) -> None:
    import onnx

    onnx_bytes, signature = digits_onnx
    assert signature["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]
    assert signature["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]
    assert signature["opset"] == 17
    assert signature["class_names"] == []
    proto = onnx.load_from_string(onnx_bytes)
    assert {op.domain: op.version for op in proto.opset_import}[""] == 17
    assert [i.name for i in proto.graph.input] == ["input"]  # no stray inputs for captured tensors
    assert onnx_signature(onnx_bytes) == {"inputs": signature["inputs"], "outputs": signature["outputs"]}


def test_parity_on_raw_digits(
    trained_digits: dict[str, Any], digits_onnx: tuple[bytes, dict[str, Any]], digits_dataset: Dataset
) -> None:
    onnx_bytes, _ = digits_onnx
    x = digits_dataset.x_test[:64]
    assert x.max() == 16.0  # raw pixels go in; scaling and normalization are inside the model
    diff = check_parity(trained_digits["model"], onnx_bytes, x, atol=1e-4)
    assert 0.0 <= diff <= 1e-4
    probabilities = onnx_predict(onnx_bytes, x)
    assert probabilities.shape == (64, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    keras_labels = trained_digits["model"].predict(x, verbose=0).argmax(axis=1)
    np.testing.assert_array_equal(probabilities.argmax(axis=1), keras_labels)


def test_parity_failure_names_difference_and_sample(
    digits_onnx: tuple[bytes, dict[str, Any]],
    digits_dataset: Dataset,
    build_digits_model: Callable[[int], Any],
) -> None:
    onnx_bytes, _ = digits_onnx
    other = build_digits_model(99)  # same architecture, untrained: a different model
    x = digits_dataset.x_test[:16]
    expected = np.abs(other.predict(x, verbose=0) - onnx_predict(onnx_bytes, x)).max(axis=1)
    with pytest.raises(ParityError) as info:
        check_parity(other, onnx_bytes, x, atol=1e-4)
    pattern = r"max abs difference (\S+) at sample (\d+) exceeds export.parity.atol 0.0001"
    match = re.search(pattern, str(info.value))
    assert match, str(info.value)
    assert float(match.group(1)) == pytest.approx(expected.max(), rel=1e-2)
    assert int(match.group(2)) == int(expected.argmax())


def test_reloaded_model_exports_like_the_trained_one(
    trained_digits: dict[str, Any], digits_onnx: tuple[bytes, dict[str, Any]], digits_dataset: Dataset
) -> None:
    # The pipeline exports in a later task, from the .keras bytes the training task stored.
    from mlspec.ml.training import load_model_bytes, save_model_bytes

    restored = load_model_bytes(save_model_bytes(trained_digits["model"]))
    onnx_bytes, signature = export_onnx(restored, opset=17)
    assert signature["inputs"] == digits_onnx[1]["inputs"]
    x = digits_dataset.x_val[:32]
    assert check_parity(trained_digits["model"], onnx_bytes, x, atol=1e-4) <= 1e-4
    np.testing.assert_allclose(onnx_predict(onnx_bytes, x), onnx_predict(digits_onnx[0], x), atol=1e-6)


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
    onnx_bytes, signature = export_onnx(model, opset=13)
    assert signature["inputs"][0]["shape"] == [-1, 64] and signature["opset"] == 13
    assert check_parity(model, onnx_bytes, digits_dataset.x_test[:32], atol=1e-4) <= 1e-4

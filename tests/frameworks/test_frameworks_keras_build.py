"""Model building: preprocess steps become layers, errors name the layer."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mlspec.ml.data import Dataset
from mlspec.ml.frameworks.keras_adapter import ModelBuildError, build_model

CONV_PREPROCESS = [{"scale": {"divide_by": 16.0}}, {"reshape": [8, 8, 1]}]
CONV_LAYERS = [
    {"conv2d": {"filters": 4, "kernel_size": 3, "activation": "relu"}},
    {"max_pooling2d": {"pool_size": 2}},
    {"batch_normalization": {}},
    {"flatten": {}},
    {"dropout": {"rate": 0.2}},
    {"dense": {"units": 10, "activation": "softmax"}},
]


def _build(ds: Dataset, preprocess: list[dict[str, Any]], layers: list[dict[str, Any]], seed: int = 1) -> Any:
    return build_model(input_shape=(64,), preprocess=preprocess, layers=layers, x_train=ds.x_train, seed=seed)


def test_conv_model_takes_raw_features(digits_dataset: Dataset) -> None:
    model = _build(digits_dataset, CONV_PREPROCESS, CONV_LAYERS)
    assert model.input_shape == (None, 64)
    assert model.inputs[0].name == "input"
    assert str(model.inputs[0].dtype) == "float32"
    assert model.output_shape == (None, 10)
    assert model.layers[-1].name == "probabilities"
    names = [layer.name for layer in model.layers]
    assert names[1:3] == ["preprocess_0_scale", "preprocess_1_reshape"]
    assert "layers_0_conv2d" in names
    # The first layers do the scaling and the reshape on raw pixels 0..16.
    rescale = model.get_layer("preprocess_0_scale")
    reshaped = model.get_layer("preprocess_1_reshape")(rescale(digits_dataset.x_train[:3]))
    np.testing.assert_allclose(
        np.asarray(reshaped), digits_dataset.x_train[:3].reshape(3, 8, 8, 1) / 16.0, rtol=1e-6
    )
    probabilities = model.predict(digits_dataset.x_test[:5], verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), np.ones(5), rtol=1e-5)


def test_normalize_adapts_on_training_data_after_earlier_steps(digits_dataset: Dataset) -> None:
    model = _build(
        digits_dataset,
        [{"scale": {"multiply_by": 2.0, "offset": 1.0}}, {"normalize": {}}],
        [{"dense": {"units": 10, "activation": "softmax"}}],
    )
    scale = model.get_layer("preprocess_0_scale")
    norm = model.get_layer("preprocess_1_normalize")
    out = np.asarray(norm(scale(digits_dataset.x_train)))
    # z-scores over the training set: mean 0 and std 1 per (non-constant) feature.
    varying = digits_dataset.x_train.std(axis=0) > 0
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=0)[varying], 1.0, atol=1e-3)
    # Statistics came from x_train*2+1, so raw x_train would not be centred.
    assert abs(float(np.asarray(norm(digits_dataset.x_train)).mean())) > 0.1


def test_same_seed_same_initial_weights(digits_dataset: Dataset) -> None:
    def weights(seed: int) -> list[np.ndarray]:
        return _build(digits_dataset, [], [{"dense": {"units": 3}}], seed=seed).get_weights()

    a, b, c = weights(5), weights(5), weights(6)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


def test_conv_without_reshape_names_layer_and_rank(digits_dataset: Dataset) -> None:
    with pytest.raises(ModelBuildError) as info:
        _build(
            digits_dataset,
            [{"scale": {"divide_by": 16.0}}],
            [{"dense": {"units": 8}}, {"conv2d": {"filters": 4, "kernel_size": 3}}],
        )
    message = str(info.value)
    assert message.startswith("model.layers[1] (conv2d): ")
    assert "rank 1" in message and "reshape" in message


def test_keras_shape_errors_become_model_build_errors(digits_dataset: Dataset) -> None:
    # A 3x3 kernel cannot slide over a 2x2 map: Keras raises, the error names the layer index.
    with pytest.raises(ModelBuildError, match=r"^model\.layers\[2\] \(conv2d\): .*input shape \(2, 2, 4\)"):
        _build(
            digits_dataset,
            CONV_PREPROCESS,
            [
                {"conv2d": {"filters": 4, "kernel_size": 3, "padding": "same"}},
                {"max_pooling2d": {"pool_size": 4}},
                {"conv2d": {"filters": 4, "kernel_size": 3}},
                {"flatten": {}},
                {"dense": {"units": 10}},
            ],
        )


def test_unknown_layer_and_bad_options(digits_dataset: Dataset) -> None:
    unknown = r"model\.layers\[1\] \(lstm\): unknown layer type 'lstm'.*dense"
    with pytest.raises(ModelBuildError, match=unknown):
        _build(digits_dataset, [], [{"dense": {"units": 4}}, {"lstm": {"units": 4}}])
    with pytest.raises(ModelBuildError, match=r"model\.layers\[0\] \(dense\): invalid options.*unitz"):
        _build(digits_dataset, [], [{"dense": {"unitz": 4}}])
    with pytest.raises(ModelBuildError, match=r"data\.preprocess\[0\] \(reshape\): cannot reshape 64 values"):
        _build(digits_dataset, [{"reshape": [8, 7, 1]}], [{"dense": {"units": 4}}])
    too_narrow = r"model\.layers\[0\] \(dense\): outputs 4 values .* 10 classes"
    with pytest.raises(ModelBuildError, match=too_narrow):
        build_model(
            input_shape=(64,),
            preprocess=[],
            layers=[{"dense": {"units": 4, "activation": "softmax"}}],
            x_train=digits_dataset.x_train,
            seed=1,
            num_classes=10,
        )
    with pytest.raises(ModelBuildError, match="end with flatten"):
        _build(digits_dataset, CONV_PREPROCESS, [{"conv2d": {"filters": 2, "kernel_size": 3}}])


def test_preprocess_errors_use_spec_indices(digits_dataset: Dataset) -> None:
    # one_hot is a label step (not a layer), but it still counts when the error names a step.
    with pytest.raises(ModelBuildError, match=r"^data\.preprocess\[2\] \(reshape\)"):
        steps = [{"one_hot": {}}, {"scale": {"divide_by": 16}}, {"reshape": [9, 9]}]
        _build(digits_dataset, steps, [{"flatten": {}}])
    model = _build(
        digits_dataset,
        [{"one_hot": {}}, {"reshape": [8, 8, 1]}],
        [{"flatten": {}}, {"dense": {"units": 10, "activation": "softmax"}}],
    )
    assert model.layers[1].name == "preprocess_1_reshape"

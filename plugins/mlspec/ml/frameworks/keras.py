"""Build a Keras classifier from a spec's `data.preprocess` and `model.layers`.

The model takes RAW features: feature preprocess steps (scale, normalize, reshape) become its
first layers, so the ONNX export and the served endpoint accept the same numbers as the data
file (a user can curl 64 pixel values 0..16 for digits). Its input is named "input" (float32)
and its output "probabilities", names the ONNX export keeps.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mlspec.errors import MlspecError
from mlspec.ml.data import FEATURE_STEPS, DataError, feature_steps, parse_steps, scale_factors

if TYPE_CHECKING:
    import keras
    import numpy as np

log = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"

# spec layer type -> (keras.layers class name, per-sample input rank it needs, or None for any)
LAYER_TYPES: dict[str, tuple[str, int | None]] = {
    "dense": ("Dense", None),
    "conv1d": ("Conv1D", 2),
    "conv2d": ("Conv2D", 3),
    "max_pooling1d": ("MaxPooling1D", 2),
    "max_pooling2d": ("MaxPooling2D", 3),
    "average_pooling2d": ("AveragePooling2D", 3),
    "global_average_pooling1d": ("GlobalAveragePooling1D", 2),
    "global_average_pooling2d": ("GlobalAveragePooling2D", 3),
    "global_max_pooling2d": ("GlobalMaxPooling2D", 3),
    "flatten": ("Flatten", None),
    "dropout": ("Dropout", None),
    "batch_normalization": ("BatchNormalization", None),
    "activation": ("Activation", None),
}

_RANK_HINT = {
    2: "(steps, channels)",
    3: "(height, width, channels)",
}


class ModelBuildError(MlspecError):
    """`model.layers` (with `data.preprocess`) does not describe a model Keras can build."""


def input_rank_after_preprocess(
    input_shape: Sequence[int], preprocess: Sequence[Mapping[str, Any]] | None
) -> int:
    """Per-sample rank the first model layer sees: the last reshape's length, else the raw rank.

    Pure (no TensorFlow) so spec checks can use it; raises DataError on malformed steps.
    """
    rank = len(input_shape)
    for name, params in feature_steps(preprocess):
        if name == "reshape":
            rank = len(params)
    return rank


def required_input_rank(layer_type: str) -> int | None:
    """Per-sample input rank a layer type needs (3 for conv2d), None when any rank works."""
    return LAYER_TYPES[layer_type][1] if layer_type in LAYER_TYPES else None


def build_model(
    *,
    input_shape: tuple[int, ...],
    preprocess: Sequence[Mapping[str, Any]] | None,
    layers: Sequence[Mapping[str, Any]],
    x_train: np.ndarray,
    seed: int,
    num_classes: int | None = None,
) -> keras.Model:
    """Build (not compile) the model. Errors name the step or layer: `model.layers[2] (conv2d): ...`.

    `x_train` is only read to adapt a normalize step (statistics from training data only).
    With `num_classes`, the output width must match it.
    """
    import keras

    from mlspec.ml.training import set_seeds

    set_seeds(seed)  # weight initialisation must not depend on what ran before
    if not layers:
        raise ModelBuildError(
            "model.layers is empty; list at least the output layer, e.g. dense: {units: 10}"
        )

    inputs = keras.Input(shape=tuple(int(d) for d in input_shape), dtype="float32", name=INPUT_NAME)
    x = inputs
    try:
        # Indices stay those of data.preprocess (label steps included) so errors point at the spec.
        parsed = enumerate(parse_steps(preprocess))
        steps = [(i, name, params) for i, (name, params) in parsed if name in FEATURE_STEPS]
    except DataError as exc:
        raise ModelBuildError(str(exc)) from exc
    sample = x_train
    for position, (index, name, params) in enumerate(steps):
        layer = _preprocess_layer(keras, index, name, params, x.shape, sample)
        x = _call(layer, x, f"data.preprocess[{index}] ({name})")
        if any(later == "normalize" for _, later, _ in steps[position + 1 :]):
            # A later normalize step must see the data as this step leaves it.
            sample = keras.ops.convert_to_numpy(layer(sample))

    for index, item in enumerate(layers):
        where = f"model.layers[{index}]"
        if not isinstance(item, Mapping) or len(item) != 1:
            raise ModelBuildError(f"{where}: each layer is a mapping with one key, e.g. dense: {{units: 10}}")
        ((layer_type, params),) = item.items()
        where = f"{where} ({layer_type})"
        if layer_type not in LAYER_TYPES:
            raise ModelBuildError(
                f"{where}: unknown layer type {layer_type!r}; supported: {', '.join(sorted(LAYER_TYPES))}"
            )
        class_name, rank = LAYER_TYPES[layer_type]
        got = len(x.shape) - 1
        if rank is not None and got != rank:
            raise ModelBuildError(
                f"{where}: needs input of rank {rank} per sample {_RANK_HINT.get(rank, '')}, but gets rank "
                f"{got} with shape {tuple(x.shape[1:])}; "
                + (
                    "add a reshape step to data.preprocess, e.g. reshape: [8, 8, 1]"
                    if got < rank
                    else "add a flatten layer or reshape the input"
                )
            )
        params = {} if params is None else params
        if not isinstance(params, Mapping):
            raise ModelBuildError(f"{where}: expected a mapping of options, got {params!r}")
        try:
            layer = getattr(keras.layers, class_name)(**params, name=f"layers_{index}_{layer_type}")
        except (TypeError, ValueError) as exc:
            raise ModelBuildError(f"{where}: invalid options {dict(params)}: {exc}") from exc
        x = _call(layer, x, where)

    last_type, last_params = next(iter(layers[-1].items()))
    if last_type != "dense" or (last_params or {}).get("activation") not in ("softmax", "sigmoid"):
        # Thresholds, smoke tests and clients read the output as probabilities.
        log.warning(
            "model.layers[%d] (%s) is not a dense layer with activation softmax; the output named %r "
            "will not be class probabilities",
            len(layers) - 1,
            last_type,
            OUTPUT_NAME,
        )
    outputs = keras.layers.Identity(name=OUTPUT_NAME)(x)
    model = keras.Model(inputs=inputs, outputs=outputs, name="mlspec_model")
    if len(model.output_shape) != 2:
        raise ModelBuildError(
            f"model.layers: the last layer outputs shape {tuple(model.output_shape[1:])} per sample; "
            "a classifier needs one vector of class probabilities, so end with flatten or global "
            "pooling and dense: {units: <classes>}"
        )
    if num_classes is not None and model.output_shape[1] != num_classes:
        raise ModelBuildError(
            f"model.layers[{len(layers) - 1}] ({last_type}): outputs {model.output_shape[1]} values per "
            f"sample but the data has {num_classes} classes; set units: {num_classes}"
        )
    log.info(
        "built model: input %s -> output %s, %d parameters",
        tuple(model.input_shape[1:]),
        tuple(model.output_shape[1:]),
        model.count_params(),
    )
    return model


def _preprocess_layer(
    keras: Any, index: int, name: str, params: Any, shape: tuple[Any, ...], sample: np.ndarray
) -> Any:
    layer_name = f"preprocess_{index}_{name}"
    if name == "scale":
        scale, offset = scale_factors(params)
        return keras.layers.Rescaling(scale=scale, offset=offset, name=layer_name)
    if name == "reshape":
        have = _size(shape[1:])
        want = _size(params)
        if have != want:
            raise ModelBuildError(
                f"data.preprocess[{index}] (reshape): cannot reshape {have} values per sample "
                f"(shape {tuple(shape[1:])}) into {list(params)} ({want} values)"
            )
        return keras.layers.Reshape(tuple(params), name=layer_name)
    if name == "normalize":
        # Statistics per feature (every non-batch position), from training data only.
        axis = tuple(range(1, len(shape)))
        layer = keras.layers.Normalization(axis=axis, name=layer_name)
        if len(sample) == 0:
            raise ModelBuildError(
                f"data.preprocess[{index}] (normalize): no training samples to compute statistics"
            )
        layer.adapt(sample)
        return layer
    raise ModelBuildError(f"data.preprocess[{index}]: {name!r} is not a feature step")


def _call(layer: Any, x: Any, where: str) -> Any:
    try:
        return layer(x)
    except (ValueError, TypeError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelBuildError(f"{where}: {message} (input shape {tuple(x.shape[1:])} per sample)") from exc


def _size(shape: Sequence[Any]) -> int:
    size = 1
    for d in shape:
        size *= int(d)
    return size

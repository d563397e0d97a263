"""Keras' lint rules: the network needs layers whose shapes fit the data, a loss that fits the task
and its labels, early stopping on a metric that is reported, and few enough weights to export.
The rules of the tensorflow `Framework` (keras_adapter.FRAMEWORK); pure Python, cheap to import."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from mlspec.vocabulary import DATA_SOURCES, LAYERS, LOSSES

if TYPE_CHECKING:
    from mlspec.spec.errors import SpecProblem
    from mlspec.spec.yaml_loader import LoadedYaml

# 2 GiB of float32 weights: a larger ONNX model cannot be written as one file (protobuf's limit), and training
# it needs several times that in memory. Above it lint warns.
PARAMETER_WARNING = 2**29

SPATIAL_LAYERS = {kind for kind, (_, rank) in LAYERS.items() if rank == 3}


def lint(doc: LoadedYaml, spec: Mapping[str, Any]) -> Iterator[SpecProblem]:
    """Everything Keras needs of a schema-valid spec."""
    if not spec["model"]["layers"]:
        yield doc.problem(("model",), "framework tensorflow needs model.layers (the Keras network), e.g. - dense: {units: 10}")
    yield from check_reshape(doc, spec)
    yield from check_layers(doc, spec)
    yield from check_model_size(doc, spec)
    yield from check_training(doc, spec)


def check_reshape(doc: LoadedYaml, spec: Mapping[str, Any]) -> Iterator[SpecProblem]:
    """A reshape keeps the number of values per sample: it must hold exactly what a known source gives."""
    known = DATA_SOURCES.get(spec["data"]["source"])
    if known is None:
        return
    size = math.prod(known.shape)
    for index, step in enumerate(spec["data"]["preprocess"]):
        if "reshape" not in step:
            continue
        target = list(step["reshape"])
        if math.prod(target) != size:
            yield doc.problem(
                ("data", "preprocess", index, "reshape"),
                f"reshape {target} holds {math.prod(target):,} values per sample, but {spec['data']['source']} gives "
                f"{size:,} (shape {list(known.shape)}); the dimensions must multiply to {size}",
                at_key=True,
            )

def input_shape_after_preprocess(spec: Mapping[str, Any]) -> tuple[int, ...] | None:
    """Per-sample input shape the first layer sees, when the data source or a reshape tells it."""
    known = DATA_SOURCES.get(spec["data"]["source"])
    shape = known.shape if known else None
    if shape is None and spec["data"]["format"] in ("csv", "parquet") or str(spec["data"]["source"]).endswith((".csv", ".parquet")):
        shape = (None,)  # tables give one feature vector per row
    for step in spec["data"]["preprocess"]:
        if "reshape" in step:
            shape = tuple(step["reshape"])
    return shape


def check_layers(doc: LoadedYaml, spec: Mapping[str, Any]) -> Iterator[SpecProblem]:
    layers = spec["model"]["layers"]
    if not layers:
        return
    shape = input_shape_after_preprocess(spec)
    rank = len(shape) if shape is not None else None
    for index, layer in enumerate(layers):
        ((kind, params),) = layer.items()
        path = ("model", "layers", index, kind)
        if kind in SPATIAL_LAYERS and rank is not None and rank != 3:
            yield doc.problem(
                path,
                f"{kind} needs input of rank 3 per sample (height, width, channels) but gets rank {rank} "
                f"(shape {list(shape) if rank == len(shape or ()) else '?'}); add a preprocess `reshape` step, e.g. [8, 8, 1]",
                at_key=True,
            )
            rank = None  # one message is enough; later shapes are unknown
            continue
        if rank is not None:
            rank = 1 if kind in ("flatten", "global_average_pooling2d") else rank
    known = DATA_SOURCES.get(spec["data"]["source"])
    classes = known.classes if known else None
    last_kind, last_params = next(iter(layers[-1].items()))
    last = ("model", "layers", len(layers) - 1, "dense")
    if spec["model"]["task"] == "regression":
        if last_kind == "dense" and last_params.get("units") != 1:
            yield doc.problem(last + ("units",), f"a regression model predicts one value: the last layer needs units: 1, not {last_params.get('units')}")
        if last_kind == "dense" and last_params.get("activation") in ("softmax", "sigmoid"):
            yield doc.problem(last + ("activation",), f"{last_params['activation']} squashes the prediction; a regression model ends with a linear layer (no activation)")
    elif classes is not None and last_kind == "dense" and last_params.get("units") != classes:
        yield doc.problem(
            ("model", "layers", len(layers) - 1, "dense", "units"),
            f"the last layer has {last_params.get('units')} units but {spec['data']['source']} has {classes} classes",
        )
    if last_kind != "dense":
        yield doc.problem(("model", "layers", len(layers) - 1), f"the last layer must be dense (one unit per class, or one for regression), not {last_kind}")


def _pair(value) -> tuple[int, int]:
    """A window or stride: one number (3, or 3.0, which JSON Schema calls an integer too) or [height, width]."""
    return (int(value), int(value)) if isinstance(value, int | float) else (int(value[0]), int(value[-1]))


def _spatial(shape: list | None, window, strides, padding: str) -> list | None:
    """Height and width after a conv or pooling window (Keras' arithmetic); None when unknown."""
    if not shape or len(shape) != 3:
        return None
    out = []
    for size, k, s in zip(shape[:2], _pair(window), _pair(strides), strict=True):
        s = max(s, 1)
        if size is None:
            out.append(None)
        elif padding == "same":
            out.append(-(-int(size) // s))
        else:
            out.append(max((int(size) - k) // s + 1, 0))
    return out


def estimate_parameters(spec: Mapping[str, Any]) -> int:
    """The Keras network's parameter count (trainable and not), as far as the input shape is known: the first
    layer's inputs count as 0 when the data's width is unknown (a table read at run time)."""
    shape = input_shape_after_preprocess(spec)
    shape = list(shape) if shape is not None else None
    total = 0
    for layer in spec["model"]["layers"]:
        ((kind, params),) = layer.items()
        params = params or {}
        last = int(shape[-1] or 0) if shape else 0
        if kind == "dense":
            units = int(params["units"])
            total += last * units + (units if params.get("use_bias", True) else 0)
            shape = (shape[:-1] if shape else []) + [units]
        elif kind == "conv2d":
            filters = int(params["filters"])
            kh, kw = _pair(params.get("kernel_size", 3))
            total += kh * kw * last * filters + filters
            spatial = _spatial(shape, (kh, kw), params.get("strides", 1), params.get("padding", "valid"))
            shape = spatial + [filters] if spatial else None
        elif kind in ("max_pooling2d", "average_pooling2d"):
            pool = params.get("pool_size", 2)
            spatial = _spatial(shape, pool, params.get("strides") or pool, params.get("padding", "valid"))
            shape = spatial + [shape[-1]] if spatial else None
        elif kind == "global_average_pooling2d":
            shape = [shape[-1]] if shape else None
        elif kind == "flatten":
            shape = [math.prod(shape)] if shape and None not in shape else [None]
        elif kind == "batch_normalization":
            total += 4 * last  # gamma, beta, moving mean and variance
    return total


def check_model_size(doc: LoadedYaml, spec: Mapping[str, Any]) -> Iterator[SpecProblem]:
    if not spec["model"]["layers"]:
        return
    total = estimate_parameters(spec)
    if total > PARAMETER_WARNING:
        # Integers all the way: a reshape may name a dimension of 10**400, which no float holds.
        count = f"about {total:,}" if total < 10**18 else f"more than 10^{len(str(total)) - 1}"
        size = f"{total * 4 // 10**9:,} GB" if total < 10**18 else "far more than any machine has"
        yield doc.problem(
            ("model", "layers"),
            f"the network has {count} parameters ({size} of float32 weights); an ONNX model "
            "over 2 GB cannot be exported as one file, and training needs several times the weights in memory",
            at_key=True,
            severity="warning",
        )


def check_training(doc: LoadedYaml, spec: Mapping[str, Any]) -> Iterator[SpecProblem]:
    task = spec["model"]["task"]
    one_hot = any("one_hot" in step for step in spec["data"]["preprocess"])
    loss = spec["training"]["loss"]
    if loss not in LOSSES[task]:
        yield doc.problem(("training", "loss"), f"{loss} is not a {task} loss; use one of {', '.join(LOSSES[task])}")
        return
    if task == "regression" and one_hot:
        yield doc.problem(("data", "preprocess"), "one_hot encodes class labels; a regression target stays a number")
    if one_hot and loss == "sparse_categorical_crossentropy":
        yield doc.problem(("training", "loss"), "labels are one-hot encoded (preprocess one_hot): use categorical_crossentropy")
    if not one_hot and loss == "categorical_crossentropy":
        yield doc.problem(("training", "loss"), "categorical_crossentropy needs one-hot labels: add a preprocess `one_hot: {}` step")
    early = spec["training"]["early_stopping"]
    if early and early["monitor"].startswith("val_") and spec["data"]["split"]["validation"] == 0:
        yield doc.problem(("training", "early_stopping", "monitor"), f"monitors {early['monitor']} but data.split.validation is 0")
    wrong_metric = "accuracy" if task == "regression" else "rmse"
    if early and early["monitor"].removeprefix("val_") == wrong_metric:
        yield doc.problem(("training", "early_stopping", "monitor"), f"{early['monitor']} is not reported for {task}; monitor loss or {'rmse' if task == 'regression' else 'accuracy'}")

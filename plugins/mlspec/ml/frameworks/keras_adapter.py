"""The TensorFlow/Keras adapter: build a Keras model from the spec, fit it, save it, export it to ONNX.

The model takes RAW features: feature preprocess steps (scale, normalize, reshape) become its
first layers, so the ONNX export and the served endpoint accept the same numbers as the data
file (a user can curl 64 pixel values 0..16 for digits). One log line per epoch
(`epoch 3/10: loss=0.4100 accuracy=0.8900 ...`); `.keras` bytes load back with the same
predictions (preprocess layers included).
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mlspec.errors import MlspecError
from mlspec.ml.frameworks import keras_lint
from mlspec.ml.frameworks.base import (
    FitReport,
    Framework,
    FrameworkAdapter,
    ProgressCallback,
    RunParam,
    TrainingError,
    value_text,
)
from mlspec.vocabulary import FEATURE_STEPS, INPUT_NAME, LAYERS, LOSSES, ONE_HOT_LOSSES, OPTIMIZERS, OUTPUTS

if TYPE_CHECKING:
    import keras
    import numpy as np

    from mlspec.ml.data import Dataset
    from mlspec.ml.frameworks import TrainingPlan

log = logging.getLogger(__name__)


class ModelBuildError(MlspecError):
    """`model.layers` (with `data.preprocess`) does not describe a model Keras can build."""


_RANK_HINT = {
    2: "(steps, channels)",
    3: "(height, width, channels)",
}


def build_model(
    *,
    input_shape: tuple[int, ...],
    preprocess: Sequence[Mapping[str, Any]] | None,
    layers: Sequence[Mapping[str, Any]],
    x_train: np.ndarray,
    seed: int,
    task: str = "classification",
    num_classes: int | None = None,
) -> keras.Model:
    """Build (not compile) the model. Errors name the step or layer: `model.layers[2] (conv2d): ...`.

    `x_train` is only read to adapt a normalize step (statistics from training data only).
    The output must be one value per class (classification, checked against `num_classes` when
    given) or one value (regression).
    """
    import keras

    from mlspec.ml.data import DataError, parse_steps  # imports numpy: not at DAG parse time

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
        if layer_type not in LAYERS:
            raise ModelBuildError(
                f"{where}: unknown layer type {layer_type!r}; supported: {', '.join(sorted(LAYERS))}"
            )
        class_name, rank = LAYERS[layer_type]
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
    output_name = OUTPUTS[task][0]
    if task == "classification" and (last_type != "dense" or (last_params or {}).get("activation") not in ("softmax", "sigmoid")):
        # Thresholds, smoke tests and clients read the output as probabilities.
        log.warning(
            "model.layers[%d] (%s) is not a dense layer with activation softmax; the output named %r "
            "will not be class probabilities",
            len(layers) - 1,
            last_type,
            output_name,
        )
    outputs = keras.layers.Identity(name=output_name)(x)
    model = keras.Model(inputs=inputs, outputs=outputs, name="mlspec_model")
    if len(model.output_shape) != 2:
        raise ModelBuildError(
            f"model.layers: the last layer outputs shape {tuple(model.output_shape[1:])} per sample; "
            "the model needs one vector per sample, so end with flatten or global pooling and "
            + ("dense: {units: <classes>}" if task == "classification" else "dense: {units: 1}")
        )
    width = model.output_shape[1]
    where = f"model.layers[{len(layers) - 1}] ({last_type})"
    if task == "regression" and width != 1:
        raise ModelBuildError(f"{where}: outputs {width} values per sample; a regression model ends with dense: {{units: 1}}")
    if task == "classification" and num_classes is not None and width != num_classes:
        raise ModelBuildError(
            f"{where}: outputs {width} values per sample but the data has {num_classes} classes; set units: {num_classes}"
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
    from mlspec.ml.data import scale_factors  # imports numpy: not at DAG parse time

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


# --------------------------------------------------------------------------- fitting


def set_seeds(seed: int) -> None:
    """Seed python, numpy and the Keras backend; ask TF for deterministic ops.

    Op determinism only costs speed on GPU kernels mlspec's small models rarely use; where TF
    refuses it (old builds), training still runs, just not bit-for-bit repeatable.
    """
    import keras

    random.seed(seed)
    keras.utils.set_random_seed(seed)  # python, numpy and backend generators
    try:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    except Exception as exc:  # noqa: BLE001 - determinism is best effort
        log.debug("op determinism not enabled: %s", exc)


def describe_device() -> str:
    """Which device TensorFlow will train on, for logs."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return f"GPU ({', '.join(g.name for g in gpus)})"
    return "CPU"


def make_optimizer(settings: Mapping[str, Any]) -> Any:
    """`{name: adam, learning_rate: 0.001, ...}` -> a Keras optimizer; other keys go to its constructor."""
    import keras

    options = dict(settings)
    name = str(options.pop("name", "adam")).lower()
    if name not in OPTIMIZERS:
        raise TrainingError(
            f"training.optimizer.name {name!r} is not supported; use one of {', '.join(OPTIMIZERS)}"
        )
    try:
        return getattr(keras.optimizers, OPTIMIZERS[name])(**options)
    except (TypeError, ValueError) as exc:
        raise TrainingError(f"training.optimizer: invalid options {options} for {name}: {exc}") from exc


def train(
    model: keras.Model,
    dataset: Dataset,
    *,
    epochs: int,
    batch_size: int,
    optimizer: Mapping[str, Any],
    loss: str,
    early_stopping: Mapping[str, Any] | None = None,
    on_epoch_end: ProgressCallback | None = None,
    task: str = "classification",
) -> dict[str, Any]:
    """Compile (metrics: accuracy, or rmse for regression) and fit `model` in place.

    Returns `{"epochs_run": n, "history": {metric: [float per epoch]}, "stopped_early": bool}`.
    `on_epoch_end(epoch, logs)` gets the 1-based epoch number and float metrics after each epoch.
    Early stopping restores the best weights unless `restore_best_weights: false`.
    """
    import keras

    _check_loss_fits_task(loss, task, dataset)
    has_val = len(dataset.x_val) > 0
    callbacks: list[Any] = [_epoch_logger(epochs, on_epoch_end)]
    stopper = None
    if early_stopping:
        settings = dict(early_stopping)
        monitor = str(settings.get("monitor", "val_loss"))
        if monitor.startswith("val_") and not has_val:
            raise TrainingError(
                f"training.early_stopping.monitor is {monitor!r} but there is no validation data; "
                "set data.split.validation above 0 or monitor a training metric such as loss"
            )
        stopper = keras.callbacks.EarlyStopping(
            monitor=monitor,
            patience=int(settings.get("patience", 3)),
            min_delta=float(settings.get("min_delta", 0.0)),
            mode=str(settings.get("mode", "auto")),
            restore_best_weights=bool(settings.get("restore_best_weights", True)),
        )
        callbacks.append(stopper)

    metrics = ["accuracy"] if task == "classification" else [keras.metrics.RootMeanSquaredError(name="rmse")]
    model.compile(optimizer=make_optimizer(optimizer), loss=loss, metrics=metrics)
    log.info(
        "training on %s: %d samples, %d epochs, batch size %d, optimizer %s, loss %s",
        describe_device(),
        len(dataset.x_train),
        epochs,
        batch_size,
        dict(optimizer).get("name", "adam"),
        loss,
    )
    try:
        history = model.fit(
            dataset.x_train,
            dataset.y_train,
            validation_data=(dataset.x_val, dataset.y_val) if has_val else None,
            epochs=epochs,
            batch_size=batch_size,
            callbacks=callbacks,
            verbose=0,
            shuffle=True,
        )
    except (ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrainingError(f"training failed: {first}") from exc

    hist = {k: [float(v) for v in values] for k, values in history.history.items()}
    epochs_run = len(hist.get("loss", []))
    stopped_early = bool(stopper is not None and stopper.stopped_epoch > 0 and epochs_run < epochs)
    if stopped_early:
        log.info(
            "early stopping after epoch %d of %d (%s stopped improving)", epochs_run, epochs, stopper.monitor
        )
    # Early stopping with restore_best_weights hands the weights of its best epoch back at the end of
    # training (whether it stopped early or not): the model is that epoch's, not the last one's.
    restored = stopper is not None and stopper.restore_best_weights and stopper.best_weights is not None
    kept_epoch = int(stopper.best_epoch) + 1 if restored else epochs_run
    return {"epochs_run": epochs_run, "history": hist, "stopped_early": stopped_early, "kept_epoch": kept_epoch}


def _check_loss_fits_task(loss: str, task: str, dataset: Dataset) -> None:
    if loss not in LOSSES[task]:
        raise TrainingError(f"training.loss {loss} does not fit task {task}; use one of {', '.join(LOSSES[task])}")
    one_hot = dataset.y_train.ndim == 2
    if loss == "sparse_categorical_crossentropy" and one_hot:
        raise TrainingError(
            f"training.loss {loss} expects class indices, but the labels are one-hot "
            "(data.preprocess has one_hot); use categorical_crossentropy or drop the one_hot step"
        )
    if loss in ONE_HOT_LOSSES and not one_hot:
        raise TrainingError(
            f"training.loss {loss} expects one-hot labels; add '- one_hot: {{}}' to data.preprocess "
            "or use sparse_categorical_crossentropy"
        )


def _format_logs(logs: Mapping[str, float]) -> str:
    # Training metrics first, then validation ones, in a stable order.
    keys = sorted(logs, key=lambda k: (k.startswith("val_"), k != "loss" and k != "val_loss", k))
    return " ".join(f"{k}={float(logs[k]):.4f}" for k in keys)


def _epoch_logger(epochs: int, on_epoch_end: ProgressCallback | None) -> Any:
    # The class is made here because its base comes from keras, which this module imports lazily.
    import keras

    class EpochLogger(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            values = {k: float(v) for k, v in (logs or {}).items() if _is_number(v)}
            log.info("epoch %d/%d: %s", epoch + 1, epochs, _format_logs(values))
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, values)

    return EpochLogger()


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def save_model_bytes(model: keras.Model) -> bytes:
    """The model in Keras' native `.keras` format (architecture, weights, adapted statistics)."""
    with tempfile.TemporaryDirectory(prefix="mlspec-model-") as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        with open(path, "rb") as fh:
            return fh.read()


def load_model_bytes(data: bytes) -> keras.Model:
    """Inverse of `save_model_bytes`. The optimizer state is not needed for export, so no compile."""
    import keras

    with tempfile.TemporaryDirectory(prefix="mlspec-model-") as tmp:
        path = os.path.join(tmp, "model.keras")
        with open(path, "wb") as fh:
            fh.write(data)
        try:
            return keras.models.load_model(path, compile=False)
        except Exception as exc:  # noqa: BLE001 - corrupt or foreign files: one clear line
            raise TrainingError(
                f"could not load the trained model (.keras, {len(data)} bytes): {exc}"
            ) from exc


# --------------------------------------------------------------------------- ONNX


def export_onnx(model: keras.Model, *, task: str, opset: int) -> bytes:
    """Convert `model` to ONNX: input "input" and the task's outputs, with a dynamic batch dimension.

    Classification answers the Keras output as "probabilities" and its argmax as "label" (INT64),
    so clients need no post-processing; regression answers "prediction".
    """
    import tensorflow as tf
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from mlspec.ml.onnx_export import ExportError  # imports numpy: not at DAG parse time

    input_shape = tuple(int(d) for d in model.input_shape[1:])
    spec = tf.TensorSpec((None, *input_shape), tf.float32, name=INPUT_NAME)

    @tf.function(input_signature=[spec])
    def serve(x: Any) -> Any:
        y = model(x, training=False)
        if task == "classification":
            return y, tf.argmax(y, axis=1, output_type=tf.int64)
        return (y,)

    # tf2onnx.convert.from_function would turn the tensors Keras 3 layers capture (the mean and
    # variance of Normalization) into extra graph inputs; freezing every capture to a constant
    # first leaves "input" as the only input.
    tf_logger = tf.get_logger()
    old_level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)  # tf2onnx calls TF1 freezing APIs that log deprecation notices
    try:
        frozen = convert_variables_to_constants_v2(serve.get_concrete_function())
        output_tensors = [t.name for t in frozen.outputs]
        model_proto, _ = tf2onnx.convert.from_graph_def(
            frozen.graph.as_graph_def(),
            name="mlspec_model",
            input_names=[f"{INPUT_NAME}:0"],
            output_names=output_tensors,
            opset=opset,
            tensors_to_rename={f"{INPUT_NAME}:0": INPUT_NAME, **dict(zip(output_tensors, OUTPUTS[task], strict=True))},
        )
    except Exception as exc:  # noqa: BLE001 - converter failures are many types; one clear line
        raise ExportError(f"tf2onnx could not convert the model at opset {opset}: {exc}") from exc
    finally:
        tf_logger.setLevel(old_level)
    return model_proto.SerializeToString()


# --------------------------------------------------------------------------- the adapter


class KerasAdapter(FrameworkAdapter):
    name = "tensorflow"
    artifact_name = "model.keras"

    def build(self, plan: TrainingPlan, dataset: Dataset) -> Any:
        return build_model(
            input_shape=tuple(int(d) for d in dataset.x_train.shape[1:]),
            preprocess=plan.preprocess,
            layers=plan.layers,
            x_train=dataset.x_train,
            seed=plan.seed,
            task=plan.task,
            num_classes=len(dataset.class_names) if plan.task == "classification" else None,
        )

    def fit(self, model: Any, plan: TrainingPlan, dataset: Dataset, on_progress: ProgressCallback | None = None) -> FitReport:
        settings = plan.training
        set_seeds(plan.seed)
        result = train(
            model,
            dataset,
            epochs=int(settings["epochs"]),
            batch_size=int(settings["batch_size"]),
            optimizer=settings["optimizer"],
            loss=settings["loss"],
            early_stopping=settings.get("early_stopping"),
            on_epoch_end=on_progress,
            task=plan.task,
        )
        return FitReport(
            steps_run=result["epochs_run"], stopped_early=result["stopped_early"], history=result["history"],
            notes={"kept_epoch": result["kept_epoch"]},
        )

    def validation_metrics(self, model: Any, plan: TrainingPlan, dataset: Dataset, report: FitReport) -> dict[str, float]:
        """val_loss and val_accuracy (or val_rmse) at the epoch whose weights the model keeps."""
        epoch = int(report.notes.get("kept_epoch") or report.steps_run)
        return {
            name: float(values[epoch - 1])
            for name, values in report.history.items()
            if name.startswith("val_") and len(values) >= epoch > 0
        }

    def standardizes_numbers(self, plan: TrainingPlan) -> bool:
        return True

    def predict(self, model: Any, x: np.ndarray, task: str) -> dict[str, np.ndarray]:
        import numpy as np

        y = np.asarray(model.predict(np.asarray(x, dtype=np.float32), verbose=0), dtype=np.float32)
        if task == "classification":
            return {"probabilities": y, "label": np.argmax(y, axis=1).astype(np.int64)}
        return {"prediction": y.reshape(len(y), 1)}

    def save(self, model: Any) -> bytes:
        return save_model_bytes(model)

    def load(self, data: bytes) -> Any:
        return load_model_bytes(data)

    def to_onnx(self, model: Any, *, task: str, opset: int, sample: np.ndarray) -> bytes:
        return export_onnx(model, task=task, opset=opset)


# --------------------------------------------------------------------------- the framework


def describe(spec: Mapping[str, Any], run_params: Mapping[str, Any]) -> str:
    layers = spec["model"]["layers"]
    return f"TensorFlow/Keras, {len(layers)} layers: " + " → ".join(_layer_text(layer) for layer in layers)


def _layer_text(layer: Mapping[str, Any]) -> str:
    ((kind, params),) = layer.items()
    return f"{kind}(" + ", ".join(f"{k}={value_text(v)}" for k, v in dict(params or {}).items()) + ")"


def run_parameters(spec: Mapping[str, Any]) -> dict[str, RunParam]:
    """A run may change how long and how fast the network learns."""
    training = spec["training"]
    return {
        "epochs": RunParam(
            "epochs", training["epochs"], {"type": "integer", "minimum": 1}, "Maximum epochs for this run", "training.epochs"
        ),
        "learning_rate": RunParam(
            "learning_rate", training["optimizer"]["learning_rate"], {"type": "number", "exclusiveMinimum": 0},
            "Learning rate for this run", "training.optimizer.learning_rate",
        ),
    }


def objective_metrics(task: str) -> tuple[str, ...]:
    """What Keras logs on the validation data, at the epoch whose weights the model keeps."""
    return ("val_loss", "val_accuracy") if task == "classification" else ("val_loss", "val_rmse")


FRAMEWORK = Framework(
    name="tensorflow",
    title="TensorFlow/Keras",
    library="Keras",
    step="epoch",
    fields=("model.layers", "training"),
    settings="model.layers and training",
    adapter=KerasAdapter(),
    describe=describe,
    lint=keras_lint.lint,
    run_parameters=run_parameters,
    objective_metrics=objective_metrics,
    tune_hint="model.layers or training",
    tune_example="training.optimizer.learning_rate",
)

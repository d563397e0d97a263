"""Compile and fit a Keras model on a Dataset; move models to and from bytes.

Callers can rely on: one log line per epoch (`epoch 3/10: loss=0.4100 accuracy=0.8900 ...`),
a plain JSON-able result from `train`, and `.keras` bytes that load back with the same
predictions (preprocess layers included).
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from mlspec.errors import MlspecError

if TYPE_CHECKING:
    import keras

    from mlspec.ml.data import Dataset

log = logging.getLogger(__name__)

OPTIMIZERS = {"adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop", "adamw": "AdamW"}
SPARSE_LOSSES = ("sparse_categorical_crossentropy",)
ONE_HOT_LOSSES = ("categorical_crossentropy", "categorical_focal_crossentropy", "kl_divergence")

EpochCallback = Callable[[int, dict[str, float]], None]


class TrainingError(MlspecError):
    """The training settings do not fit the model or the data, or fitting failed."""


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
    on_epoch_end: EpochCallback | None = None,
) -> dict[str, Any]:
    """Compile (metrics=["accuracy"]) and fit `model` in place.

    Returns `{"epochs_run": n, "history": {metric: [float per epoch]}, "stopped_early": bool}`.
    `on_epoch_end(epoch, logs)` gets the 1-based epoch number and float metrics after each epoch.
    Early stopping restores the best weights unless `restore_best_weights: false`.
    """
    import keras

    _check_loss_fits_labels(loss, dataset)
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

    model.compile(optimizer=make_optimizer(optimizer), loss=loss, metrics=["accuracy"])
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
    return {"epochs_run": epochs_run, "history": hist, "stopped_early": stopped_early}


def _check_loss_fits_labels(loss: str, dataset: Dataset) -> None:
    one_hot = dataset.y_train.ndim == 2
    if loss in SPARSE_LOSSES and one_hot:
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


def _epoch_logger(epochs: int, on_epoch_end: EpochCallback | None) -> Any:
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

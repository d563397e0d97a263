"""Real (tiny) training runs: accuracy, per-epoch logs, early stopping, model bytes."""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from mlspec.ml.data import Dataset, apply_label_steps, load_source, split
from mlspec.ml.frameworks.keras_adapter import (
    TrainingError,
    build_model,
    load_model_bytes,
    save_model_bytes,
    set_seeds,
    train,
)

SPARSE = "sparse_categorical_crossentropy"


@pytest.fixture(scope="module")
def iris() -> Dataset:
    x, y, names, _, *_ = load_source(
        "builtin:iris", fmt=None, features=None, label=None, read_bytes=lambda uri: b""
    )
    return split(x, y, validation=0.2, test=0.2, seed=0, stratify=True, class_names=names)


def _iris_model(ds: Dataset, seed: int = 0) -> Any:
    return build_model(
        input_shape=ds.input_shape,
        preprocess=[{"normalize": {}}],
        layers=[{"dense": {"units": 3, "activation": "softmax"}}],
        x_train=ds.x_train,
        seed=seed,
    )


def _train(ds: Dataset, **overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "epochs": 1,
        "batch_size": 16,
        "optimizer": {"name": "adam", "learning_rate": 0.05},
        "loss": SPARSE,
        "early_stopping": None,
        "on_epoch_end": None,
    }
    settings.update(overrides)
    return train(_iris_model(ds, seed=settings.pop("seed", 0)), ds, **settings)


def test_digits_training_beats_chance(trained_digits: dict[str, Any], digits_dataset: Dataset) -> None:
    result = trained_digits["result"]
    assert result["epochs_run"] == 3 and result["stopped_early"] is False
    assert set(result["history"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(values) == 3 for values in result["history"].values())
    assert result["history"]["loss"][-1] < result["history"]["loss"][0]
    predicted = trained_digits["model"].predict(digits_dataset.x_test, verbose=0).argmax(axis=1)
    accuracy = float((predicted == digits_dataset.y_test).mean())
    assert accuracy > 0.7, f"test accuracy {accuracy:.3f} on raw digits; chance is 0.1"
    epochs = [epoch for epoch, _ in trained_digits["seen_epochs"]]
    assert epochs == [1, 2, 3]
    assert trained_digits["seen_epochs"][-1][1]["val_accuracy"] == result["history"]["val_accuracy"][-1]


def test_one_log_line_per_epoch(iris: Dataset, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mlspec.ml.frameworks.keras_adapter")
    _train(iris, epochs=2, optimizer={"name": "sgd", "learning_rate": 0.1, "momentum": 0.9})
    messages = [r.getMessage() for r in caplog.records]
    lines = [m for m in messages if m.startswith("epoch ")]
    number = r"\d+\.\d{4}"
    assert len(lines) == 2
    for epoch, line in enumerate(lines, start=1):
        expected = (
            rf"epoch {epoch}/2: loss={number} accuracy={number} val_loss={number} val_accuracy={number}$"
        )
        assert re.match(expected, line), line
    assert any(re.match(r"training on (CPU|GPU)", m) for m in messages)


def test_early_stopping_stops_when_nothing_improves(iris: Dataset) -> None:
    # learning_rate 0: the weights never change, so val_loss never improves after epoch 1.
    result = _train(
        iris,
        epochs=20,
        optimizer={"name": "adam", "learning_rate": 0.0},
        early_stopping={"monitor": "val_loss", "patience": 2},
    )
    assert result["stopped_early"] is True
    assert result["epochs_run"] == 3
    assert len(result["history"]["val_loss"]) == 3


def test_one_hot_labels_need_categorical_loss(iris: Dataset) -> None:
    one_hot = apply_label_steps(iris, [{"one_hot": {}}])
    with pytest.raises(TrainingError, match="use categorical_crossentropy"):
        _train(one_hot)
    result = _train(one_hot, optimizer={"name": "rmsprop"}, loss="categorical_crossentropy")
    assert result["epochs_run"] == 1
    with pytest.raises(TrainingError, match="add '- one_hot: {}'"):
        _train(iris, loss="categorical_crossentropy")


def test_settings_errors(iris: Dataset) -> None:
    with pytest.raises(TrainingError, match="optimizer.name 'adagrad'.*adam"):
        _train(iris, optimizer={"name": "adagrad"})
    with pytest.raises(TrainingError, match="invalid options.*learning_rat"):
        _train(iris, optimizer={"name": "adam", "learning_rat": 0.1})
    no_val = replace(iris, x_val=iris.x_val[:0], y_val=iris.y_val[:0])
    with pytest.raises(TrainingError, match="no validation data"):
        _train(no_val, early_stopping={"monitor": "val_loss"})


def test_same_seed_same_training(iris: Dataset) -> None:
    def run() -> list[float]:
        set_seeds(11)  # build_model seeds too; fit's shuffling follows this seed
        result = _train(iris, seed=11, epochs=2, optimizer={"name": "adamw", "learning_rate": 0.05})
        return result["history"]["loss"]

    assert run() == run()


def test_model_bytes_round_trip(trained_digits: dict[str, Any], digits_dataset: Dataset) -> None:
    model = trained_digits["model"]
    data = save_model_bytes(model)
    assert data[:2] == b"PK"  # .keras is a zip archive
    restored = load_model_bytes(data)
    x = digits_dataset.x_test[:50]
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))
    # The adapted Normalization statistics travelled with the weights.
    np.testing.assert_array_equal(
        np.asarray(restored.get_layer("preprocess_1_normalize").mean),
        np.asarray(model.get_layer("preprocess_1_normalize").mean),
    )
    assert restored.inputs[0].name == "input" and restored.layers[-1].name == "probabilities"
    with pytest.raises(TrainingError, match="could not load the trained model"):
        load_model_bytes(b"not a model")

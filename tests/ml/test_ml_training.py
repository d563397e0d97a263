"""Real (tiny) training runs: accuracy, per-epoch logs, early stopping, model bytes."""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from mlspec.ml.data import Dataset, apply_label_steps, load_source, split
from mlspec.ml.keras_model import build_model
from mlspec.ml.training import TrainingError, load_model_bytes, save_model_bytes, train


@pytest.fixture(scope="module")
def iris() -> Dataset:
    x, y, names, features = load_source(
        "builtin:iris", fmt=None, features=None, label=None, read_bytes=lambda uri: b""
    )
    return split(x, y, validation=0.2, test=0.2, seed=0, stratify=True, class_names=names, feature_names=features)


def _iris_model(ds: Dataset, seed: int = 0) -> Any:
    return build_model(
        input_shape=ds.input_shape,
        preprocess=[{"normalize": {}}],
        layers=[{"dense": {"units": 3, "activation": "softmax"}}],
        x_train=ds.x_train,
        seed=seed,
    )


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
    caplog.set_level(logging.INFO, logger="mlspec.ml.training")
    train(
        _iris_model(iris),
        iris,
        epochs=2,
        batch_size=16,
        optimizer={"name": "sgd", "learning_rate": 0.1, "momentum": 0.9},
        loss="sparse_categorical_crossentropy",
        early_stopping=None,
        on_epoch_end=None,
    )
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    pattern = r"epoch {}/2: loss=\d+\.\d{{4}} accuracy=\d+\.\d{{4}} val_loss=\d+\.\d{{4}} val_accuracy=\d+\.\d{{4}}$"
    assert len(lines) == 2
    for number, line in enumerate(lines, start=1):
        assert re.match(pattern.format(number), line), line
    assert any("training on CPU" in r.getMessage() or "training on GPU" in r.getMessage() for r in caplog.records)


def test_early_stopping_stops_when_nothing_improves(iris: Dataset) -> None:
    # learning_rate 0: the weights never change, so val_loss never improves after epoch 1.
    result = train(
        _iris_model(iris),
        iris,
        epochs=20,
        batch_size=32,
        optimizer={"name": "adam", "learning_rate": 0.0},
        loss="sparse_categorical_crossentropy",
        early_stopping={"monitor": "val_loss", "patience": 2},
        on_epoch_end=None,
    )
    assert result["stopped_early"] is True
    assert result["epochs_run"] == 3
    assert len(result["history"]["val_loss"]) == 3


def test_one_hot_labels_need_categorical_loss(iris: Dataset) -> None:
    one_hot = apply_label_steps(iris, [{"one_hot": {}}])
    with pytest.raises(TrainingError, match="use categorical_crossentropy"):
        train(_iris_model(iris), one_hot, epochs=1, batch_size=16, optimizer={"name": "adam"},
              loss="sparse_categorical_crossentropy")  # fmt: skip
    result = train(_iris_model(iris), one_hot, epochs=1, batch_size=16, optimizer={"name": "rmsprop"},
                   loss="categorical_crossentropy")  # fmt: skip
    assert result["epochs_run"] == 1


def test_settings_errors(iris: Dataset) -> None:
    with pytest.raises(TrainingError, match="optimizer.name 'adagrad'.*adam"):
        train(_iris_model(iris), iris, epochs=1, batch_size=8, optimizer={"name": "adagrad"},
              loss="sparse_categorical_crossentropy")  # fmt: skip
    no_val = replace(iris, x_val=iris.x_val[:0], y_val=iris.y_val[:0])
    with pytest.raises(TrainingError, match="no validation data"):
        train(_iris_model(iris), no_val, epochs=1, batch_size=8, optimizer={"name": "adam"},
              loss="sparse_categorical_crossentropy", early_stopping={"monitor": "val_loss"})  # fmt: skip


def test_same_seed_same_training(iris: Dataset) -> None:
    def run() -> list[float]:
        from mlspec.ml.training import set_seeds

        model = _iris_model(iris, seed=11)
        set_seeds(11)
        return train(model, iris, epochs=2, batch_size=16, optimizer={"name": "adamw", "learning_rate": 0.05},
                     loss="sparse_categorical_crossentropy")["history"]["loss"]  # fmt: skip

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

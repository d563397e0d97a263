"""Fixtures for the framework adapter tests: the digits data set and one small trained Keras digits
model shared by the training, export and parity tests (TensorFlow work is the slow part, so do it once)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

DIGITS_PREPROCESS = [{"scale": {"divide_by": 16.0}}, {"normalize": {}}]
DIGITS_LAYERS = [
    {"dense": {"units": 32, "activation": "relu"}},
    {"dense": {"units": 10, "activation": "softmax"}},
]


@pytest.fixture(autouse=True)
def _own_mlspec_home(mlspec_home: Path) -> None:
    """Every test here gets its own MLSPEC_HOME (tests/fixtures/home.py)."""


@pytest.fixture(scope="session")
def digits_dataset() -> Any:
    from mlspec.ml.data import load_source, split

    x, y, class_names, feature_names, *_ = load_source(
        "builtin:digits", fmt=None, features=None, label=None, read_bytes=lambda uri: b""
    )
    return split(x, y, validation=0.1, test=0.2, seed=42, stratify=True, class_names=class_names, feature_names=feature_names)


@pytest.fixture(scope="session")
def build_digits_model(digits_dataset: Any) -> Callable[[int], Any]:
    """An untrained dense model on raw digits (scale + normalize as layers) for a seed."""

    def build(seed: int) -> Any:
        from mlspec.ml.frameworks.keras_adapter import build_model

        return build_model(
            input_shape=tuple(digits_dataset.x_train.shape[1:]),
            preprocess=DIGITS_PREPROCESS,
            layers=DIGITS_LAYERS,
            x_train=digits_dataset.x_train,
            seed=seed,
        )

    return build


@pytest.fixture(scope="session")
def trained_digits(digits_dataset: Any, build_digits_model: Callable[[int], Any]) -> dict[str, Any]:
    """The digits model trained 3 epochs, with what on_epoch_end saw."""
    from mlspec.ml.frameworks.keras_adapter import train

    seen_epochs: list[tuple[int, dict[str, float]]] = []
    model = build_digits_model(7)
    result = train(
        model,
        digits_dataset,
        epochs=3,
        batch_size=32,
        optimizer={"name": "adam", "learning_rate": 0.01},
        loss="sparse_categorical_crossentropy",
        early_stopping=None,
        on_epoch_end=lambda epoch, logs: seen_epochs.append((epoch, logs)),
    )
    return {"model": model, "result": result, "seen_epochs": seen_epochs}


@pytest.fixture(scope="session")
def digits_onnx(trained_digits: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    from mlspec.ml.frameworks.keras_adapter import export_onnx
    from mlspec.ml.onnx_export import onnx_signature

    onnx_bytes = export_onnx(trained_digits["model"], task="classification", opset=17)
    return onnx_bytes, onnx_signature(onnx_bytes)

"""The one interface every training framework implements; nothing outside ml/frameworks/ imports one.

An adapter turns a framework-neutral `TrainingPlan` into a fitted model, and that model into
bytes (for the store) and into ONNX whose outputs are `vocabulary.OUTPUTS[task]`:
`probabilities` (FP32, [-1, classes]) and `label` (INT64, [-1]) for classification,
`prediction` (FP32, [-1, 1]) for regression. Feature preprocessing is inside the model, so every
export takes raw features as its one input, `input` (FP32).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlspec.errors import MlspecError

if TYPE_CHECKING:
    import numpy as np

    from mlspec.ml.data import Dataset

# (step number from 1, metrics after that step): called once per epoch (Keras) or stage (sklearn).
ProgressCallback = Callable[[int, dict[str, float]], None]


class TrainingError(MlspecError):
    """The training settings do not fit the model or the data, or fitting failed."""


@dataclass(frozen=True)
class TrainingPlan:
    """What to fit, read from the spec (and a run's parameters) once, by `TrainingPlan.from_spec`."""

    framework: str
    task: str
    preprocess: tuple[Mapping[str, Any], ...]  # data.preprocess, feature and label steps
    seed: int
    layers: tuple[Mapping[str, Any], ...] = ()  # tensorflow: model.layers
    training: Mapping[str, Any] = field(default_factory=dict)  # tensorflow: epochs, batch_size, optimizer, loss, early_stopping
    estimator: str | None = None  # sklearn: model.estimator
    params: Mapping[str, Any] = field(default_factory=dict)  # sklearn: model.params

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], run_params: Mapping[str, Any] | None = None) -> TrainingPlan:
        """The plan for a resolved spec dict; a run's parameters (the trigger form, mlspec.run_form)
        override, for one run, epochs and learning_rate (tensorflow) or a parameter the spec sets in
        model.params (sklearn). The first task has checked the run's keys and types."""
        model, data, training = spec["model"], spec["data"], dict(spec["training"])
        run_params = run_params or {}
        params = dict(model["params"])
        if model["framework"] == "sklearn":
            params.update({name: value for name, value in run_params.items() if name in params})
        if model["framework"] == "tensorflow":
            if run_params.get("epochs"):
                training["epochs"] = int(run_params["epochs"])
            if run_params.get("learning_rate"):
                training["optimizer"] = {**training["optimizer"], "learning_rate": float(run_params["learning_rate"])}
        return cls(
            framework=model["framework"],
            task=model["task"],
            preprocess=tuple(data["preprocess"]),
            seed=int(training["seed"]),
            layers=tuple(model["layers"]) if model["framework"] == "tensorflow" else (),
            training=training if model["framework"] == "tensorflow" else {},
            estimator=model["estimator"],
            params=params,
        )

    def log_params(self) -> dict[str, Any]:
        """Flat parameters for the tracking run."""
        flat: dict[str, Any] = {"framework": self.framework, "task": self.task, "seed": self.seed}
        if self.framework == "sklearn":
            flat["estimator"] = self.estimator
            flat.update({f"params.{k}": v for k, v in self.params.items()})
        else:
            flat["layers"] = len(self.layers)
            for key, value in self.training.items():
                if isinstance(value, Mapping):
                    flat.update({f"{key}.{k}": v for k, v in value.items()})
                else:
                    flat[key] = value
        return flat


@dataclass(frozen=True)
class FitReport:
    steps_run: int  # epochs (Keras) or boosting stages / iterations (sklearn); 1 for one-shot fits
    stopped_early: bool
    history: dict[str, list[float]]  # per-step curves, e.g. loss, val_loss, accuracy
    # Extra per-step detail an adapter knows (best iteration, out-of-bag score); may stay empty.
    notes: dict[str, Any] = field(default_factory=dict)


class FrameworkAdapter(ABC):
    name: str
    artifact_name: str  # file name of the saved model in the run's store prefix

    @abstractmethod
    def build(self, plan: TrainingPlan, dataset: Dataset) -> Any:
        """An unfitted model, preprocessing included. Errors name the spec field at fault."""

    @abstractmethod
    def fit(self, model: Any, plan: TrainingPlan, dataset: Dataset, on_progress: ProgressCallback | None = None) -> FitReport:
        """Fit in place, logging progress per epoch or stage."""

    def validation_metrics(self, model: Any, plan: TrainingPlan, dataset: Dataset, report: FitReport) -> dict[str, float]:
        """The fitted model's metrics on the validation split, named val_<metric>: what a tuning trial
        is scored by (`mlspec.tuning.objective_metrics` lists them per framework). This default reads the
        last value of each val_ curve of the fit."""
        return {name: float(values[-1]) for name, values in report.history.items() if name.startswith("val_") and values}

    @abstractmethod
    def predict(self, model: Any, x: np.ndarray, task: str) -> dict[str, np.ndarray]:
        """The model's answers keyed like its ONNX outputs (vocabulary.OUTPUTS[task])."""

    @abstractmethod
    def save(self, model: Any) -> bytes: ...

    @abstractmethod
    def load(self, data: bytes) -> Any: ...

    @abstractmethod
    def to_onnx(self, model: Any, *, task: str, opset: int, sample: np.ndarray) -> bytes:
        """ONNX with input `input` and outputs vocabulary.OUTPUTS[task]; `sample` is a few raw rows."""

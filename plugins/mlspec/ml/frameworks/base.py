"""What every training framework provides: a `Framework` descriptor (the words, spec fields, lint,
run parameters and tuning hooks the rest of mlspec asks about) and a `FrameworkAdapter` (the runtime
that fits and exports). `mlspec.ml.frameworks.FRAMEWORKS` is the one table of them.

An adapter turns a framework-neutral `TrainingPlan` into a fitted model, and that model into
bytes (for the store) and into ONNX whose outputs are `vocabulary.OUTPUTS[task]`:
`probabilities` (FP32, [-1, classes]) and `label` (INT64, [-1]) for classification,
`prediction` (FP32, [-1, 1]) for regression. Feature preprocessing is inside the model, so every
export takes raw features as its one input, `input` (FP32). A table's columns (text, gaps) never reach an
adapter: mlspec.ml.tabular wraps every one, encodes the columns into that float input and joins its own
graph in front of the adapter's export.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlspec.errors import MlspecError

if TYPE_CHECKING:
    import numpy as np

    from mlspec.ml.data import Dataset
    from mlspec.ml.frameworks import TrainingPlan
    from mlspec.spec.errors import SpecProblem
    from mlspec.spec.yaml_loader import LoadedYaml

# (step number from 1, metrics after that step): called once per epoch (Keras) or stage (sklearn).
ProgressCallback = Callable[[int, dict[str, float]], None]


class TrainingError(MlspecError):
    """The training settings do not fit the model or the data, or fitting failed."""


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

    def takes_sparse(self, plan: TrainingPlan) -> bool:
        """Whether `plan`'s model fits and predicts on a scipy sparse matrix as on its dense twin: a table's
        one-hot columns (mlspec.ml.tabular) then reach it sparse, as most of their values are 0."""
        return False

    def standardizes_numbers(self, plan: TrainingPlan) -> bool:
        """Whether a table's number and integer columns should reach `plan`'s model standardized (mean 0,
        standard deviation 1 on the training rows; mlspec.ml.tabular does it inside the model): a network
        trained on grams beside millimetres learns badly, while trees split on raw values alike."""
        return False

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


def value_text(value: Any) -> str:
    """A setting's value in a summary line: `[64, 32]`, `{name: adam}`, `0.1`."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {value_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    return str(value)


@dataclass(frozen=True)
class RunParam:
    """A parameter one run may set (the trigger form, `mlspec run --param`): see mlspec.run_form."""

    name: str
    default: Any
    schema: dict[str, Any]  # JSON Schema of a value (integers strict)
    description: str
    target: str  # the dotted spec field it overrides for one run, e.g. "training.epochs"


@dataclass(frozen=True)
class Framework:
    """One training framework, as the rest of mlspec sees it: its entry in `mlspec.ml.frameworks.FRAMEWORKS`.

    Code outside ml/frameworks/ asks the descriptor (`framework_of(spec)`) and never compares
    `model.framework` with a name. Cheap to import (the table is read at DAG parse time and by lint):
    the module defining a framework imports no heavy library, numpy included, at module level.
    A `spec` argument is the resolved spec as a mapping (`ModelSpec.resolved`, or the dict a task holds).
    """

    name: str  # the value of model.framework
    title: str  # in summaries and model cards: "TensorFlow/Keras", "scikit-learn", "XGBoost"
    library: str  # in lint's words, "a Keras setting": "Keras", "scikit-learn", "XGBoost"
    step: str  # one unit of fitting in logs and curves: "epoch", "stage", "round"
    # Spec fields only this framework reads (dotted): lint refuses them, when set, under any other framework.
    fields: tuple[str, ...]
    settings: str  # where a spec describes this model, for next-step advice: "model.layers and training"
    adapter: FrameworkAdapter  # the runtime; its heavy libraries are imported inside its methods
    # (spec, run's parameters) -> one line about the model: "TensorFlow/Keras, 3 layers: dense(units=64) → ..."
    describe: Callable[[Mapping[str, Any], Mapping[str, Any]], str]
    # (doc, spec) -> what this framework needs and refuses in a schema-valid spec, as doc.problem(...)s
    lint: Callable[[LoadedYaml, Mapping[str, Any]], Iterable[SpecProblem]]
    # spec -> name -> RunParam, in form order: what a run may set (TrainingPlan.from_spec applies them)
    run_parameters: Callable[[Mapping[str, Any]], dict[str, RunParam]]
    # task -> the validation metrics a tuning trial reports (`validation_metrics`), the objectives it offers
    objective_metrics: Callable[[str], tuple[str, ...]]
    tune_hint: str  # what a tuning.space path of this framework names: "model.layers or training"
    tune_example: str  # one such path: "training.optimizer.learning_rate"
    # (model section, parameter) -> JSON Schema of model.params.<parameter> (KeyError: unknown,
    # ValueError: not settable from a spec); None for a framework without model.params.
    param_schema: Callable[[Mapping[str, Any], str], Mapping[str, Any]] | None = None

    @property
    def steps(self) -> str:
        return f"{self.step}s"

    def owns(self, path: str) -> bool:
        """Whether `path` (dotted) is, or lies inside, one of this framework's own fields."""
        return any(path == name or path.startswith(f"{name}.") or path.startswith(f"{name}[") for name in self.fields)

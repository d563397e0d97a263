"""The training frameworks, one table: `FRAMEWORKS` maps each `model.framework` word to its `Framework`
descriptor (mlspec.ml.frameworks.base): its words for logs, summaries and model cards, the spec fields
it owns, its lint rules, its run parameters and tuning hooks, its next-step advice and its runtime
adapter. This table is the one list of frameworks: code outside this package asks `framework_of(spec)`
and never compares a framework's name (tests/frameworks/test_frameworks_table.py counts), and the
schema's `model.framework` enum is filled in from it when the schema is loaded (mlspec.spec.schema).

To add a framework:
1. write one module here, `<name>_adapter.py`, that defines its `FrameworkAdapter` subclass and, at
   its end, `FRAMEWORK = Framework(name=..., ...)` (see keras_adapter.py or sklearn_adapter.py). Keep
   its module-level imports light, as this table is read at DAG parse time and by lint: no numpy,
   scikit-learn or other heavy library, no mlspec.ml.data and no mlspec.spec (spec lint imports this
   table); import those inside the functions that use them. A parameter table it lints `model.params`
   with lives beside it (a generated JSON file);
2. add its module to `FRAMEWORKS` below: the schema's `model.framework` enum follows.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlspec.ml.frameworks import keras_adapter, lightgbm_adapter, sklearn_adapter, xgboost_adapter
from mlspec.ml.frameworks.base import FitReport, Framework, FrameworkAdapter, RunParam, TrainingError
from mlspec.plain_data import thaw

__all__ = [
    "FRAMEWORKS",
    "FitReport",
    "Framework",
    "FrameworkAdapter",
    "RunParam",
    "TrainingError",
    "TrainingPlan",
    "framework_named",
    "framework_of",
    "get_adapter",
]

FRAMEWORKS: dict[str, Framework] = {
    module.FRAMEWORK.name: module.FRAMEWORK
    for module in (keras_adapter, sklearn_adapter, xgboost_adapter, lightgbm_adapter)
}


def framework_named(name: str) -> Framework:
    """The descriptor for a `model.framework` word; TrainingError naming the known ones otherwise."""
    if name not in FRAMEWORKS:
        raise TrainingError(f"model.framework {name!r} is not supported; use one of {', '.join(FRAMEWORKS)}")
    return FRAMEWORKS[name]


def framework_of(spec: Any) -> Framework:
    """The descriptor of a spec: a ModelSpec or a resolved spec mapping."""
    model = spec["model"] if isinstance(spec, Mapping) else spec.model
    return framework_named(model["framework"] if isinstance(model, Mapping) else model.framework)


def get_adapter(framework: str) -> FrameworkAdapter:
    """The runtime adapter for `model.framework`; the framework's libraries are imported when it is used."""
    return framework_named(framework).adapter


@dataclass(frozen=True)
class TrainingPlan:
    """What to fit, read from the spec (and a run's parameters) once, by `TrainingPlan.from_spec`."""

    framework: str
    task: str
    preprocess: tuple[Mapping[str, Any], ...]  # data.preprocess, feature and label steps
    seed: int
    layers: tuple[Mapping[str, Any], ...] = ()  # model.layers (Keras)
    training: Mapping[str, Any] = field(default_factory=dict)  # `training`, for a framework that owns it (Keras)
    estimator: str | None = None  # model.estimator (scikit-learn)
    params: Mapping[str, Any] = field(default_factory=dict)  # model.params

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], run_params: Mapping[str, Any] | None = None) -> TrainingPlan:
        """The plan for a resolved spec dict; a run's parameters (the trigger form, mlspec.run_form)
        override, for one run, the spec field each one targets (the framework's `run_parameters`).
        The first task has checked the run's keys and types."""
        framework = framework_of(spec)
        run_params = run_params or {}
        overrides = {
            param.target: run_params[name]
            for name, param in framework.run_parameters(spec).items()
            if name in run_params
        }
        spec = _with_values(spec, overrides)
        model = spec["model"]
        return cls(
            framework=framework.name,
            task=model["task"],
            preprocess=tuple(spec["data"]["preprocess"]),
            seed=int(spec["training"]["seed"]),
            layers=tuple(model["layers"]),
            training=dict(spec["training"]) if framework.owns("training") else {},
            estimator=model["estimator"],
            params=dict(model["params"]),
        )

    def log_params(self) -> dict[str, Any]:
        """Flat parameters for the tracking run."""
        flat: dict[str, Any] = {"framework": self.framework, "task": self.task, "seed": self.seed}
        if self.estimator:
            flat["estimator"] = self.estimator
        flat.update({f"params.{k}": v for k, v in self.params.items()})
        if self.layers:
            flat["layers"] = len(self.layers)
        for key, value in self.training.items():
            if isinstance(value, Mapping):
                flat.update({f"{key}.{k}": v for k, v in value.items()})
            else:
                flat[key] = value
        return flat


def _with_values(spec: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a resolved spec with each dotted path (`training.optimizer.learning_rate`) set."""
    copied = copy.deepcopy(thaw(spec))
    for path, value in values.items():
        *parents, last = path.split(".")
        node = copied
        for key in parents:
            node = node[key]
        node[last] = value
    return copied

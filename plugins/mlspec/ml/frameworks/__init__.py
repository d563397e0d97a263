"""Framework adapters: `model.framework` picks one module here. Adding a framework is one module,
one entry in `_MODULES` and one word in `vocabulary.FRAMEWORKS` (and the schema)."""

from __future__ import annotations

from importlib import import_module

from mlspec.ml.frameworks.base import FitReport, FrameworkAdapter, TrainingError, TrainingPlan

__all__ = ["FitReport", "FrameworkAdapter", "TrainingError", "TrainingPlan", "get_adapter"]

_MODULES = {"tensorflow": "mlspec.ml.frameworks.keras_adapter", "sklearn": "mlspec.ml.frameworks.sklearn_adapter"}


def get_adapter(framework: str) -> FrameworkAdapter:
    """The adapter for `model.framework`; its module (and the framework) is imported only now."""
    if framework not in _MODULES:
        raise TrainingError(f"model.framework {framework!r} is not supported; use one of {', '.join(_MODULES)}")
    return import_module(_MODULES[framework]).ADAPTER

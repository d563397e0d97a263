"""What gradient-boosting libraries with a scikit-learn API (XGBoost, LightGBM) share: one adapter
base that a library's module fills in with its classes, its per-round callback and its ONNX converter.

The model is a scikit-learn Pipeline like the sklearn adapter's (the spec's feature steps, then the
library's classifier or regressor, picked by `model.task`), so it takes RAW features, is saved with
joblib, predicts and scores its validation split the same way, and exports with skl2onnx once the
library's onnxmltools converter is registered. Fitting passes the training and validation splits
(features transformed by the fitted steps) as evaluation sets: the library reports each round's
metrics on both, which become the log lines, the tracked progress and the curves of the fit report
(`logloss` and `val_logloss`, ...), and early stopping watches the validation split.

Nothing here imports scikit-learn or a boosting library at module level (DAG parsing stays light).
"""

from __future__ import annotations

import logging
import time
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from mlspec.ml.frameworks.base import (
    FitReport,
    Framework,
    ProgressCallback,
    RunParam,
    TrainingError,
)
from mlspec.ml.frameworks.signature_params import SignatureParams
from mlspec.ml.frameworks.sklearn_adapter import (
    PipelineAdapter,
    check_classes,
    check_flat_features,
    export_onnx,
    feature_steps,
    labels,
    objective_metrics,
    params_run_parameters,
    params_text,
)
from mlspec.vocabulary import OUTPUTS

if TYPE_CHECKING:
    import numpy as np

    from mlspec.ml.data import Dataset
    from mlspec.ml.frameworks import TrainingPlan
    from mlspec.spec.errors import SpecProblem
    from mlspec.spec.yaml_loader import LoadedYaml

log = logging.getLogger(__name__)

# Every round is logged up to this many rounds; beyond it every k-th (and the first and last), so that
# a 2000-round fit logs about this many lines.
MAX_ROUND_LINES = 50
# The newest ai.onnx.ml opset skl2onnx 1.20 accepts; onnxmltools would otherwise emit opset 5's TreeEnsemble.
SKL2ONNX_ML_OPSET = 3

# Called by a library's callback after each boosting round: (round from 1, {curve name: value}).
RoundCallback = Callable[[int, dict[str, float]], None]


class BoostingAdapter(PipelineAdapter):
    """A library's adapter sets `name`, `params` (its generated parameter table) and `quiet`
    (constructor settings that silence the library's own printing), and implements the three hooks."""

    params: SignatureParams
    quiet: Mapping[str, Any] = {}

    @abstractmethod
    def rounds(self, estimator: Any) -> int:
        """The most boosting rounds the unfitted estimator will run."""

    @abstractmethod
    def fit_estimator(
        self,
        estimator: Any,
        x: np.ndarray,
        y: np.ndarray,
        eval_sets: list[tuple[np.ndarray, np.ndarray]],
        on_round: RoundCallback,
    ) -> None:
        """Fit with `eval_sets` ([train] or [train, validation]), calling `on_round` after every round.
        Settings the library refuses while fitting raise ValueError (or TypeError)."""

    @abstractmethod
    def register_converter(self) -> None:
        """Make skl2onnx convert the library's classifier and regressor (onnxmltools' converters)."""

    # ----------------------------------------------------------------------- build

    def build(self, plan: TrainingPlan, dataset: Dataset) -> Any:
        from importlib import import_module

        from sklearn.pipeline import Pipeline

        if plan.task not in OUTPUTS:
            raise TrainingError(f"model.task {plan.task!r} is not supported; use one of {', '.join(OUTPUTS)}")
        if dataset.x_train.ndim != 2:
            raise TrainingError(
                f"{self.name} models take one feature vector per sample, but the data has samples of shape "
                f"{tuple(dataset.x_train.shape[1:])}; use data.source with flat feature rows"
            )
        problems = self.params.check(plan.task, plan.params)
        if problems:
            raise TrainingError(f"model.params: {'; '.join(message for _, message in problems)}")
        steps = feature_steps(plan.preprocess, n_features=int(dataset.x_train.shape[1]), framework=self.name)
        module, _, attr = self.params.classes[plan.task].rpartition(".")
        settings = {"random_state": plan.seed, **self.quiet, **plan.params}
        try:
            estimator = getattr(import_module(module), attr)(**settings)
        except (TypeError, ValueError) as exc:
            raise TrainingError(f"model.params: invalid parameters for {attr}: {exc}") from exc
        return Pipeline([*steps, ("estimator", estimator)])

    # ----------------------------------------------------------------------- fit

    def fit(
        self, model: Any, plan: TrainingPlan, dataset: Dataset, on_progress: ProgressCallback | None = None
    ) -> FitReport:
        import numpy as np

        x = np.asarray(dataset.x_train, dtype=np.float32)
        y = labels(dataset.y_train, plan.task)
        if plan.task == "classification":
            check_classes(y, dataset)
        features, estimator = model[:-1], model[-1]
        x_fit = features.fit_transform(x, y) if len(features) else x
        eval_sets = [(x_fit, y)]
        if len(dataset.x_val):
            x_val = np.asarray(dataset.x_val, dtype=np.float32)
            eval_sets.append(
                (features.transform(x_val) if len(features) else x_val, labels(dataset.y_val, plan.task))
            )
        total = self.rounds(estimator)
        progress = _RoundLog(total, on_progress)
        log.info(
            "fitting %s on %d samples, %d features, at most %d rounds",
            type(estimator).__name__,
            len(x),
            x.shape[1],
            total,
        )
        started = time.monotonic()
        try:
            self.fit_estimator(estimator, x_fit, y, eval_sets, progress)
        except (ValueError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TrainingError(
                f"fitting {type(estimator).__name__} failed: {first[:500]} (check model.params)"
            ) from exc
        progress.finish()
        steps_run = progress.last_round
        stopped_early = steps_run < total
        notes: dict[str, Any] = {}
        best = getattr(estimator, "best_iteration", None) if stopped_early else None
        if best is not None:
            notes["best_round"] = int(best) + 1
        log.info(
            "fitted %s in %.2fs: %d of at most %d rounds%s",
            type(estimator).__name__,
            time.monotonic() - started,
            steps_run,
            total,
            f" (stopped early; the model keeps round {notes['best_round']}, the best)"
            if best is not None
            else "",
        )
        return FitReport(
            steps_run=steps_run, stopped_early=stopped_early, history=progress.curves, notes=notes
        )

    # ----------------------------------------------------------------- export (the rest is PipelineAdapter's)

    def to_onnx(self, model: Any, *, task: str, opset: int, sample: np.ndarray) -> bytes:
        self.register_converter()
        return export_onnx(model, task=task, opset=opset, sample=sample, ml_opset=ml_opset(opset))


def ml_opset(opset: int) -> int:
    """The ai.onnx.ml opset released with ONNX opset `opset`, at most what skl2onnx accepts."""
    import onnx.helper

    released = [ml for _release, _ir, onnx_opset, ml, *_ in onnx.helper.VERSION_TABLE if onnx_opset <= opset]
    return min(max(released), SKL2ONNX_ML_OPSET)


def shown_rounds(total: int, most: int = MAX_ROUND_LINES) -> set[int]:
    """The rounds (from 1) whose metrics are logged: all of them up to `most`, else the first, the
    last and every k-th, k chosen so that about `most` lines remain."""
    if total <= most:
        return set(range(1, total + 1))
    every = -(-total // most)
    return {1, total, *range(every, total + 1, every)}


def boosting_framework(adapter: BoostingAdapter, *, title: str, tune_example: str) -> Framework:
    """The descriptor of a boosting library: `model.params` is its only field, checked against its
    generated table; the task picks the class, so there is no model.estimator."""
    table = adapter.params

    def lint(doc: LoadedYaml, spec: Mapping[str, Any]) -> Iterator[SpecProblem]:
        task = spec["model"]["task"]
        for suffix, message in table.check(task, spec["model"]["params"]):
            # An unknown name is pointed at its key, a bad value at the value.
            yield doc.problem(
                ("model", "params", *suffix),
                message,
                at_key=bool(suffix) and suffix[0] not in table.params(task),
            )
        yield from check_flat_features(doc, spec, f"{title} models")

    def describe(spec: Mapping[str, Any], run_params: Mapping[str, Any]) -> str:
        model = spec["model"]
        return f"{title} {table.class_name(model['task'])}" + params_text(model["params"], run_params)

    def param_schema(model: Mapping[str, Any], name: str) -> Mapping[str, Any]:
        return table.param_schema(model["task"], name)

    def run_parameters(spec: Mapping[str, Any]) -> dict[str, RunParam]:
        return params_run_parameters(spec, param_schema, table.class_name(spec["model"]["task"]))

    return Framework(
        name=adapter.name,
        title=title,
        library=title,
        step="round",
        fields=("model.params",),
        settings="model.params",
        adapter=adapter,
        describe=describe,
        lint=lint,
        run_parameters=run_parameters,
        objective_metrics=objective_metrics,
        tune_hint="model.params.<parameter>",
        tune_example=tune_example,
        param_schema=param_schema,
    )


class _RoundLog:
    """Collects each round's metrics into curves, logging and reporting the `shown_rounds(total)`
    and always the last one run."""

    def __init__(self, total: int, on_progress: ProgressCallback | None) -> None:
        self.total = total
        self.on_progress = on_progress
        self.shown = shown_rounds(total)
        self.curves: dict[str, list[float]] = {}
        self.last_round = 0

    def __call__(self, round_: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.curves.setdefault(name, []).append(float(value))
        self.last_round = round_
        if round_ in self.shown:
            self._show(round_, values)

    def finish(self) -> None:
        """Show the last round when early stopping ended the fit between two shown rounds."""
        if self.last_round and self.last_round not in self.shown:
            self._show(self.last_round, {name: curve[-1] for name, curve in self.curves.items()})

    def _show(self, round_: int, values: Mapping[str, float]) -> None:
        log.info("round %d/%d: %s", round_, self.total, " ".join(f"{k}={v:.4f}" for k, v in values.items()))
        if self.on_progress is not None:
            self.on_progress(round_, dict(values))

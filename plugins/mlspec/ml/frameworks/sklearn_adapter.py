"""The scikit-learn adapter: a Pipeline of the feature steps and the spec's estimator, fitted,
saved with joblib and exported to ONNX with skl2onnx.

Like the Keras model, the pipeline takes RAW features, so the ONNX export and the served endpoint
accept the numbers of the data file:
- `scale` ({divide_by, multiply_by, offset}: x * multiply_by / divide_by + offset) is a StandardScaler
  whose statistics are set by hand (mean_ = -offset/s, scale_ = 1/s with s = multiply_by/divide_by),
  wrapped in `sklearn.frozen.FrozenEstimator` so that fitting the pipeline leaves it as it is;
- `normalize` is a StandardScaler fitted on the training data (as the earlier steps leave it).
Both convert with skl2onnx's `div` option (Sub then Div in float32), which is the arithmetic
StandardScaler.transform does on float32 input; the default Scaler op multiplies by 1/scale, and
one rounding step of difference is enough to send a sample down the other branch of a tree.
`reshape` and `one_hot` are Keras-only and refused.

linear_svc: LinearSVC has no predict_proba, so the pipeline ends in
CalibratedClassifierCV(LinearSVC(**params), method="sigmoid"): Platt scaling fitted on held-out folds
gives real probabilities, their argmax is the label, and skl2onnx converts it (one LinearSVC and
one sigmoid per fold, averaged).

The saved model is joblib bytes (a pickle): load only what this project's own store holds.
Nothing here imports scikit-learn, skl2onnx or joblib at module level (DAG parsing stays light).
"""

from __future__ import annotations

import io
import json
import logging
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mlspec.ml.frameworks.base import (
    FitReport,
    Framework,
    FrameworkAdapter,
    ProgressCallback,
    RunParam,
    TrainingError,
    value_text,
)
from mlspec.ml.frameworks.param_schema import describe
from mlspec.ml.frameworks.sklearn_estimators import (
    check_params,
    estimator_class,
    estimator_names,
    estimator_params,
    param_schema,
)
from mlspec.vocabulary import DATA_SOURCES, INPUT_NAME, OUTPUTS, metrics_for

if TYPE_CHECKING:
    import numpy as np

    from mlspec.ml.data import Dataset
    from mlspec.ml.frameworks import TrainingPlan
    from mlspec.spec.errors import SpecProblem
    from mlspec.spec.yaml_loader import LoadedYaml

log = logging.getLogger(__name__)

ESTIMATOR_STEP = "estimator"
MAX_PROGRESS_LINES = 20
CALIBRATION_FOLDS = 5


# --------------------------------------------------------------------------- build


def build_pipeline(plan: TrainingPlan, dataset: Dataset) -> Any:
    """An unfitted Pipeline: the feature steps of data.preprocess, then the estimator."""
    from sklearn.pipeline import Pipeline

    if plan.task not in OUTPUTS:
        raise TrainingError(f"model.task {plan.task!r} is not supported; use one of {', '.join(OUTPUTS)}")
    if not plan.estimator:
        raise TrainingError(
            f"model.estimator is not set; for {plan.task} use one of {', '.join(estimator_names(plan.task))}"
        )
    if dataset.x_train.ndim != 2:
        raise TrainingError(
            f"scikit-learn estimators take one feature vector per sample, but the data has samples of shape "
            f"{tuple(dataset.x_train.shape[1:])}; use data.source with flat feature rows (data.preprocess "
            "reshape is for Keras models)"
        )
    steps = feature_steps(plan.preprocess, n_features=int(dataset.x_train.shape[1]))
    estimator = _make_estimator(plan, dataset)
    return Pipeline([*steps, (ESTIMATOR_STEP, estimator)])


def feature_steps(
    preprocess: Sequence[Mapping[str, Any]], *, n_features: int, framework: str = "scikit-learn"
) -> list[tuple[str, Any]]:
    """Pipeline steps for the feature steps of data.preprocess, for any framework whose model is a
    scikit-learn Pipeline (`framework` names it in errors)."""
    import numpy as np
    from sklearn.frozen import FrozenEstimator
    from sklearn.preprocessing import StandardScaler

    from mlspec.ml.data import DataError, parse_steps, scale_factors  # imports numpy: not at DAG parse time

    try:
        parsed = parse_steps(preprocess)
    except DataError as exc:
        raise TrainingError(str(exc)) from exc
    steps: list[tuple[str, Any]] = []
    for index, (name, params) in enumerate(parsed):
        where = f"data.preprocess[{index}] ({name})"
        if name == "reshape":
            raise TrainingError(
                f"{where}: reshape is for Keras models; {framework} estimators take one flat feature vector "
                "per sample, so remove the step"
            )
        if name == "one_hot":
            raise TrainingError(
                f"{where}: one_hot is for Keras losses; {framework} classifiers take class indices, so "
                "remove the step"
            )
        if name == "scale":
            scale, offset = scale_factors(params)
            if scale == 0.0 or not np.isfinite(scale) or not np.isfinite(offset):
                raise TrainingError(f"{where}: multiply_by / divide_by must be a finite number other than 0")
            scaler = _fixed_scaler(StandardScaler, scale, offset, n_features)
            steps.append((f"preprocess_{index}_scale", FrozenEstimator(scaler)))
        elif name == "normalize":
            steps.append((f"preprocess_{index}_normalize", StandardScaler()))
    return steps


def _fixed_scaler(scaler_class: type, scale: float, offset: float, n_features: int) -> Any:
    """A fitted StandardScaler computing x * scale + offset, as (x - mean_) / scale_."""
    import numpy as np

    scaler = scaler_class()
    scaler.mean_ = np.full(n_features, -offset / scale, dtype=np.float64)
    scaler.scale_ = np.full(n_features, 1.0 / scale, dtype=np.float64)
    scaler.var_ = scaler.scale_**2
    scaler.n_features_in_ = n_features
    scaler.n_samples_seen_ = 0
    return scaler


def _make_estimator(plan: TrainingPlan, dataset: Dataset) -> Any:
    task, name = plan.task, str(plan.estimator)
    problems = check_params(task, name, dict(plan.params))
    if problems:
        if any(not suffix for suffix, _ in problems):
            raise TrainingError(f"model.estimator: {'; '.join(message for _, message in problems)}")
        raise TrainingError(f"model.params: {'; '.join(message for _, message in problems)}")
    cls = _import(estimator_class(task, name))
    params = dict(plan.params)
    try:
        estimator = cls(**params)
    except (TypeError, ValueError) as exc:
        raise TrainingError(f"model.params: invalid parameters for {name}: {exc}") from exc
    if "random_state" in estimator.get_params(deep=False) and "random_state" not in params:
        estimator.set_params(random_state=plan.seed)
    if name == "linear_svc" and task == "classification":
        from sklearn.calibration import CalibratedClassifierCV

        # No predict_proba on LinearSVC: see the module docstring.
        estimator = CalibratedClassifierCV(estimator, method="sigmoid", cv=_calibration_folds(dataset))
    return estimator


def _calibration_folds(dataset: Dataset) -> int:
    import numpy as np

    counts = np.bincount(np.asarray(dataset.y_train, dtype=np.int64).ravel())
    smallest = int(counts[counts > 0].min()) if counts.size else 0
    if smallest < 2:
        raise TrainingError(
            "linear_svc calibrates its probabilities on held-out folds and needs at least 2 training "
            "samples of every class; add samples or use another estimator"
        )
    return min(CALIBRATION_FOLDS, smallest)


def _import(path: str) -> type:
    from importlib import import_module

    module, _, attr = path.rpartition(".")
    return getattr(import_module(module), attr)


# --------------------------------------------------------------------------- fit


def fit_pipeline(
    model: Any, plan: TrainingPlan, dataset: Dataset, on_progress: ProgressCallback | None = None
) -> FitReport:
    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils._param_validation import InvalidParameterError

    name = str(plan.estimator)
    x = features(dataset.x_train)
    y = labels(dataset.y_train, plan.task)
    if plan.task == "classification":
        check_classes(y, dataset)
    log.info("fitting %s (%s) on %d samples, %d features", name, _final_name(model), x.shape[0], x.shape[1])
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        try:
            model.fit(x, y)
        except InvalidParameterError as exc:
            raise TrainingError(f"model.params: {exc}") from exc
        except (ValueError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TrainingError(f"fitting {name} failed: {first} (check model.params)") from exc
    elapsed = time.monotonic() - started
    notes: dict[str, Any] = {}
    for warning in caught:
        if issubclass(warning.category, ConvergenceWarning):
            log.warning("%s did not converge: %s (raise model.params.max_iter)", name, warning.message)
            notes["converged"] = False
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)

    estimator = _final(model)
    curves, total, word = _curves(estimator, plan.task)
    if curves:
        steps_run = len(next(iter(curves.values())))
        _report_stages(word, curves, total, on_progress)
        log.info("fitted %s in %.2fs: %d of at most %d %ss", name, elapsed, steps_run, total, word)
        # Boosting with n_iter_no_change and mlp stop before their maximum when the score stops improving.
        stopped_early = steps_run < total
        history = curves
    else:
        scores = _scores(model, dataset, plan.task)
        log.info("fitted %s in %.2fs: %s", name, elapsed, _format(scores))
        if on_progress is not None:
            on_progress(1, scores)
        steps_run, stopped_early = 1, False
        history = {k: [v] for k, v in scores.items()}
    if stopped_early:
        log.info("%s stopped early after %d of %d %ss (no more improvement)", name, steps_run, total, word)
    oob = getattr(estimator, "oob_score_", None)
    if isinstance(oob, float | np.floating):
        notes["oob_score"] = float(oob)
    return FitReport(steps_run=steps_run, stopped_early=stopped_early, history=history, notes=notes)


def labels(y: np.ndarray, task: str) -> np.ndarray:
    import numpy as np

    y = np.asarray(y)
    if task == "classification":
        if y.ndim != 1:
            raise TrainingError(
                "scikit-learn classifiers take one class index per sample, but the labels have shape "
                f"{tuple(y.shape[1:])} per sample; remove one_hot from data.preprocess"
            )
        return y.astype(np.int64)
    return y.astype(np.float32).reshape(len(y)) if y.ndim == 2 and y.shape[1] == 1 else y.astype(np.float32)


def check_classes(y: np.ndarray, dataset: Dataset) -> None:
    import numpy as np

    present = set(np.unique(y).tolist())
    missing = [n for i, n in enumerate(dataset.class_names) if i not in present]
    if missing:
        raise TrainingError(
            f"the training split has no samples of class {', '.join(missing)} ({len(present)} of "
            f"{dataset.num_classes} classes); the model must answer every class, so add samples, or split with "
            "data.split.method: random (stratified by class unless data.split.stratify is false)"
        )


def _final(model: Any) -> Any:
    return model.steps[-1][1]


def _final_name(model: Any) -> str:
    estimator = _final(model)
    if type(estimator).__name__ == "CalibratedClassifierCV":
        return f"CalibratedClassifierCV({type(estimator.estimator).__name__})"
    return type(estimator).__name__


def _curves(estimator: Any, task: str) -> tuple[dict[str, list[float]], int, str]:
    """Per-stage curves of estimators that have stages, the most stages they could run, and their word."""
    if hasattr(estimator, "train_score_") and hasattr(estimator, "n_estimators_"):  # gradient boosting
        curves = {"loss": [float(v) for v in estimator.train_score_]}
        oob = getattr(estimator, "oob_scores_", None)
        if oob is not None and len(oob) == len(curves["loss"]):
            curves["oob_loss"] = [float(v) for v in oob]
        return curves, int(estimator.n_estimators), "stage"
    if hasattr(estimator, "train_score_") and hasattr(estimator, "max_iter"):  # histogram boosting
        # Both curves start with the score before the first iteration; drop it so step i is iteration i.
        curves = {"train_score": [float(v) for v in estimator.train_score_[1:]]}
        val = getattr(estimator, "validation_score_", None)
        if val is not None and len(val) == len(estimator.train_score_):
            curves["val_score"] = [float(v) for v in val[1:]]
        return curves, int(estimator.max_iter), "iteration"
    if getattr(estimator, "loss_curve_", None) is not None:  # mlp, stochastic solvers
        curves = {"loss": [float(v) for v in estimator.loss_curve_]}
        val = getattr(estimator, "validation_scores_", None)
        if val is not None and len(val) == len(curves["loss"]):
            curves["val_accuracy" if task == "classification" else "val_r2"] = [float(v) for v in val]
        return curves, int(estimator.max_iter), "iteration"
    return {}, 1, ""


def progress_steps(count: int, most: int = MAX_PROGRESS_LINES) -> list[int]:
    """1-based steps to log out of `count`: all when few, else `most` evenly spaced ones, always the last."""
    import numpy as np

    if count <= most:
        return list(range(1, count + 1))
    picked = {int(round(v)) for v in np.linspace(count / most, count, most)}
    return sorted(picked | {count})


def _report_stages(
    word: str, curves: dict[str, list[float]], total: int, on_progress: ProgressCallback | None
) -> None:
    count = len(next(iter(curves.values())))
    for step in progress_steps(count):
        values = {key: curve[step - 1] for key, curve in curves.items()}
        log.info("%s %d/%d: %s", word, step, total, _format(values))
        if on_progress is not None:
            on_progress(step, values)


def _scores(model: Any, dataset: Dataset, task: str) -> dict[str, float]:
    metric = "accuracy" if task == "classification" else "r2"
    scores = {metric: float(model.score(dataset.x_train, labels(dataset.y_train, task)))}
    if dataset.x_val.shape[0]:
        scores[f"val_{metric}"] = float(model.score(dataset.x_val, labels(dataset.y_val, task)))
    return scores


def _format(values: Mapping[str, float]) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in values.items())


def validation_metrics(model: Any, dataset: Dataset, task: str) -> dict[str, float]:
    """Every metric of the task on the validation split, named val_<metric> (val_accuracy, val_f1, ...;
    val_rmse, val_r2, ...), computed like the test metrics (`compute_metrics`); empty without one."""
    from mlspec.ml.metrics import compute_metrics  # imports numpy: not at DAG parse time

    if not dataset.x_val.shape[0]:
        return {}
    names = metrics_for(task)
    outputs = predict_pipeline(model, dataset.x_val, task)
    computed = compute_metrics(task, dataset.y_val, outputs, metrics=names, class_names=dataset.class_names)
    return {f"val_{name}": float(computed[name]) for name in names}


# --------------------------------------------------------------------------- predict, save, load


def predict_pipeline(model: Any, x: np.ndarray, task: str) -> dict[str, np.ndarray]:
    import numpy as np

    x = features(x)
    if task == "classification":
        proba = np.asarray(model.predict_proba(x))
        # The label is the most probable class (first on ties), as in scikit-learn's predict and the export.
        return {"probabilities": proba.astype(np.float32), "label": np.argmax(proba, axis=1).astype(np.int64)}
    return {"prediction": np.asarray(model.predict(x), dtype=np.float32).reshape(x.shape[0], 1)}


def features(x: Any) -> Any:
    """Feature rows as float32: an array, or a scipy sparse matrix kept sparse (see `takes_sparse`)."""
    import numpy as np
    import scipy.sparse

    return x.astype(np.float32) if scipy.sparse.issparse(x) else np.asarray(x, dtype=np.float32)


def save_pipeline(model: Any) -> bytes:
    import joblib

    buf = io.BytesIO()
    joblib.dump(model, buf)
    return buf.getvalue()


def load_pipeline(data: bytes) -> Any:
    import joblib

    try:
        model = joblib.load(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - corrupt, truncated or foreign files: one clear line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrainingError(f"could not load the trained model (joblib, {len(data)} bytes): {first}") from exc
    if not hasattr(model, "steps"):
        raise TrainingError(
            f"the trained model (joblib, {len(data)} bytes) holds a {type(model).__name__}, "
            "not a scikit-learn Pipeline"
        )
    return model


# --------------------------------------------------------------------------- ONNX


def export_onnx(model: Any, *, task: str, opset: int, sample: np.ndarray, ml_opset: int | None = None) -> bytes:
    """skl2onnx conversion: input "input" FP32 [None, n_features]; outputs OUTPUTS[task], in that order.
    `ml_opset` pins the ai.onnx.ml domain for converters that would otherwise pick one newer than
    skl2onnx accepts (onnxmltools' tree converters)."""
    import numpy as np
    import onnx
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from mlspec.ml.onnx_export import ExportError  # imports numpy: not at DAG parse time

    # skl2onnx does not know FrozenEstimator: convert the same fitted steps without the wrapper.
    steps = [(name, step.estimator if _is_frozen(step) else step) for name, step in model.steps]
    pipeline = Pipeline(steps)
    n_features = getattr(model, "n_features_in_", None) or int(np.asarray(sample).shape[1])
    estimator = steps[-1][1]
    options: dict[Any, Any] = {StandardScaler: {"div": "div"}}
    if task == "classification":
        width = len(estimator.classes_)
        options[id(estimator)] = {"zipmap": False}
        final_types = [("label", Int64TensorType([None])), ("probabilities", FloatTensorType([None, width]))]
    else:
        final_types = [("prediction", FloatTensorType([None, 1]))]
    try:
        proto = convert_sklearn(
            pipeline,
            name="mlspec_model",
            initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
            final_types=final_types,
            options=options,
            target_opset=opset if ml_opset is None else {"": opset, "ai.onnx.ml": ml_opset},
        )
    except Exception as exc:  # noqa: BLE001 - converter failures are many types; one clear line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(
            f"skl2onnx could not convert {_final_name(model)} at opset {opset}: {first[:500]}"
        ) from exc
    outputs = {o.name: o for o in proto.graph.output}
    wanted = OUTPUTS[task]
    if set(outputs) != set(wanted):
        raise ExportError(f"skl2onnx produced outputs {sorted(outputs)}; expected {', '.join(wanted)}")
    ordered = [outputs[name] for name in wanted]
    proto.graph.ClearField("output")
    proto.graph.output.extend(ordered)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _is_frozen(step: Any) -> bool:
    return type(step).__name__ == "FrozenEstimator"


# --------------------------------------------------------------------------- the adapter


class PipelineAdapter(FrameworkAdapter):
    """What every adapter whose model is a scikit-learn Pipeline shares (this one, and the boosting
    libraries' through mlspec.ml.frameworks.boosting): metrics, predictions and the joblib artifact."""

    artifact_name = "model.joblib"

    def validation_metrics(self, model: Any, plan: TrainingPlan, dataset: Dataset, report: FitReport) -> dict[str, float]:
        return validation_metrics(model, dataset, plan.task)

    def predict(self, model: Any, x: np.ndarray, task: str) -> dict[str, np.ndarray]:
        return predict_pipeline(model, x, task)

    def save(self, model: Any) -> bytes:
        return save_pipeline(model)

    def load(self, data: bytes) -> Any:
        return load_pipeline(data)


class SklearnAdapter(PipelineAdapter):
    name = "sklearn"

    def build(self, plan: TrainingPlan, dataset: Dataset) -> Any:
        return build_pipeline(plan, dataset)

    def fit(
        self, model: Any, plan: TrainingPlan, dataset: Dataset, on_progress: ProgressCallback | None = None
    ) -> FitReport:
        return fit_pipeline(model, plan, dataset, on_progress)

    def to_onnx(self, model: Any, *, task: str, opset: int, sample: np.ndarray) -> bytes:
        return export_onnx(model, task=task, opset=opset, sample=sample)

    def takes_sparse(self, plan: TrainingPlan) -> bool:
        """Estimators that take sparse input (scikit-learn's tags say so: not GaussianNB-like ones), when no
        data.preprocess step scales the features (a StandardScaler cannot center a sparse matrix)."""
        from sklearn.utils import get_tags

        if plan.preprocess or plan.task not in OUTPUTS or plan.estimator not in estimator_names(plan.task):
            return False
        return bool(get_tags(_import(estimator_class(plan.task, plan.estimator))()).input_tags.sparse)


# --------------------------------------------------------------------------- the framework


def lint(doc: LoadedYaml, spec: Mapping[str, Any]) -> Iterator[SpecProblem]:
    """An estimator the table knows for the task, parameters it takes, and flat feature rows."""
    model, task = spec["model"], spec["model"]["task"]
    if not model["estimator"]:
        names = ", ".join(estimator_names(task))
        yield doc.problem(("model",), f"framework sklearn needs model.estimator; for {task}: {names}")
    else:
        problems = check_params(task, model["estimator"], dict(model["params"]))
        # (An empty suffix means the estimator itself is unknown: then it has no parameters to look up.)
        known = estimator_params(task, model["estimator"]) if all(suffix for suffix, _ in problems) else {}
        for suffix, message in problems:
            path = ("model", "estimator") if not suffix else ("model", "params", *suffix)
            # An unknown name is pointed at its key, a bad value at the value.
            yield doc.problem(path, message, at_key=bool(suffix) and suffix[0] not in known)
    yield from check_flat_features(doc, spec, "scikit-learn estimators")


def check_flat_features(doc: LoadedYaml, spec: Mapping[str, Any], models: str) -> Iterator[SpecProblem]:
    """For a framework whose `models` ("scikit-learn estimators") take one feature vector per sample and
    class labels: no reshape or one_hot step, and no data source of images."""
    for index, step in enumerate(spec["data"]["preprocess"]):
        (kind,) = step
        if kind in ("reshape", "one_hot"):
            yield doc.problem(
                ("data", "preprocess", index, kind),
                f"{kind} is for Keras models; {models} take one feature vector per sample and class labels",
                at_key=True,
            )
    known = DATA_SOURCES.get(spec["data"]["source"])
    if known is not None and len(known.shape) != 1:
        yield doc.problem(
            ("data", "source"),
            f"{spec['data']['source']} has samples of shape {list(known.shape)}; {models} need one feature vector per sample",
        )


def describe_model(spec: Mapping[str, Any], run_params: Mapping[str, Any]) -> str:
    """`scikit-learn random_forest (max_depth=8, n_estimators=100)`, with the values this run used."""
    model = spec["model"]
    return f"scikit-learn {model['estimator']}" + params_text(model["params"], run_params)


def params_text(params: Mapping[str, Any], run_params: Mapping[str, Any]) -> str:
    """` (k=v, ...)` of model.params as a run used them (its parameters override the spec's), or ""."""
    used = {**dict(params), **{k: v for k, v in run_params.items() if k in params}}
    text = ", ".join(f"{k}={value_text(v)}" for k, v in sorted(used.items()))
    return f" ({text})" if text else ""


def params_run_parameters(
    spec: Mapping[str, Any], schema_of: Any, model_name: str
) -> dict[str, RunParam]:
    """Every parameter the spec sets in model.params, typed by `schema_of(model, name)` (the framework's
    param_schema), the spec's value as its default. Parameters the spec leaves out are not offered."""
    model = spec["model"]
    params: dict[str, RunParam] = {}
    for name, value in dict(model["params"]).items():
        try:
            schema = schema_of(model, name)
        except (KeyError, ValueError):
            continue  # lint refuses the spec already
        shown = json.dumps(value) if not isinstance(value, str) else repr(value)
        params[name] = RunParam(
            name, value, dict(schema), f"{model_name} {name}: {describe(schema)}; the spec sets {shown} (model.params.{name})",
            f"model.params.{name}",
        )
    return params


def run_parameters(spec: Mapping[str, Any]) -> dict[str, RunParam]:
    if not spec["model"]["estimator"]:
        return {}
    return params_run_parameters(spec, model_param_schema, spec["model"]["estimator"])


def model_param_schema(model: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    return param_schema(model["task"], str(model["estimator"]), name)


def objective_metrics(task: str) -> tuple[str, ...]:
    """Every metric of the task, computed on the validation split (`validation_metrics`)."""
    return tuple(f"val_{name}" for name in metrics_for(task))


FRAMEWORK = Framework(
    name="sklearn",
    title="scikit-learn",
    library="scikit-learn",
    step="step",
    fields=("model.estimator", "model.params"),
    settings="model.estimator and model.params",
    adapter=SklearnAdapter(),
    describe=describe_model,
    lint=lint,
    run_parameters=run_parameters,
    objective_metrics=objective_metrics,
    tune_hint="model.params.<parameter>",
    tune_example="model.params.max_depth",
    param_schema=model_param_schema,
)

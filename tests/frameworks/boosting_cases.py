"""What every boosting framework's tests check (test_frameworks_xgboost.py, test_frameworks_lightgbm.py):
small bundled data sets, one fit per task through the descriptor's adapter, the ONNX export's parity,
lint of model.params in a spec, and that lint imports no heavy library."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest
from tests.conftest import REPO

from mlspec.ml.data import Dataset, split
from mlspec.ml.frameworks import TrainingPlan, framework_named
from mlspec.ml.onnx_export import check_parity, onnx_predict, onnx_signature
from mlspec.spec import SpecError, load_spec_text
from mlspec.vocabulary import OUTPUTS

PREPROCESS = ({"scale": {"divide_by": 2.0, "offset": -1.0}}, {"normalize": {}})
# name -> (loader, task): multiclass, binary and regression.
DATA = {
    "iris": ("load_iris", "classification"),
    "breast_cancer": ("load_breast_cancer", "classification"),
    "diabetes": ("load_diabetes", "regression"),
}

SPEC = """\
apiVersion: mlspec/v1
kind: ModelSpec
metadata: {{name: boosted}}
data:
  source: builtin:{source}
  preprocess: {preprocess}
model:
  framework: {framework}
  task: {task}
  params: {params}
"""


def dataset(name: str) -> Dataset:
    import sklearn.datasets

    loader, task = DATA[name]
    bunch = getattr(sklearn.datasets, loader)()
    classification = task == "classification"
    y = bunch.target.astype(np.int64 if classification else np.float32)
    names = tuple(bunch.target_names) if classification else ()
    return split(
        bunch.data.astype(np.float32),
        y,
        validation=0.2,
        test=0.2,
        seed=0,
        stratify=classification,
        class_names=names,
    )


def fit(
    framework: str, data: Dataset, params: dict[str, Any]
) -> tuple[Any, TrainingPlan, Any, list[tuple[int, dict[str, float]]]]:
    """(fitted model, its plan, the fit report, what on_progress saw)."""
    adapter = framework_named(framework).adapter
    plan = TrainingPlan(framework=framework, task=_task(data), preprocess=PREPROCESS, seed=7, params=params)
    seen: list[tuple[int, dict[str, float]]] = []
    model = adapter.build(plan, data)
    report = adapter.fit(model, plan, data, on_progress=lambda step, values: seen.append((step, values)))
    return model, plan, report, seen


def _task(data: Dataset) -> str:
    return "classification" if data.class_names else "regression"


def check_fit_and_export(
    framework: str, name: str, params: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> dict[str, Any]:
    """Fit, log each round, save and load, export to ONNX that answers like the model on raw features."""
    adapter = framework_named(framework).adapter
    data = dataset(name)
    task = _task(data)
    with caplog.at_level(logging.INFO, logger="mlspec.ml.frameworks.boosting"):
        model, plan, report, seen = fit(framework, data, params)
    rounds = [r.getMessage() for r in caplog.records if r.getMessage().startswith("round ")]
    total = params["n_estimators"]
    assert len(rounds) == report.steps_run and rounds[0].startswith(f"round 1/{total}: ")
    assert [step for step, _ in seen] == list(range(1, report.steps_run + 1))
    curves = sorted(report.history)
    assert len(curves) == 2 and curves[1] == f"val_{curves[0]}", curves  # training and validation split
    assert all(len(curve) == report.steps_run for curve in report.history.values())
    # A tuning trial is scored by what the descriptor offers as objectives.
    offered = framework_named(framework).objective_metrics(task)
    assert set(adapter.validation_metrics(model, plan, data, report)) == set(offered)

    loaded = adapter.load(adapter.save(model))
    expected = adapter.predict(loaded, data.x_test, task)
    onnx_bytes = adapter.to_onnx(loaded, task=task, opset=17, sample=data.x_train[:8])
    signature = onnx_signature(onnx_bytes)
    assert [t["name"] for t in signature["inputs"]] == ["input"]
    assert [t["name"] for t in signature["outputs"]] == list(OUTPUTS[task])
    diff = check_parity(expected, onnx_predict(onnx_bytes, data.x_test), atol=1e-4)
    return {"report": report, "diff": diff, "expected": expected, "data": data}


def spec_problems(
    framework: str,
    source: str,
    task: str,
    params: str,
    extra: str = "",
    preprocess: str = "[{normalize: {}}]",
) -> list[str]:
    """Lint's problems with a spec of the framework; `extra` lines go on in its model section."""
    text = (
        SPEC.format(framework=framework, source=source, task=task, params=params, preprocess=preprocess)
        + extra
    )
    try:
        load_spec_text(text, "s.yaml")
    except SpecError as exc:
        return [str(p) for p in exc.problems]
    return []


def check_lint_imports_nothing_heavy(framework: str) -> None:
    """Linting a spec of this framework imports neither the library nor scikit-learn or numpy."""
    text = SPEC.format(
        framework=framework, source="iris", task="classification", params="{n_estimators: 5}", preprocess="[]"
    )
    code = textwrap.dedent(f"""
        import sys
        from mlspec.spec import load_spec_text
        load_spec_text({text!r}, "s.yaml")
        heavy = sorted(m for m in ("{framework}", "sklearn", "numpy", "onnxmltools") if m in sys.modules)
        assert not heavy, heavy
    """)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)

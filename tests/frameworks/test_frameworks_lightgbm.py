"""model.framework: lightgbm: LGBMClassifier or LGBMRegressor by the task, one log line per round, ONNX
through onnxmltools that answers like the model on raw features, and model.params linted from
LightGBM's own signature (lightgbm_params.json, regenerated here)."""

from __future__ import annotations

import pytest
from tests.frameworks import boosting_cases as cases

from mlspec.ml.frameworks import TrainingError, TrainingPlan, framework_named
from mlspec.ml.frameworks.lightgbm_adapter import PARAMS
from mlspec.ml.frameworks.signature_params import render

LIGHTGBM = framework_named("lightgbm")


def test_committed_params_table_equals_a_fresh_generation():
    import lightgbm

    assert PARAMS.table["version"] == lightgbm.__version__
    assert PARAMS.file.read_text() == render(PARAMS.generate()), (
        f"{PARAMS.file.name} is out of date for the installed LightGBM; run `{PARAMS.regenerate}` "
        "from plugins/ and review the diff"
    )


@pytest.mark.parametrize("name", ["iris", "breast_cancer", "diabetes"])
def test_fits_each_task_logs_each_round_and_exports_what_it_predicts(name, caplog):
    result = cases.check_fit_and_export("lightgbm", name, {"n_estimators": 12, "num_leaves": 7}, caplog)
    report = result["report"]
    assert report.steps_run == 12 and not report.stopped_early
    expected = {"iris": "multi_logloss", "breast_cancer": "binary_logloss", "diabetes": "l2"}[name]
    assert sorted(report.history) == [expected, f"val_{expected}"]


def test_the_seed_is_the_spec_s_unless_params_set_random_state():
    data = cases.dataset("iris")
    plan = TrainingPlan(
        framework="lightgbm", task="classification", preprocess=(), seed=11, params={"n_estimators": 2}
    )
    assert LIGHTGBM.adapter.build(plan, data)[-1].random_state == 11
    plan = TrainingPlan(
        framework="lightgbm", task="classification", preprocess=(), seed=11, params={"random_state": 3}
    )
    assert LIGHTGBM.adapter.build(plan, data)[-1].random_state == 3


def test_build_refuses_params_the_signature_does_not_take():
    plan = TrainingPlan(
        framework="lightgbm", task="regression", preprocess=(), seed=1, params={"num_leafs": 3}
    )
    with pytest.raises(
        TrainingError, match="unknown parameter `num_leafs` for LGBMRegressor; did you mean `num_leaves`"
    ):
        LIGHTGBM.adapter.build(plan, cases.dataset("diabetes"))


@pytest.mark.parametrize(
    ("source", "task"), [("breast_cancer", "classification"), ("diabetes", "regression")]
)
def test_lint_checks_params_against_the_signature(source, task):
    assert (
        cases.spec_problems(
            "lightgbm",
            source,
            task,
            "{n_estimators: 20, num_leaves: 15, learning_rate: 0.1, objective: null}",
        )
        == []
    )
    (unknown,) = cases.spec_problems("lightgbm", source, task, "{num_leafs: 3}")
    assert unknown.startswith("s.yaml:10:12: model.params.num_leafs: unknown parameter `num_leafs`")
    assert "did you mean `num_leaves`?" in unknown
    (wrong,) = cases.spec_problems("lightgbm", source, task, "{num_leaves: many}")
    assert "model.params.num_leaves: `num_leaves` must be an integer, got 'many'" in wrong


def test_lint_refuses_other_frameworks_settings_and_image_steps():
    (layers,) = cases.spec_problems(
        "lightgbm", "iris", "classification", "{}", "  layers: [{dense: {units: 3}}]\n"
    )
    assert (
        "model.layers is a Keras setting; with framework lightgbm describe the model in model.params"
        in layers
    )
    (one_hot,) = cases.spec_problems("lightgbm", "iris", "classification", "{}", preprocess="[{one_hot: {}}]")
    assert "one_hot is for Keras models; LightGBM models take one feature vector per sample" in one_hot


def test_descriptor_words_and_run_form():
    spec = {
        "model": {
            "framework": "lightgbm",
            "task": "regression",
            "params": {"n_estimators": 20, "learning_rate": 0.05},
        }
    }
    assert LIGHTGBM.describe(spec, {}) == "LightGBM LGBMRegressor (learning_rate=0.05, n_estimators=20)"
    form = LIGHTGBM.run_parameters(spec)
    assert list(form) == ["n_estimators", "learning_rate"]
    assert form["learning_rate"].schema == {"type": "number"}
    assert LIGHTGBM.objective_metrics("classification") == (
        "val_accuracy",
        "val_precision",
        "val_recall",
        "val_f1",
    )


def test_lint_imports_neither_lightgbm_nor_numpy():
    cases.check_lint_imports_nothing_heavy("lightgbm")


def test_a_setting_the_library_refuses_while_fitting_fails_as_a_training_error():
    with pytest.raises(TrainingError, match=r"fitting LGBMClassifier failed: .*\(check model.params\)"):
        cases.fit("lightgbm", cases.dataset("iris"), {"objective": "nonsense"})


def test_the_export_decides_every_split_as_lightgbm_does():
    """LightGBM's thresholds are doubles; rounded to the nearest float32 (onnxmltools' way), two
    validation samples of this fit went down the other branch in ONNX (1.74 apart). The export rounds
    them down instead, which decides float32 features exactly as LightGBM does."""
    import numpy as np

    from mlspec.ml.onnx_export import check_parity, onnx_predict

    data = cases.dataset("diabetes")
    model, *_ = cases.fit("lightgbm", data, {"n_estimators": 50})
    onnx_bytes = LIGHTGBM.adapter.to_onnx(model, task="regression", opset=17, sample=data.x_train[:8])
    x = np.concatenate([data.x_train, data.x_val, data.x_test])
    expected = LIGHTGBM.adapter.predict(model, x, "regression")
    assert check_parity(expected, onnx_predict(onnx_bytes, x), atol=1e-3) < 1e-3

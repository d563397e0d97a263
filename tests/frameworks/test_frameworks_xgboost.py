"""model.framework: xgboost: XGBClassifier or XGBRegressor by the task, one log line per round, ONNX
through onnxmltools that answers like the model on raw features, and model.params linted from
XGBoost's own signature (xgboost_params.json, regenerated here)."""

from __future__ import annotations

import pytest
from tests.frameworks import boosting_cases as cases

from mlspec.ml.frameworks import TrainingError, TrainingPlan, framework_named
from mlspec.ml.frameworks.signature_params import render
from mlspec.ml.frameworks.xgboost_adapter import PARAMS

XGBOOST = framework_named("xgboost")


def test_committed_params_table_equals_a_fresh_generation():
    import xgboost

    assert PARAMS.table["version"] == xgboost.__version__
    assert PARAMS.file.read_text() == render(PARAMS.generate()), (
        f"{PARAMS.file.name} is out of date for the installed XGBoost; run `{PARAMS.regenerate}` "
        "from plugins/ and review the diff"
    )


@pytest.mark.parametrize("name", ["iris", "breast_cancer", "diabetes"])
def test_fits_each_task_logs_each_round_and_exports_what_it_predicts(name, caplog):
    result = cases.check_fit_and_export("xgboost", name, {"n_estimators": 12, "max_depth": 3}, caplog)
    report = result["report"]
    assert report.steps_run == 12 and not report.stopped_early
    assert (
        sorted(report.history)
        == {
            "iris": ["mlogloss", "val_mlogloss"],
            "breast_cancer": ["logloss", "val_logloss"],
            "diabetes": ["rmse", "val_rmse"],
        }[name]
    )


def test_early_stopping_keeps_the_best_round_in_the_model_and_its_export(caplog):
    result = cases.check_fit_and_export(
        "xgboost",
        "breast_cancer",
        {"n_estimators": 50, "learning_rate": 0.5, "early_stopping_rounds": 3},
        caplog,
    )
    report = result["report"]
    assert report.stopped_early and report.steps_run < 50
    assert report.notes["best_round"] == report.steps_run - 3
    assert any("stopped early; the model keeps round" in r.getMessage() for r in caplog.records)


def test_the_seed_is_the_spec_s_unless_params_set_random_state():
    data = cases.dataset("iris")
    plan = TrainingPlan(
        framework="xgboost", task="classification", preprocess=(), seed=11, params={"n_estimators": 2}
    )
    assert XGBOOST.adapter.build(plan, data)[-1].random_state == 11
    plan = TrainingPlan(
        framework="xgboost", task="classification", preprocess=(), seed=11, params={"random_state": 3}
    )
    assert XGBOOST.adapter.build(plan, data)[-1].random_state == 3


def test_build_refuses_params_the_signature_does_not_take():
    plan = TrainingPlan(
        framework="xgboost", task="regression", preprocess=(), seed=1, params={"max_depht": 3}
    )
    with pytest.raises(
        TrainingError, match="unknown parameter `max_depht` for XGBRegressor; did you mean `max_depth`"
    ):
        XGBOOST.adapter.build(plan, cases.dataset("diabetes"))


@pytest.mark.parametrize(("source", "task"), [("wine", "classification"), ("diabetes", "regression")])
def test_lint_checks_params_against_the_signature(source, task):
    assert (
        cases.spec_problems(
            "xgboost",
            source,
            task,
            "{n_estimators: 20, max_depth: 3, learning_rate: 0.1, eval_metric: [rmse]}",
        )
        == []
    )
    (unknown,) = cases.spec_problems("xgboost", source, task, "{max_depht: 3}")
    assert unknown.startswith("s.yaml:10:12: model.params.max_depht: unknown parameter `max_depht`")
    assert "did you mean `max_depth`?" in unknown
    (wrong,) = cases.spec_problems("xgboost", source, task, "{n_estimators: 20.0}")
    assert "model.params.n_estimators: `n_estimators` must be an integer or null, got 20.0" in wrong
    (callable_only,) = cases.spec_problems("xgboost", source, task, "{callbacks: [early]}")
    assert "`callbacks` cannot be set from a spec" in callable_only


def test_lint_refuses_other_frameworks_settings_and_image_steps():
    (estimator,) = cases.spec_problems(
        "xgboost", "iris", "classification", "{}", "  estimator: random_forest\n"
    )
    assert (
        "model.estimator is a scikit-learn setting; with framework xgboost describe the model in model.params"
        in estimator
    )
    (reshape,) = cases.spec_problems(
        "xgboost", "iris", "classification", "{}", preprocess="[{reshape: [2, 2]}]"
    )
    assert "reshape is for Keras models; XGBoost models take one feature vector per sample" in reshape


def test_descriptor_words_and_run_form():
    spec = {
        "model": {
            "framework": "xgboost",
            "task": "classification",
            "params": {"n_estimators": 20, "max_depth": 3},
        }
    }
    assert (
        XGBOOST.describe(spec, {"n_estimators": 5}) == "XGBoost XGBClassifier (max_depth=3, n_estimators=5)"
    )
    form = XGBOOST.run_parameters(spec)
    assert list(form) == ["n_estimators", "max_depth"]
    assert form["n_estimators"].target == "model.params.n_estimators"
    assert form["n_estimators"].schema == {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert XGBOOST.objective_metrics("regression") == ("val_rmse", "val_mae", "val_mse", "val_r2")
    assert XGBOOST.step == "round"


def test_lint_imports_neither_xgboost_nor_numpy():
    cases.check_lint_imports_nothing_heavy("xgboost")


def test_a_setting_the_library_refuses_while_fitting_fails_as_a_training_error():
    with pytest.raises(TrainingError, match=r"fitting XGBClassifier failed: .*\(check model.params\)"):
        cases.fit("xgboost", cases.dataset("iris"), {"tree_method": "nonsense"})

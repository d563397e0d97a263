"""A tuned spec's DAG (plan_trials -> train mapped over the trials -> select_best -> the untuned rest), its
operators on their own, the validation metrics the adapters report, and the best trial on the registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tests.fixtures.paths import SPECS

from mlspec.compiler import STAGES, TASK_ORDER, TUNED_STAGES, TUNED_TASK_ORDER, build_dag
from mlspec.spec import load_spec

TUNED = SPECS / "iris-tuned.yaml"


@pytest.fixture(autouse=True)
def mlspec_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "mlspec-home"
    monkeypatch.setenv("MLSPEC_HOME", str(home))
    return home


def test_the_tuned_flow():
    assert TUNED_TASK_ORDER == (
        "prepare_data", "validate_data", "plan_trials", "train", "select_best", "evaluate", "export_onnx", "store", "register",
        "deploy", "smoke_test", "promote",
    )
    spec = load_spec(TUNED)
    dag = build_dag(spec)
    assert [t.task_id for t in dag.topological_sort()] == list(TUNED_TASK_ORDER)
    for upstream, downstream in zip(TUNED_TASK_ORDER, TUNED_TASK_ORDER[1:], strict=False):
        assert downstream in dag.get_task(upstream).downstream_task_ids

    train = dag.get_task("train")
    assert type(train).__name__ == "MappedOperator" and train.max_active_tis_per_dagrun == 2
    assert train.expand_input.value["trial"].operator.task_id == "plan_trials"
    assert train.partial_kwargs["data"].operator.task_id == "prepare_data"
    select = dag.get_task("select_best")
    assert select.trials.operator.task_id == "train" and select.planned.operator.task_id == "plan_trials"
    assert select.trigger_rule == "all_done_min_one_success"
    # Every later stage reads the best trial where an untuned DAG reads train's result.
    for task_id, _, inputs in TUNED_STAGES:
        if task_id in ("train", "select_best"):
            continue
        task = dag.get_task(task_id)
        for argument, source in inputs.items():
            assert getattr(task, argument).operator.task_id == source
        assert "train" not in inputs.values()
    assert dag.get_task("evaluate").model.operator.task_id == "select_best"
    assert dag.get_task("register").model.operator.task_id == "select_best"
    # The form: trials, and no learning_rate (the space varies it).
    assert dag.params["trials"] == 4 and dag.params["epochs"] == 40 and "learning_rate" not in dag.params
    assert "plan_trials → train → select_best" in dag.doc_md and "`epochs` or `trials`" in dag.doc_md


def test_an_untuned_spec_keeps_the_untuned_flow():
    spec = load_spec(SPECS / "iris.yaml")
    dag = build_dag(spec)
    assert [t.task_id for t in dag.topological_sort()] == list(TASK_ORDER)
    assert "plan_trials" not in TASK_ORDER and "trials" not in dag.params
    assert type(dag.get_task("train")).__name__ == "TrainOperator" and dag.get_task("train").trial is None
    assert dag.get_task("register").model.operator.task_id == "train"
    assert dict(STAGES[[t for t, _, _ in STAGES].index("register")][2]) == {"stored": "store", "evaluation": "evaluate", "model": "train"}


def test_a_sklearn_tuned_spec_offers_trials_and_its_untuned_params(tmp_path):
    text = (SPECS / "iris-forest.yaml").read_text() + (
        "tuning:\n  strategy: grid\n  trials: 3\n  objective: {metric: val_f1}\n"
        "  space:\n    model.params.max_depth: {choice: [2, 4, 6]}\n"
    )
    (tmp_path / "f.yaml").write_text(text)
    dag = build_dag(load_spec(tmp_path / "f.yaml"))
    # max_depth is left out: each trial sets it (issue 17: a scikit-learn form offers its model.params).
    assert set(dag.params) == {"n_estimators", "random_state", "trials", "accept_drift"}
    assert dag.get_task("train").max_active_tis_per_dagrun == 1


def test_the_tuned_dag_compiles_the_same_in_every_process():
    code = textwrap.dedent(
        f"""
        import json
        from airflow.serialization.serialized_objects import DagSerialization
        from mlspec.compiler import build_dag
        from mlspec.spec import load_spec
        dag = build_dag(load_spec({str(TUNED)!r}))
        print(json.dumps(DagSerialization.to_dict(dag), sort_keys=True, default=str))
        """
    )

    def serialized() -> str:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy(), check=True)
        return out.stdout.strip().splitlines()[-1]

    first = serialized()
    assert first == serialized() and '"max_active_tis_per_dagrun": 2' in first


# --------------------------------------------------------------------------- the operators on their own


def test_plan_trials_takes_the_forms_trials():
    from mlspec.operators.tuning import PlanTrialsOperator

    spec = load_spec(TUNED).to_dict()
    operator = PlanTrialsOperator(task_id="plan_trials", spec=spec)
    planned = operator.run({"params": {"trials": 2}, "run_id": "r1"})
    assert [t["index"] for t in planned] == [0, 1]
    assert planned == PlanTrialsOperator(task_id="plan_trials", spec=spec).run({"params": {}, "run_id": "r1"})[:2]
    assert len(operator.run({"params": {}, "run_id": "r1"})) == 4


def test_plan_trials_creates_the_optuna_study(mlspec_home):
    from mlspec.operators.tuning import PlanTrialsOperator

    spec = load_spec(TUNED).to_dict()
    spec["tuning"]["strategy"] = "optuna"
    planned = PlanTrialsOperator(task_id="plan_trials", spec=spec).run({"params": {"trials": 3}, "run_id": "r2"})
    assert [t["params"] for t in planned] == [None, None, None]
    assert planned[0]["optuna"]["startup_trials"] == 1 and planned[0]["optuna"]["study"].endswith("/r2")
    assert (mlspec_home / "tuning" / "optuna.db").is_file()


def test_select_best_hands_on_the_winner_with_the_table():
    from mlspec.operators.tuning import SelectBestOperator

    def result(index, value):
        return {
            "model_uri": f"file:///m{index}", "framework": "tensorflow", "tracking_run_id": f"run{index}", "steps_run": 3,
            "stopped_early": False, "final_metrics": {}, "history": {},
            "trial": {"index": index, "params": {"training.epochs": index + 1}, "strategy": "random"},
            "objective": {"metric": "val_accuracy", "direction": "maximize", "value": value},
        }

    planned = [{"index": i, "params": {"training.epochs": i + 1}} for i in range(4)]
    operator = SelectBestOperator(task_id="select_best", spec=load_spec(TUNED).to_dict(), trials=[result(0, 0.8), result(2, 0.93), result(3, 0.93)], planned=planned)
    best = operator.run({})
    assert best["best_trial"] == 2 and best["model_uri"] == "file:///m2" and best["params"] == {"training.epochs": 3}
    assert [(row["index"], row["state"], row["value"]) for row in best["trials"]] == [
        (0, "success", 0.8), (1, "failed", None), (2, "success", 0.93), (3, "success", 0.93)
    ]
    with pytest.raises(Exception, match="no trial finished"):
        SelectBestOperator(task_id="select_best", spec=load_spec(TUNED).to_dict(), trials=[]).execute({})


# --------------------------------------------------------------------------- what the adapters report


@pytest.fixture(scope="module")
def iris():
    from mlspec.ml.data import load_source, split

    x, y, classes, features, *_ = load_source("builtin:iris", fmt=None, features=None, label=None, read_bytes=lambda uri: b"")
    return split(x, y, validation=0.2, test=0.2, seed=7, stratify=True, class_names=classes, feature_names=features)


def test_sklearn_reports_every_metric_on_the_validation_split(iris):
    from mlspec.ml.frameworks import TrainingPlan, get_adapter
    from mlspec.ml.metrics import compute_metrics

    spec = load_spec(SPECS / "iris-forest.yaml").to_dict()
    plan = TrainingPlan.from_spec(spec)
    adapter = get_adapter("sklearn")
    model = adapter.build(plan, iris)
    report = adapter.fit(model, plan, iris)
    validation = adapter.validation_metrics(model, plan, iris, report)
    assert set(validation) == {"val_accuracy", "val_precision", "val_recall", "val_f1"}
    expected = compute_metrics("classification", iris.y_val, adapter.predict(model, iris.x_val, "classification"),
                               metrics=["f1"], class_names=iris.class_names)["f1"]
    assert validation["val_f1"] == pytest.approx(expected)


def test_keras_reports_the_epoch_whose_weights_it_keeps(iris):
    from mlspec.ml.frameworks import TrainingPlan, get_adapter

    spec = load_spec(TUNED).to_dict()
    spec["training"]["epochs"] = 12
    spec["training"]["early_stopping"] = {"monitor": "val_loss", "patience": 2, "min_delta": 0.0, "restore_best_weights": True}
    spec["training"]["optimizer"]["learning_rate"] = 0.3  # jumpy: the best val_loss is rarely the last
    plan = TrainingPlan.from_spec(spec)
    adapter = get_adapter("tensorflow")
    model = adapter.build(plan, iris)
    report = adapter.fit(model, plan, iris)
    validation = adapter.validation_metrics(model, plan, iris, report)
    assert set(validation) == {"val_loss", "val_accuracy"}
    kept = report.notes["kept_epoch"]
    assert validation["val_loss"] == report.history["val_loss"][kept - 1] == min(report.history["val_loss"])
    # The metrics describe the model as returned: evaluate it on the validation split.
    evaluated = dict(zip(model.metrics_names, model.evaluate(iris.x_val, iris.y_val, verbose=0), strict=False))
    assert evaluated["loss"] == pytest.approx(validation["val_loss"], rel=1e-4)


# --------------------------------------------------------------------------- the registry


def request(**fields):
    from mlspec.registry import RegistrationRequest

    base = dict(model_name="m", version=1, source_uri="file:///m/1", model_uri="file:///m/1/model.onnx", metrics={"accuracy": 0.9},
                data_source="builtin:iris", spec_hash="h", dag_id="m", run_id="r", onnx_opset=17)
    return RegistrationRequest(**{**base, **fields})


def test_the_best_trial_on_an_mlflow_version_and_a_kubeflow_version():
    from mlspec.registry.kubeflow import KubeflowRegistry
    from mlspec.registry.mlflow_registry import MlflowRegistry

    params = {"model.layers[0].dense.units": 16, "training.optimizer.learning_rate": 0.004}
    tags = MlflowRegistry._version_tags(None, request(best_trial=2, trial_params=params))
    assert tags["mlspec.best_trial"] == "2" and json.loads(tags["mlspec.best_params"]) == params
    properties = KubeflowRegistry._version_properties(request(best_trial=2, trial_params=params))
    assert properties["mlspec.best_trial"] == {"metadataType": "MetadataIntValue", "int_value": "2"}
    assert json.loads(properties["mlspec.best_params"]["string_value"]) == params
    untuned = MlflowRegistry._version_tags(None, request())
    assert "mlspec.best_trial" not in untuned and "mlspec.best_trial" not in KubeflowRegistry._version_properties(request())

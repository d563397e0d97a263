"""mlspec.tuning on its own: paths and overrides, the trials each strategy plans, the best trial, the
objective each framework reports, and Optuna's shared study (ask/tell, retries) in a real database."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from tests.fixtures.paths import SPECS

from mlspec import tuning
from mlspec.spec import load_spec


@pytest.fixture(autouse=True)
def mlspec_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "mlspec-home"
    monkeypatch.setenv("MLSPEC_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def resolved() -> dict:
    return load_spec(SPECS / "iris-tuned.yaml").to_dict()


SPACE = {
    "training.optimizer.learning_rate": {"log_uniform": [1.0e-3, 5.0e-2]},
    "model.layers[0].dense.units": {"choice": [8, 16, 32]},
    "training.epochs": {"int_uniform": [5, 9]},
    "training.batch_size": {"choice": [16, 32]},
}


# --------------------------------------------------------------------------- paths and overrides


def test_paths_parse_and_print_back():
    assert tuning.parse_path("model.layers[0].dense.units") == ("model", "layers", 0, "dense", "units")
    assert tuning.parse_path("model.params.C") == ("model", "params", "C")
    assert tuning.parse_path("a.b[1][2].c") == ("a", "b", 1, 2, "c")
    assert tuning.format_path(("model", "layers", 0, "dense", "units")) == "model.layers[0].dense.units"
    assert tuning.param_key("model.layers[0].dense.units") == "model.layers.0.dense.units"
    for bad in ("", "model..x", "model.layers[x]", "model.layers[]", "1model", "model.layers [0]", "a-b"):
        with pytest.raises(ValueError, match="is not a path into the spec"):
            tuning.parse_path(bad)


def test_overrides_change_a_copy(resolved):
    before = json.dumps(resolved, sort_keys=True)
    trial = tuning.apply_overrides(resolved, {"training.optimizer.learning_rate": 0.02, "model.layers[0].dense.units": 32})
    assert trial["training"]["optimizer"]["learning_rate"] == 0.02
    assert trial["model"]["layers"][0]["dense"]["units"] == 32 and trial["model"]["layers"][1] == resolved["model"]["layers"][1]
    assert json.dumps(resolved, sort_keys=True) == before
    assert tuning.apply_overrides(resolved, None) == resolved


def test_a_replaced_mapping_gets_its_defaults_again(resolved):
    trial = tuning.apply_overrides(resolved, {"training.optimizer": {"name": "sgd"}})
    assert trial["training"]["optimizer"] == {"name": "sgd", "learning_rate": 0.001}


def test_an_estimator_parameter_not_in_the_spec_is_added():
    spec = load_spec(SPECS / "iris-forest.yaml").to_dict()
    trial = tuning.apply_overrides(spec, {"model.params.max_depth": 3, "model.params.criterion": "entropy"})
    assert trial["model"]["params"] == {"n_estimators": 100, "max_depth": 3, "random_state": 0, "criterion": "entropy"}


@pytest.mark.parametrize(
    "path", ["model.layers[7].dense.units", "training.early_stopping.patience.x", "metadata.name.x", "model.layers.dense"]
)
def test_overriding_what_is_not_there_fails_clearly(resolved, path):
    with pytest.raises(tuning.TuningError, match="does not exist in the spec"):
        tuning.apply_overrides(resolved, {path: 1})


def test_form_parameters_that_a_trial_tunes_are_dropped():
    form = {"epochs": 10, "learning_rate": 0.001, "trials": 3}
    assert tuning.run_params_for_trial(form, ["training.optimizer.learning_rate"]) == {"epochs": 10, "trials": 3}
    assert tuning.run_params_for_trial(form, ["training.optimizer"]) == {"epochs": 10, "trials": 3}
    assert tuning.run_params_for_trial(form, ["model.layers[0].dense.units"]) == form
    assert tuning.tuned_run_params(["training.epochs", "training.batch_size"]) == {"epochs"}


# --------------------------------------------------------------------------- strategies


def test_grid_is_the_product_of_choice_lists_in_order_capped_by_trials():
    space = {"a": {"choice": [1, 2]}, "b": {"choice": ["x", "y", "z"]}}
    assert tuning.grid_size(space) == 6
    assert tuning.grid_params(space, 4) == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "z"}, {"a": 2, "b": "x"}]
    assert len(tuning.grid_params(space, 100)) == 6
    with pytest.raises(tuning.TuningError, match="choice lists only"):
        tuning.grid_params({"a": {"uniform": [0, 1]}}, 2)


def test_random_draws_are_seeded_within_bounds_and_a_prefix_of_longer_runs():
    first = tuning.random_params(SPACE, 6, seed=7)
    assert first == tuning.random_params(SPACE, 6, seed=7) != tuning.random_params(SPACE, 6, seed=8)
    assert tuning.random_params(SPACE, 3, seed=7) == first[:3]
    for params in first:
        assert 1.0e-3 <= params["training.optimizer.learning_rate"] <= 5.0e-2
        assert params["model.layers[0].dense.units"] in (8, 16, 32)
        assert isinstance(params["training.epochs"], int) and 5 <= params["training.epochs"] <= 9
    assert len({json.dumps(p, sort_keys=True) for p in first}) == 6


def test_random_avoids_repeating_a_small_space_while_it_can():
    space = {"a": {"choice": [1, 2, 3]}}
    assert sorted(p["a"] for p in tuning.random_params(space, 3, seed=0)) == [1, 2, 3]


def test_log_uniform_is_spread_over_the_orders_of_magnitude():
    draws = [p["x"] for p in tuning.random_params({"x": {"log_uniform": [1.0e-5, 1.0e-1]}}, 400, seed=1)]
    below = sum(1 for d in draws if d < 1.0e-3)
    assert 140 < below < 260  # half of the decades lie below 1e-3


def test_plan_trials_for_each_strategy():
    settings = {"strategy": "random", "trials": 3, "seed": 7, "space": SPACE}
    planned = tuning.plan_trials(settings)
    assert [t["index"] for t in planned] == [0, 1, 2] and all(set(t["params"]) == set(SPACE) for t in planned)
    assert len(tuning.plan_trials(settings, trials=5)) == 5
    grid = {"strategy": "grid", "trials": 10, "seed": 7, "space": {"a": {"choice": [1, 2]}}}
    assert [t["params"] for t in tuning.plan_trials(grid)] == [{"a": 1}, {"a": 2}]
    optuna = {**settings, "strategy": "optuna"}
    placeholders = tuning.plan_trials(optuna, study={"study": "s"})
    assert [(t["index"], t["params"], t["optuna"]) for t in placeholders] == [(i, None, {"study": "s"}) for i in range(3)]
    with pytest.raises(tuning.TuningError, match="needs its study"):
        tuning.plan_trials(optuna)


# --------------------------------------------------------------------------- objective and the best trial


def test_the_metrics_each_framework_reports():
    assert tuning.objective_metrics("tensorflow", "classification") == ("val_loss", "val_accuracy")
    assert tuning.objective_metrics("tensorflow", "regression") == ("val_loss", "val_rmse")
    assert tuning.objective_metrics("sklearn", "classification") == ("val_accuracy", "val_precision", "val_recall", "val_f1")
    assert tuning.objective_metrics("sklearn", "regression") == ("val_rmse", "val_mae", "val_mse", "val_r2")
    directions = {m: tuning.metric_direction(m) for m in ("val_loss", "val_accuracy", "val_rmse", "val_r2", "val_mae")}
    assert directions == {"val_loss": "minimize", "val_accuracy": "maximize", "val_rmse": "minimize", "val_r2": "maximize", "val_mae": "minimize"}
    assert tuning.objective_direction("val_accuracy", "minimize") == "minimize"


def result(index: int, value: float) -> dict:
    return {"trial": {"index": index, "params": {"x": index}}, "objective": {"value": value}, "model_uri": f"m{index}"}


def test_the_best_trial_by_the_objective_ties_to_the_lowest_index_and_skipping_nan():
    results = [result(0, 0.8), result(1, float("nan")), result(2, 0.9), result(3, 0.9), result(4, 0.7)]
    assert tuning.select_best(results, "val_accuracy")["trial"]["index"] == 2
    assert tuning.select_best(results, "val_loss")["trial"]["index"] == 4
    assert tuning.select_best(reversed(results), "val_accuracy", "maximize")["trial"]["index"] == 2
    with pytest.raises(tuning.TuningError, match="no trial reported a finite val_loss"):
        tuning.select_best([result(0, math.inf), result(1, float("nan"))], "val_loss")


def test_probe_values_cover_what_a_distribution_can_draw():
    assert tuning.probe_values({"choice": [1, "a", None]}) == [1, "a", None]
    assert tuning.probe_values({"int_uniform": [3, 6]}) == [3, 4, 5, 6]
    wide = tuning.probe_values({"int_uniform": [0, 10**6]})
    assert wide[0] == 0 and wide[-1] == 10**6 and len(wide) <= 1000
    floats = tuning.probe_values({"uniform": [16, 64]})
    assert floats[0] == 16 and floats[-1] == 64 and any(v != int(v) for v in floats)
    logs = tuning.probe_values({"log_uniform": [1.0e-4, 1.0e-2]})
    assert logs[0] == 1.0e-4 and logs[-1] == 1.0e-2 and all(1.0e-4 <= v <= 1.0e-2 for v in logs)


# --------------------------------------------------------------------------- optuna


def reference(trials: int = 4, seed: int = 7) -> dict:
    return tuning.create_study(name="mlspec/t/run", connection=None, metric="val_accuracy", direction=None, seed=seed, trials=trials)


def test_optuna_is_not_imported_by_the_module():
    import subprocess

    code = "import sys, mlspec.tuning, mlspec.spec.lint; print('optuna' in sys.modules, 'sqlalchemy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_the_study_lives_in_sqlite_under_mlspec_home(mlspec_home):
    ref = reference()
    assert ref == {"study": "mlspec/t/run", "connection": None, "seed": 7, "startup_trials": 2}
    assert (mlspec_home / "tuning" / "optuna.db").is_file()
    assert reference() == ref  # a retry of plan_trials finds the same study


def test_trials_ask_and_tell_one_shared_study():
    import optuna

    ref = reference(trials=6)
    values = []
    for index in range(6):
        trial = tuning.OptunaTrial.ask(ref, SPACE, index)
        assert trial.mode == "asked" and trial.number == index and set(trial.params) == set(SPACE)
        assert trial.params["model.layers[0].dense.units"] in (8, 16, 32) and isinstance(trial.params["training.epochs"], int)
        value = 1.0 - abs(math.log10(trial.params["training.optimizer.learning_rate"]) + 2)  # best near 1e-2
        trial.tell(value)
        values.append(value)
    study = optuna.load_study(study_name=ref["study"], storage=tuning.storage_url(None))
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 6
    assert [t.value for t in study.trials] == values
    assert [t.user_attrs[tuning.OPTUNA_TRIAL_ATTR] for t in study.trials] == list(range(6))
    assert study.direction.name == "MAXIMIZE" and study.best_value == max(values)


def test_trials_started_together_draw_different_parameters():
    ref = reference(trials=4)
    running = [tuning.OptunaTrial.ask(ref, SPACE, index) for index in range(3)]  # none told yet: parallel
    drawn = {json.dumps(t.params, sort_keys=True) for t in running}
    assert len(drawn) == 3


def test_a_retried_trial_trains_the_same_parameters_and_is_recorded_once_finished():
    import optuna

    ref = reference()
    first = tuning.OptunaTrial.ask(ref, SPACE, 0)  # the try that asked died before telling
    retry = tuning.OptunaTrial.ask(ref, SPACE, 0)
    assert retry.mode == "replay" and retry.params == first.params
    retry.tell(0.75)
    study = optuna.load_study(study_name=ref["study"], storage=tuning.storage_url(None))
    assert [(t.state.name, t.value) for t in study.trials] == [("FAIL", None), ("COMPLETE", 0.75)]
    again = tuning.OptunaTrial.ask(ref, SPACE, 0)  # told already: nothing more to record
    assert again.mode == "done" and again.params == first.params
    again.tell(0.1)
    assert len(optuna.load_study(study_name=ref["study"], storage=tuning.storage_url(None)).trials) == 2


def test_a_failed_or_nan_trial_is_failed_in_the_study():
    import optuna

    ref = reference()
    tuning.OptunaTrial.ask(ref, SPACE, 0).fail()
    tuning.OptunaTrial.ask(ref, SPACE, 1).tell(float("nan"))
    study = optuna.load_study(study_name=ref["study"], storage=tuning.storage_url(None))
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"]


def test_choices_that_are_lists_or_mappings_go_through_optuna():
    space = {"model.params.hidden_layer_sizes": {"choice": [[8], [16, 8]]}, "training.optimizer": {"choice": [{"name": "sgd"}]}}
    ref = reference()
    trial = tuning.OptunaTrial.ask(ref, space, 0)
    assert trial.params["model.params.hidden_layer_sizes"] in ([8], [16, 8])
    assert trial.params["training.optimizer"] == {"name": "sgd"}
    trial.tell(0.5)


def test_the_study_database_from_an_airflow_connection(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    monkeypatch.setenv("AIRFLOW_CONN_OPTUNA_DB", json.dumps({"conn_type": "generic", "extra": {"sqlalchemy_url": url}}))
    assert tuning.storage_url("optuna_db") == url
    ref = tuning.create_study(name="s", connection="optuna_db", metric="val_loss", direction=None, seed=1, trials=2)
    tuning.OptunaTrial.ask(ref, SPACE, 0).tell(0.3)
    assert (tmp_path / "studies.db").is_file()
    with pytest.raises(tuning.TuningError, match="could not read Airflow connection 'missing_db'"):
        tuning.storage_url("missing_db")


def test_connection_urls_for_production_databases():
    def connection(**fields):
        base = {"conn_id": "db", "conn_type": "postgres", "login": "optuna", "password": "p@ss word", "host": "db.internal",
                "port": 5432, "schema": "studies", "extra_dejson": {}}
        return SimpleNamespace(**{**base, **fields})

    from sqlalchemy.engine import make_url

    url = make_url(tuning.connection_url(connection()))
    assert (url.drivername, url.username, url.password, url.host, url.port, url.database) == (
        "postgresql", "optuna", "p@ss word", "db.internal", 5432, "studies"
    )
    scheme = connection(extra_dejson={"sqlalchemy_scheme": "postgresql+psycopg"})
    assert tuning.connection_url(scheme).startswith("postgresql+psycopg://optuna:")
    mysql = make_url(tuning.connection_url(connection(conn_type="mysql", port=None)))
    assert (mysql.drivername, mysql.port, mysql.password) == ("mysql", None, "p@ss word")
    with pytest.raises(tuning.TuningError, match="not a database Optuna can use"):
        tuning.connection_url(connection(conn_type="http"))

"""Lint of the tuning section: every space path is a setting of this spec, every value its distribution can
draw is valid for that field (and leaves a spec the other checks accept), the objective is a metric the
framework reports on the validation split; each problem at its file:line:col."""

from __future__ import annotations

import json

import pytest
from tests.fixtures.paths import SPECS

from mlspec.spec import ModelSpec, SpecError, load_spec, load_spec_text

KERAS = """\
apiVersion: mlspec/v1
kind: ModelSpec
metadata: {name: tuned}
data:
  source: builtin:iris
  split: {validation: 0.2}
model:
  layers:
    - dense: {units: 16, activation: relu}
    - dense: {units: 3, activation: softmax}
tuning:
  trials: 4
  objective: {metric: val_accuracy}
  space:
"""  # line 15 on: the space entries, indented four spaces

FOREST = """\
apiVersion: mlspec/v1
kind: ModelSpec
metadata: {name: forest}
data:
  source: builtin:iris
  split: {validation: 0.2}
model:
  framework: sklearn
  estimator: random_forest
  params: {n_estimators: 20}
tuning:
  strategy: optuna
  objective: {metric: val_f1}
  space:
"""


def keras(*entries: str, base: str = KERAS) -> str:
    return base + "".join(f"    {entry}\n" for entry in entries)


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec_text(text, "s.yaml")
    return [str(p) for p in info.value.problems]


def one_problem(text: str) -> str:
    (message,) = problems(text)
    return message


# --------------------------------------------------------------------------- accepted specs


def test_the_tuned_example_is_clean_and_typed():
    spec = load_spec(SPECS / "iris-tuned.yaml")
    tuning = spec.tuning
    assert (tuning.strategy, tuning.trials, tuning.parallel, tuning.seed) == ("random", 4, 2, 7)
    assert (tuning.metric, tuning.direction, tuning.connection) == ("val_accuracy", "maximize", None)
    assert dict(tuning.space["model.layers[0].dense.units"]) == {"choice": (8, 16, 32)}
    again = ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict())), source_file=spec.source_file)
    assert again == spec and again.spec_hash == spec.spec_hash


def test_untuned_specs_have_no_tuning_and_a_null_section():
    spec = load_spec(SPECS / "iris.yaml")
    assert spec.tuning is None and spec.to_dict()["tuning"] is None


def test_defaults_of_the_section():
    spec = load_spec_text(keras("training.epochs: {int_uniform: [5, 20]}"))
    resolved = spec.to_dict()["tuning"]
    assert resolved["strategy"] == "random" and resolved["parallel"] == 1 and resolved["seed"] == 42
    assert resolved["objective"] == {"metric": "val_accuracy", "direction": None} and resolved["connection"] is None


def test_every_distribution_on_fitting_fields_is_clean():
    text = keras(
        "training.optimizer.learning_rate: {log_uniform: [1.0e-4, 1.0e-1]}",
        "training.batch_size: {choice: [16, 32, 64]}",
        "training.epochs: {int_uniform: [5, 30]}",
        "model.layers[0].dense.units: {int_uniform: [4, 64]}",
        "model.layers[0].dense.activation: {choice: [relu, tanh, null]}",
        "training.optimizer: {choice: [{name: adam}, {name: sgd, learning_rate: 0.05}]}",
    )
    assert len(load_spec_text(text).tuning.space) == 6


def test_sklearn_parameters_are_checked_against_the_estimator():
    text = keras(
        "model.params.max_depth: {int_uniform: [2, 12]}",
        "model.params.max_features: {uniform: [0.2, 1.0]}",
        "model.params.criterion: {choice: [gini, entropy]}",
        "model.params.min_samples_leaf: {choice: [1, 0.05]}",
        base=FOREST,
    )
    assert load_spec_text(text).tuning.strategy == "optuna"


# --------------------------------------------------------------------------- paths


def test_a_misspelt_path_is_pointed_at_with_a_suggestion():
    message = one_problem(keras("training.optimizer.learnig_rate: {choice: [0.01]}"))
    assert message.startswith("s.yaml:15:5: tuning.space.training.optimizer.learnig_rate: training.optimizer.learnig_rate does not exist")
    assert "did you mean training.optimizer.learning_rate?" in message


def test_a_layer_that_is_not_there():
    message = one_problem(keras("model.layers[5].dense.units: {choice: [8]}"))
    assert message.endswith("model.layers[5] does not exist: model.layers has 2 items")


def test_a_layer_of_another_type():
    message = one_problem(keras("model.layers[0].conv2d.filters: {choice: [8]}"))
    assert message.endswith("model.layers[0].conv2d does not exist; model.layers[0] has dense")


def test_a_setting_inside_a_null_section():
    message = one_problem(keras("training.early_stopping.patience: {choice: [3]}"))
    assert "training.early_stopping is null; set it in the spec to tune what is inside it" in message


def test_a_malformed_path():
    message = one_problem(keras("'training..epochs': {choice: [3]}"))
    assert message.startswith("s.yaml:15:5: ") and "is not a path into the spec" in message


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("data.split.seed: {choice: [1, 2]}", "only model and training settings can be tuned"),
        ("model.framework: {choice: [sklearn]}", "model.framework cannot be tuned"),
        ("model.params.max_depth: {choice: [3]}", "model.params is a scikit-learn, XGBoost or LightGBM setting"),
        ("training: {choice: [{epochs: 3}]}", "name a setting inside training"),
    ],
)
def test_settings_a_trial_may_not_change(entry, says):
    assert says in one_problem(keras(entry))


def test_keras_settings_in_a_sklearn_spec():
    message = one_problem(keras("training.epochs: {choice: [3]}", base=FOREST))
    assert "training.epochs is a Keras setting; with framework sklearn tune model.params.<parameter>" in message


def test_an_unknown_estimator_parameter():
    message = one_problem(keras("model.params.n_estimator: {int_uniform: [10, 50]}", base=FOREST))
    assert message.startswith("s.yaml:15:5: tuning.space.model.params.n_estimator: unknown parameter `n_estimator`")
    assert "did you mean `n_estimators`?" in message


def test_a_parameter_a_spec_may_not_set():
    text = FOREST.replace("random_forest", "logistic_regression").replace("{n_estimators: 20}", "{}")
    message = one_problem(keras("model.params.penalty: {choice: [l2]}", base=text))
    assert "`penalty` cannot be set from a spec" in message


# --------------------------------------------------------------------------- values


def test_a_choice_that_is_not_valid_for_the_field():
    message = one_problem(keras("training.epochs: {choice: [5, 0]}"))
    assert message == "s.yaml:15:35: tuning.space.training.epochs.choice[1]: 0 is not a valid training.epochs: 0 is less than the minimum of 1"


def test_a_range_that_can_draw_an_invalid_value():
    message = one_problem(keras("training.optimizer.learning_rate: {uniform: [0.0, 0.1]}"))
    assert message.startswith("s.yaml:15:49: tuning.space.training.optimizer.learning_rate.uniform: uniform [0.0, 0.1] can draw 0.0")


def test_a_float_range_on_an_integer_field():
    message = one_problem(keras("training.batch_size: {uniform: [16, 64]}"))
    assert "uniform [16, 64] can draw" in message and "is not of type 'integer'" in message


def test_an_integer_range_reaching_an_invalid_value_of_an_estimator_parameter():
    message = one_problem(keras("model.params.max_depth: {int_uniform: [0, 12]}", base=FOREST))
    assert message.endswith("int_uniform [0, 12] can draw 0, which is not a valid model.params.max_depth: max_depth must be an integer >= 1 or null")


def test_an_estimator_choice_that_is_not_allowed():
    message = one_problem(keras("model.params.criterion: {choice: [gini, mse]}", base=FOREST))
    assert message.startswith("s.yaml:15:45: tuning.space.model.params.criterion.choice[1]: \"mse\" is not a valid")


def test_a_value_valid_for_its_field_but_not_for_the_spec():
    # The last layer must keep one unit per class: 4 is a valid width, but not for iris' 3 classes.
    message = one_problem(keras("model.layers[1].dense.units: {choice: [3, 4]}"))
    assert message.startswith("s.yaml:15:47: tuning.space.model.layers[1].dense.units.choice[1]: with model.layers[1].dense.units = 4: ")
    assert "the last layer has 4 units but builtin:iris has 3 classes" in message


def test_a_loss_that_needs_another_preprocess_step():
    message = one_problem(keras("training.loss: {choice: [sparse_categorical_crossentropy, categorical_crossentropy]}"))
    assert "categorical_crossentropy needs one-hot labels" in message


def test_a_whole_mapping_as_a_choice_is_checked_like_the_field():
    message = one_problem(keras("training.optimizer: {choice: [{name: adam}, {name: nadam}]}"))
    assert "tuning.space.training.optimizer.choice[1]" in message and "'nadam' is not one of" in message


def test_low_must_be_below_high():
    assert "low 0.1 must be less than high 0.01" in one_problem(keras("training.optimizer.learning_rate: {log_uniform: [0.1, 0.01]}"))
    assert "low 9 must be at most high 3" in one_problem(keras("training.epochs: {int_uniform: [9, 3]}"))


def test_log_uniform_needs_a_positive_low_bound():
    message = one_problem(keras("training.optimizer.learning_rate: {log_uniform: [0, 0.1]}"))
    assert "log_uniform[0]" in message and "less than or equal to the minimum of 0" in message


def test_an_unknown_distribution_gets_a_suggestion():
    message = one_problem(keras("training.epochs: {int_unifrom: [3, 9]}"))
    assert "unknown type `int_unifrom`; did you mean `int_uniform`?" in message


def test_one_distribution_per_path():
    message = one_problem(keras("training.epochs: {choice: [3], int_uniform: [3, 9]}"))
    assert "expected exactly one of: choice, uniform, log_uniform, int_uniform" in message


# --------------------------------------------------------------------------- strategy, objective, trials


def test_grid_takes_choice_lists_only():
    text = keras("training.epochs: {choice: [5, 10]}", "training.optimizer.learning_rate: {log_uniform: [0.001, 0.1]}")
    message = one_problem(text.replace("  trials: 4\n", "  strategy: grid\n  trials: 4\n"))
    assert message.startswith("s.yaml:17:40: tuning.space.training.optimizer.learning_rate.log_uniform: strategy grid takes the product of choice lists")


@pytest.mark.parametrize(
    ("base", "metric", "says"),
    [
        (KERAS, "val_f1", "tensorflow does not report val_f1 for classification on the validation split; use one of val_loss, val_accuracy"),
        (KERAS, "val_rmse", "use one of val_loss, val_accuracy"),
        (FOREST, "val_loss", "sklearn does not report val_loss for classification on the validation split; use one of val_accuracy, val_precision, val_recall, val_f1"),
        (FOREST, "val_r2", "use one of val_accuracy"),
    ],
)
def test_the_objective_must_be_reported_by_the_framework(base, metric, says):
    entry = "training.epochs: {choice: [5]}" if base is KERAS else "model.params.max_depth: {choice: [3]}"
    text = keras(entry, base=base).replace("metric: val_accuracy", f"metric: {metric}").replace("metric: val_f1", f"metric: {metric}")
    message = one_problem(text)
    assert message.startswith("s.yaml:13:23: tuning.objective.metric: ") and says in message


def test_the_objective_needs_a_validation_split():
    text = keras("training.epochs: {choice: [5]}").replace("split: {validation: 0.2}", "split: {validation: 0}")
    assert "val_accuracy is measured on the validation split, but data.split.validation is 0" in one_problem(text)


def test_a_direction_against_the_metric():
    text = keras("training.epochs: {choice: [5]}").replace("{metric: val_accuracy}", "{metric: val_accuracy, direction: minimize}")
    assert "val_accuracy is better when higher, so minimize would pick the worst trial" in one_problem(text)
    text = keras("training.epochs: {choice: [5]}").replace("{metric: val_accuracy}", "{metric: val_loss, direction: minimize}")
    assert load_spec_text(text).tuning.direction == "minimize"


def test_parallel_beyond_trials():
    text = keras("training.epochs: {choice: [5]}").replace("  trials: 4\n", "  trials: 4\n  parallel: 6\n")
    assert one_problem(text).startswith("s.yaml:13:13: tuning.parallel: parallel 6 is more than trials 4")


def test_trials_bounds_come_from_the_schema():
    text = keras("training.epochs: {choice: [5]}").replace("trials: 4", "trials: 0")
    assert "tuning.trials: 0 is less than the minimum of 1" in one_problem(text)


def test_a_study_database_only_for_optuna():
    text = keras("training.epochs: {choice: [5]}").replace("  trials: 4\n", "  trials: 4\n  connection: optuna_db\n")
    assert "the connection names Optuna's study database; strategy random keeps no study" in one_problem(text)
    assert load_spec_text(text.replace("  trials: 4\n", "  strategy: optuna\n  trials: 4\n")).tuning.connection == "optuna_db"


def test_objective_and_space_are_required():
    text = KERAS.replace("  objective: {metric: val_accuracy}\n", "") + "    training.epochs: {choice: [5]}\n"
    assert any("tuning.objective: required key `objective` is missing" in p for p in problems(text))

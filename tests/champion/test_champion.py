"""The champion/challenger gate on its own (mlspec.champion): a real ONNX champion read from a real file
store, checked against its recorded sha256 and scored on a real test split; the registry is the one stand-in
(it only names the production version and its record)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from tests.fixtures.paths import SPECS

import mlspec.champion
from mlspec.champion import DECISIONS, compare_with_champion, decide, verdict_line
from mlspec.errors import MlspecError
from mlspec.registry.base import VersionRecord
from mlspec.spec import load_spec_text
from mlspec.storage import open_store

NAME = "iris-forest"
CLASSES = ("setosa", "versicolor", "virginica")
Y_TEST = np.array([0, 1, 2, 0, 1, 2])
# The champion predicts the largest feature's index: right on 4 of 6 samples (accuracy 0.666667).
PREDICTED = [0, 1, 2, 0, 2, 1]
DATASET = SimpleNamespace(x_test=np.eye(3, dtype=np.float32)[PREDICTED], y_test=Y_TEST, class_names=CLASSES, columns=())
CHAMPION_ACCURACY = round(4 / 6, 6)


def argmax_model() -> bytes:
    """A real ONNX classifier: label = argmax(x) over 3 features."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ArgMax", ["x"], ["label"], axis=1, keepdims=0)],
        "argmax",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, [None])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def spec_with_gate(gate: str):
    """iris-forest with `evaluation.champion` set to `gate` (YAML flow text)."""
    text = (SPECS / "iris-forest.yaml").read_text()
    return load_spec_text(text.replace("    f1: {min: 0.85}\n", f"    f1: {{min: 0.85}}\n  champion: {gate}\n"), "iris.yaml")


class Registry:
    """Names the production version and its record, as ModelRegistry does; nothing else is asked."""

    def __init__(self) -> None:
        self.production: int | None = None
        self.records: dict[int, VersionRecord] = {}

    def open(self, backend: str, connection: str | None) -> Registry:
        return self

    def production_version(self, model_name: str) -> int | None:
        return self.production

    def version_record(self, model_name: str, version: int) -> VersionRecord | None:
        return self.records.get(version)


@pytest.fixture
def registry(monkeypatch) -> Registry:
    registry = Registry()
    monkeypatch.setattr(mlspec.champion, "open_registry", registry.open)  # how the gate opens the spec's registry
    return registry


@pytest.fixture
def store(mlspec_home):
    return open_store("file://models")


@pytest.fixture
def champion(registry: Registry, store) -> VersionRecord:
    """Version 1 of iris-forest is production: its ONNX model published in the store, recorded in the registry
    with a test accuracy of 0.9 (measured on its own split, so not what it scores on this one)."""
    published = store.publish_version(NAME, {"model.onnx": argmax_model()}, run_id="manual__1")
    record = VersionRecord(
        NAME, published.version, published.uri, dict(published.files), {"accuracy": 0.9}, "manual__1", "production"
    )
    registry.production, registry.records[published.version] = published.version, record
    return record


# --------------------------------------------------------------------------- decide


@pytest.mark.parametrize(
    ("metric", "challenger", "champion", "min_delta", "decision"),
    [
        ("accuracy", 0.95, 0.90, 0.0, "challenger_wins"),
        ("accuracy", 0.85, 0.90, 0.0, "champion_holds"),
        ("accuracy", 0.90, 0.90, 0.0, "tie"),  # an identical retrain never redeploys
        ("accuracy", 0.90 - 1e-12, 0.90, 0.0, "tie"),  # float noise is no loss either
        ("rmse", 3.436102, 3.436118, 0.0, "tie"),  # float32 ONNX vs float64 scikit-learn: an identical retrain
        ("rmse", 3.4361, 3.4365, 0.0, "challenger_wins"),  # but a real difference in the fourth digit counts
        ("accuracy", 0.93, 0.90, 0.05, "champion_holds"),  # better, but by less than min_delta
        ("accuracy", 0.96, 0.90, 0.05, "challenger_wins"),
        ("accuracy", 0.95, 0.90, 0.05, "champion_holds"),  # better by exactly min_delta: not MORE than it
        ("rmse", 0.30, 0.40, 0.0, "challenger_wins"),  # lower is better for rmse
        ("rmse", 0.50, 0.40, 0.0, "champion_holds"),
        ("rmse", 0.35, 0.40, 0.1, "champion_holds"),
        ("accuracy", 0.5, math.nan, 0.0, "challenger_wins"),  # a champion that could not be scored loses
        ("accuracy", math.nan, 0.5, 0.0, "champion_holds"),  # a NaN challenger never wins
    ],
)
def test_decide(metric, challenger, champion, min_delta, decision):
    assert decide(metric, challenger, champion, min_delta) == decision


def test_only_a_win_or_no_comparison_goes_on_to_deploy():
    assert {d for d, deploys in DECISIONS.items() if deploys} == {"gate_off", "no_champion", "challenger_wins"}
    assert {d for d, deploys in DECISIONS.items() if not deploys} == {"champion_holds", "tie"}


# --------------------------------------------------------------------------- compare_with_champion


def test_gate_off_compares_nothing(registry: Registry, store):
    registry.production = 1  # never asked: an off gate does not open the registry
    registry.production_version = None
    assert compare_with_champion(spec_with_gate("null"), store, DATASET, {"accuracy": 0.1}) == {"decision": "gate_off"}


def test_without_production_the_challenger_passes(registry: Registry, store):
    verdict = compare_with_champion(spec_with_gate("{metric: accuracy}"), store, DATASET, {"accuracy": 0.1})
    assert verdict == {"metric": "accuracy", "min_delta": 0.0, "challenger": 0.1, "decision": "no_champion"}


def test_the_champion_is_scored_on_this_runs_test_split(champion: VersionRecord, store):
    verdict = compare_with_champion(spec_with_gate("{metric: accuracy}"), store, DATASET, {"accuracy": 0.8})
    assert verdict["decision"] == "challenger_wins"
    assert verdict["champion"] == CHAMPION_ACCURACY  # scored here, not the 0.9 the registry recorded
    assert verdict["champion_version"] == 1 and verdict["scored_on"] == "this run's test split"
    assert set(verdict["champion_metrics"]) == {"accuracy", "precision", "recall", "f1"}
    assert verdict_line(NAME, verdict) == f"{NAME}: the challenger goes on (challenger_wins)"


def test_an_equal_score_is_a_tie_and_the_champion_keeps_serving(champion: VersionRecord, store):
    verdict = compare_with_champion(spec_with_gate("{metric: accuracy}"), store, DATASET, {"accuracy": CHAMPION_ACCURACY})
    assert verdict["decision"] == "tie" and not DECISIONS[verdict["decision"]]
    assert verdict_line(NAME, verdict) == (
        f"{NAME}: tie: the champion holds: production version 1 keeps serving: its accuracy is 0.6667 against the "
        "new model's 0.6667 (min_delta 0)"
    )


def test_min_delta_keeps_a_slightly_better_challenger_out(champion: VersionRecord, store):
    spec = spec_with_gate("{metric: accuracy, min_delta: 0.05}")
    held = compare_with_champion(spec, store, DATASET, {"accuracy": 0.7})  # 0.033 better
    assert held["decision"] == "champion_holds" and held["min_delta"] == 0.05
    assert verdict_line(NAME, held) == (
        f"{NAME}: production version 1 keeps serving: its accuracy is 0.6667 against the new model's 0.7000 (min_delta 0.05)"
    )
    assert compare_with_champion(spec, store, DATASET, {"accuracy": 0.75})["decision"] == "challenger_wins"


def test_a_worse_challenger_loses(champion: VersionRecord, store):
    verdict = compare_with_champion(spec_with_gate("{metric: accuracy}"), store, DATASET, {"accuracy": 0.5})
    assert verdict["decision"] == "champion_holds"


def test_a_changed_champion_file_is_refused(champion: VersionRecord, store):
    champion.files["model.onnx"] = "0" * 64  # the registry recorded another sha256 than the store holds
    with pytest.raises(MlspecError, match="does not match the sha256 the registry recorded"):
        compare_with_champion(spec_with_gate("{metric: accuracy}"), store, DATASET, {"accuracy": 0.8})


def test_unreadable_champion_files_fall_back_to_the_recorded_metrics(registry: Registry, store):
    gone = VersionRecord(NAME, 3, f"{store.root_uri}/{NAME}/3", {}, {"accuracy": 0.9}, "manual__3", "production")
    registry.production, registry.records[3] = 3, gone
    spec = spec_with_gate("{metric: accuracy}")
    verdict = compare_with_champion(spec, store, DATASET, {"accuracy": 0.85})
    assert verdict["decision"] == "champion_holds" and verdict["champion"] == 0.9
    assert verdict["scored_on"] == "the metrics the registry recorded"
    assert compare_with_champion(spec, store, DATASET, {"accuracy": 0.9})["decision"] == "tie"
    gone.metrics.clear()  # and without a recorded score there is nothing to compare with
    with pytest.raises(MlspecError, match="cannot be scored"):
        compare_with_champion(spec, store, DATASET, {"accuracy": 0.9})


def test_a_champion_that_cannot_take_this_runs_rows_is_compared_by_its_recorded_metrics(
    champion: VersionRecord, store, caplog
):
    wider = SimpleNamespace(**{**vars(DATASET), "x_test": np.ones((6, 4), dtype=np.float32)})  # 4 features, not 3
    with caplog.at_level("WARNING", logger="mlspec.champion"):
        verdict = compare_with_champion(spec_with_gate("{metric: accuracy}"), store, wider, {"accuracy": 0.85})
    assert verdict["decision"] == "champion_holds" and verdict["champion"] == 0.9
    assert verdict["scored_on"] == "the metrics the registry recorded"
    assert "production version 1 of iris-forest cannot take this run's test rows (onnxruntime could not run" in caplog.text


def test_a_production_version_without_a_record_is_an_error(registry: Registry, store):
    registry.production = 4
    with pytest.raises(MlspecError, match="names version 4 of iris-forest as production but has no record"):
        compare_with_champion(spec_with_gate("{metric: accuracy}"), store, DATASET, {"accuracy": 0.9})

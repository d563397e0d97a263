"""The champion gate without Airflow or a registry server: a tie keeps the champion, and evaluate's log
says once, with a label, whose metrics each line is (the challenger's, production version N's)."""

from __future__ import annotations

import logging
import re
from types import SimpleNamespace

import numpy as np
import pytest
from tests.fixtures.paths import SPECS

from mlspec.errors import StoreError
from mlspec.spec import load_spec

Y_TEST = np.array([0, 1, 2, 1, 0, 2])
DATASET = SimpleNamespace(
    x_test=np.zeros((6, 4), dtype=np.float32), y_test=Y_TEST, class_names=("setosa", "versicolor", "virginica"), columns=()
)


class FakeRegistry:
    def __init__(self, production: int | None, metrics: dict | None = None) -> None:
        self.production = production
        self.metrics = metrics or {}

    def production_version(self, name: str) -> int | None:
        return self.production

    def version_record(self, name: str, version: int):
        from mlspec.registry.base import VersionRecord

        return VersionRecord(name, version, f"file:///store/{name}/{version}", {}, self.metrics, "run-1", "production")


class FakeStore:
    """A store whose production model is there (b"onnx", published before the schemas: no JSON file) or gone
    (StoreError)."""

    def __init__(self, files_gone: bool = False) -> None:
        self.files_gone = files_gone
        self.written: dict[str, bytes] = {}

    def read_uri(self, uri: str) -> bytes:
        if self.files_gone or uri.endswith(".json"):
            raise StoreError(f"{uri} does not exist")
        return b"onnx"

    def run_prefix(self, name: str, run_id: str) -> str:
        return f"file:///store/{name}/runs/{run_id}"

    def write_bytes(self, uri: str, data: bytes) -> str:
        self.written[uri] = data
        return uri


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    @property
    def text(self) -> str:
        return "\n".join(self.messages)


@pytest.fixture
def logged():
    """What mlspec logs at INFO and above (a handler on the `mlspec` logger: Airflow routes the root's)."""
    handler, logger = Records(), logging.getLogger("mlspec")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def spec():
    return load_spec(SPECS / "iris-forest.yaml")


@pytest.fixture
def production_v1(monkeypatch):
    """Production is version 1, whose ONNX model answers the test labels exactly (accuracy 1.0)."""
    registry = FakeRegistry(1, {"accuracy": 1.0})
    monkeypatch.setattr("mlspec.champion.open_registry", lambda backend, connection: registry)
    monkeypatch.setattr("mlspec.ml.onnx_export.onnx_predict", lambda data, x: {"label": Y_TEST})
    return registry


def test_an_identical_score_is_a_tie_and_the_champion_holds(spec, production_v1, logged):
    from mlspec.champion import DECISIONS, compare_with_champion, verdict_line

    assert spec.evaluation.champion.min_delta == 0
    verdict = compare_with_champion(spec, FakeStore(), DATASET, {"accuracy": 1.0})
    assert verdict["decision"] == "tie" and verdict["champion_version"] == 1
    assert verdict["challenger"] == verdict["champion"] == 1.0
    assert DECISIONS["tie"] is False  # deploy skips: a candidate, no redeploy
    assert "tie: the champion holds" in logged.text
    line = verdict_line("iris-forest", verdict)
    assert line.startswith("iris-forest: tie: the champion holds") and "production version 1 keeps serving" in line
    # A better challenger still wins; a worse one loses (not a tie).
    assert compare_with_champion(spec, FakeStore(), DATASET, {"accuracy": 1.5})["decision"] == "challenger_wins"
    assert compare_with_champion(spec, FakeStore(), DATASET, {"accuracy": 0.5})["decision"] == "champion_holds"


def test_a_tie_with_the_recorded_metrics_keeps_the_champion(spec, production_v1):
    from mlspec.champion import compare_with_champion

    verdict = compare_with_champion(spec, FakeStore(files_gone=True), DATASET, {"accuracy": 1.0})
    assert verdict["decision"] == "tie" and verdict["scored_on"] == "the metrics the registry recorded"


def test_the_deploy_hint_names_the_spec(spec, monkeypatch):
    """Without a score for production, the advice is a command one can paste: the spec path included."""
    from mlspec.champion import compare_with_champion
    from mlspec.errors import MlspecError

    monkeypatch.setattr("mlspec.champion.open_registry", lambda backend, connection: FakeRegistry(2, {}))
    with pytest.raises(MlspecError) as raised:
        compare_with_champion(spec, FakeStore(files_gone=True), DATASET, {"accuracy": 1.0})
    assert f"mlspec deploy {spec.source_file} --version N" in str(raised.value)


def test_the_run_summary_says_tie():
    from mlspec.summary import format_summary

    verdict = {"decision": "tie", "metric": "accuracy", "challenger": 0.9737, "champion": 0.9737, "champion_version": 1, "min_delta": 0.0}
    summary = {"model": "iris-forest", "outcome": "champion_holds", "version": 2, "stored_uri": "file:///s/iris-forest/2",
               "champion": verdict}
    printed = format_summary(summary, spec_file="specs/iris-forest.yaml")
    assert "tie: the champion holds" in printed and "nothing was deployed" in printed
    assert "mlspec deploy specs/iris-forest.yaml --version 2" in printed


def evaluate(spec, monkeypatch, labels=Y_TEST):
    """evaluate's result for a challenger that answers `labels` on DATASET's six test rows."""
    from mlspec.operators.evaluate import EvaluateOperator

    op = EvaluateOperator(task_id="evaluate", spec=spec.to_dict(), data={"data_uri": "d"}, model={"model_uri": "m"})
    op.__dict__["store"] = FakeStore()
    op.__dict__["adapter"] = SimpleNamespace(predict=lambda model, x, task: {"label": labels})
    monkeypatch.setattr(EvaluateOperator, "load_dataset", lambda self: DATASET)
    monkeypatch.setattr(EvaluateOperator, "load_model", lambda self: None)
    monkeypatch.setattr(EvaluateOperator, "write_plots", lambda self, *args: {})
    monkeypatch.setattr("mlspec.operators.evaluate.log_to_finished_run", lambda *args: None)
    return op.run({"run_id": "manual__1"})


def test_evaluate_labels_each_metrics_line_once(spec, production_v1, monkeypatch, logged):
    result = evaluate(spec, monkeypatch)
    assert result["champion"]["decision"] == "tie"
    scores = [m for m in logged.messages if "accuracy=1.0000" in m]
    assert len(scores) == 2, scores
    challenger = [m for m in scores if m.startswith("challenger")]
    production = [m for m in scores if m.startswith("production version 1")]
    assert len(challenger) == 1 and len(production) == 1, scores
    assert "6 samples" in challenger[0] and "6 samples" in production[0]
    assert not [m for m in logged.messages if re.match(r"metrics on \d+ samples", m)]


def test_evaluate_says_its_test_rows_are_the_holdout(production_v1, monkeypatch, logged):
    """With evaluation.holdout the test rows are the holdout's: the thresholds, the challenger's and production's
    scores say so, with the count."""
    from mlspec.operators.base import GateFailed
    from mlspec.spec import load_spec_text

    text = (SPECS / "iris-forest.yaml").read_text()
    spec = load_spec_text(text.replace("    f1: {min: 0.85}\n", "    f1: {min: 0.85}\n  holdout: {source: file://data/holdout.csv}\n"), "i.yaml")
    assert spec.evaluation.holdout is not None
    result = evaluate(spec, monkeypatch)
    assert result["champion"]["scored_on"] == "the holdout" and result["test_samples"] == 6
    assert "challenger (this run's model): test metrics on the holdout (6 samples): accuracy=1.0000" in logged.text
    assert "every threshold holds on the holdout (accuracy, f1)" in logged.text
    assert "production version 1 (the champion), re-scored on the holdout: test metrics on 6 samples" in logged.text
    with pytest.raises(GateFailed, match="the model did not pass its gates on the holdout: accuracy 0.3333 is below"):
        evaluate(spec, monkeypatch, labels=np.array([0, 0, 0, 1, 1, 1]))
    assert "challenger (this run's model): test metrics on this run's test split (6 samples)" not in logged.text
    evaluate(load_spec(SPECS / "iris-forest.yaml"), monkeypatch)
    assert "challenger (this run's model): test metrics on this run's test split (6 samples)" in logged.text


def test_every_gate_decision_has_words_on_the_models_page_and_in_the_model_card():
    """A decision the gate can reach (a tie, say) is never shown to a person as its raw code."""
    from mlspec import model_card
    from mlspec.champion import DECISIONS
    from mlspec.ui import pages

    assert set(DECISIONS) <= set(pages.DECISION_WORDS), set(DECISIONS) - set(pages.DECISION_WORDS)
    assert set(DECISIONS) <= set(model_card.DECISIONS), set(DECISIONS) - set(model_card.DECISIONS)
    assert "tie" in pages.champion_short({"decision": "tie"})

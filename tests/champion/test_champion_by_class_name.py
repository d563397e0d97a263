"""The champion gate compares classes by NAME (issue 14, the penguins story): version 1 of penguins was
trained on Adelie and Gentoo only; the challenger on all three species. Read by class number, v1's class 1
(Gentoo) became the new class 1 (Chinstrap) and the gate said "challenger 0.9767 vs production version 1
0.4419"; by name v1 scores 0.8023 on the same test rows. Real random forests, fitted and exported to ONNX
by mlspec's own sklearn adapters (tests/fixtures/penguins_story.py), published in a real file store, for each
kind of label an endpoint answers: the class name (a CSV's text label, BYTES), the class value (an integer
label, INT64) and the class index (npz or builtin data, label_datatype ""), which only production's own
output_schema.json names."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.fixtures.paths import SPECS
from tests.fixtures.penguins_story import (
    LABEL_KINDS,
    SPEC,
    SPECIES,
    V1_SPECIES,
    accuracy,
    loaded,
    seed_7_split,
    story,
)

import mlspec.champion
from mlspec.champion import ON_HOLDOUT, ON_TEST_SPLIT, compare_with_champion, evaluated_on, verdict_line
from mlspec.ml import tabular
from mlspec.ml.onnx_export import onnx_predict
from mlspec.registry.base import VersionRecord
from mlspec.storage import open_store, resolve_file_uri


class Registry:
    """Names the production version and its record, as a ModelRegistry does; nothing else is asked."""

    def __init__(self, record: VersionRecord) -> None:
        self.record = record

    def production_version(self, model_name: str) -> int:
        return self.record.version

    def version_record(self, model_name: str, version: int) -> VersionRecord:
        return self.record


@pytest.fixture
def publish(mlspec_home, monkeypatch):
    """publish(files) makes them version 1 of penguins, production, recorded with a test accuracy of 0.99
    (measured on its own test split and its own classes)."""

    def publish(files: dict[str, bytes]) -> VersionRecord:
        published = open_store("file://models").publish_version("penguins", files, run_id="manual__1")
        record = VersionRecord("penguins", 1, published.uri, dict(published.files), {"accuracy": 0.99}, "manual__1", "production")
        monkeypatch.setattr(mlspec.champion, "open_registry", lambda backend, connection: Registry(record))
        return record

    return publish


def test_the_penguins_story_production_is_scored_by_class_name(publish, caplog):
    production, challenger, files, challenger_accuracy = story("BYTES")
    assert production.class_names == V1_SPECIES and challenger.class_names == SPECIES and len(challenger.x_test) == 86
    assert challenger_accuracy > 0.95  # the story's run said 0.9767
    # What the gate said: v1's answers read as class numbers of this run.
    answered = onnx_predict(files["model.onnx"], tabular.feeds(production.columns, challenger.x_test, _fills(files)))
    by_number = np.array([V1_SPECIES.index(name) for name in answered["label"]])
    assert accuracy(challenger, {"label": by_number}) == pytest.approx(0.4419, abs=5e-5)
    publish(files)
    with caplog.at_level("INFO", logger="mlspec.champion"):
        verdict = compare_with_champion(SPEC, open_store("file://models"), challenger, {"accuracy": challenger_accuracy})
    assert verdict["champion"] == pytest.approx(0.8023, abs=5e-5)  # by name, on the challenger's test rows
    assert verdict["decision"] == "challenger_wins" and verdict["scored_on"] == "this run's test split"
    assert verdict["classes_added"] == ["Chinstrap"] and verdict["classes_removed"] == []
    assert "classes added: Chinstrap (this run: Adelie, Chinstrap, Gentoo)" in caplog.text
    assert (
        f"champion gate on accuracy: challenger {challenger_accuracy:.4f} vs production version 1 0.8023 (min_delta 0; "
        "both on this run's test split, production scored by class name): the challenger wins"
    ) in caplog.text


def _fills(files: dict[str, bytes]) -> dict:
    from mlspec.ml.model_io import schema_fills

    return schema_fills(json.loads(files["input_schema.json"]))


@pytest.mark.parametrize("kind", LABEL_KINDS)
def test_every_label_kind_is_compared_by_class_name(kind, publish):
    """The production version answers its class by name (BYTES), by value (INT64: 1, 3) or by its own index
    (0, 1 of Adelie, Gentoo), and is scored by the class that answer names in this run's classes."""
    production, challenger, files, challenger_accuracy = story(kind)
    names = {"BYTES": SPECIES, "INT64": ("1", "2", "3"), "": SPECIES}[kind]
    assert challenger.class_names == names and production.label_datatype == challenger.label_datatype == kind
    feeds = tabular.feeds(production.columns, challenger.x_test, _fills(files)) if kind else challenger.x_test
    answered = onnx_predict(files["model.onnx"], feeds)["label"]
    said = [production.class_names[int(label)] if kind == "" else str(label) for label in answered]
    by_name = round(float(np.mean(np.array(said) == np.array(names)[challenger.y_test])), 6)
    publish(files)
    verdict = compare_with_champion(SPEC, open_store("file://models"), challenger, {"accuracy": challenger_accuracy})
    assert verdict["champion"] == by_name and verdict["classes_added"] == [names[1]] and verdict["classes_removed"] == []
    assert verdict["decision"] == "challenger_wins"
    assert by_name == pytest.approx(0.8023, abs=5e-5)  # the story's number, for each kind
    if kind == "":  # its index read as this run's class number (v1's Gentoo, its 1, as Chinstrap): the story's 0.4419
        assert accuracy(challenger, {"label": np.asarray(answered)}) == pytest.approx(0.4419, abs=5e-5)


def test_a_class_this_run_no_longer_has_is_a_wrong_answer_for_production(publish, caplog):
    """Production learned all three species; this run's data has no Chinstrap left: each Chinstrap answer is
    wrong, and the class is named as removed."""
    production, challenger, files, challenger_accuracy = story("BYTES", SPECIES, V1_SPECIES)
    answered = onnx_predict(files["model.onnx"], tabular.feeds(production.columns, challenger.x_test, _fills(files)))["label"]
    assert "Chinstrap" in set(answered)
    right = np.array(answered) == np.array(V1_SPECIES)[challenger.y_test]
    publish(files)
    with caplog.at_level("INFO", logger="mlspec.champion"):
        verdict = compare_with_champion(SPEC, open_store("file://models"), challenger, {"accuracy": challenger_accuracy})
    assert verdict["champion"] == round(float(right.mean()), 6)
    assert verdict["classes_added"] == [] and verdict["classes_removed"] == ["Chinstrap"]
    assert "classes removed: Chinstrap (this run: Adelie, Gentoo)" in caplog.text


def test_production_probabilities_are_read_in_this_runs_class_order():
    """A metric that read probabilities would see production's columns as this run's classes, 0 for
    Chinstrap, which it never learned."""
    production, challenger, files, _ = story("")
    schemas = (json.loads(files[name]) for name in ("input_schema.json", "output_schema.json"))
    outputs = mlspec.champion.champion_outputs(files["model.onnx"], challenger, *schemas)
    own = onnx_predict(files["model.onnx"], challenger.x_test)["probabilities"]
    np.testing.assert_array_equal(outputs["probabilities"][:, [0, 2]], own)
    assert not outputs["probabilities"][:, 1].any()
    assert outputs["label"].tolist() == [SPECIES.index(V1_SPECIES[i]) for i in np.argmax(own, axis=1)]


def test_the_recorded_score_is_said_to_be_on_productions_own_classes(publish, caplog):
    """A production version whose model.onnx is gone is compared by the score the registry recorded; with
    the classes changed, the log says that score is on production's own classes."""
    _, challenger, files, challenger_accuracy = story("BYTES")
    record = publish(files)
    (resolve_file_uri(record.source_uri) / "model.onnx").unlink()
    with caplog.at_level("INFO", logger="mlspec.champion"):
        verdict = compare_with_champion(SPEC, open_store("file://models"), challenger, {"accuracy": challenger_accuracy})
    assert verdict["scored_on"] == "the metrics the registry recorded" and verdict["champion"] == 0.99
    assert verdict["classes_added"] == ["Chinstrap"] and verdict["decision"] == "champion_holds"
    assert (
        "(0.9900, measured on its own test split and on its own classes, not this run's: classes added: Chinstrap)"
    ) in caplog.text
    # What deploy logs, the run summary prints and the notification says as the champion holds:
    assert verdict_line("penguins", verdict) == (
        f"penguins: production version 1 keeps serving: its accuracy is 0.9900 against the new model's {challenger_accuracy:.4f} "
        "(min_delta 0); classes added: Chinstrap"
    )


def test_the_test_rows_are_the_holdout_when_the_spec_names_one():
    from mlspec.spec import load_spec_text

    assert evaluated_on(SPEC) == ON_TEST_SPLIT == "this run's test split"
    text = (SPECS / "penguins.yaml").read_text().replace("evaluation:\n", "evaluation:\n  holdout: {source: file://data/holdout.csv}\n")
    assert evaluated_on(load_spec_text(text, "penguins.yaml")) == ON_HOLDOUT == "the holdout"


def test_a_version_published_before_output_schema_is_read_as_having_this_runs_classes(publish, caplog):
    """Without its class names production's numbers can only be read as this run's: where its answers do not
    even fit this run's classes it is compared by its recorded score; where they do, the log says how it was read."""
    production, challenger, files, challenger_accuracy = story("")
    publish({"model.onnx": files["model.onnx"]})
    with caplog.at_level("INFO", logger="mlspec.champion"):
        verdict = compare_with_champion(SPEC, open_store("file://models"), challenger, {"accuracy": challenger_accuracy})
    assert verdict["scored_on"] == "the metrics the registry recorded" and "classes_added" not in verdict
    assert "it answers 2 class probabilities for this run's (it publishes no class names) 3 classes" in caplog.text
    same = seed_7_split(loaded("", V1_SPECIES))
    caplog.clear()
    with caplog.at_level("INFO", logger="mlspec.champion"):
        verdict = compare_with_champion(SPEC, open_store("file://models"), same, {"accuracy": 1.0})
    assert verdict["scored_on"] == "this run's test split" and "classes_added" not in verdict
    assert "production version 1 publishes no class names (published before output_schema.json)" in caplog.text


def test_a_lost_output_schema_stops_the_gate_instead_of_scoring_by_class_number(publish):
    """Production's manifest lists output_schema.json and its model is there, but the store cannot give the schema
    back: scoring its class numbers as this run's classes would be the penguins story again, so the gate fails (a
    StoreError: the task's retry covers a blip)."""
    from mlspec.errors import StoreError

    _, challenger, files, challenger_accuracy = story("")
    record = publish(files)
    (resolve_file_uri(record.source_uri) / "output_schema.json").unlink()
    with pytest.raises(StoreError, match="penguins version 1: output_schema.json cannot be read .*its manifest lists it"):
        compare_with_champion(SPEC, open_store("file://models"), challenger, {"accuracy": challenger_accuracy})

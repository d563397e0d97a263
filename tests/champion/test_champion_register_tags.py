"""The penguins story through the real registry: the gate reads production from the embedded MLflow registry,
scores it by class name, and register keeps the changed class set on the new version's champion.* tags,
which every VersionRecord reads back (the Models page and the model card show them from there)."""

from __future__ import annotations

import pytest
from tests.fixtures.penguins_story import SPEC, story

from mlspec.champion import compare_with_champion
from mlspec.operators.publish import RegisterModelOperator
from mlspec.registry import RegistrationRequest, open_registry
from mlspec.storage import open_store


@pytest.fixture(autouse=True)
def home(mlspec_home, monkeypatch):
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    return mlspec_home


def test_the_classes_production_lacked_are_tagged_on_the_challengers_version():
    _, challenger, files, challenger_accuracy = story("BYTES")
    store, registry = open_store(SPEC.storage.uri), open_registry(SPEC.registry.backend, SPEC.registry.connection)
    v1 = store.publish_version(SPEC.name, files, run_id="manual__1")
    registry.register(RegistrationRequest(
        model_name=SPEC.name, version=v1.version, source_uri=v1.uri, model_uri=f"{v1.uri}/model.onnx",
        metrics={"accuracy": 0.99}, data_source=SPEC.data.source, spec_hash="ab12", dag_id=SPEC.name,
        run_id="manual__1", onnx_opset=17, files=dict(v1.files),
    ))
    registry.set_production(SPEC.name, v1.version, "the version trained before the Chinstrap rows arrived")

    verdict = compare_with_champion(SPEC, store, challenger, {"accuracy": challenger_accuracy})
    assert verdict["decision"] == "challenger_wins" and verdict["champion"] == pytest.approx(0.8023, abs=5e-5)

    v2 = store.publish_version(SPEC.name, files, run_id="manual__2")
    stored = {"version": v2.version, "uri": v2.uri, "files": dict(v2.files)}
    register = RegisterModelOperator(
        task_id="register", spec=SPEC.to_dict(), stored=stored,
        evaluation={"metrics": {"accuracy": challenger_accuracy}, "champion": verdict},
    )
    register.run({"run_id": "manual__2", "params": {}})
    champion = open_registry(SPEC.registry.backend, SPEC.registry.connection).version_record(SPEC.name, 2).champion
    assert champion["classes_added"] == "Chinstrap" and champion["classes_removed"] == ""
    assert champion["scored_on"] == "this run's test split" and champion["decision"] == "challenger_wins"
    assert float(champion["champion"]) == pytest.approx(0.8023, abs=5e-5)

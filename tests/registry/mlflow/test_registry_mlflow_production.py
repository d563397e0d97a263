"""MLflow as the record of production: alias `production`, a state tag per version, and the history."""

from __future__ import annotations

import pytest

from mlspec.errors import RegistryError
from mlspec.registry.mlflow_registry import MlflowRegistry


def test_production_alias_history_and_states(publisher, unique_name) -> None:
    name = unique_name("prod")
    registry = MlflowRegistry(None)
    for run in ("run-a", "run-b"):
        registry.register(publisher.request(publisher.publish(name, run)))
    assert registry.production_version(name) is None and registry.latest_version(name) == 2
    assert registry.version_record(name, 1).state == "candidate"

    registry.set_production(name, 1, reason="first")
    registry.set_production(name, 2, reason="better")
    assert registry.production_version(name) == 2 and registry.production_history(name) == [1, 2]
    assert registry.version_record(name, 1).state == "archived"
    record = registry.version_record(name, 2)
    assert record.state == "production" and record.files["model.onnx"] and record.source_uri.endswith(f"{name}/2")

    registry.set_state(name, 1, "candidate", {"champion.accuracy": "0.9"})
    assert registry.client.get_model_version(name, "1").tags["champion.accuracy"] == "0.9"

    registry.set_production(name, None, reason="undeploy")
    assert registry.production_version(name) is None and registry.version_record(name, 2).state == "undeployed"
    with pytest.raises(RegistryError, match="version 7 is not registered"):
        registry.set_production(name, 7, reason="no such version")

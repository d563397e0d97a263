"""The Kubeflow Model Registry as the record of production: which version, in what order, each version's state."""

from __future__ import annotations

import pytest
from kubeflow_testkit import TOKEN

from mlspec.errors import RegistryError
from mlspec.registry.kubeflow import KubeflowRegistry, read_value


def test_production_moves_with_history_and_states(fake, make_request) -> None:
    registry = KubeflowRegistry.from_url(fake.url, token=TOKEN)
    for version in (1, 2, 3):
        registry.register(make_request(version=version, source_uri=f"s3://b/digits/{version}"))
    assert registry.production_version("digits") is None and registry.latest_version("digits") == 3

    registry.set_production("digits", 1, reason="first")
    registry.set_production("digits", 2, reason="a better one")
    assert registry.production_version("digits") == 2
    assert registry.production_history("digits") == [1, 2]
    assert registry.version_record("digits", 1).state == "archived"
    record = registry.version_record("digits", 2)
    assert record.state == "production" and record.source_uri == "s3://b/digits/2"
    assert record.files == {"model.onnx": "ab" * 32} and record.metrics["accuracy"] == pytest.approx(0.975)
    assert registry.version_record("digits", 3).state == "candidate"

    registry.set_state("digits", 3, "candidate", {"champion.accuracy": "0.98"})
    [v3] = [v for v in fake.entities("ModelVersion") if v["name"] == "3"]
    assert read_value(v3["customProperties"]["champion_accuracy"]) == "0.98"

    registry.set_production("digits", None, reason="undeploy")
    assert registry.production_version("digits") is None
    assert registry.version_record("digits", 2).state == "undeployed"
    with pytest.raises(RegistryError, match="version 9 is not registered"):
        registry.set_production("digits", 9, reason="no such version")

"""The fake Model Registry against the vendored OpenAPI contract: it must catch what a real server rejects."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fake_model_registry import FakeModelRegistry, load_contract

V1 = "/api/model_registry/v1"


@pytest.mark.parametrize("version", ["v1", "v1alpha3"])
def test_every_route_of_the_fake_is_an_operation_of_the_contract(contracts_dir: Path, version: str) -> None:
    contract = load_contract(str(contracts_dir), version)
    fake = FakeModelRegistry(contracts_dir, versions=(version,))
    assert fake.routes_not_in_contract(contract) == []
    for route in fake.routes:
        op = contract.operation(route.method, route.template)
        assert op is not None and op.template.startswith(f"/api/model_registry/{version}/")
        assert op.template in contract.raw["paths"]


def test_contract_lookup_rejects_what_the_contract_lacks(contracts_dir: Path) -> None:
    contract = load_contract(str(contracts_dir), "v1")
    # There is no DELETE anywhere in the Model Registry API, and no PUT.
    assert contract.operation("DELETE", "/registered_models/{id}") is None
    assert contract.operation("PUT", "/model_versions/{id}") is None
    assert contract.operation("GET", "/model_versions/{id}/artifacts") is not None


def test_valid_requests_pass_and_the_fake_answers_with_string_ids(fake_registry) -> None:
    fake = fake_registry(token=None)
    with httpx.Client(base_url=fake.url + V1) as http:
        created = http.post("/registered_models", json={"name": "iris", "owner": "a"})
        assert created.status_code == 201, created.text
        assert isinstance(created.json()["id"], str)
        duplicate = http.post("/registered_models", json={"name": "iris"})
        assert duplicate.status_code == 409
        assert http.get("/registered_model", params={"name": "nope"}).status_code == 404
        assert http.delete(f"/registered_models/{created.json()['id']}").status_code == 405
    assert fake.violations == []


def test_request_violations_are_caught(contracts_dir: Path) -> None:
    with FakeModelRegistry(contracts_dir) as fake, httpx.Client(base_url=fake.url + V1) as http:
        model_id = http.post("/registered_models", json={"name": "iris"}).json()["id"]
        # int_value must be a string in the contract
        bad_int = {"metadataType": "MetadataIntValue", "int_value": 3}
        answer = http.post(
            "/model_versions",
            json={"name": "1", "registeredModelId": model_id, "customProperties": {"v": bad_int}},
        )
        assert answer.status_code == 400
        # ModelVersionCreate has no `owner` property
        with_owner = {"name": "1", "registeredModelId": model_id, "owner": "x"}
        assert http.post("/model_versions", json=with_owner).status_code == 400
        # name is required
        assert http.post("/registered_models", json={"description": "no name"}).status_code == 400
        # an undeclared query parameter
        assert http.get("/registered_model", params={"title": "iris"}).status_code == 400
        # an artifact must say which type it is
        version = http.post("/model_versions", json={"name": "1", "registeredModelId": model_id}).json()
        untyped = http.post(f"/model_versions/{version['id']}/artifacts", json={"uri": "s3://b/m"})
        assert untyped.status_code == 400
    text = "\n".join(fake.violations)
    assert "customProperties/v" in text
    assert "'owner' is not defined by the contract" in text
    assert "'name' is a required property" in text
    assert "query parameter 'title'" in text
    assert "'artifactType' is a required property" in text
    assert len(fake.violations) >= 5


def test_response_violations_and_undeclared_statuses_are_caught(contracts_dir: Path) -> None:
    with FakeModelRegistry(contracts_dir) as fake, httpx.Client(base_url=fake.url + V1) as http:
        model_id = http.post("/registered_models", json={"name": "iris"}).json()["id"]
        assert fake.violations == []
        # Corrupt what the fake would answer: a double value that is not a number.
        fake.store["RegisteredModel"][model_id]["customProperties"] = {
            "acc": {"metadataType": "MetadataDoubleValue", "double_value": "high"}
        }
        http.get(f"/registered_models/{model_id}")
        assert any(v.startswith("response: GET") and "double_value" in v for v in fake.violations)
        fake.violations.clear()
        fake.fail_next(418, "teapot", method="GET", path="/registered_models/{id}")
        assert http.get(f"/registered_models/{model_id}").status_code == 418
    assert any("418" in v and "not declared" in v for v in fake.violations)


def test_only_the_chosen_api_version_answers(fake_registry) -> None:
    fake = fake_registry(versions=("v1alpha3",), token=None)
    with httpx.Client(base_url=fake.url) as http:
        assert http.get(f"{V1}/registered_models").status_code == 404
        assert http.get("/api/model_registry/v1alpha3/registered_models").status_code == 200

"""An operation on a table model (mlspec deploy --version N): with no test split at hand, the release
smoke-tests the endpoint with the version's published example rows, one input per column, and compares
species names with the offline model fed what the server makes of the same rows; a release whose version
takes other inputs than the one serving says so."""

from __future__ import annotations

import json

from tests.fixtures.server_testkit import classifier_onnx, classifier_signature
from tests.fixtures.table_model import published_schemas, trained
from tests.operators.operations_testkit import Published, served, spec_for, unique


def publish(spec, files: dict, version: int) -> None:
    """Publish `files` as the spec's next version in its store and register it as `version`, with the
    schemas among them."""
    from mlspec.registry.base import RegistrationRequest
    from mlspec.storage import open_store

    stored = open_store(spec.storage.uri, spec.storage.connection).publish_version(
        spec.name, {k: v if isinstance(v, bytes) else json.dumps(v).encode() for k, v in files.items()},
        run_id=f"run-{version}",
    )
    Published(spec, {version: stored.uri}).registry().register(RegistrationRequest(
        model_name=spec.name, version=version, source_uri=stored.uri, model_uri=f"{stored.uri}/model.onnx",
        metrics={"accuracy": 0.9}, data_source="file://data/penguins.csv", spec_hash="ab12", dag_id=spec.name,
        run_id=f"run-{version}", onnx_opset=17, files=dict(stored.files),
        input_schema=files.get("input_schema.json", {}), output_schema=files.get("output_schema.json", {}),
    ))


def test_an_operation_smoke_tests_a_table_model_with_its_published_rows(ops_home, ops_server, request):
    from mlspec.ml.onnx_export import onnx_signature
    from mlspec.operations import deploy_version

    spec = spec_for(unique(request))
    _, _, onnx_bytes = trained()
    inputs, outputs = published_schemas()
    publish(spec, {"model.onnx": onnx_bytes, "signature.json": onnx_signature(onnx_bytes), "input_schema.json": inputs,
                   "output_schema.json": outputs}, 1)
    result = deploy_version(spec, 1)
    assert served(spec) == 1
    smoke = result["smoke_test"]
    assert smoke["passed"] and smoke["agreement"] == 1.0 and smoke["samples"] == len(inputs["example"])


def test_a_release_says_when_the_endpoints_inputs_change(ops_home, ops_server, request, caplog):
    """Version 1 takes one `input` tensor, version 2 one input per column: deploying 2 says so (logged and in
    the result `mlspec deploy` prints), and the release goes on: information, not a gate."""
    from mlspec.cli import describe_operation
    from mlspec.ml.onnx_export import onnx_signature
    from mlspec.operations import deploy_version, rollback

    spec = spec_for(unique(request))
    single = {"name": "input", "datatype": "FP32", "shape": [-1, 64], "features": []}
    publish(spec, {"model.onnx": classifier_onnx(1), "signature.json": classifier_signature(),
                   "input_schema.json": single}, 1)
    _, _, onnx_bytes = trained()
    inputs, outputs = published_schemas()
    publish(spec, {"model.onnx": onnx_bytes, "signature.json": onnx_signature(onnx_bytes), "input_schema.json": inputs,
                   "output_schema.json": outputs}, 2)
    assert "endpoint_change" not in deploy_version(spec, 1)

    with caplog.at_level("WARNING", logger="mlspec.release"):
        result = deploy_version(spec, 2)
    change = ("the endpoint's inputs change from version 1 to 2: + bill (FP32); + year (INT64); + tagged (BOOL); "
              "+ island (BYTES); + sex (BYTES); + mass (FP32); - input: clients must send the new inputs")
    assert served(spec) == 2 and result["endpoint_change"] == change
    assert change in caplog.text
    assert describe_operation(result).endswith(f"\n  NOTE: {change}")
    back = rollback(spec)
    assert served(spec) == 1 and back["endpoint_change"].startswith("the endpoint's inputs change from version 2 to 1: + input (FP32 [-1, 64]); - bill; ")


def test_a_release_says_when_the_endpoint_answers_other_classes(ops_home, ops_server, request, caplog):
    """Issue 14's story: version 1 knew Adelie and Gentoo, version 2 also Chinstrap. Clients of the endpoint must
    hear that a class was added (and, for an index label, which label numbers changed meaning) when 2 is
    deployed, and that it goes away again on the rollback."""
    from mlspec.cli import describe_operation
    from mlspec.ml.onnx_export import onnx_signature
    from mlspec.operations import deploy_version, rollback

    spec = spec_for(unique(request))
    _, _, onnx_bytes = trained()
    inputs, outputs = published_schemas()
    files = {"model.onnx": onnx_bytes, "signature.json": onnx_signature(onnx_bytes), "input_schema.json": inputs}
    publish(spec, {**files, "output_schema.json": {**outputs, "class_names": ["Adelie", "Gentoo"]}}, 1)
    publish(spec, {**files, "output_schema.json": outputs}, 2)
    deploy_version(spec, 1)
    with caplog.at_level("WARNING", logger="mlspec.release"):
        result = deploy_version(spec, 2)
    change = "the endpoint's classes change from version 1 to 2: classes added: Chinstrap"
    assert served(spec) == 2 and result["endpoint_change"] == change and change in caplog.text
    assert describe_operation(result).endswith(f"\n  NOTE: {change}")
    assert rollback(spec)["endpoint_change"] == "the endpoint's classes change from version 2 to 1: classes removed: Chinstrap"

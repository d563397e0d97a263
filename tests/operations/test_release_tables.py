"""An operation on a table model (mlspec deploy --version N): with no test split at hand, the release
smoke-tests the endpoint with the version's published example rows, one input per column, and compares
species names with the offline model fed what the server makes of the same rows."""

from __future__ import annotations

import json

from tests.fixtures.table_model import published_schemas, trained
from tests.operators.operations_testkit import Published, served, spec_for, unique


def test_an_operation_smoke_tests_a_table_model_with_its_published_rows(ops_home, ops_server, request):
    from mlspec.ml.onnx_export import onnx_signature
    from mlspec.operations import deploy_version
    from mlspec.registry.base import RegistrationRequest
    from mlspec.storage import open_store

    name = unique(request)
    spec = spec_for(name)
    _, _, onnx_bytes = trained()
    inputs, outputs = published_schemas()
    files = {"model.onnx": onnx_bytes, "signature.json": onnx_signature(onnx_bytes), "input_schema.json": inputs,
             "output_schema.json": outputs}
    version = open_store(spec.storage.uri, spec.storage.connection).publish_version(
        name, {k: v if isinstance(v, bytes) else json.dumps(v).encode() for k, v in files.items()}, run_id="run-1"
    )
    Published(spec, {1: version.uri}).registry().register(RegistrationRequest(
        model_name=name, version=1, source_uri=version.uri, model_uri=f"{version.uri}/model.onnx",
        metrics={"accuracy": 0.9}, data_source="file://data/penguins.csv", spec_hash="ab12", dag_id=name,
        run_id="run-1", onnx_opset=17, files=dict(version.files), input_schema=inputs, output_schema=outputs,
    ))
    result = deploy_version(spec, 1)
    assert served(spec) == 1
    smoke = result["smoke_test"]
    assert smoke["passed"] and smoke["agreement"] == 1.0 and smoke["samples"] == len(inputs["example"])

"""The smoke test of a table model against a real mlspec model server: real test rows sent as one input
per column (BYTES categories, null in a gap, a category never seen), species names compared with the
offline ONNX answers on what the server makes of the same rows."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from tests.fixtures.table_model import COLUMNS, published_schemas, table_dataset, trained

from mlspec.ml import model_io
from mlspec.ml.onnx_export import onnx_predict, onnx_signature
from mlspec.serving.local import LocalServing
from mlspec.serving.smoke_test import SmokeTestFailed, run_smoke_test
from mlspec.storage import open_store


@pytest.fixture
def deployed(server, store_root):
    _, _, onnx_bytes = trained()
    inputs, outputs = published_schemas()
    signature = onnx_signature(onnx_bytes)
    files = {"model.onnx": onnx_bytes, "signature.json": signature, "input_schema.json": inputs, "output_schema.json": outputs}
    published = open_store(store_root.as_uri()).publish_version(
        "penguins", {k: v if isinstance(v, bytes) else json.dumps(v).encode() for k, v in files.items()}, run_id="run-0"
    )
    LocalServing(server.url).deploy("penguins", 1, published.uri)
    test = table_dataset().x_test
    rows = model_io.json_rows(pd.concat([test[:6], test[test["bill"].isna()][:1]]), COLUMNS)
    rows[0]["island"] = "Atlantis"  # never seen in training: answered, not an error
    assert any(None in row.values() for row in rows)
    expected = onnx_predict(onnx_bytes, model_io.rows_inputs(rows, inputs))
    return server, rows, expected, signature


def test_a_table_model_answers_raw_rows_with_species_names(deployed):
    server, rows, expected, signature = deployed
    assert {str(v) for v in expected["label"]} <= {"Adelie", "Chinstrap", "Gentoo"}
    report = run_smoke_test(
        endpoint_url=server.url, model_name="penguins", version=1, x=rows, expected=expected, signature=signature,
        min_agreement=1.0, max_latency_ms=60_000,
    )
    assert report["passed"] is True and report["agreement"] == 1.0 and report["answered"] == len(rows)


def test_wrong_species_fail_the_smoke_test(deployed):
    server, rows, expected, signature = deployed
    wrong = {**expected, "label": expected["label"].copy()}
    wrong["label"][:] = "Emperor"
    with pytest.raises(SmokeTestFailed, match="agreement 0 is below min_agreement 1"):
        run_smoke_test(endpoint_url=server.url, model_name="penguins", version=1, x=rows, expected=wrong,
                       signature=signature, min_agreement=1.0, max_latency_ms=60_000)

"""What the server says about a table model's request, checked without a running server: the published
columns are read by mlspec.ml.model_io (one reader for the server and every step after training), and a
request's column inputs of different row counts, a name the model does not read, a null in a drop_row
column and a NaN in the JSON body each get a 400 that says what to send instead."""

from __future__ import annotations

import numpy as np
import pytest

from mlspec.ml import model_io
from mlspec.server.columns import table_inputs
from mlspec.server.errors import BadRequest
from mlspec.server.tensors import TensorSpec, conform_inputs, loads, parse_infer_request

SCHEMA = {
    "columns": [
        {"name": "island", "type": "category", "datatype": "BYTES", "missing": "error", "fill": None},
        {"name": "bill_length_mm", "type": "number", "datatype": "FP32", "missing": "drop_row", "fill": None},
        {"name": "year", "type": "integer", "datatype": "INT64", "missing": "most_frequent", "fill": 2008},
        {"name": "sex", "type": "category", "datatype": "BYTES", "missing": "constant", "fill": "unknown"},
    ]
}
DATATYPES = {"island": "BYTES", "bill_length_mm": "FP32", "year": "INT64", "sex": "BYTES"}
SPECS = [TensorSpec(name, datatype, [-1, 1]) for name, datatype in DATATYPES.items()]


def test_the_server_reads_the_published_columns_as_every_other_step_does():
    table = table_inputs(SCHEMA, DATATYPES)
    published = model_io.schema_columns(SCHEMA)
    assert list(table.columns) == [c.name for c in published]
    assert {name: c.fills_gaps for name, c in table.columns.items()} == {c.name: c.filled for c in published}
    assert table.columns["year"].gap_value == model_io.schema_fills(SCHEMA)["year"] == 2008
    assert table.columns["sex"].gap_value == "" and table.columns["island"].gap_value is None
    with pytest.raises(BadRequest, match="input_schema.json does not describe its columns"):
        table_inputs({"columns": [{"name": "x", "type": "text"}]}, {"x": "BYTES"})


def _request(**columns) -> dict[str, np.ndarray]:
    rows = {"island": ["Biscoe", "Dream", "Dream"], "bill_length_mm": [39.1, 40.0, 41.2], "year": [2007, 2008, 2009],
            "sex": ["male", "female", "male"]}
    rows.update(columns)
    dtypes = {"BYTES": object, "FP32": np.float32, "INT64": np.int64}
    return {name: np.array(values, dtype=dtypes[DATATYPES[name]]).reshape(-1, 1) for name, values in rows.items()}


def test_columns_of_different_row_counts_are_named_before_onnxruntime_runs():
    table = table_inputs(SCHEMA, DATATYPES)
    assert set(conform_inputs(_request(), SPECS, "penguins", table)) == set(DATATYPES)
    with pytest.raises(BadRequest) as refused:
        conform_inputs(_request(island=["Biscoe"]), SPECS, "penguins", table)
    assert str(refused.value) == (
        "the column inputs of model penguins hold different numbers of rows (island: 1 row; bill_length_mm, "
        "year, sex: 3 rows); send the same rows in every column"
    )


def test_an_unknown_input_lists_the_columns_in_order_and_says_the_model_does_not_read_it():
    table = table_inputs(SCHEMA, DATATYPES)
    inputs = {**_request(), "year_built": np.array([[1]], dtype=np.int64)}
    with pytest.raises(BadRequest) as refused:
        conform_inputs(inputs, SPECS, "penguins", table)
    assert str(refused.value) == (
        "model penguins has no input named 'year_built': it is not a column the model reads (left out of "
        "data.features, or in data.exclude); send only its columns, in this order: island, bill_length_mm, year, sex"
    )
    # any other model: its inputs in its own order
    specs = [TensorSpec("b", "FP32", [-1, 1]), TensorSpec("a", "FP32", [-1, 1])]
    with pytest.raises(BadRequest, match=r"has no input named 'c'; its inputs are \['b', 'a'\]"):
        conform_inputs({"c": np.zeros((1, 1), np.float32), "a": np.zeros((1, 1), np.float32)}, specs, "m")


def _infer(column: str, value) -> bytes:
    import json

    rows = {"island": ["Biscoe"], "bill_length_mm": [39.1], "year": [2007], "sex": ["male"], column: [value]}
    inputs = [{"name": n, "shape": [1, 1], "datatype": DATATYPES[n], "data": v} for n, v in rows.items()]
    return json.dumps({"inputs": inputs}).encode()


def test_a_null_in_a_drop_row_column_says_drop_row_is_for_training_only():
    table = table_inputs(SCHEMA, DATATYPES)
    with pytest.raises(BadRequest) as refused:
        parse_infer_request(_infer("bill_length_mm", None), None, table=table)
    assert str(refused.value) == (
        "column bill_length_mm has a null in row 0; its spec's missing: drop_row leaves such rows out of "
        "training only, so the endpoint needs a value"
    )
    with pytest.raises(BadRequest, match="column island has a null in row 0; its spec has no missing: strategy"):
        parse_infer_request(_infer("island", None), None, table=table)
    assert parse_infer_request(_infer("year", None), None, table=table).inputs["year"].tolist() == [[2008]]


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "nan"])
def test_a_nan_in_the_json_body_says_to_send_null(token):
    with pytest.raises(BadRequest, match="JSON has no NaN or Infinity; send null for a missing value"):
        loads('{"inputs": [{"name": "x", "data": [1.5, ' + token + "]}]}")
    with pytest.raises(BadRequest) as refused:
        loads('{"inputs": [{"name": "x", "data": [1.5, Nope]}]}')
    assert "send null" not in str(refused.value)


def test_a_single_input_tensor_to_a_model_with_text_columns_is_told_to_send_one_input_per_column():
    table = table_inputs(SCHEMA, DATATYPES)
    with pytest.raises(BadRequest) as refused:
        conform_inputs({"input": np.zeros((1, 4), np.float32)}, SPECS, "penguins", table)
    assert str(refused.value) == (
        "model penguins has no input named 'input': it takes one input per column, in this order: island, "
        "bill_length_mm, year, sex"
    )


def test_a_string_of_only_spaces_is_a_categorys_missing_value_as_in_training():
    table = table_inputs(SCHEMA, DATATYPES)
    assert parse_infer_request(_infer("sex", "  "), None, table=table).inputs["sex"].tolist() == [[""]]
    with pytest.raises(BadRequest, match="column island has a string of only spaces .a missing value. in row 0"):
        parse_infer_request(_infer("island", " "), None, table=table)

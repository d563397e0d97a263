"""A trained table model after training: its published input_schema.json (columns, fills, real example
rows), the feeds built from dataset rows and from JSON rows alike, export's parity rows (gaps, a category
never seen), and labels answered as class values mapped back to indices by name."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.fixtures.table_model import COLUMNS, SPECIES, table_dataset, trained

from mlspec.ml import model_io, tabular
from mlspec.ml.io_schema import EXAMPLE_ROWS, input_schema, output_schema
from mlspec.ml.onnx_export import check_parity, onnx_predict, onnx_signature
from mlspec.operators.export import UNSEEN_CATEGORY, with_edge_rows


def test_a_table_models_input_schema_lists_its_columns_and_real_example_rows():
    dataset = table_dataset()
    _, model, _ = trained()
    schema = input_schema(dataset, tabular.fill_values(model), tabular.categories(model))
    json.dumps(schema, allow_nan=False)  # plain JSON
    by_name = {c["name"]: c for c in schema["columns"]}
    assert list(by_name) == [c.name for c in COLUMNS]
    bill, year, tagged, island, sex, mass = schema["columns"]
    assert (bill["type"], bill["datatype"], bill["shape"], bill["missing"]) == ("number", "FP32", [-1, 1], "median")
    assert bill["fill"] == pytest.approx(float(np.nanmedian(dataset.x_train["bill"])))
    assert bill["missing_count"] == int(dataset.x_train["bill"].isna().sum()) > 0
    assert bill["min"] == pytest.approx(np.nanmin(dataset.x_train["bill"]), rel=1e-5)
    assert (year["datatype"], tagged["datatype"]) == ("INT64", "BOOL")
    assert isinstance(year["fill"], int) and isinstance(tagged["fill"], bool)
    assert (island["datatype"], island["encode"], island["fill"], island["missing"]) == ("BYTES", "one_hot", None, "error")
    assert island["categories"] == ["Biscoe", "Dream", "Torgersen"] and "min" not in island
    assert (sex["fill"], sex["missing_count"]) == ("unknown", int((dataset.x_train["sex"] == "").sum()))
    assert mass["fill"] is None  # missing: error, a null is refused
    # Real test rows, raw values: the first is the first test row; none of the first rows has a gap, so
    # the first test row with one takes the last place.
    example = schema["example"]
    assert len(example) == EXAMPLE_ROWS
    first = dataset.x_test.iloc[0]
    assert example[0] == {
        "bill": float(first["bill"]), "year": int(first["year"]), "tagged": bool(first["tagged"]),
        "island": first["island"], "sex": first["sex"], "mass": float(first["mass"]),
    }
    assert None not in example[1].values() and None in example[-1].values()


def test_the_example_rows_feed_the_model_as_the_server_would_and_answer_species_names():
    dataset = table_dataset()
    adapter, model, onnx_bytes = trained()
    schema = input_schema(dataset, tabular.fill_values(model), tabular.categories(model))
    rows = schema["example"]
    assert [i["name"] for i in onnx_signature(onnx_bytes)["inputs"]] == [c.name for c in COLUMNS]
    from_json = model_io.rows_inputs(rows, schema)
    frame = model_io.frame_of(rows, COLUMNS)
    assert model_io.json_rows(frame, COLUMNS) == rows  # the two forms round-trip
    answers = onnx_predict(onnx_bytes, from_json)
    want = tabular.served_outputs(model, adapter.predict(model, frame, "classification"))
    assert set(answers["label"].tolist()) <= set(SPECIES)
    check_parity(want, answers, atol=1e-4)


def test_parity_rows_add_a_gap_in_each_filled_column_and_an_unseen_category():
    dataset = table_dataset()
    adapter, model, onnx_bytes = trained()
    samples = with_edge_rows(dataset.x_test[:4], COLUMNS)
    edges = samples.iloc[4:]
    filled = [c for c in COLUMNS if c.filled]
    categories = [c for c in COLUMNS if c.type == "category"]
    assert len(edges) == len(filled) + len(categories) + 1
    for column in filled:
        gaps = edges[column.name] == "" if column.type == "category" else edges[column.name].isna()
        assert gaps.sum() == 2  # its own row and the row with every gap
    for column in categories:
        assert (edges[column.name] == UNSEEN_CATEGORY).sum() == 1
    assert dataset.x_test[:4]["island"].tolist() == samples["island"][:4].tolist()  # the test rows are kept
    want = tabular.served_outputs(model, adapter.predict(model, samples, "classification"))
    got = onnx_predict(onnx_bytes, model_io.model_inputs(samples, COLUMNS, tabular.fill_values(model)))
    check_parity(want, got, atol=1e-4)


def test_labels_map_back_to_this_runs_class_indices_by_name():
    names = ("Chinstrap", "Adelie", "Gentoo")  # another order than the model's
    answered = np.array(["Adelie", "Gentoo", "Emperor"], dtype=object)
    assert model_io.class_indices(answered, names, "BYTES").tolist() == [1, 2, -1]  # unknown: a wrong answer
    assert model_io.class_indices(np.array([7, 3]), ("3", "7"), "INT64").tolist() == [1, 0]
    assert model_io.class_indices(np.array([2, 0]), names, "").tolist() == [2, 0]
    assert model_io.label_name("Gentoo", names, "BYTES") == "Gentoo"
    assert model_io.label_name(np.int64(0), names, "") == "Chinstrap"


def test_an_index_label_is_read_by_the_name_it_has_among_the_models_own_classes():
    names = ("Adelie", "Chinstrap", "Gentoo")  # this run's classes
    own = ("Adelie", "Gentoo", "Emperor")  # the model's (its output_schema.json class_names)
    answered = np.array([1, 0, 2, 5, -1])  # Gentoo, Adelie, Emperor (this run has none), out of range twice
    assert model_io.class_indices(answered, names, "", own).tolist() == [2, 0, -1, -1, -1]
    assert model_io.class_indices(np.array([1, 0]), names, "", names).tolist() == [1, 0]
    probabilities = np.array([[0.2, 0.7, 0.1], [0.6, 0.3, 0.1]], dtype=np.float32)
    assert model_io.class_columns(probabilities, own, names).tolist() == [
        pytest.approx([0.2, 0.0, 0.7]), pytest.approx([0.6, 0.0, 0.3])  # Emperor's column is left out
    ]


def test_output_schema_names_the_label_datatype_only_where_label_is_the_class_value():
    signature = {"outputs": [{"name": "label", "datatype": "BYTES", "shape": [-1]}, {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}]}
    out = output_schema("classification", SPECIES, signature, "BYTES")
    assert out["label_datatype"] == "BYTES" and out["outputs"][0]["datatype"] == "BYTES"
    assert "label_datatype" not in output_schema("classification", SPECIES, signature)


def test_json_rows_read_back_as_training_holds_them():
    from mlspec.ml.columns import Column

    columns = (Column("year", "category"), Column("bill", "number"))
    rows = [{"year": 2007.0, "bill": 39.5}, {"year": 2007, "bill": None}, {"year": "  ", "bill": 40}, {"year": None}]
    frame = model_io.frame_of(rows, columns)
    assert frame["year"].tolist() == ["2007", "2007", "", ""]  # 2007.0 is "2007", as training reads it
    assert frame["bill"].isna().tolist() == [False, True, False, True]
    assert model_io.json_rows(frame, columns)[0] == {"year": "2007", "bill": 39.5}

"""A table model's example request everywhere a person reads one: the model card's "Try it", the run
summary's curl and the Models pages send the published example rows (raw values, null in a gap) as one
input per column, never feature means; the class names are on the card and the page."""

from __future__ import annotations

import json
import shlex

import pytest
from tests.fixtures.paths import SPECS
from tests.ui.app.ui_app_testkit import Page

from mlspec.model_card import (
    MAX_SHOWN_CATEGORIES,
    curl_example,
    example_request,
    example_words,
    render_model_card,
)
from mlspec.spec import load_spec
from mlspec.summary import format_summary
from mlspec.ui import data, pages

TABLE_SCHEMA = {
    "columns": [
        {"name": "island", "type": "category", "datatype": "BYTES", "shape": [-1, 1], "missing": "error", "fill": None,
         "encode": "one_hot", "categories": ["Biscoe", "Dream", "Torgersen"], "missing_count": 0},
        {"name": "bill_length_mm", "type": "number", "datatype": "FP32", "shape": [-1, 1], "missing": "median", "fill": 44.45,
         "min": 32.1, "max": 59.6, "mean": 43.9, "std": 5.4, "missing_count": 2},
        {"name": "year", "type": "integer", "datatype": "INT64", "shape": [-1, 1], "missing": "error", "fill": None,
         "min": 2007, "max": 2009, "mean": 2008.0, "std": 0.8, "missing_count": 0},
        # The encoder knows the constant a gap becomes ('unknown'), which the data need not hold.
        {"name": "sex", "type": "category", "datatype": "BYTES", "shape": [-1, 1], "missing": "constant",
         "fill": "unknown", "encode": "one_hot", "categories": ["female", "male", "unknown"], "missing_count": 3},
    ],
    "example": [
        {"island": "Biscoe", "bill_length_mm": 45.2, "year": 2008, "sex": "male"},
        {"island": "Dream", "bill_length_mm": None, "year": 2009, "sex": None},
    ],
}
TABLE_OUTPUTS = {
    "task": "classification",
    "outputs": [{"name": "label", "datatype": "BYTES", "shape": [-1]}, {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}],
    "class_names": ["Adelie", "Chinstrap", "Gentoo"],
    "label_datatype": "BYTES",
}
PER_COLUMN_BODY = {"inputs": [
    {"name": "island", "shape": [2, 1], "datatype": "BYTES", "data": ["Biscoe", "Dream"]},
    {"name": "bill_length_mm", "shape": [2, 1], "datatype": "FP32", "data": [45.2, None]},
    {"name": "year", "shape": [2, 1], "datatype": "INT64", "data": [2008, 2009]},
    {"name": "sex", "shape": [2, 1], "datatype": "BYTES", "data": ["male", None]},
]}


@pytest.fixture(autouse=True)
def home(mlspec_home, monkeypatch):
    monkeypatch.setenv("MLSPEC_SERVER_URL", "http://127.0.0.1:8555")
    return mlspec_home


def _body(command: str) -> dict:
    words = shlex.split(command)
    return json.loads(words[words.index("-d") + 1])


def test_the_example_request_is_the_published_rows_one_input_per_column():
    assert example_request(TABLE_SCHEMA) == PER_COLUMN_BODY
    assert example_words(TABLE_SCHEMA) == "2 test rows as they are in the data, null where a value is missing"
    assert example_words({"features": []}) == "one row: each feature's training mean"


def test_the_card_of_a_table_model_lists_columns_and_species_and_curls_real_rows():
    spec = load_spec(SPECS / "iris.yaml")
    card = render_model_card(
        spec, version=1, evaluation={"metrics": {"accuracy": 0.97}, "champion": {"decision": "no_champion"}},
        input_schema=TABLE_SCHEMA, output_schema=TABLE_OUTPUTS, dag_id="iris", run_id="r",
    )
    lines = card.splitlines()
    assert "| island | category | BYTES | error (0 in training) | — | Biscoe, Dream, Torgersen | — | — | — | — |" in lines
    assert "| bill_length_mm | number | FP32 | median (2 in training) | 44.45 | — | 32.1 | 59.6 | 43.9 | 5.4 |" in lines
    assert ("| sex | category | BYTES | constant (3 in training) | unknown | female, male; a gap becomes 'unknown' "
            "| — | — | — | — |") in lines
    assert "label answers the class itself; probabilities follow this order: Adelie, Chinstrap, Gentoo." in lines
    assert "training mean" not in card and "2 test rows as they are in the data" in card
    (curl,) = [line for line in lines if line.startswith("curl ")]
    assert _body(curl) == PER_COLUMN_BODY


def test_the_run_summary_of_a_table_model_curls_the_published_rows():
    summary = {
        "model": "penguins", "version": 1, "metrics": {"accuracy": 0.98}, "stored_uri": "file:///m/penguins/1",
        "registry": {"backend": "mlflow", "model_name": "penguins", "registry_version": "1"},
        "infer_url": "http://127.0.0.1:8555/v2/models/penguins/infer",
        "smoke_test": {"samples": 3, "agreement": 1.0, "p95_ms": 2.0},
        "example": {"request": PER_COLUMN_BODY, "label": "Gentoo", "predicted": "Gentoo"},
    }
    text = format_summary(summary, "specs/penguins.yaml")
    assert (
        "Try it: 2 test rows as they are in the data; for the first this model answers Gentoo as its 'label' "
        "(the data says Gentoo):"
    ) in text
    (curl,) = [line.strip() for line in text.splitlines() if line.strip().startswith("curl ")]
    assert _body(curl) == PER_COLUMN_BODY


def test_the_version_page_of_a_table_model_shows_columns_classes_and_real_rows():
    spec = load_spec(SPECS / "iris.yaml")
    status = data.ModelStatus(spec, production=1, history=[1], served=1, versions=[data.VersionInfo(1, registered=True, in_store=True, state="production")],
                              registry_ok=True, store_ok=True, serving_ok=True)
    card = data.VersionCard(status, 1, status.version(1), manifest={"files": {}}, evaluation={}, input_schema=TABLE_SCHEMA,
                            output_schema=TABLE_OUTPUTS)
    curl = curl_example("http://127.0.0.1:8555/v2/models/iris/infer", TABLE_SCHEMA)  # as the app builds it
    page = Page(pages.card_page("", card, curl, None, example_words(TABLE_SCHEMA)))
    assert _body(page.within("curl").text()) == PER_COLUMN_BODY
    inputs = page.within("input-schema").text()
    assert "island" in inputs and "Biscoe, Dream, Torgersen" in inputs and "median" in inputs
    assert "female, male; a gap becomes 'unknown'" in inputs and "male, unknown" not in inputs
    assert "Adelie, Chinstrap, Gentoo" in page.within("classes").text()
    assert "2 test rows as they are in the data" in page.text() and "training mean" not in page.text()
    model_page = Page(pages.model_page("", status, "curl -s http://x", example_words(TABLE_SCHEMA)))
    assert "2 test rows as they are in the data" in model_page.text()


def test_the_version_page_shows_a_few_categories_of_a_wide_column():
    wide = {"name": "station", "type": "category", "datatype": "BYTES", "shape": [-1, 1], "missing": "error",
            "fill": None, "encode": "ordinal", "categories": [f"s{i:03d}" for i in range(500)], "missing_count": 0}
    spec = load_spec(SPECS / "iris.yaml")
    status = data.ModelStatus(spec, production=1, history=[1], served=1, versions=[data.VersionInfo(1, registered=True, in_store=True, state="production")],
                              registry_ok=True, store_ok=True, serving_ok=True)
    card = data.VersionCard(status, 1, status.version(1), manifest={"files": {}}, evaluation={},
                            input_schema={**TABLE_SCHEMA, "columns": [wide]}, output_schema=TABLE_OUTPUTS)
    inputs = Page(pages.card_page("", card, "", None, "")).within("input-schema").text()
    shown = ", ".join(f"s{i:03d}" for i in range(MAX_SHOWN_CATEGORIES))
    assert f"{shown} …" in inputs and f"s{MAX_SHOWN_CATEGORIES:03d}" not in inputs

"""The end of `mlspec run`'s summary: its "Try it" line says what this model answers for the example beside
what the data says (a test row's answer may be wrong: the line must not read as if the wrong answer were
expected), and how to stop the model server however it was started."""

from __future__ import annotations

import pytest

from mlspec.summary import format_summary, try_it_line

TABLE = {"inputs": [{"name": "island", "shape": [3, 1], "datatype": "BYTES", "data": ["Dream", "Biscoe", "Dream"]}]}


@pytest.mark.parametrize(
    ("example", "line"),
    [
        (
            {"request": TABLE, "label": "Adelie", "predicted": "Gentoo"},
            "Try it: 3 test rows as they are in the data; for the first this model answers Gentoo as its 'label' "
            "(the data says Adelie):",
        ),
        (
            {"request": TABLE, "target": 4600.0, "predicted": 4909.2},
            "Try it: 3 test rows as they are in the data; for the first this model answers 4909 as its "
            "'prediction' (the data says 4600):",
        ),
        (
            {"input": [0.1], "shape": [1, 1], "label": "setosa", "predicted": "versicolor"},
            "Try it: a test sample; this model answers class versicolor as its 'label' (the class's index, with "
            "its 'probabilities'; the data says class setosa):",
        ),
        (
            {"input": [0.1], "shape": [1, 1], "target": 151.0, "predicted": 140.25},
            "Try it: a test sample; this model answers 140.2 as its 'prediction' (the data says 151):",
        ),
    ],
)
def test_try_it_says_what_the_model_answers_and_what_the_data_says(example, line):
    assert try_it_line(example) == line
    assert "should be" not in line


def penguins_summary(version: int) -> dict:
    """What the pipeline's run summary reads for a table model's published version."""
    return {
        "model": "penguins", "version": version, "metrics": {"accuracy": 0.98},
        "stored_uri": f"file:///m/penguins/{version}",
        "registry": {"backend": "mlflow", "model_name": "penguins", "registry_version": str(version)},
        "infer_url": "http://127.0.0.1:8555/v2/models/penguins/infer",
        "smoke_test": {"samples": 3, "agreement": 1.0, "p95_ms": 2.0},
        "example": {"request": TABLE, "label": "Adelie", "predicted": "Adelie"},
    }


def test_the_summary_says_how_to_stop_the_server_whoever_started_it():
    text = format_summary(penguins_summary(1), "specs/penguins.yaml")
    assert text.endswith(
        "The model server keeps running: `make stop` stops one that make started; one started with `mlspec serve`\n"
        "stops with Ctrl+C in its terminal."
    )


def test_the_summary_says_when_the_endpoints_inputs_changed():
    summary = penguins_summary(3)
    assert "NOTE" not in format_summary(summary)
    change = "the endpoint's inputs change from version 1 to 3: + bill_depth_mm (FP32): clients must send the new inputs"
    assert f"  NOTE           {change}" in format_summary({**summary, "endpoint_change": change}).splitlines()
    # A summary written before the classes were compared too names the change "inputs_change".
    assert f"  NOTE           {change}" in format_summary({**summary, "inputs_change": change}).splitlines()

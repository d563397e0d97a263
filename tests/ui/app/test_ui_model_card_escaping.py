"""model_card.md carried raw `<script>` and `<img onerror>` from spec text (issue 17, adversarial weak):
every spec-, data- and run-derived string it writes is escaped."""

from __future__ import annotations

import re

import pytest
from tests.fixtures.paths import SPECS

from mlspec.model_card import render_model_card
from mlspec.spec import load_spec_text

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"


@pytest.fixture(autouse=True)
def home(mlspec_home, monkeypatch):
    monkeypatch.setenv("MLSPEC_SERVER_URL", "http://127.0.0.1:8555")
    return mlspec_home


def hostile_card() -> str:
    text = (SPECS / "iris.yaml").read_text()
    text = text.replace("description: Iris species from four flower measurements", f"description: '{SCRIPT} `x` [a](javascript:b)'")
    text = text.replace("owner: ml-team", f"owner: '{IMG}'")
    text = text.replace("source: builtin:iris", "source: 'file://data/<svg onload=alert(3)>.csv'")
    spec = load_spec_text(text)
    return render_model_card(
        spec,
        version=2,
        evaluation={"metrics": {"accuracy": 0.9}, "champion": {"decision": "<b>won</b>", "metric": "accuracy"}},
        input_schema={"name": "input", "shape": [-1, 1], "features": [{"name": f"f{IMG}", "mean": 1.0}]},
        output_schema={"outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]}], "class_names": [SCRIPT, "`b`"]},
        dag_id="iris",
        run_id="manual__<iframe src=//x>",
        stored_uri="file:///m/iris/2<script>",
    )


def test_no_html_from_the_spec_the_data_or_the_run_reaches_the_card():
    card = hostile_card()
    assert not re.search(r"<\s*(script|img|svg|iframe|b)\b", card, re.I), card
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in card  # still readable as text
    assert "&lt;img src=x onerror=alert(2)&gt;" in card


def test_spec_text_opens_no_code_span_or_link():
    card = hostile_card()
    assert "\\[a\\](javascript:b)" in card and "](javascript:" not in card.replace("\\](javascript:", "")
    assert "\\`x\\`" in card and "\\`b\\`" in card

"""The champion gate on a real table model (issue 13): a retrain of the raw penguins spec scores the
production version on its own test rows, fed one input per column, with production's species names mapped
back to this run's classes: an identical retrain ties and production keeps serving."""

from __future__ import annotations

import json
import shutil

import pytest
from tests.e2e.e2e_testkit import task_states, xcom
from tests.e2e.test_e2e_frameworks import version_dir
from tests.fixtures.paths import REPO, SPECS

pytestmark = pytest.mark.e2e


@pytest.fixture
def penguins_csv():
    """data/penguins.csv where the spec's `file://data/penguins.csv` points: $MLSPEC_HOME/data."""
    from mlspec.home import mlspec_home

    target = mlspec_home() / "data" / "penguins.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO / "data" / "penguins.csv", target)


@pytest.mark.usefixtures("penguins_csv")
def test_an_identical_table_retrain_is_scored_against_production_row_by_row(run_spec, model_server):
    text = (SPECS / "penguins.yaml").read_text()
    spec, first = run_spec(text, "penguins")
    assert str(first.state) == "success", task_states(first)
    schema = json.loads((version_dir(spec) / "input_schema.json").read_text())
    assert [c["name"] for c in schema["columns"]][:2] == ["island", "bill_length_mm"]
    assert schema["columns"][1]["fill"] is not None and len(schema["example"]) == 3
    summary_example = xcom(first, "promote")["example"]
    assert summary_example["request"]["inputs"][0]["name"] == "island"
    assert summary_example["predicted"] in {"Adelie", "Chinstrap", "Gentoo"}

    _, second = run_spec(text, "penguins")
    verdict = xcom(second, "evaluate")["champion"]
    assert verdict["decision"] == "tie", verdict
    assert verdict["scored_on"] == "this run's test split"  # fed per column, not the recorded metrics
    assert verdict["champion"] == verdict["challenger"]

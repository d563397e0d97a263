"""The model card's Data and Data checks sections and the champion's changed classes (issue 14), rendered from
contract-shaped lineage.json / drift.json; a version without them (published before issue 14) has neither."""

from __future__ import annotations

import copy

import pytest
from tests.fixtures.paths import SPECS

from mlspec.model_card import CHECK_OUTCOMES, MAX_SHOWN_FILES, render_model_card
from mlspec.spec import load_spec
from mlspec.vocabulary import MAX_CHECKED_FEATURES, VALIDATION_OUTCOMES

LINEAGE = {
    "source": "file:///data/penguins_stream.csv",
    "query": None,
    "files": [{"uri": "file:///data/penguins_stream.csv", "sha256": "ab" * 32, "etag": None, "version_id": None}],
    "digest": "sha256:" + "cd" * 32,
    "rows": {"read": 344, "dropped": {"no label": 2, "missing in bill_length_mm (drop_row)": 1}, "train": 239, "validation": 34, "test": 68},
    "split": {"method": "hash", "key": ["island", "bill_length_mm"], "validation": 0.1, "test": 0.2, "seed": 42},
    "holdout": None,
    "reference_version": 1,
    "validation": {"outcome": "accepted", "drifted_columns": ["body_mass_g"], "schema_problems": [], "accepted_by": "alice"},
}
DRIFT = {
    "reference": {"version": 1, "rows": 300},
    "current": {"rows": 239, "new_rows": 20},
    "settings": {"schema": "fail", "threshold": None, "share": 0.5, "on_drift": "fail"},
    "rows": [
        {"column": "body_mass_g", "check": "drift", "test": "ks", "score": 0.0001, "threshold": 0.05, "drifted": True, "detail": ""},
        {"column": "body_mass_g", "check": "drift (new rows)", "test": "ks", "score": 0.00002, "threshold": 0.05, "drifted": True, "detail": ""},
        {"column": "island", "check": "drift", "test": "chi2", "score": 0.61, "threshold": 0.05, "drifted": False, "detail": ""},
        {"column": "sex", "check": "new categories", "test": "", "score": 0.12, "threshold": None, "drifted": True, "detail": ""},
    ],
    "drifted_columns": ["body_mass_g"],
    "drift_share": 0.17,
    "dataset_drift": False,
    "schema_problems": ["column sex: categories the reference never had: <b>unknown</b> (12% of rows)"],
    "outcome": "accepted",
    "accepted_by": "alice",
}
VERDICT = {"decision": "challenger_wins", "metric": "accuracy", "challenger": 0.98, "champion": 0.80, "champion_version": 1,
           "min_delta": 0.0, "classes_added": ["Chinstrap"], "classes_removed": [], "scored_on": "this run's test split"}


@pytest.fixture(autouse=True)
def home(mlspec_home, monkeypatch):
    monkeypatch.setenv("MLSPEC_SERVER_URL", "http://127.0.0.1:8555")
    return mlspec_home


def card(lineage=None, drift=None, verdict=None, plots=("confusion_matrix.png", "drift.png")) -> list[str]:
    spec = load_spec(SPECS / "penguins.yaml")
    return render_model_card(
        spec, version=2, evaluation={"metrics": {"accuracy": 0.98}, "test_samples": 68, "champion": verdict or {"decision": "no_champion"}},
        input_schema={}, output_schema={}, dag_id="penguins", run_id="r", plots=list(plots), lineage=lineage, drift=drift,
    ).splitlines()


def section(lines: list[str], heading: str) -> list[str]:
    start = lines.index(heading)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start:end]


def test_the_data_section_says_where_the_rows_came_from_and_where_they_went():
    data = section(card(LINEAGE, DRIFT), "## Data")
    assert "| source | file:///data/penguins_stream.csv |" in data
    assert f"| digest | sha256:{'cd' * 32} |" in data
    assert "| files | file:///data/penguins_stream.csv (sha256 abababababab…) |" in data
    assert ("| rows | 344 read, 3 dropped (no label: 2; missing in bill_length_mm (drop_row): 1); "
            "train 239, validation 34, test 68 |") in data
    assert "| split | hash of island, bill_length_mm (validation 0.1, test 0.2) |" in data
    assert not any(line.startswith("| query |") or line.startswith("| holdout |") for line in data)


def test_a_holdout_a_query_and_many_s3_files_are_said_briefly():
    lineage = copy.deepcopy(LINEAGE)
    lineage.update(source="s3://bucket/cars/", query="SELECT * FROM cars WHERE year < {{ ds }}", split={"method": "random", "key": None, "validation": 0.1, "test": 0.0, "seed": 7},
                   holdout={"source": "file:///data/cars_holdout.csv", "query": None, "rows": 50})
    lineage["files"] = [{"uri": f"s3://bucket/cars/part-{i}.csv", "sha256": None, "etag": f'"e{i}"', "version_id": f"v{i}"} for i in range(8)] + [{"more": 92}]
    data = section(card(lineage), "## Data")
    (files,) = [line for line in data if line.startswith("| files |")]
    assert 's3://bucket/cars/part-0.csv (ETag "e0", version id v0)' in files
    assert f"part-{MAX_SHOWN_FILES - 1}.csv" in files and f"part-{MAX_SHOWN_FILES}.csv" not in files
    assert files.endswith(f"and {8 - MAX_SHOWN_FILES + 92} more |")
    assert "| query | SELECT * FROM cars WHERE year &lt; {{ ds }} |" in data
    assert "| split | random, seed 7 (validation 0.1, test 0) |" in data
    assert "| holdout | file:///data/cars_holdout.csv: 50 rows, the test split |" in data


def test_the_data_checks_section_has_the_outcome_the_reference_the_table_and_the_plot():
    lines = card(LINEAGE, DRIFT)
    checks = section(lines, "## Data checks")
    assert "| outcome | accepted by alice: the checks failed and the run was told to train anyway (accept_drift: the trigger form, or mlspec run --accept-drift) |" in checks
    assert "| reference | production version 1 (300 rows) |" in checks
    assert "| compared | this run's training split: 239 rows, 20 of them new |" in checks
    assert "| drifted columns | body_mass_g |" in checks
    assert "| column | check | test | score | threshold | drifted |" in checks
    assert "| body_mass_g | drift (new rows) | ks | 2e-05 | 0.05 | yes |" in checks
    assert any(line.startswith("| island |") and line.endswith("| chi2 | 0.61 | 0.05 | no |") for line in checks)
    assert any(line.startswith("| sex |") and line.endswith("| new categories |  | 0.12 | — | yes |") for line in checks)
    # A category name from the data is text, never HTML.
    assert "- column sex: categories the reference never had: &lt;b&gt;unknown&lt;/b&gt; (12% of rows)" in checks
    assert "![drift: reference against this run's training split](drift.png)" in checks
    # The drift plot is shown under Data checks, not listed again with evaluate's plots.
    assert section(lines, "## Plots") == ["## Plots", "", "- [confusion_matrix.png](confusion_matrix.png)", ""]


def test_every_outcome_validate_data_can_record_has_words():
    assert list(CHECK_OUTCOMES) == list(VALIDATION_OUTCOMES)
    assert all(CHECK_OUTCOMES[outcome].startswith(outcome.replace("_", " ") + ":") for outcome in VALIDATION_OUTCOMES)
    assert f"at most {MAX_CHECKED_FEATURES} flat features" in CHECK_OUTCOMES["skipped"]


def test_without_a_reference_the_checks_say_so_and_show_no_table():
    lineage = dict(LINEAGE, reference_version=None, validation={"outcome": "no_reference", "drifted_columns": [], "schema_problems": [], "accepted_by": None})
    checks = section(card(lineage, None, plots=()), "## Data checks")
    assert checks[4].startswith("| outcome | no reference: no production profile could be read (none yet, ")
    assert not any(line.startswith("| column |") or line.startswith("| reference |") or line.startswith("![") for line in checks)


def test_the_champion_part_names_the_classes_that_changed_and_what_was_scored():
    champion = section(card(LINEAGE, DRIFT, VERDICT), "## Champion comparison")
    assert "- classes added: Chinstrap" in champion
    assert "- scored on: this run's test split" in champion
    assert not any("classes removed" in line for line in champion)
    removed = section(card(verdict=dict(VERDICT, classes_added=[], classes_removed=["Gentoo", "<i>x</i>"])), "## Champion comparison")
    assert "- classes removed: Gentoo, &lt;i&gt;x&lt;/i&gt;" in removed
    assert not any(line.startswith("- left out") for line in champion)
    overlapped = section(card(verdict=dict(VERDICT, left_out=28)), "## Champion comparison")
    assert "- left out: 28 test rows production had trained on (both scored on the rest)" in overlapped


def test_a_version_published_before_lineage_was_recorded_has_neither_section():
    lines = card(plots=("confusion_matrix.png",))
    assert "## Data" not in lines and "## Data checks" not in lines
    assert not any(line.startswith("- classes") or line.startswith("- scored on") for line in lines)

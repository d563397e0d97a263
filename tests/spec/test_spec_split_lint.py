"""Lint of issue 14's spec fields at their lines: split settings that do not apply to the method in use, key
columns the data lacks (any column of the source, not only features), and evaluation.holdout checked as
data.source is (scheme, kind, templates, a local file's place and columns), and a validation section on data
validate_data does not check."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from tests.fixtures.paths import REPO

from mlspec.cli import lint_file

SPEC = """\
apiVersion: mlspec/v1
kind: ModelSpec
metadata:
  name: cars
data:
  source: file://data/cars.csv
  label: Miles_per_Gallon
  features: [Horsepower, Weight_in_lbs]
  split: {split}
model:
  framework: sklearn
  task: regression
  estimator: random_forest
evaluation:
  holdout: {holdout}
"""
SPLIT_LINE, HOLDOUT_LINE = 9, 15


def lint(tmp_path: Path, split: str = "{}", holdout: str = "null", source: str = "file://data/cars.csv") -> dict:
    """{(field, line): "severity: message"} of lint_file on the spec."""
    spec = tmp_path / "project" / "specs" / "cars.yaml"
    spec.parent.mkdir(parents=True, exist_ok=True)
    text = SPEC.replace("{split}", split).replace("{holdout}", holdout).replace("file://data/cars.csv", source, 1)
    spec.write_text(text)
    return {(p.path, p.line): f"{p.severity}: {p.message}" for p in lint_file(spec)[1]}


@pytest.fixture
def cars(mlspec_home: Path) -> Path:
    folder = mlspec_home / "data"
    folder.mkdir(parents=True)
    table = pd.DataFrame(
        {
            "Name": ["ford pinto", "vw rabbit", "amc hornet"],
            "Year": [1970, 1971, 1972],
            "Horsepower": [90.0, 70.0, 100.0],
            "Weight_in_lbs": [2200, 1900, 2800],
            "Miles_per_Gallon": [25.0, 30.0, 18.0],
        }
    )
    table.to_csv(folder / "cars.csv", index=False)
    table.drop(columns=["Miles_per_Gallon"]).to_csv(folder / "unlabelled.csv", index=False)
    table.to_csv(folder / "holdout.csv", index=False)
    return folder


def test_a_clean_spec_with_a_key_and_a_holdout_has_no_problem(tmp_path, cars):
    assert lint(tmp_path, "{key: [Name, Year]}", "{source: file://data/holdout.csv}") == {}


def test_seed_and_stratify_under_method_hash_are_warnings_at_their_place(tmp_path, cars):
    found = lint(tmp_path, "{seed: 7, stratify: true}")
    assert found == {
        ("data.split.seed", SPLIT_LINE): "warning: seed applies to method random only; with method hash (the default) "
        "a row's split follows from its key, so remove seed or set data.split.method: random",
        ("data.split.stratify", SPLIT_LINE): "warning: stratify applies to method random only; with method hash (the "
        "default) a row's split follows from its key, so remove stratify or set data.split.method: random",
    }
    assert lint(tmp_path, "{method: random, seed: 7, stratify: true}") == {}


def test_a_key_under_method_random_is_a_warning(tmp_path, cars):
    assert lint(tmp_path, "{method: random, key: [Name]}") == {
        ("data.split.key", SPLIT_LINE): "warning: key applies to method hash only; method random shuffles the rows, "
        "so remove key or set data.split.method: hash",
    }


def test_a_key_column_the_data_lacks_is_an_error_with_a_did_you_mean(tmp_path, cars):
    found = lint(tmp_path, "{key: [Name, year, Origin]}")
    assert found == {
        ("data.split.key[1]", SPLIT_LINE): f"error: data.split.key 'year' is not a column of {cars / 'cars.csv'}; "
        "did you mean 'Year'?",
        ("data.split.key[2]", SPLIT_LINE): f"error: data.split.key 'Origin' is not a column of {cars / 'cars.csv'}; "
        "its columns are: 'Name', 'Year', 'Horsepower', 'Weight_in_lbs', 'Miles_per_Gallon'",
    }


def test_a_key_on_a_named_data_set_is_an_error(tmp_path):
    found = lint(tmp_path, "{key: [sepal_length]}", source="builtin:iris")
    assert found[("data.split.key", SPLIT_LINE)].startswith(
        "error: data.split.key names columns of a table (csv, parquet or sql://), not a named data set (builtin:iris)"
    )


def test_a_key_is_not_checked_where_no_sample_is_read(tmp_path, mlspec_home):
    found = lint(tmp_path, "{key: [Anything]}")  # no file here: lint warns of the source, not of the key
    assert [field for field, _line in found] == ["data.source"]


def test_with_a_holdout_the_test_share_is_unused(tmp_path, cars):
    found = lint(tmp_path, "{test: 0.3}", "{source: file://data/holdout.csv}")
    assert found == {
        ("data.split.test", SPLIT_LINE): "warning: data.split.test is not used: evaluation.holdout is the test split, "
        "and the source's rows are split between train and validation only",
    }
    # Without a holdout validation + test must leave rows to train on; with one only validation counts.
    assert "validation + test leave" in lint(tmp_path, "{validation: 0.5, test: 0.45}")[("data.split", SPLIT_LINE)]
    assert lint(tmp_path, "{validation: 0.5}", "{source: file://data/holdout.csv}") == {}


@pytest.mark.parametrize(
    ("holdout", "field", "message"),
    [
        ("{source: ftp://host/h.csv}", "source", "error: unsupported holdout source 'ftp://host/h.csv'; use file://, s3:// or sql://"),
        ("{source: 'builtin:iris'}", "source", "error: 'builtin:iris' is a named data set; a holdout is a file or a table: file://, s3:// or sql://"),
        ("{source: 'sql://warehouse'}", "source", "error: a sql:// source needs evaluation.holdout.query, the SQL that reads the table"),
        ("{source: file://data/holdout.csv, query: SELECT 1}", "query", "error: evaluation.holdout.query is read by a sql:// holdout only, not file://"),
        ("{source: 'file://data/holdout_{{ ds }.csv'}", "source", "error: evaluation.holdout.source is not a valid template"),
        ("{source: 'file://data/holdout_{{ dss }}.csv'}", "source", "error: evaluation.holdout.source names 'dss', which is not in the context Airflow renders it with; did you mean 'ds'?"),
        ("{source: 'sql://warehouse', query: 'SELECT * FROM t WHERE d = {{ ts_nodash_ }}'}", "query", "error: evaluation.holdout.query names 'ts_nodash_'"),
        ("{source: file://data/../../etc/h.csv}", "source", "error: 'file://data/../../etc/h.csv' contains '..'"),
        ("{source: file://data/unlabelled.csv}", "source", "error: data.label 'Miles_per_Gallon' is not a column of"),
        ("{source: file://data/missing.csv}", "source", "warning: 'file://data/missing.csv' is"),
        ("{source: file:///etc/hosts.csv}", "source", "error: 'file:///etc/hosts.csv' (/etc/hosts.csv) is in the system folder /etc"),
    ],
)
def test_a_holdout_source_is_checked_as_data_source_is(tmp_path, cars, holdout, field, message):
    found = lint(tmp_path, holdout=holdout)
    at = (f"evaluation.holdout.{field}", HOLDOUT_LINE)
    assert at in found and found[at].startswith(message), found


def test_a_holdout_read_by_sql_with_a_data_format_says_why(tmp_path, cars):
    found = lint(tmp_path, holdout="{source: 'sql://warehouse', query: SELECT 1}", source="file://data/cars.csv")
    assert found == {}  # data.format is null: nothing of data's settings clashes with a sql:// holdout
    spec_text = "  features: [Horsepower, Weight_in_lbs]\n  format: csv\n"
    spec = tmp_path / "project" / "specs" / "cars.yaml"
    spec.write_text(
        SPEC.replace("{split}", "{}").replace("{holdout}", "{source: 'sql://warehouse', query: SELECT 1}")
        .replace("  features: [Horsepower, Weight_in_lbs]\n", spec_text)
    )
    messages = {p.path: p.message for p in lint_file(spec)[1]}
    assert messages["evaluation.holdout.source"] == (
        "the holdout is read with data.format: a sql:// source is a table a query returns; remove data.format"
    )


def test_a_validation_section_on_images_is_a_warning_that_it_never_acts(tmp_path):
    spec = tmp_path / "cifar.yaml"
    text = (REPO / "specs" / "cifar10.yaml").read_text()
    spec.write_text(text + "validation:\n  drift: {on_drift: fail}\n")
    found = {(p.path, p.line): f"{p.severity}: {p.message}" for p in lint_file(spec)[1]}
    line = len(text.splitlines()) + 1
    assert found[("validation", line)] == (
        "warning: validate_data does not check keras:cifar10: its samples have 3,072 features, more than the 100 it "
        "checks column by column, so these settings never act; remove the section"
    )
    digits = tmp_path / "digits.yaml"  # 64 features: checked
    digits.write_text((REPO / "specs" / "digits.yaml").read_text() + "validation:\n  drift: {on_drift: fail}\n")
    assert not [p for p in lint_file(digits)[1] if p.path == "validation"]
    spec.write_text(text)  # no section: nothing to say
    assert not [p for p in lint_file(spec)[1] if p.path == "validation"]

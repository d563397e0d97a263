"""Lint of data.features' column declarations and data.exclude (issue 13 §1, §3), each at the spec's line:
without data (mean on a category, encode on a number, exclude beside a features list, a column both a feature and
excluded, the label as a feature, columns on a data set that is no table), and with a local table's first rows
(a declared type its values do not fit, a text column that cannot be inferred, gaps without a strategy with
their count, an excluded column that does not exist). The rules are mlspec.ml.columns', as prepare_data's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.fixtures.paths import SPECS

from mlspec.cli import lint_file

IRIS = (SPECS / "iris.yaml").read_text()


def lint(tmp_path: Path, data: str) -> dict[tuple[str, int], str]:
    """{(path, line): message} of every problem; data replaces the data.source line (line 12 on)."""
    spec = tmp_path / "project" / "specs" / "table.yaml"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(IRIS.replace("  source: builtin:iris\n", data))
    return {(p.path, p.line): f"{p.severity}: {p.message}" for p in lint_file(spec)[1]}


@pytest.fixture
def table(mlspec_home: Path) -> Path:
    rows = 60
    bill = np.linspace(35, 45, rows)
    bill[[3, 7]] = np.nan
    frame = pd.DataFrame(
        {
            "species": ["Adelie", "Gentoo", "Chinstrap"] * (rows // 3),
            "island": ["Torgersen", "Biscoe"] * (rows // 2),
            "bill_length_mm": bill,
            "sex": ["male", "female", None] * (rows // 3),
            "year": [2007, 2008] * (rows // 2),
            "name": [f"bird {i}" for i in range(rows)],  # text with 60 distinct values: no category to infer
            "seen": [f"2024-05-{1 + i % 28:02d}" for i in range(rows)],  # dates
        }
    )
    path = mlspec_home / "data" / "table.csv"
    path.parent.mkdir(parents=True)
    frame.to_csv(path, index=False)
    return path


def test_declarations_that_contradict_themselves_are_reported_without_data(tmp_path: Path) -> None:
    found = lint(
        tmp_path,
        "  source: file:///data/nowhere/table.csv\n"  # line 12: not on this machine, no sample
        "  label: species\n"
        "  features:\n"
        "    island: {type: category, missing: median}\n"  # line 15
        "    bill_length_mm: {type: number, encode: ordinal}\n"
        "    year: {type: integer, max_categories: 5}\n"
        "    sex: {type: category, encode: ordinal, max_categories: 5}\n"
        "    mass: {type: number, missing: {constant: unknown}}\n"
        "    species: category\n"  # line 20
        "  exclude: [year, name]\n",
    )
    assert found == {
        ("data.features.island", 15): "error: missing: median needs numbers, but the column is a category; use "
        "most_frequent or {constant: value}",
        ("data.features.bill_length_mm", 16): "error: encode applies to category columns only, not to a number",
        ("data.features.year", 17): "error: max_categories applies to one-hot encoded category columns only",
        ("data.features.sex", 18): "error: max_categories applies to one-hot encoded category columns only",
        ("data.features.mass", 19): "error: the constant 'unknown' does not fit a number column; give a number",
        ("data.features.species", 20): "error: 'species' is the label column; a model does not read its own "
        "answer as a feature",
        ("data.exclude[0]", 21): "error: 'year' is both a feature (data.features) and excluded",
    }


def test_the_label_in_exclude_is_a_warning_and_columns_need_a_table(tmp_path: Path) -> None:
    found = lint(tmp_path, "  source: file:///data/nowhere/table.csv\n  label: species\n  exclude: [species]\n")
    assert found == {
        ("data.exclude[0]", 14): "warning: 'species' is the label, which is never a feature; it needs no data.exclude",
        ("data.source", 12): "warning: 'file:///data/nowhere/table.csv' is /data/nowhere/table.csv, which does not "
        "exist on this machine; its folder /data/nowhere does not exist here either (a warning: the file may exist "
        "where the tasks run; lint checks its columns only where it can read it)",
    }
    found = lint(tmp_path, "  source: builtin:iris\n  features:\n    petal: number\n")
    assert found == {
        ("data.features", 13): "error: column types and data.exclude are for a table (csv, parquet or sql://), not "
        "a named data set (builtin:iris)"
    }
    found = lint(tmp_path, "  source: file:///data/nowhere/x.npz\n  exclude: [y2]\n")
    assert found == {
        ("data.exclude", 13): "error: column types and data.exclude are for a table (csv, parquet or sql://), not an "
        "npz file (one features array)"
    }


def test_the_sample_checks_types_inference_gaps_and_excluded_names(tmp_path: Path, table: Path) -> None:
    rows = f"the first 60 rows of {table}"
    found = lint(
        tmp_path,
        "  source: file://data/table.csv\n"  # line 12
        "  label: species\n"
        "  features:\n"
        "    island: number\n"  # line 15: text
        "    bill_length_mm: {type: number}\n"  # gaps, missing: error
        "    sex: category\n"  # gaps
        "    year: {type: boolean}\n"
        "    name: {type: category, max_categories: 10}\n"  # declared: many values are fine
        "    seen: number\n",  # line 20: dates
    )
    assert found == {
        ("data.features.island", 15): f"error: {rows}: column island is a number column, but 60 of its values are "
        "not numbers (e.g. Torgersen, Biscoe; data rows 1, 2, 3, 4, 5 ...); declare it as a category, or correct the data",
        ("data.features.bill_length_mm", 16): f"error: {rows}: column bill_length_mm has 2 missing values (data rows 4 and 8); "
        "set data.features.bill_length_mm.missing to mean, median, most_frequent, {constant: ...} or drop_row",
        ("data.features.sex", 17): f"error: {rows}: column sex has 20 missing values (data rows 3, 6, 9, 12, 15 ...); "
        "set data.features.sex.missing to most_frequent, {constant: ...} or drop_row",
        ("data.features.year", 18): f"error: {rows}: column year is a boolean column, but 60 of its values are not "
        "true/false, yes/no or 1/0 (e.g. 2007, 2008; data rows 1, 2, 3, 4, 5 ...); declare it as a category, or correct "
        "the data",
        ("data.features.seen", 20): f"error: {rows}: column 'seen' holds dates; mlspec takes no dates as features: "
        "leave it out of data.features, derive a number from it before training, or declare it as text "
        "(data.features.seen: {type: category})",
    }


def test_every_column_but_the_excluded_ones_is_inferred_from_the_sample(tmp_path: Path, table: Path) -> None:
    rows = f"the first 60 rows of {table}"
    spec = tmp_path / "project" / "specs" / "table.yaml"
    spec.parent.mkdir(parents=True)
    spec.write_text(
        IRIS.replace("  source: builtin:iris\n", "  source: file://data/table.csv\n  label: species\n  exclude: [bill_length_mm, sex, nme]\n")
    )
    found = [(p.path, p.line, p.message) for p in lint_file(spec)[1]]
    assert found == [
        ("data.exclude[2]", 14, f"data.exclude 'nme' is not a column of {table}; did you mean 'name'?"),
        ("data.source", 12, f"{rows}: column 'name' is text with 60 distinct values, more than the 50 a category is "
         "inferred for; declare its type under data.features (e.g. name: {type: category, max_categories: 20}) or add "
         "it to data.exclude"),
        ("data.source", 12, f"{rows}: column 'seen' holds dates; mlspec takes no dates as features: add it to "
         "data.exclude, derive a number from it before training, or declare it as text (data.features.seen: "
         "{type: category})"),
    ]


def test_a_clean_declared_table_passes_and_a_filled_gap_is_not_reported(tmp_path: Path, table: Path) -> None:
    assert lint(
        tmp_path,
        "  source: file://data/table.csv\n"
        "  label: species\n"
        "  features:\n"
        "    island: category\n"
        "    bill_length_mm: {type: number, missing: median}\n"
        "    sex: {type: category, missing: {constant: unknown}}\n"
        "    year: integer\n",
    ) == {}
    assert lint(tmp_path, "  source: file://data/table.csv\n  label: species\n  exclude: [bill_length_mm, sex, name, seen]\n") == {}


def test_rows_without_a_label_are_a_warning_since_prepare_data_drops_them(tmp_path: Path, mlspec_home: Path) -> None:
    path = mlspec_home / "data" / "unlabeled.csv"
    path.parent.mkdir(parents=True)
    pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "species": ["a", None, "b", None]}).to_csv(path, index=False)
    found = lint(tmp_path, "  source: file://data/unlabeled.csv\n  label: species\n")
    assert found == {
        ("data.label", 13): f"warning: 2 of the first 4 rows of {path} have no 'species'; prepare_data leaves such rows out"
    }


def test_a_column_with_no_value_is_an_error_or_a_warning_when_later_rows_may_hold_one(
    tmp_path: Path, mlspec_home: Path
) -> None:
    (mlspec_home / "data").mkdir(parents=True)
    small = mlspec_home / "data" / "small.csv"
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "empty": [None] * 3, "species": ["a", "b", "a"]}).to_csv(small, index=False)
    found = lint(tmp_path, "  source: file://data/small.csv\n  label: species\n")
    assert found == {
        ("data.source", 12): f"error: the first 3 rows of {small}: column empty has 3 missing values (data rows 1, 2 "
        "and 3); set data.features.empty.missing to mean, median, most_frequent, {constant: ...} or drop_row; a "
        "mapping names the features, so list them all (a name with no value keeps its inferred type): data.features: "
        "{x: null, empty: {type: number, missing: median}}; no row here has a value: if none has, add it to "
        "data.exclude instead"
    }
    found = lint(tmp_path, "  source: file://data/small.csv\n  label: species\n  features:\n    x: number\n"
                 "    empty: {type: number, missing: mean}\n")
    assert found == {
        ("data.features.empty", 16): f"error: the first 3 rows of {small}: column empty has no value in any of the 3 "
        "rows; a model learns nothing from it and a fill would be made up: add it to data.exclude (or leave it out "
        "of data.features)"
    }
    big = mlspec_home / "data" / "big.csv"
    late = [None] * 1_500
    late[-1] = 5.0
    pd.DataFrame({"x": np.arange(1_500.0), "late": late, "species": ["a", "b"] * 750}).to_csv(big, index=False)
    found = lint(tmp_path, "  source: file://data/big.csv\n  label: species\n  features:\n    late: {type: number, missing: mean}\n    x: number\n")
    assert list(found) == [("data.features.late", 15)]
    assert found[("data.features.late", 15)].startswith("warning: ") and found[("data.features.late", 15)].endswith(
        "the rows after these may hold values, and prepare_data refuses it if none does"
    )


def test_a_local_file_that_is_not_here_is_a_warning_with_the_name_it_likely_meant(tmp_path: Path, table: Path) -> None:
    found = lint(tmp_path, "  source: file://data/tabel.csv\n  label: species\n")
    assert found == {
        ("data.source", 12): f"warning: 'file://data/tabel.csv' is {table.parent}/tabel.csv, which does not exist on "
        "this machine; did you mean 'table.csv' beside it? (a warning: the file may exist where the tasks run; lint "
        "checks its columns only where it can read it)"
    }


def test_a_declaration_without_a_type_is_checked_once_the_sample_gives_the_type(tmp_path: Path, table: Path) -> None:
    rows = f"the first 60 rows of {table}"
    found = lint(
        tmp_path,
        "  source: file://data/table.csv\n"  # line 12
        "  label: species\n"
        "  features:\n"
        "    island: {encode: ordinal}\n"
        "    bill_length_mm: {missing: median}\n"
        "    sex: {missing: mean}\n"  # line 17: a category, found from the sample
        "    year: {missing: {constant: 2000}}\n",
    )
    assert found == {
        ("data.features.sex", 17): f"error: {rows}: data.features.sex: missing: mean needs numbers, but the column "
        "is a category; use most_frequent or {constant: value} (the type inferred from its values; declare it if that "
        "is wrong)",
    }

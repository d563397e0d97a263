"""`mlspec render` prints every feature column of a table source (issue 13 §1): name, type (declared, or inferred
from a local table's first rows, as prepare_data infers it), encoding, missing-value strategy and the datatype of
its endpoint input; a table elsewhere is typed at run time, and a data set that is no table has one `input`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.fixtures.paths import REPO, SPECS

from mlspec.spec import resolve_spec
from mlspec.spec.column_table import column_table
from mlspec.spec.yaml_loader import load_yaml

PENGUINS = (SPECS / "penguins.yaml").read_text()


def table(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "specs" / "penguins.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    doc = load_yaml(text, str(path))
    return column_table(doc, resolve_spec(doc))


@pytest.fixture
def home(mlspec_home: Path) -> Path:
    (mlspec_home / "data").mkdir(parents=True)
    shutil.copy(REPO / "data" / "penguins.csv", mlspec_home / "data" / "penguins.csv")
    return mlspec_home


def test_render_prints_the_columns_of_a_local_table(tmp_path: Path, home: Path) -> None:
    spec = tmp_path / "penguins.yaml"
    spec.write_text(PENGUINS.replace("    island: {type: category}\n", "    island:\n    year: {type: category, encode: ordinal}\n"))
    result = subprocess.run(
        [str(Path(sys.executable).parent / "mlspec"), "render", str(spec)],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "MLSPEC_HOME": str(home)},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("columns (", 1)[1].split("resolved settings:", 1)[0].splitlines()
    assert lines == [
        f"resolved with the first 344 rows of {home / 'data' / 'penguins.csv'}); one endpoint input each:",
        "  name               type                 encode   missing             input",
        "  island             category (inferred)  one_hot  error               BYTES",
        "  year               category             ordinal  error               BYTES",
        "  bill_length_mm     number                        median              FP32",
        "  bill_depth_mm      number                        median              FP32",
        "  flipper_length_mm  number                        mean                FP32",
        "  body_mass_g        number                        mean                FP32",
        "  sex                category             one_hot  constant 'unknown'  BYTES",
    ]


def test_every_column_is_inferred_and_a_problem_is_said(tmp_path: Path, home: Path) -> None:
    every = PENGUINS.split("  features:\n")[0] + "  exclude: [year, sex]\n  split:" + PENGUINS.split("  split:", 1)[1]
    lines = table(tmp_path, every)
    assert [line.split()[:3] for line in lines[1:]] == [
        ["name", "type", "encode"],
        ["island", "category", "(inferred)"],
        ["bill_length_mm", "number", "(inferred)"],
        ["bill_depth_mm", "number", "(inferred)"],
        ["flipper_length_mm", "number", "(inferred)"],
        ["body_mass_g", "number", "(inferred)"],
    ]
    (line,) = table(tmp_path, every.replace("exclude: [year, sex]", "exclude: [year, sexx]"))
    assert line.startswith("columns: not resolved from the first 344 rows of ") and "did you mean 'sex'?" in line


def test_a_table_elsewhere_is_typed_at_run_time_and_a_named_data_set_has_one_input(tmp_path: Path) -> None:
    remote = PENGUINS.replace("file://data/penguins.csv", "s3://bucket/penguins.csv")
    lines = table(tmp_path, remote.replace("  features:\n", "  features:\n    year:\n"))
    assert lines[0] == (
        "columns (the source is not on this machine; a column without a type is typed when prepare_data reads the "
        "data); one endpoint input each:"
    )
    assert lines[2].split() == ["year", "resolved", "at", "run", "time"]
    assert lines[3].split() == ["island", "category", "one_hot", "error", "BYTES"]
    every = remote.split("  features:\n")[0] + "  exclude: [year]\n  split:" + remote.split("  split:", 1)[1]
    assert table(tmp_path, every) == [
        "columns: every column but the label species and data.exclude (year), typed when prepare_data reads the data"
    ]
    assert table(tmp_path, (SPECS / "iris.yaml").read_text()) == [
        "columns: none; a named data set (builtin:iris) is served as one FP32 tensor `input`"
    ]


def test_a_column_declared_without_a_type_keeps_its_strategy_in_the_table(tmp_path: Path, home: Path) -> None:
    with_fill = PENGUINS.replace("  features:\n", "  features:\n    year: {missing: median}\n")
    remote = table(tmp_path, with_fill.replace("file://data/penguins.csv", "s3://bucket/penguins.csv"))
    assert remote[2].split() == ["year", "resolved", "at", "run", "time", "median"]
    local = table(tmp_path, with_fill)
    assert local[2].split() == ["year", "number", "(inferred)", "median", "FP32"]

"""`mlspec lint` opens a local table's header and first 1,000 rows (issue 13 §3): a misspelled label or feature
(did-you-mean, case included) and a column with gaps are reported at their line before any run; a folder is
checked through its first file, partition folders included; a huge file is not read whole."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.fixtures.paths import SPECS

from mlspec.cli import lint_file

IRIS = (SPECS / "iris.yaml").read_text()


def lint(tmp_path: Path, data: str) -> list:
    spec = tmp_path / "project" / "specs" / "penguins.yaml"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(IRIS.replace("  source: builtin:iris\n", data))
    return lint_file(spec)[1]


def penguins(rows: int = 40, gaps: int = 0) -> pd.DataFrame:
    bill = np.linspace(35, 45, rows)
    bill[:gaps] = np.nan
    return pd.DataFrame(
        {"bill_length_mm": bill, "flipper_length_mm": np.linspace(180, 220, rows), "species": ["Adelie", "Gentoo"] * (rows // 2)}
    )


@pytest.fixture
def csv(mlspec_home: Path) -> Path:
    path = mlspec_home / "data" / "penguins.csv"
    path.parent.mkdir(parents=True)
    penguins().to_csv(path, index=False)
    return path


def test_a_misspelled_label_and_feature_are_reported_at_their_lines(tmp_path: Path, csv: Path) -> None:
    problems = lint(
        tmp_path,
        "  source: file://data/penguins.csv\n"  # line 12
        "  label: Species\n"
        "  features:\n"
        "    - bill_length_mm\n"
        "    - flipper_lenght_mm\n"  # line 16
        "    - island\n",
    )
    by_path = {p.path: p for p in problems}
    assert by_path["data.label"].line == 13 and by_path["data.label"].severity == "error"
    assert by_path["data.label"].message == (
        f"data.label 'Species' is not a column of {csv}; did you mean 'species'?"
    )
    assert by_path["data.features[1]"].line == 16
    assert "did you mean 'flipper_length_mm'?" in by_path["data.features[1]"].message
    assert "its columns are: 'bill_length_mm', 'flipper_length_mm', 'species'" in by_path["data.features[2]"].message
    assert len(problems) == 3
    assert lint(tmp_path, "  source: file://data/penguins.csv\n  label: species\n") == []


def test_a_column_with_gaps_is_reported_with_its_count(tmp_path: Path, mlspec_home: Path) -> None:
    path = mlspec_home / "data" / "gaps.parquet"
    path.parent.mkdir(parents=True)
    penguins(rows=3000, gaps=1500).to_parquet(path, index=False)  # only the first 1,000 rows are read
    (problem,) = lint(tmp_path, "  source: file://data/gaps.parquet\n  label: species\n  features: [bill_length_mm]\n")
    assert problem.path == "data.features[0]" and problem.line == 14
    assert problem.message == (
        f"the first 1,000 rows of {path}: column bill_length_mm has 1,000 missing values (data rows 1, 2, 3, 4, 5 ...); "
        "set data.features.bill_length_mm.missing to mean, median, most_frequent, {constant: ...} or drop_row; a "
        "mapping names the features, so list them all (a name with no value keeps its inferred type): data.features: "
        "{bill_length_mm: {type: number, missing: median}}; no row here has a value: if none has, add it to "
        "data.exclude instead"
    )
    # Features left out: every column but the label is read, so the gap is reported at data.source.
    (problem,) = lint(tmp_path, "  source: file://data/gaps.parquet\n  label: species\n")
    assert problem.path == "data.source" and "column bill_length_mm has 1,000 missing values" in problem.message


def test_a_folder_is_checked_through_its_first_file_and_its_partition_folders(
    tmp_path: Path, mlspec_home: Path
) -> None:
    folder = mlspec_home / "data" / "penguins"
    for year in (2008, 2007):
        (folder / f"year={year}").mkdir(parents=True)
        penguins().to_parquet(folder / f"year={year}" / "part-0.parquet", index=False)
    data = "  source: file://data/penguins/\n  label: species\n  features: [bill_length_mm, year, Year2]\n"
    (problem,) = lint(tmp_path, data)
    assert problem.path == "data.features[2]"
    assert f"is not a column of {folder / 'year=2007' / 'part-0.parquet'} (the first of its files)" in problem.message
    assert "did you mean 'year'?" in problem.message
    assert lint(tmp_path, "  source: file://data/penguins/*/*.parquet\n  label: species\n") == []
    # A glob whose folder is not on this machine: the data may live where the tasks run.
    assert lint(tmp_path, "  source: file:///data/nowhere/*.parquet\n  label: species\n") == []


def test_lint_reads_only_the_sample_of_a_large_csv(tmp_path: Path, mlspec_home: Path) -> None:
    path = mlspec_home / "data" / "big.csv"
    path.parent.mkdir(parents=True)
    row = ",".join(["1.5"] * 20) + ",Adelie\n"
    header = ",".join(f"f{i}" for i in range(20)) + ",species\n"
    with open(path, "w") as handle:
        handle.write(header + row * 500_000)  # about 32 MB, 4x what lint reads
    started = time.monotonic()
    (problem,) = lint(tmp_path, "  source: file://data/big.csv\n  label: Species\n")
    assert time.monotonic() - started < 5
    assert "did you mean 'species'?" in problem.message

"""Data errors are not retried and say what is wrong (issue 13 §3): a misspelled column or a missing file failed
after a retry that could not succeed (15 s) with "check data.source in the spec (and its connection for
s3://)"; a transient S3 failure is still retried."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from tests.fixtures.paths import SPECS

from mlspec.errors import StoreError
from mlspec.operators.data import PrepareDataOperator
from mlspec.spec import load_spec_text

RETRIES = 2


def operator(data: str) -> PrepareDataOperator:
    text = (SPECS / "iris.yaml").read_text().replace("  source: builtin:iris\n", data)
    return PrepareDataOperator(spec=load_spec_text(text).to_dict(), task_id="prepare_data", retries=RETRIES)


def attempts(task: PrepareDataOperator, monkeypatch: pytest.MonkeyPatch) -> tuple[int, BaseException]:
    """Run the task as Airflow's retry policy does (an AirflowFailException is never retried, any other
    AirflowException up to `retries` times) and count how often it read its source."""
    reads = []
    read_bytes = task.read_source_bytes

    def counted(uri: str) -> bytes:
        reads.append(uri)
        return read_bytes(uri)

    monkeypatch.setattr(task, "read_source_bytes", counted)
    for _try in range(1 + task.retries):
        try:
            task.execute({"run_id": "manual__1"})
        except AirflowFailException as exc:
            return len(reads), exc
        except AirflowException as exc:
            failure: BaseException = exc
            continue
    return len(reads), failure


@pytest.fixture
def penguins(mlspec_home: Path) -> Path:
    path = mlspec_home / "data" / "penguins.csv"
    path.parent.mkdir(parents=True)
    pd.DataFrame({"bill_length_mm": [39.1, 39.5, 40.3, 36.7] * 10, "species": ["Adelie", "Gentoo"] * 20}).to_csv(
        path, index=False
    )
    return path


def test_a_misspelled_label_fails_in_one_try_and_names_the_column_it_meant(
    penguins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = operator("  source: file://data/penguins.csv\n  label: Species\n")
    tries, error = attempts(task, monkeypatch)
    assert tries == 1
    message = str(error)
    assert "data.label 'Species' is not a column of file://data/penguins.csv; did you mean 'species'?" in message
    assert "check data.source in the spec" not in message and "connection" not in message
    assert "Next step: correct the data or the spec's data section" in message


def test_a_missing_file_fails_in_one_try_with_its_path_and_the_data_folders(
    mlspec_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = operator("  source: file://data/penguin.csv\n  label: species\n")
    tries, error = attempts(task, monkeypatch)
    assert tries == 1
    message = str(error)
    assert f"{mlspec_home / 'data' / 'penguin.csv'} does not exist" in message
    assert f"the allowed data folders are {mlspec_home / 'data'}" in message
    assert "Next step: check data.source in the spec: the file must exist within the allowed data folders" in message


def test_a_transient_read_failure_is_still_retried(penguins: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    task = operator("  source: file://data/penguins.csv\n  label: species\n")

    def timeout(uri: str, read: Any) -> bytes:
        raise StoreError(f"reading {uri} failed: Read timeout on endpoint URL")

    monkeypatch.setattr(task, "read_source_bytes", lambda uri: timeout(uri, None))
    tries, error = attempts(task, monkeypatch)
    assert tries == 1 + RETRIES and "Read timeout" in str(error)

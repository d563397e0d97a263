"""A folder, a glob or an S3 prefix as data.source (issue 13 §3): every matching file in name order, hive-style
`key=value` folders as columns, files with other columns refused by name, and the data folders and the size cap
applied to every file."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.fixtures.moto_s3 import aws_connection_json
from tests.fixtures.paths import SPECS

from mlspec.errors import DataError, DataSourceError, StoreError
from mlspec.ml.data import load_source
from mlspec.operators.data import PrepareDataOperator
from mlspec.spec import load_spec_text
from mlspec.spec.model import DataLimits

CONN = "moto_sources"


def cars(year: int, rows: int = 4) -> pd.DataFrame:
    start = (year - 2020) * 100
    return pd.DataFrame(
        {"weight": np.arange(start, start + rows, dtype=float), "cylinders": [4, 6] * (rows // 2), "origin": [0, 1] * (rows // 2)}
    )


def operator(source: str, extra: str = "") -> PrepareDataOperator:
    text = (SPECS / "iris.yaml").read_text().replace("source: builtin:iris", f"source: '{source}'{extra}")
    return PrepareDataOperator(spec=load_spec_text(text).to_dict(), task_id="prepare_data")


def load(source: str, features: list[str] | None = None, label: str = "origin", extra: str = "", **limits: Any):
    prepare = operator(source, extra)
    return load_source(
        source, fmt=None, features=features, label=label, read_bytes=prepare.read_source_bytes,
        list_files=prepare.list_source_files, limits=DataLimits(**limits) if limits else None,
    )


@pytest.fixture
def partitioned(mlspec_home: Path) -> Path:
    """data/cars/year=2020/part-0.parquet, year=2021/part-0.parquet, ... plus files every reader skips."""
    folder = mlspec_home / "data" / "cars"
    for year in (2021, 2020, 2022):  # written out of order: read in name order
        (folder / f"year={year}").mkdir(parents=True)
        cars(year).to_parquet(folder / f"year={year}" / "part-0.parquet", index=False)
    (folder / "_SUCCESS").write_text("")
    (folder / ".year=2020.crc").write_text("not data")
    return folder


def test_a_folder_reads_every_file_in_name_order_with_its_partition_folders_as_columns(partitioned: Path) -> None:
    x, y, classes, features, *_ = load("file://data/cars/")
    assert features == ("weight", "cylinders", "year")
    assert x.iloc[:, 0].tolist() == [0, 1, 2, 3, 100, 101, 102, 103, 200, 201, 202, 203]
    assert x.iloc[:, 2].tolist() == [2020] * 4 + [2021] * 4 + [2022] * 4  # a number: every value is one
    assert classes == ("0", "1") and y.tolist() == [0, 1] * 6
    # The same folder without the trailing '/' (lint then asks for data.format), and a glob of it.
    assert np.array_equal(load("file://data/cars", extra="\n  format: parquet")[0], x)
    x_glob, *_ = load("file://data/cars/year=202[01]/*.parquet", features=["weight", "year"])
    assert x_glob.iloc[:, 1].tolist() == [2020] * 4 + [2021] * 4


def test_a_glob_of_csv_files_reads_each_in_name_order(mlspec_home: Path) -> None:
    folder = mlspec_home / "data" / "daily"
    folder.mkdir(parents=True)
    for day in ("2024-01-02", "2024-01-01"):
        cars(2020 + int(day[-1])).to_csv(folder / f"{day}.csv", index=False)
    (folder / "notes.txt").write_text("not matched")
    x, *_ = load("file://data/daily/*.csv", features=["weight"])
    assert x.iloc[:, 0].tolist() == [100, 101, 102, 103, 200, 201, 202, 203]


def test_files_whose_columns_differ_are_refused_naming_the_first_that_differs(partitioned: Path) -> None:
    odd = cars(2023).rename(columns={"cylinders": "cyl"})
    (partitioned / "year=2023").mkdir()
    odd.to_parquet(partitioned / "year=2023" / "part-0.parquet", index=False)
    (partitioned / "year=2024").mkdir()
    cars(2024).drop(columns="weight").to_parquet(partitioned / "year=2024" / "part-0.parquet", index=False)
    with pytest.raises(DataError) as caught:
        load("file://data/cars/")
    message = str(caught.value)
    assert "the files' columns differ: year=2023/part-0.parquet has cyl, which year=2020/part-0.parquet has not" in message
    assert "lacks cylinders" in message and "2024" not in message


def test_every_file_of_a_folder_is_held_to_the_data_folders_and_the_size_cap(
    partitioned: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSPEC_DATA_ROOTS", str(partitioned.parent))
    outside = tmp_path / "elsewhere.parquet"
    cars(2030).to_parquet(outside, index=False)
    (partitioned / "year=2030").mkdir()
    (partitioned / "year=2030" / "part-0.parquet").symlink_to(outside)
    with pytest.raises(DataSourceError, match="outside the allowed data folders"):
        load("file://data/cars/")
    (partitioned / "year=2030" / "part-0.parquet").unlink()
    size = (partitioned / "year=2020" / "part-0.parquet").stat().st_size
    monkeypatch.setenv("MLSPEC_MAX_SOURCE_BYTES", str(size - 1))
    with pytest.raises(DataSourceError, match="data sources are limited to"):
        load("file://data/cars/")
    monkeypatch.delenv("MLSPEC_MAX_SOURCE_BYTES")
    # Together the files are held to data.limits.max_bytes as one file would be.
    with pytest.raises(DataError, match=r"its files up to year=2021/part-0.parquet are .* together"):
        load("file://data/cars/", max_bytes=int(size * 1.5))


def test_a_folder_or_glob_that_names_no_file_says_where_it_looked(mlspec_home: Path) -> None:
    (mlspec_home / "data" / "empty").mkdir(parents=True)
    with pytest.raises(DataSourceError, match=r"no data files match .*empty .*allowed data folders"):
        load("file://data/empty/")
    with pytest.raises(DataSourceError, match="no data files match"):
        load("file://data/empty/*.csv")


# --------------------------------------------------------------------------- S3 prefixes


@pytest.fixture
def s3(moto_s3: Any, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str]:
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", aws_connection_json(moto_endpoint))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    client = moto_s3.client()
    bucket = f"mlspec-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return client, bucket


def put_parquet(client: Any, bucket: str, key: str, frame: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    client.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())


def s3_load(source: str, features: list[str] | None = None):
    prepare = operator(source, f"\n  connection: {CONN}")
    return load_source(
        source, fmt=None, features=features, label="origin", read_bytes=prepare.read_source_bytes,
        list_files=prepare.list_source_files,
    )


def test_an_s3_prefix_reads_every_object_under_it_in_name_order(s3: tuple[Any, str], mlspec_home: Path) -> None:
    client, bucket = s3
    for year in (2022, 2020, 2021):
        put_parquet(client, bucket, f"cars/year={year}/part-0.parquet", cars(year))
    client.put_object(Bucket=bucket, Key="cars/_SUCCESS", Body=b"")
    client.put_object(Bucket=bucket, Key="carsales/other.parquet", Body=b"not under cars/")
    x, _y, _classes, features, *_ = s3_load(f"s3://{bucket}/cars/")
    assert features == ("weight", "cylinders", "year")
    assert x.iloc[:, 2].tolist() == [2020] * 4 + [2021] * 4 + [2022] * 4
    x_glob, *_ = s3_load(f"s3://{bucket}/cars/year=202[12]/*.parquet", features=["weight", "year"])
    assert x_glob.iloc[:, 1].tolist() == [2021] * 4 + [2022] * 4
    # One object still reads as one file.
    x_one, *_ = s3_load(f"s3://{bucket}/cars/year=2020/part-0.parquet", features=["weight"])
    assert x_one.iloc[:, 0].tolist() == [0, 1, 2, 3]


def test_a_missing_s3_object_is_a_data_error_and_s3_failures_stay_store_errors(
    s3: tuple[Any, str], mlspec_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _client, bucket = s3
    with pytest.raises(DataSourceError, match=r"does not exist .*end data.source with '/'"):
        s3_load(f"s3://{bucket}/cars.parquet")
    with pytest.raises(DataSourceError, match="no data files match"):
        s3_load(f"s3://{bucket}/nothing/")
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", aws_connection_json("http://127.0.0.1:9"))  # nobody listens
    with pytest.raises(StoreError) as caught:
        s3_load(f"s3://{bucket}/cars/")
    assert not isinstance(caught.value, DataError)

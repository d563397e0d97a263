"""prepare_data publishes which rows went where (issue 14 §1, §4): <run>/data/splits.parquet with the data digest
and counts, and a lineage (source and query as rendered, each file's sha256 and S3 ETag/VersionId, rows read,
dropped and per split, the split settings, the holdout) beside today's result keys."""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.fixtures.moto_s3 import aws_connection_json
from tests.fixtures.paths import SPECS

from mlspec.ml.data import Dataset
from mlspec.ml.splits import read_splits
from mlspec.operators.data import PrepareDataOperator
from mlspec.spec import load_spec_text


def cars(count: int, start: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(start)
    frame = pd.DataFrame(
        {
            "Name": [f"car {i}" for i in range(start, start + count)],
            "Year": rng.integers(1970, 1983, count),
            "Weight_in_lbs": rng.normal(3000, 500, count).round(),
            "Origin": rng.choice(["USA", "Japan", "Europe"], count),
        }
    )
    frame.loc[frame.index[:2], "Origin"] = None  # two unlabeled rows
    return frame


def spec_text(data: str, evaluation: str = "") -> str:
    text = (SPECS / "iris.yaml").read_text()
    text = text.replace("  source: builtin:iris\n  split: {validation: 0.15, test: 0.25}\n", data)
    assert data in text
    return text.replace("evaluation:\n", "evaluation:\n" + evaluation) if evaluation else text


def prepare(text: str, run_id: str = "manual__1") -> tuple[PrepareDataOperator, dict]:
    task = PrepareDataOperator(spec=load_spec_text(text).to_dict(), task_id="prepare_data")
    task.render_template_fields({"ds": "2024-03-05", "params": {}})
    return task, task.execute({"run_id": run_id})


def test_prepare_data_writes_splits_parquet_and_the_lineage(mlspec_home: Path, caplog: pytest.LogCaptureFixture):
    (mlspec_home / "data").mkdir(exist_ok=True)
    path = mlspec_home / "data" / "cars.csv"
    cars(120).to_csv(path, index=False)
    data = (
        "  source: file://data/cars.csv\n  label: Origin\n  features: [Year, Weight_in_lbs]\n"
        "  split: {key: [Name, Year], validation: 0.1, test: 0.2}\n"
    )
    with caplog.at_level(logging.INFO):
        task, result = prepare(spec_text(data))
    # today's keys stay
    assert {"source", "data_uri", "data_sha256", "class_names", "input_shape", "samples"} <= set(result)
    payload = task.store.read_uri(result["data_uri"])
    dataset = Dataset.from_npz_bytes(payload)
    assert result["splits_uri"].endswith("/runs/manual__1/data/splits.parquet")
    splits = read_splits(task.store.read_uri(result["splits_uri"]))
    digest = "sha256:" + hashlib.sha256(payload).hexdigest()
    counts = {"train": len(dataset.x_train), "validation": len(dataset.x_val), "test": len(dataset.x_test)}
    assert splits.attrs == {"digest": digest, "counts": counts, "content_ids": True}
    assert splits["row_id"].tolist() == np.concatenate([dataset.ids_train, dataset.ids_val, dataset.ids_test]).tolist()
    contents = [dataset.content_ids_train, dataset.content_ids_val, dataset.content_ids_test]
    assert splits["content_id"].tolist() == np.concatenate(contents).tolist()
    assert not np.intersect1d(splits["content_id"], splits["row_id"]).size  # with a key: the cells, not the key
    assert splits["split"].value_counts().to_dict() == {name: n for name, n in counts.items() if n}
    lineage = result["lineage"]
    assert lineage == {
        "source": "file://data/cars.csv",
        "query": None,
        "files": [{"uri": lineage["files"][0]["uri"], "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                   "etag": None, "version_id": None}],  # fmt: skip
        "digest": digest,
        "rows": {"read": 120, "dropped": {"no label": 2}, **counts},
        "split": {"method": "hash", "key": ["Name", "Year"], "validation": 0.1, "test": 0.2},  # no seed: hash
        "holdout": None,
    }
    assert lineage["files"][0]["uri"].endswith("/data/cars.csv")
    assert result["samples"] == counts and sum(counts.values()) == 118
    line = f"method hash by key Name, Year): train={counts['train']} validation={counts['validation']}"
    assert line in caplog.text
    assert "dropped 2 of 120 rows read: no label" in caplog.text


def test_a_holdout_is_the_test_split_and_the_lineage_says_so(mlspec_home: Path):
    (mlspec_home / "data").mkdir(exist_ok=True)
    source = cars(150)
    source.to_csv(mlspec_home / "data" / "cars_2024-03-05.csv", index=False)
    holdout = pd.concat([source.iloc[2:12], cars(40, start=900).iloc[2:]], ignore_index=True)
    holdout.to_csv(mlspec_home / "data" / "holdout.csv", index=False)
    data = (
        "  source: file://data/cars_{{ ds }}.csv\n  label: Origin\n  features: [Year, Weight_in_lbs]\n"
        "  split: {key: [Name, Year], method: random, validation: 0.1, test: 0.2}\n"
    )
    task, result = prepare(spec_text(data, "  holdout: {source: 'file://data/{{ \"holdout\" }}.csv'}\n"))
    assert task.source == "file://data/cars_2024-03-05.csv" and task.holdout_source == "file://data/holdout.csv"
    dataset = Dataset.from_npz_bytes(task.store.read_uri(result["data_uri"]))
    assert len(dataset.x_test) == 48 and result["samples"]["test"] == 48
    lineage = result["lineage"]
    (holdout_file,) = lineage["holdout"].pop("files")
    assert lineage["holdout"] == {"source": "file://data/holdout.csv", "query": None, "rows": 48}
    assert holdout_file["uri"].endswith("/data/holdout.csv")
    assert holdout_file["sha256"] == hashlib.sha256((mlspec_home / "data" / "holdout.csv").read_bytes()).hexdigest()
    assert lineage["split"]["seed"] == 42  # method random: the seed drew the split
    assert lineage["rows"]["dropped"] == {"no label": 2, "in the holdout": 10}
    assert lineage["rows"]["train"] + lineage["rows"]["validation"] == 148 - 10
    assert [f["uri"].rsplit("/", 1)[-1] for f in lineage["files"]] == ["cars_2024-03-05.csv"]
    splits = read_splits(task.store.read_uri(result["splits_uri"]))
    assert sorted(splits.loc[splits["split"] == "test", "row_id"].tolist()) == sorted(dataset.ids_test.tolist())


def test_a_sql_holdout_reads_its_own_query_and_never_data_query(mlspec_home: Path, monkeypatch: pytest.MonkeyPatch):
    from mlspec.errors import DataError
    from mlspec.sources import SOURCE_KINDS

    tables = {"SELECT * FROM cars": cars(100), "SELECT * FROM holdout": cars(30, start=500)}
    queries: list[str | None] = []

    def read_table(uri: str, read: Any) -> pd.DataFrame:
        queries.append(read.query)
        if not read.query:
            raise DataError(f"{uri} needs a query")
        return tables[read.query].copy()

    monkeypatch.setitem(SOURCE_KINDS, "sql", replace(SOURCE_KINDS["sql"], read_table=read_table))
    data = (
        "  source: sql://warehouse\n  query: SELECT * FROM cars\n  label: Origin\n  features: [Year, Weight_in_lbs]\n"
        "  split: {validation: 0.1, test: 0.2}\n"
    )
    _task, result = prepare(spec_text(data, "  holdout: {source: 'sql://warehouse', query: SELECT * FROM holdout}\n"))
    assert queries == ["SELECT * FROM cars", "SELECT * FROM holdout"]
    assert result["lineage"]["holdout"] == {"source": "sql://warehouse", "query": "SELECT * FROM holdout",
                                            "rows": 28, "files": []}  # fmt: skip
    # lint refuses a sql:// holdout without its query; a hand-made spec dict that has none still never reads
    # data.query for it
    spec = load_spec_text(spec_text(data, "  holdout: {source: 'sql://warehouse', query: x}\n")).to_dict()
    spec["evaluation"]["holdout"]["query"] = None
    queries.clear()
    task = PrepareDataOperator(spec=spec, task_id="prepare_data")
    task.render_template_fields({"ds": "2024-03-05", "params": {}})
    with pytest.raises(Exception, match="sql://warehouse needs a query"):
        task.execute({"run_id": "manual__1"})
    assert queries == ["SELECT * FROM cars", None]


CONN = "moto_lineage"


@pytest.fixture
def s3(moto_s3: Any, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str]:
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", aws_connection_json(moto_endpoint))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    client = moto_s3.client()
    bucket = f"mlspec-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return client, bucket


def test_s3_objects_carry_their_etag_and_version_id(s3: tuple[Any, str], mlspec_home: Path):
    client, bucket = s3
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    body = cars(60).to_csv(index=False).encode()
    put = client.put_object(Bucket=bucket, Key="cars/part-0.csv", Body=body)
    data = (
        f"  source: s3://{bucket}/cars/\n  connection: {CONN}\n  label: Origin\n  features: [Year, Weight_in_lbs]\n"
        "  split: {validation: 0.1, test: 0.2}\n"
    )
    _task, result = prepare(spec_text(data))
    (file,) = result["lineage"]["files"]
    assert file == {
        "uri": f"s3://{bucket}/cars/part-0.csv",
        "sha256": hashlib.sha256(body).hexdigest(),
        "etag": put["ETag"].strip('"'),
        "version_id": put["VersionId"],
    }


def test_the_etag_is_the_one_of_the_bytes_read_even_when_the_object_is_replaced_right_after(
    s3: tuple[Any, str], mlspec_home: Path, monkeypatch: pytest.MonkeyPatch
):
    """ETag and VersionId come from the GET that read the bytes: no later request can pair the sha256 of one
    version with the ETag of another (or fail the task)."""
    from mlspec.storage.s3 import S3Store

    client, bucket = s3
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    body = cars(60).to_csv(index=False).encode()
    put = client.put_object(Bucket=bucket, Key="cars.csv", Body=body)
    read_object = S3Store.read_object

    def read_then_replace(store: S3Store, key: str, max_bytes: int | None = None) -> Any:
        answer = read_object(store, key, max_bytes)
        client.put_object(Bucket=bucket, Key="cars.csv", Body=cars(70).to_csv(index=False).encode())
        return answer

    monkeypatch.setattr(S3Store, "read_object", read_then_replace)
    data = (
        f"  source: s3://{bucket}/cars.csv\n  connection: {CONN}\n  label: Origin\n  features: [Year, Weight_in_lbs]\n"
        "  split: {validation: 0.1, test: 0.2}\n"
    )
    _task, result = prepare(spec_text(data))
    (file,) = result["lineage"]["files"]
    assert file["sha256"] == hashlib.sha256(body).hexdigest()
    assert (file["etag"], file["version_id"]) == (put["ETag"].strip('"'), put["VersionId"])


def test_an_object_replaced_with_a_bigger_one_after_its_listing_is_refused_before_its_body_is_read(
    s3: tuple[Any, str], mlspec_home: Path, monkeypatch: pytest.MonkeyPatch
):
    """The size check after the GET came after reading the whole body: an object replaced between the listing and
    the GET could be any size. The GET's ContentLength refuses it before a byte of the body is read."""
    from airflow.sdk.exceptions import AirflowFailException

    from mlspec.storage.s3 import S3Store

    client, bucket = s3
    monkeypatch.setenv("MLSPEC_MAX_SOURCE_BYTES", "20000")
    client.put_object(Bucket=bucket, Key="cars.csv", Body=cars(60).to_csv(index=False).encode())
    big = cars(2000).to_csv(index=False).encode()
    assert len(big) > 20000
    read_object, bodies_read = S3Store.read_object, []

    def replace_then_read(store: S3Store, key: str, max_bytes: int | None = None) -> Any:
        client.put_object(Bucket=bucket, Key="cars.csv", Body=big)
        get_object = store.client.get_object

        def watched(**kwargs: Any) -> Any:
            response = get_object(**kwargs)
            body_read = response["Body"].read
            response["Body"].read = lambda *a, **k: bodies_read.append(key) or body_read(*a, **k)
            return response

        monkeypatch.setattr(store.client, "get_object", watched)
        return read_object(store, key, max_bytes)

    monkeypatch.setattr(S3Store, "read_object", replace_then_read)
    data = (
        f"  source: s3://{bucket}/cars.csv\n  connection: {CONN}\n  label: Origin\n  features: [Year, Weight_in_lbs]\n"
    )
    with pytest.raises(AirflowFailException, match=rf"cars.csv is {len(big)} bytes; data sources are limited to 20000"):
        prepare(spec_text(data))
    assert bodies_read == []


def test_a_folder_of_many_files_lists_the_first_hundred_then_how_many_more(mlspec_home: Path):
    folder = mlspec_home / "data" / "parts"
    folder.mkdir(parents=True)
    for index in range(103):
        cars(5, start=index * 5).iloc[2:].to_csv(folder / f"part-{index:03}.csv", index=False)
    data = (
        "  source: file://data/parts/\n  label: Origin\n  features: [Year, Weight_in_lbs]\n"
        "  split: {validation: 0.1, test: 0.2}\n"
    )
    _task, result = prepare(spec_text(data))
    files = result["lineage"]["files"]
    assert len(files) == 101 and files[-1] == {"more": 3}
    assert files[0]["uri"].endswith("/data/parts/part-000.csv") and files[99]["uri"].endswith("part-099.csv")
    assert files[0]["sha256"] == hashlib.sha256((folder / "part-000.csv").read_bytes()).hexdigest()
    assert result["lineage"]["rows"]["read"] == 309


def test_a_missing_holdout_file_names_evaluation_holdout_source_not_data_source(mlspec_home: Path):
    """The probe: a holdout file that is not there said 'check data.source', which was fine. The error and its next
    step name the field to fix."""
    from airflow.sdk.exceptions import AirflowFailException  # a GateFailed, as the task ends

    (mlspec_home / "data").mkdir(exist_ok=True)
    cars(150).to_csv(mlspec_home / "data" / "cars_2024-03-05.csv", index=False)
    data = "  source: file://data/cars_{{ ds }}.csv\n  label: Origin\n  features: [Year, Weight_in_lbs]\n"
    with pytest.raises(AirflowFailException) as failed:
        prepare(spec_text(data, "  holdout: {source: 'file://data/no_such_holdout.csv'}\n"))
    message = str(failed.value)
    assert "no_such_holdout.csv does not exist" in message and "evaluation.holdout.source" in message
    assert "data.source" not in message.replace("evaluation.holdout.source", "")

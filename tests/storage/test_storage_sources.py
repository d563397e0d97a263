"""Reading a spec's data source (prepare_data): only regular files within the size cap, and a run that
prepares its data prunes the old run folders (issue 9)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from tests.fixtures.paths import SPECS

from mlspec.errors import StoreError
from mlspec.operators.data import PrepareDataOperator
from mlspec.spec import load_spec, load_spec_text
from mlspec.storage import open_store
from mlspec.storage.file import read_regular_file
from mlspec.storage.s3 import read_uri_bytes


def operator(source: str = "builtin:iris", extra: str = "") -> PrepareDataOperator:
    text = (SPECS / "iris.yaml").read_text().replace("source: builtin:iris", f"source: '{source}'") + extra
    return PrepareDataOperator(spec=load_spec_text(text).to_dict(), task_id="prepare_data")


def test_dev_zero_is_refused_without_reading_it(mlspec_home: Path) -> None:
    """`file:///dev/zero` was read until 1.85 GB. (Since issue 17 /dev is refused as a system folder before
    the file's kind is looked at; read_regular_file still refuses devices and FIFOs, see below.)"""
    started = time.monotonic()
    with pytest.raises(StoreError, match="system folder /dev"):
        operator().read_source_bytes("file:///dev/zero")
    assert time.monotonic() - started < 1


def test_a_fifo_is_refused_without_blocking(mlspec_home: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "data.csv"
    os.mkfifo(fifo)
    outcome: list[BaseException | bytes] = []
    reader = threading.Thread(target=lambda: outcome.append(_try(read_regular_file, fifo, 1024)), daemon=True)
    reader.start()
    reader.join(5)
    if reader.is_alive():  # unblock the reader so the test process can end
        with open(fifo, "wb"):
            pass
        pytest.fail("opening a FIFO data source blocked")
    (error,) = outcome
    assert isinstance(error, StoreError) and "FIFO" in str(error)


def _try(function, *args) -> Any:
    try:
        return function(*args)
    except BaseException as exc:  # noqa: BLE001 - handed to the test thread
        return exc


def test_a_folder_and_a_file_over_the_cap_are_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="directory"):
        read_regular_file(tmp_path, 1024)
    big = tmp_path / "big.csv"
    with open(big, "wb") as handle:
        handle.truncate(5000)
    with pytest.raises(StoreError, match="5000 bytes; data sources are limited to 4096 bytes"):
        read_regular_file(big, 4096)
    assert read_regular_file(big, 5000) == b"\0" * 5000


def test_read_source_bytes_applies_the_cap_from_the_environment(
    mlspec_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (mlspec_home / "data").mkdir(parents=True)
    (mlspec_home / "data" / "iris.csv").write_bytes(b"a,label\n" + b"1,0\n" * 100)
    assert operator().read_source_bytes("file://data/iris.csv").startswith(b"a,label\n")
    monkeypatch.setenv("MLSPEC_MAX_SOURCE_BYTES", "100")
    with pytest.raises(StoreError, match="limited to 100 bytes"):
        operator().read_source_bytes("file://data/iris.csv")


def test_read_source_bytes_refuses_dotdot(mlspec_home: Path) -> None:
    with pytest.raises(StoreError, match=r"\.\."):
        operator().read_source_bytes("file://../outside.csv")


def test_an_s3_source_over_the_cap_is_refused_before_its_body_is_read(
    s3_conn: str, s3_client: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_client.put_object(Bucket=bucket, Key="data/iris.csv", Body=b"x" * 5000)
    assert read_uri_bytes(f"s3://{bucket}/data/iris.csv", s3_conn, max_bytes=5000) == b"x" * 5000
    with pytest.raises(StoreError, match="5000 bytes; data sources are limited to 4096 bytes"):
        read_uri_bytes(f"s3://{bucket}/data/iris.csv", s3_conn, max_bytes=4096)
    with pytest.raises(StoreError, match="control character"):
        read_uri_bytes(f"s3://{bucket}/data/iris.csv\n", s3_conn, max_bytes=4096)


def test_preparing_a_run_prunes_the_old_run_folders(mlspec_home: Path) -> None:
    prepare = operator(extra="storage: {keep_runs: 2}\n")
    store = open_store("file://models")
    for index, key in enumerate(["old1", "old2", "old3"]):
        store.write_bytes(f"iris/runs/{key}/data/dataset.npz", b"npz")
        stamp = time.time() - 1000 + index
        for path in [store.root_path / "iris/runs" / key, *(store.root_path / "iris/runs" / key).rglob("*")]:
            os.utime(path, (stamp, stamp))
    store.publish_version("iris", {"model.onnx": b"m"}, run_id="iris/old1")
    result = prepare.run({"run_id": "manual__2026-01-01T00:00:00+00:00"})
    assert result["data_uri"].endswith("/iris/runs/manual__2026-01-01T00_00_00_00_00/data/dataset.npz")
    assert store.list_children("iris/runs") == ["manual__2026-01-01T00_00_00_00_00", "old3"]
    assert store.list_versions("iris") == [1]


def test_a_failing_prune_never_fails_prepare_data(mlspec_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prepare = operator()

    def broken(*args, **kwargs):
        raise StoreError("simulated: listing denied")

    monkeypatch.setattr(type(prepare.store), "prune_runs", broken)
    assert prepare.run({"run_id": "r1"})["samples"]["train"] > 0


def test_the_example_spec_keeps_twenty_runs() -> None:
    assert load_spec(SPECS / "digits.yaml").storage.keep_runs == 20

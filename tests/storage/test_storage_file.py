"""FileStore: `file://` URIs, relative to MLSPEC_HOME or absolute, with atomic writes."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from mlspec.errors import StoreError
from mlspec.storage import open_store, resolve_file_uri
from mlspec.storage.base import CLAIM, MANIFEST
from mlspec.storage.file import FileStore


def test_relative_file_uri_lives_under_mlspec_home(mlspec_home: Path) -> None:
    store = open_store("file://models")
    assert isinstance(store, FileStore)
    assert store.root_path == mlspec_home.resolve() / "models"
    assert store.root_uri == (mlspec_home.resolve() / "models").as_uri()
    uri = store.write_bytes("digits/1/model.onnx", b"m")
    assert (mlspec_home / "models" / "digits" / "1" / "model.onnx").read_bytes() == b"m"
    assert uri == (mlspec_home.resolve() / "models" / "digits" / "1" / "model.onnx").as_uri()


def test_nested_relative_file_uri(mlspec_home: Path) -> None:
    assert resolve_file_uri("file://team/models") == mlspec_home.resolve() / "team" / "models"


def test_absolute_file_uri(tmp_path: Path, mlspec_home: Path) -> None:
    target = tmp_path / "elsewhere" / "models"
    store = open_store(target.as_uri())
    assert isinstance(store, FileStore)
    assert store.root_path == target
    store.write_bytes("digits/1/model.onnx", b"abs")
    assert (target / "digits" / "1" / "model.onnx").read_bytes() == b"abs"
    assert not (mlspec_home / "elsewhere").exists()


def test_resolve_file_uri_refuses_other_schemes() -> None:
    with pytest.raises(StoreError, match="not a file:// URI"):
        resolve_file_uri("s3://bucket/models")


def test_open_store_refuses_unknown_schemes(mlspec_home: Path) -> None:
    with pytest.raises(StoreError, match="unsupported storage URI scheme 'gs'"):
        open_store("gs://bucket/models")


def test_write_is_atomic_and_leaves_no_temp_files(mlspec_home: Path) -> None:
    store = open_store("file://models")
    for attempt in range(3):
        store.write_bytes("digits/1/model.onnx", f"model {attempt}".encode())
    folder = mlspec_home / "models" / "digits" / "1"
    assert sorted(p.name for p in folder.iterdir()) == ["model.onnx"]
    assert (folder / "model.onnx").read_bytes() == b"model 2"


def test_a_failed_write_keeps_the_old_file_and_no_temp(
    mlspec_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store("file://models")
    store.write_bytes("digits/1/model.onnx", b"old")

    def failing_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        store.write_bytes("digits/1/model.onnx", b"new")
    folder = mlspec_home / "models" / "digits" / "1"
    assert sorted(p.name for p in folder.iterdir()) == ["model.onnx"]
    assert (folder / "model.onnx").read_bytes() == b"old"


def test_list_children_hides_temp_files_but_not_the_claim(mlspec_home: Path) -> None:
    store = open_store("file://models")
    store.write_bytes("digits/1/model.onnx", b"m")
    store.write_json(f"digits/1/{CLAIM}", {"run_id": "r"})
    (mlspec_home / "models" / "digits" / "1" / ".model.onnx.tmp123").write_bytes(b"half")
    assert store.list_children("digits/1") == sorted([CLAIM, "model.onnx"])
    assert store.list_children("digits/1/model.onnx") == []  # a file has no children


def test_published_version_on_disk_has_the_serving_layout(mlspec_home: Path) -> None:
    store = open_store("file://models")
    model = b"onnx" * 64
    published = store.publish_version("digits", {"model.onnx": model}, run_id="scheduled__2024-01-01")
    folder = mlspec_home / "models" / "digits" / "1"
    assert published.uri == folder.resolve().as_uri()
    assert sorted(p.name for p in folder.iterdir()) == sorted([CLAIM, MANIFEST, "model.onnx"])
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["files"] == {"model.onnx": hashlib.sha256(model).hexdigest()}
    assert json.loads((folder / CLAIM).read_text()) == {"run_id": "scheduled__2024-01-01"}


def test_a_version_folder_without_a_manifest_is_not_listed(mlspec_home: Path) -> None:
    store = open_store("file://models")
    store.publish_version("digits", {"model.onnx": b"1"}, run_id="run-a")
    # A half-copied version, e.g. someone copying folders by hand.
    (mlspec_home / "models" / "digits" / "2").mkdir()
    (mlspec_home / "models" / "digits" / "2" / "model.onnx").write_bytes(b"2")
    assert store.list_versions("digits") == [1]
    # Its number is still taken: the next publish does not mix files into it.
    assert store.publish_version("digits", {"model.onnx": b"3"}, run_id="run-b").version == 3


def test_stores_at_different_uris_do_not_see_each_other(mlspec_home: Path, tmp_path: Path) -> None:
    a = open_store("file://a")
    b = open_store((tmp_path / "b").as_uri())
    a.publish_version("digits", {"model.onnx": b"a"}, run_id="r")
    assert b.list_versions("digits") == []
    assert b.publish_version("digits", {"model.onnx": b"b"}, run_id="r").version == 1

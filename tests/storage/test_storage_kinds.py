"""The stores are one table (mlspec.storage.STORE_KINDS): open_store, lint and the model server read it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlspec.errors import StoreError
from mlspec.server.sources import READERS
from mlspec.spec.schema import load_schema
from mlspec.storage import STORE_KINDS, open_store, schemes_text, store_kind
from mlspec.storage.file import FileStore
from mlspec.storage.s3 import S3Store


def test_the_table_has_a_kind_per_scheme_that_the_schema_documents():
    description = load_schema()["properties"]["storage"]["properties"]["uri"]["description"]
    assert list(STORE_KINDS) == ["file", "s3"]
    for scheme, kind in STORE_KINDS.items():
        assert kind.scheme == scheme and kind.prefix == f"{scheme}://"
        assert kind.prefix in description, scheme
    assert schemes_text() == "file:// or s3://"


def test_every_store_kind_is_readable_by_the_model_server():
    assert list(READERS) == list(STORE_KINDS)


def test_store_kind_by_scheme():
    assert store_kind("file://models") is STORE_KINDS["file"]
    assert store_kind("s3://bucket/prefix") is STORE_KINDS["s3"]
    assert store_kind("gs://bucket") is None
    assert store_kind("/plain/path") is None
    assert store_kind("s3://[bucket") is None  # urlparse refuses it: no kind, no exception


def test_open_store_opens_each_kind(mlspec_home: Path):
    local = open_store("file://models")
    assert isinstance(local, FileStore) and local.root_uri == (mlspec_home / "models").as_uri()
    remote = open_store("s3://bucket/prefix")
    assert isinstance(remote, S3Store) and remote.connection_id == "aws_default"
    assert open_store("s3://bucket/prefix", "minio").connection_id == "minio"
    with pytest.raises(StoreError, match=r"unsupported storage URI scheme 'gs' .*; use file:// or s3://"):
        open_store("gs://bucket/prefix")


def test_a_local_kind_says_where_its_uri_is(mlspec_home: Path):
    assert STORE_KINDS["file"].local_path("file://models", lambda: mlspec_home) == mlspec_home / "models"
    assert STORE_KINDS["s3"].local_path is None
    assert STORE_KINDS["file"].runs_here and not STORE_KINDS["s3"].runs_here

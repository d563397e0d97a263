"""S3Store against a real S3 API (moto server on 127.0.0.1) through an Airflow connection."""

from __future__ import annotations

import base64
import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlspec.errors import StoreError
from mlspec.storage import ModelStore, open_store
from mlspec.storage.s3 import MIN_PART_SIZE, S3Store, parse_s3_uri, read_uri_bytes

MIB = 1024 * 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def count_calls(store: S3Store, *operations: str) -> dict[str, int]:
    """Count the S3 API calls the store's own boto3 client makes from now on."""
    counts = dict.fromkeys(operations, 0)

    def make_counter(operation: str) -> Callable[..., None]:
        def counter(**_: Any) -> None:
            counts[operation] += 1

        return counter

    for operation in operations:
        store.client.meta.events.register(f"before-call.s3.{operation}", make_counter(operation))
    return counts


def all_keys(client: Any, bucket: str) -> list[str]:
    return sorted(obj["Key"] for obj in client.list_objects_v2(Bucket=bucket).get("Contents", []))


# -- URIs and construction ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://models", ("models", "")),
        ("s3://models/", ("models", "")),
        ("s3://models/team/prod", ("models", "team/prod")),
        ("s3://models/team//prod/", ("models", "team/prod")),
        ("s3://data/x?y#z.csv", ("data", "x?y#z.csv")),  # taken literally: these are valid key characters
    ],
)
def test_parse_s3_uri(uri: str, expected: tuple[str, str]) -> None:
    assert parse_s3_uri(uri) == expected


@pytest.mark.parametrize("uri", ["file://models", "s3:/models", "s3://", "s3:///prefix", "models/x"])
def test_parse_s3_uri_refuses_what_is_not_an_s3_uri(uri: str) -> None:
    with pytest.raises(StoreError, match="s3://"):
        parse_s3_uri(uri)


def test_parse_s3_uri_refuses_dotdot() -> None:
    with pytest.raises(StoreError, match="escapes its prefix"):
        parse_s3_uri("s3://models/team/../../other")


def test_construction_does_no_io(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_NOWHERE", raising=False)
    store = S3Store("s3://some-bucket/prefix/", "nowhere")
    assert store.root_uri == "s3://some-bucket/prefix"
    assert (store.bucket, store.prefix, store.connection_id) == ("some-bucket", "prefix", "nowhere")
    assert "hook" not in store.__dict__ and "client" not in store.__dict__
    assert store.uri_for("digits/1") == "s3://some-bucket/prefix/digits/1"


def test_part_size_below_the_s3_minimum_is_refused() -> None:
    with pytest.raises(StoreError, match="at least"):
        S3Store("s3://b-bucket", "c", part_size=MIN_PART_SIZE - 1)


def test_open_store_gives_an_s3_store_with_the_connection() -> None:
    store = open_store("s3://models-bucket/prod", "minio")
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix, store.connection_id) == ("models-bucket", "prod", "minio")
    assert open_store("s3://models-bucket").connection_id == "aws_default"  # type: ignore[attr-defined]


def test_the_client_comes_from_the_airflow_connection(
    s3_store: S3Store, s3_conn: str, moto_endpoint: str
) -> None:
    assert s3_store.hook.aws_conn_id == s3_conn
    assert s3_store.client.meta.endpoint_url == moto_endpoint
    assert s3_store.client.meta.region_name == "us-east-1"


# -- layout in the bucket -----------------------------------------------------------------------


def test_keys_live_under_the_prefix(s3_store: S3Store, s3_client: Any, bucket: str) -> None:
    s3_client.put_object(Bucket=bucket, Key="elsewhere/x", Body=b"not ours")
    s3_store.write_bytes("digits/runs/r1/model.keras", b"k")
    assert all_keys(s3_client, bucket) == ["elsewhere/x", "models/digits/runs/r1/model.keras"]
    assert s3_store.list_children("") == ["digits"]
    assert not s3_store.exists("elsewhere/x")


def test_a_store_at_the_bucket_root(s3_conn: str, s3_client: Any, bucket: str) -> None:
    store = S3Store(f"s3://{bucket}", s3_conn)
    store.write_bytes("digits/1/model.onnx", b"m")
    assert all_keys(s3_client, bucket) == ["digits/1/model.onnx"]
    assert store.list_children("") == ["digits"]
    assert store.uri_for("digits/1") == f"s3://{bucket}/digits/1"


def test_list_children_follows_pagination(s3_conn: str, bucket: str) -> None:
    store = S3Store(f"s3://{bucket}/models", s3_conn, list_page_size=2)
    for name in ("a", "b", "c", "d", "e"):
        store.write_bytes(f"digits/{name}/model.onnx", b"x")
    store.write_bytes("digits/z.json", b"{}")
    calls = count_calls(store, "ListObjectsV2")
    assert store.list_children("digits") == ["a", "b", "c", "d", "e", "z.json"]
    assert calls["ListObjectsV2"] == 3  # 6 children, 2 per page


def test_a_folder_marker_object_is_not_a_child(s3_store: S3Store, s3_client: Any, bucket: str) -> None:
    s3_client.put_object(Bucket=bucket, Key="models/digits/", Body=b"")
    s3_store.write_bytes("digits/1/model.onnx", b"m")
    assert s3_store.list_children("digits") == ["1"]


# -- checksums ----------------------------------------------------------------------------------


def test_uploads_carry_sha256_metadata_and_a_stored_checksum(
    s3_store: S3Store, s3_client: Any, bucket: str
) -> None:
    data = b"onnx" * 1000
    s3_store.write_bytes("digits/1/model.onnx", data)
    head = s3_client.head_object(Bucket=bucket, Key="models/digits/1/model.onnx", ChecksumMode="ENABLED")
    assert head["Metadata"]["sha256"] == sha(data)
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-meta-sha256"] == sha(data)
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert head["ETag"].strip('"') == hashlib.md5(data).hexdigest()  # one single-part PUT


def test_object_sha256_is_one_head_request(s3_store: S3Store) -> None:
    data = os.urandom(4096)
    s3_store.write_bytes("digits/1/model.onnx", data)
    calls = count_calls(s3_store, "HeadObject", "GetObject")
    assert s3_store.object_sha256("digits/1/model.onnx") == sha(data)
    assert calls == {"HeadObject": 1, "GetObject": 0}


def test_object_sha256_reads_objects_written_by_others(
    s3_store: S3Store, s3_client: Any, bucket: str
) -> None:
    data = b"uploaded by another tool"
    s3_client.put_object(Bucket=bucket, Key="models/digits/1/model.onnx", Body=data)
    calls = count_calls(s3_store, "HeadObject", "GetObject")
    assert s3_store.object_sha256("digits/1/model.onnx") == sha(data)
    assert calls == {"HeadObject": 1, "GetObject": 1}
    assert s3_store.object_sha256("digits/1/absent.onnx") is None


def test_a_stored_object_that_differs_from_the_bytes_sent_is_detected(
    s3_store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Corrupt the bytes on their way in (the metadata still claims the original sha256)."""
    client = s3_store.client
    upload = client.upload_fileobj

    def corrupting_upload(fileobj: Any, bucket: str, key: str, **kwargs: Any) -> None:
        upload(io.BytesIO(fileobj.read() + b"!"), bucket, key, **kwargs)

    monkeypatch.setattr(client, "upload_fileobj", corrupting_upload)
    expected = "checksum mismatch after writing s3://.*/models/digits/1/model.onnx"
    with pytest.raises(StoreError, match=expected):
        s3_store.write_bytes("digits/1/model.onnx", b"the real model")


def test_large_files_use_a_verified_multipart_upload(s3_conn: str, s3_client: Any, bucket: str) -> None:
    store = S3Store(
        f"s3://{bucket}/models", s3_conn, multipart_threshold=MIN_PART_SIZE, part_size=MIN_PART_SIZE
    )
    data = os.urandom(MIN_PART_SIZE + MIB + 7)
    calls = count_calls(
        store, "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "PutObject", "GetObject"
    )
    published = store.publish_version("big", {"model.onnx": data, "labels.json": b"[]"}, run_id="run-a")

    # The model went up in two parts; the small labels file and the JSON files in one PUT each.
    assert calls["CreateMultipartUpload"] == 1
    assert calls["UploadPart"] == 2
    assert calls["CompleteMultipartUpload"] == 1
    assert calls["PutObject"] == 3  # claim, labels.json, manifest
    assert calls["GetObject"] == 0  # verified from the stored checksum, not by downloading it again
    head = s3_client.head_object(Bucket=bucket, Key="models/big/1/model.onnx", ChecksumMode="ENABLED")
    assert head["ETag"].strip('"').endswith("-2")
    parts = [data[:MIN_PART_SIZE], data[MIN_PART_SIZE:]]
    composite = base64.b64encode(hashlib.sha256(b"".join(hashlib.sha256(p).digest() for p in parts)).digest())
    assert head["ChecksumSHA256"].split("-")[0] == composite.decode()
    assert head["Metadata"]["sha256"] == sha(data)
    assert published.files["model.onnx"] == sha(data)
    assert store.read_bytes("big/1/model.onnx") == data


def test_below_the_threshold_is_a_single_put(s3_conn: str, bucket: str) -> None:
    store = S3Store(
        f"s3://{bucket}/models", s3_conn, multipart_threshold=MIN_PART_SIZE, part_size=MIN_PART_SIZE
    )
    calls = count_calls(store, "CreateMultipartUpload", "PutObject")
    store.write_bytes("m/model.onnx", os.urandom(MIN_PART_SIZE - 1))
    assert calls == {"CreateMultipartUpload": 0, "PutObject": 1}


# -- publishing through S3 ----------------------------------------------------------------------


def test_publish_version_layout_in_the_bucket(s3_store: S3Store, s3_client: Any, bucket: str) -> None:
    model = os.urandom(2048)
    published = s3_store.publish_version("digits", {"model.onnx": model}, run_id="manual__2024-01-01")
    assert published.uri == f"s3://{bucket}/models/digits/1"
    assert all_keys(s3_client, bucket) == [
        "models/digits/1/.mlspec-claim.json",
        "models/digits/1/manifest.json",
        "models/digits/1/model.onnx",
    ]
    body = s3_client.get_object(Bucket=bucket, Key="models/digits/1/model.onnx")["Body"].read()
    assert body == model


def test_a_completed_publish_is_not_uploaded_again(s3_store: S3Store, s3_client: Any, bucket: str) -> None:
    files = {"model.onnx": os.urandom(1024), "labels.json": b"[1, 2]"}
    s3_store.publish_version("digits", files, run_id="run-a")
    keys_before = all_keys(s3_client, bucket)
    modified_before = {k: s3_client.head_object(Bucket=bucket, Key=k)["LastModified"] for k in keys_before}

    calls = count_calls(s3_store, "PutObject", "CreateMultipartUpload")
    again = s3_store.publish_version("digits", files, run_id="run-a")
    assert (again.version, again.reused) == (1, True)
    assert calls == {"PutObject": 0, "CreateMultipartUpload": 0}
    assert all_keys(s3_client, bucket) == keys_before
    modified_after = {k: s3_client.head_object(Bucket=bucket, Key=k)["LastModified"] for k in keys_before}
    assert modified_after == modified_before


def test_an_interrupted_publish_resumes_without_reuploading_the_model(
    s3_store: S3Store, s3_client: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = os.urandom(4096)
    original = s3_store.write_bytes

    def crash_before_manifest(key: str, data: bytes) -> str:
        if key.endswith("manifest.json"):
            raise StoreError("worker died")
        return original(key, data)

    with monkeypatch.context() as patch:
        patch.setattr(s3_store, "write_bytes", crash_before_manifest)
        with pytest.raises(StoreError, match="worker died"):
            s3_store.publish_version("digits", {"model.onnx": model}, run_id="run-a")
    assert all_keys(s3_client, bucket) == ["models/digits/1/.mlspec-claim.json", "models/digits/1/model.onnx"]
    assert s3_store.list_versions("digits") == []

    calls = count_calls(s3_store, "PutObject")
    done = s3_store.publish_version("digits", {"model.onnx": model}, run_id="run-a")
    assert (done.version, done.reused) == (1, True)
    assert calls["PutObject"] == 1  # the manifest only
    assert s3_store.list_versions("digits") == [1]


# -- errors -------------------------------------------------------------------------------------


def test_a_missing_bucket_is_a_clear_error(s3_conn: str) -> None:
    store = S3Store("s3://no-such-bucket-mlspec/models", s3_conn)
    actions: list[Callable[[], object]] = [
        lambda: store.read_bytes("digits/1/model.onnx"),
        lambda: store.write_bytes("digits/1/model.onnx", b"m"),
        lambda: store.exists("digits/1/model.onnx"),
        lambda: store.list_children("digits"),
        lambda: store.object_sha256("digits/1/model.onnx"),
        lambda: store.list_versions("digits"),
        lambda: store.publish_version("digits", {"model.onnx": b"m"}, run_id="r"),
    ]
    for action in actions:
        with pytest.raises(StoreError) as info:
            action()
        message = str(info.value)
        assert "s3://no-such-bucket-mlspec/models" in message
        assert "bucket 'no-such-bucket-mlspec' does not exist" in message
        assert repr(s3_conn) in message


def test_access_denied_names_the_connection(s3_store: S3Store, s3_conn: str) -> None:
    from botocore.stub import Stubber

    with Stubber(s3_store.client) as stubber:
        stubber.add_client_error("get_object", service_error_code="AccessDenied", http_status_code=403)
        stubber.add_client_error(
            "list_objects_v2", service_error_code="InvalidAccessKeyId", http_status_code=403
        )
        with pytest.raises(StoreError) as read_info:
            s3_store.read_bytes("digits/1/model.onnx")
        with pytest.raises(StoreError) as list_info:
            s3_store.list_children("digits")
    assert "reading s3://" in str(read_info.value) and "/models/digits/1/model.onnx" in str(read_info.value)
    for info in (read_info, list_info):
        assert "access denied" in str(info.value)
        assert f"Airflow connection {s3_conn!r}" in str(info.value)


def test_an_unreachable_endpoint_names_the_connection(
    aws_connection: Callable[..., str], closed_port: int, mlspec_home: Path
) -> None:
    closed = f"http://127.0.0.1:{closed_port}"
    conn_id = aws_connection(
        "down_s3", closed, config_kwargs={"retries": {"max_attempts": 1}, "connect_timeout": 2}
    )
    store = S3Store("s3://models-bucket", conn_id)
    with pytest.raises(StoreError) as info:
        store.read_bytes("digits/1/model.onnx")
    assert "could not reach the S3 endpoint" in str(info.value)
    assert closed in str(info.value)
    assert "'down_s3'" in str(info.value)


# -- data sources -------------------------------------------------------------------------------


def test_read_uri_bytes(s3_conn: str, s3_client: Any, bucket: str) -> None:
    s3_client.put_object(Bucket=bucket, Key="datasets/digits.npz", Body=b"npz-bytes")
    assert read_uri_bytes(f"s3://{bucket}/datasets/digits.npz", s3_conn) == b"npz-bytes"
    with pytest.raises(StoreError, match=f"s3://{bucket}/datasets/absent.csv does not exist"):
        read_uri_bytes(f"s3://{bucket}/datasets/absent.csv", s3_conn)
    with pytest.raises(StoreError, match="names a bucket, not an object"):
        read_uri_bytes(f"s3://{bucket}/", s3_conn)


def test_store_roundtrip_through_open_store(s3_conn: str, bucket: str) -> None:
    store: ModelStore = open_store(f"s3://{bucket}/team", s3_conn)
    store.write_bytes("a.txt", b"hello")
    assert store.read_bytes("a.txt") == b"hello"

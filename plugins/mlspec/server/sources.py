"""Read the files of a published model version folder (`file://` or `s3://`) for the model server.

The server reads storage itself instead of going through `mlspec.storage.open_store`: it runs
outside Airflow, so for `s3://` it uses boto3's standard environment (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL for MinIO) rather than an Airflow
connection.
"""

from __future__ import annotations

import logging
from urllib.parse import urlparse

from mlspec.errors import StoreError

log = logging.getLogger(__name__)


def read_version_file(version_uri: str, file_name: str) -> bytes:
    """The bytes of `file_name` in the version folder `version_uri`; StoreError if unreadable."""
    scheme = urlparse(version_uri).scheme
    if scheme == "file":
        return _read_file(version_uri, file_name)
    if scheme == "s3":
        return _read_s3(version_uri, file_name)
    raise StoreError(f"unsupported storage URI scheme {scheme!r} in {version_uri!r}; use file:// or s3://")


def _read_file(version_uri: str, file_name: str) -> bytes:
    from mlspec.storage import resolve_file_uri

    path = resolve_file_uri(version_uri) / file_name
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise StoreError(f"{version_uri.rstrip('/')}/{file_name} does not exist") from None
    except OSError as exc:
        raise StoreError(f"cannot read {version_uri.rstrip('/')}/{file_name}: {exc}") from None


def _read_s3(version_uri: str, file_name: str) -> bytes:
    import boto3
    import botocore.exceptions

    parsed = urlparse(version_uri)
    bucket = parsed.netloc
    key = "/".join(part for part in (parsed.path.strip("/"), file_name) if part)
    uri = f"s3://{bucket}/{key}"
    if not bucket:
        raise StoreError(f"no bucket in {version_uri!r}; expected s3://bucket/prefix/<name>/<version>")
    try:
        return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404", "NoSuchBucket"):
            raise StoreError(f"{uri} does not exist") from None
        raise StoreError(f"cannot read {uri}: {exc}") from None
    except botocore.exceptions.BotoCoreError as exc:
        # No credentials, endpoint unreachable, ...: say which environment boto3 reads.
        raise StoreError(
            f"cannot read {uri}: {exc}; the server reads S3 with boto3's standard environment "
            "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL for MinIO)"
        ) from None

"""`s3://<bucket>/<key>`: a data file in S3 (or MinIO), read through the Airflow connection data.connection."""

from __future__ import annotations

from mlspec.sources.kind import SourceKind, SourceRead
from mlspec.storage.s3 import DEFAULT_CONNECTION, read_uri_bytes


def read_s3_object(uri: str, read: SourceRead) -> bytes:
    return read_uri_bytes(uri, read.connection or DEFAULT_CONNECTION, max_bytes=read.max_bytes)


KIND = SourceKind(
    scheme="s3",
    prefix="s3://",
    title="a file in S3 (or MinIO)",
    next_step=(
        "check data.source in the spec and its Airflow connection (data.connection, default "
        f"{DEFAULT_CONNECTION}), then clear this task"
    ),
    runs_here=False,
    read_bytes=read_s3_object,
)

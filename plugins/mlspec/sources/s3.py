"""`s3://<bucket>/<key>`: a data file in S3 (or MinIO), read through the Airflow connection data.connection; or
every file under a prefix (`s3://bucket/cars/`) or matching a glob (`s3://bucket/cars/*.parquet`), in name
order. A file that is not there or over the cap is a DataSourceError (not retried); the S3 API's own failures
(timeouts, refusals) stay StoreErrors, which prepare_data retries."""

from __future__ import annotations

import re

from mlspec.errors import DataSourceError, StoreError
from mlspec.sources.file import MAX_SOURCE_FILES, WILDCARDS, is_pattern, skipped
from mlspec.sources.kind import SourceKind, SourceRead
from mlspec.storage.s3 import DEFAULT_CONNECTION, ObjectTooLarge, S3Store, parse_s3_uri


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A key glob: `*` and `?` stay within one name, `**/` spans any folders, `[...]` is a character class."""
    out, index = [], 0
    while index < len(pattern):
        char, end = pattern[index], pattern.find("]", index + 2)
        if pattern.startswith("**/", index):
            out.append("(?:[^/]*/)*")
            index += 3
            continue
        if char == "[" and end > 0:
            body = pattern[index + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
            index = end + 1
            continue
        out.append({"*": "[^/]*", "?": "[^/]"}.get(char) or re.escape(char))
        index += 1
    return re.compile("".join(out) + r"\Z", re.S)


def _store(uri: str, read: SourceRead) -> tuple[S3Store, str]:
    """The bucket's store and the key as written (parse_s3_uri checks it, and drops a trailing '/')."""
    bucket, _key = parse_s3_uri(uri)
    return S3Store(f"s3://{bucket}", read.connection or DEFAULT_CONNECTION), uri[len("s3://") :].partition("/")[2]


def _objects(store: S3Store, prefix: str, most: int = MAX_SOURCE_FILES + 1) -> list[dict]:
    """The first `most` objects under `prefix` (Key, Size) in key order; StoreError when S3 fails."""
    from botocore.exceptions import BotoCoreError, ClientError

    found: list[dict] = []
    try:
        pages = store.client.get_paginator("list_objects_v2").paginate(
            Bucket=store.bucket, Prefix=prefix, PaginationConfig={"MaxItems": most}
        )
        for page in pages:
            found.extend(page.get("Contents", []))
    except (ClientError, BotoCoreError) as exc:
        raise StoreError(
            f"listing s3://{store.bucket}/{prefix} failed ({exc}); check the Airflow connection "
            f"{store.connection_id!r} (data.connection)"
        ) from exc
    return found


def read_s3_object(uri: str, read: SourceRead) -> bytes:
    """One object, refused (DataSourceError) when it does not exist or is over the cap before its body is read."""
    return read_s3_object_identified(uri, read)[0]


def read_s3_object_identified(uri: str, read: SourceRead) -> tuple[bytes, dict[str, str | None]]:
    """read_s3_object's bytes with the ETag (quotes dropped) and VersionId (None where the bucket keeps no
    versions) that the same GET answered: what the lineage records beside the sha256 of those bytes."""
    store, key = _store(uri, read)
    if not key:
        raise DataSourceError(f"{uri} names a bucket, not an object; give the full key of the data file")
    listed = [obj for obj in _objects(store, key, most=1) if obj["Key"] == key]  # the key sorts first
    if not listed:
        raise DataSourceError(
            f"{uri} does not exist (bucket {store.bucket!r}, Airflow connection {store.connection_id!r}); for every "
            "file under a prefix end data.source with '/'"
        )
    if int(listed[0].get("Size") or 0) > read.max_bytes:
        raise DataSourceError(f"{uri} is {listed[0]['Size']} bytes; data sources are limited to {read.max_bytes} bytes")
    try:
        return store.read_object(key, read.max_bytes)  # refused before its body is read if replaced since the listing
    except ObjectTooLarge as exc:
        raise DataSourceError(str(exc)) from None


def list_s3_files(uri: str, read: SourceRead) -> list[tuple[str, str]]:
    """The objects under a prefix (`s3://bucket/cars/`) or matching a glob, in name order, each named below the
    prefix or the glob's fixed part; one object is itself. Hidden and `_` names are skipped."""
    store, key = _store(uri, read)
    if not (key.endswith("/") or is_pattern(key)):
        return [(uri, key.rsplit("/", 1)[-1])]
    fixed = key[: min(key.find(c) for c in WILDCARDS if c in key)] if is_pattern(key) else key
    root = fixed[: fixed.rfind("/") + 1]
    match = glob_regex(key[len(root) :]) if is_pattern(key) else None
    files = []
    for obj in _objects(store, root):
        name = obj["Key"][len(root) :]
        if name and not name.endswith("/") and not skipped(name) and (match is None or match.match(name)):
            files.append((f"s3://{store.bucket}/{obj['Key']}", name))
    if len(files) > MAX_SOURCE_FILES:
        raise DataSourceError(f"{uri} names more than {MAX_SOURCE_FILES:,} files; name fewer (a narrower prefix or glob)")
    if not files:
        raise DataSourceError(
            f"no data files match {uri} (bucket {store.bucket!r}, Airflow connection {store.connection_id!r})"
        )
    return sorted(files, key=lambda file: file[1])


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
    list_files=list_s3_files,
    read_identified=read_s3_object_identified,
)

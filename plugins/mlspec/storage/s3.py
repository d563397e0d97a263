"""`s3://` object store (AWS S3, MinIO, any S3 API) through an Airflow AWS connection.

Credentials, region and `endpoint_url` (MinIO) come from the Airflow connection named by the
spec's `storage.connection`; the spec itself only holds `s3://bucket/prefix`. boto3 and the amazon
provider are imported on first use, never when a DAG file is parsed.

What a caller can rely on:
* `write_bytes` is atomic: an S3 PUT (or a completed multipart upload) replaces the whole object.
  Each upload sends a SHA256 checksum that S3 checks on arrival, and the object's stored checksum
  is compared with the bytes we meant to write before `write_bytes` returns.
* every object carries its sha256 as user metadata (`x-amz-meta-sha256`), so `object_sha256`
  costs one HEAD request instead of a download; publishing uses it to skip unchanged files.
* every failure is a `StoreError` naming the s3:// URI and, where it helps, the bucket and the
  Airflow connection to check.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import re
from functools import cached_property
from typing import TYPE_CHECKING, Any

from mlspec.errors import StoreError
from mlspec.storage.base import ModelStore, safe_join, sha256_hex
from mlspec.storage.kind import Quote, StoreKind

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

log = logging.getLogger(__name__)

MIB = 1024 * 1024
# S3 refuses parts smaller than 5 MiB (except the last one).
MIN_PART_SIZE = 5 * MIB
DEFAULT_MULTIPART_THRESHOLD = 64 * MIB
DEFAULT_PART_SIZE = 16 * MIB
SHA256_METADATA = "sha256"  # sent as the x-amz-meta-sha256 header
DEFAULT_CONNECTION = "aws_default"  # when the spec names no storage.connection or data.connection

_MULTIPART_SUFFIX = re.compile(r"-(\d+)\Z")
S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_DENIED = {
    "403",
    "AccessDenied",
    "AllAccessDisabled",
    "Forbidden",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
}


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split `s3://bucket/some/prefix` into `("bucket", "some/prefix")`; the prefix may be empty.

    The URI is taken literally (no query or fragment parsing: `?` and `#` are valid in S3 keys);
    a `..` segment is refused so a key can never climb out of its prefix.
    """
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise StoreError(f"not an s3:// URI: {uri[:80]!r}; expected s3://bucket/prefix")
    if _CONTROL.search(uri):
        raise StoreError(f"s3:// URI with a control character: {uri[:80]!r}")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise StoreError(f"s3:// URI without a bucket: {uri[:80]!r}; expected s3://bucket/prefix")
    return bucket, safe_join(prefix)


def read_uri_bytes(uri: str, connection_id: str | None = None, *, max_bytes: int | None = None) -> bytes:
    """Bytes of one object named by a full s3:// URI (a spec's `data.source: s3://...`).

    With max_bytes, an object larger than that is refused before its body is read.
    """
    bucket, key = parse_s3_uri(uri)
    if not key:
        raise StoreError(f"{uri} names a bucket, not an object; give the full key of the data file")
    store = S3Store(f"s3://{bucket}", connection_id or DEFAULT_CONNECTION)
    if max_bytes is not None:
        head = store._head(key)
        if head is None:
            raise StoreError(f"{uri} does not exist (bucket {bucket!r}, Airflow connection {store.connection_id!r})")
        size = int(head.get("ContentLength") or 0)
        if size > max_bytes:
            raise StoreError(f"{uri} is {size} bytes; data sources are limited to {max_bytes} bytes")
    data = store.read_bytes(key)
    if max_bytes is not None and len(data) > max_bytes:  # replaced between the HEAD and the GET
        raise StoreError(f"{uri} is {len(data)} bytes; data sources are limited to {max_bytes} bytes")
    return data


def _b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


class ObjectTooLarge(StoreError):
    """An object the GET says is over the size the caller reads (read_object's max_bytes)."""


class S3Store(ModelStore):
    """A prefix `s3://bucket/prefix` read and written through Airflow connection `connection_id`.

    `multipart_threshold` and `part_size` decide when and how boto3 splits an upload into parts;
    they are arguments so tests (and users with slow links) can change them.
    """

    def __init__(
        self,
        uri: str,
        connection_id: str = DEFAULT_CONNECTION,
        *,
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
        part_size: int = DEFAULT_PART_SIZE,
        list_page_size: int = 1000,
    ) -> None:
        bucket, prefix = parse_s3_uri(uri)
        super().__init__(f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}")
        if part_size < MIN_PART_SIZE:
            raise StoreError(f"S3 part size must be at least {MIN_PART_SIZE} bytes (5 MiB), got {part_size}")
        if multipart_threshold < 1:
            raise StoreError(f"multipart threshold must be positive, got {multipart_threshold}")
        self.bucket = bucket
        self.prefix = prefix
        self.connection_id = connection_id
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.list_page_size = list_page_size

    def __repr__(self) -> str:
        return f"S3Store({self.root_uri!r}, connection_id={self.connection_id!r})"

    # -- clients, created on first use ------------------------------------------------------------
    @cached_property
    def hook(self) -> S3Hook:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=self.connection_id)

    @cached_property
    def client(self) -> Any:
        try:
            return self.hook.get_conn()
        except Exception as exc:  # connection lookup, bad extra, unknown region...
            raise StoreError(
                f"could not open an S3 client for {self.root_uri} with Airflow connection "
                f"{self.connection_id!r}: {exc}. Check that the connection exists and is of type aws."
            ) from exc

    @cached_property
    def _transfer_config(self) -> Any:
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(
            multipart_threshold=self.multipart_threshold, multipart_chunksize=self.part_size
        )

    # -- helpers ----------------------------------------------------------------------------------
    def _object_key(self, key: str) -> str:
        key = safe_join(key)
        return safe_join(self.prefix, key) if key else self.prefix

    def _endpoint(self) -> str:
        try:
            return str(self.client.meta.endpoint_url)
        except Exception:  # the client itself may be what failed
            return "(unknown endpoint)"

    def _error(self, exc: Exception, action: str, key: str) -> StoreError:
        """Turn a botocore error into a StoreError saying what failed and what to check."""
        from botocore.exceptions import (
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        # s3transfer wraps client errors raised inside its worker threads.
        known = (ClientError, NoCredentialsError, PartialCredentialsError, EndpointConnectionError)
        cause: BaseException = exc
        for _ in range(5):
            if isinstance(cause, known):
                break
            cause = cause.__cause__ or cause.__context__ or cause
        uri = self.uri_for(key)
        conn = self.connection_id
        if isinstance(cause, NoCredentialsError | PartialCredentialsError):
            hint = f"no usable AWS credentials; set login/password (or a role) on Airflow connection {conn!r}"
        elif isinstance(cause, EndpointConnectionError):
            hint = (
                f"could not reach the S3 endpoint {self._endpoint()}; check endpoint_url and region "
                f"in the extra of Airflow connection {conn!r}"
            )
        elif isinstance(cause, ClientError):
            code = str(cause.response.get("Error", {}).get("Code", ""))
            message = cause.response.get("Error", {}).get("Message", "")
            if code == "NoSuchBucket":
                hint = self._missing_bucket_hint()
            elif code in _DENIED:
                hint = (
                    f"access denied ({code}); check the credentials and the bucket policy for Airflow "
                    f"connection {conn!r} on bucket {self.bucket!r}"
                )
            elif code in _NOT_FOUND:
                hint = "the object does not exist"
            else:
                hint = f"S3 answered {code or 'an error'}: {message or cause}"
        else:
            hint = str(exc) or type(exc).__name__
        return StoreError(f"{action} {uri} failed: {hint}")

    @staticmethod
    def _code(exc: Exception) -> str:
        response = getattr(exc, "response", None) or {}
        return str(response.get("Error", {}).get("Code", ""))

    def _head(self, key: str, *, checksums: bool = False, check_bucket: bool = True) -> dict | None:
        """HEAD the object; None when it does not exist (a missing bucket raises when check_bucket)."""
        from botocore.exceptions import BotoCoreError, ClientError

        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._object_key(key)}
        if checksums:
            kwargs["ChecksumMode"] = "ENABLED"
        try:
            return self.client.head_object(**kwargs)
        except ClientError as exc:
            if self._code(exc) not in _NOT_FOUND:
                raise self._error(exc, "checking", key) from exc
        except BotoCoreError as exc:
            raise self._error(exc, "checking", key) from exc
        # HEAD answers have no body, so a missing bucket is a bare 404 too: ask once more to tell them apart.
        if check_bucket:
            self._raise_if_bucket_missing(key)
        return None

    def _raise_if_bucket_missing(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if self._code(exc) in _NOT_FOUND | {"NoSuchBucket"}:
                uri = self.uri_for(key)
                raise StoreError(f"checking {uri} failed: {self._missing_bucket_hint()}") from None
            if self._code(exc) not in _DENIED:
                raise self._error(exc, "checking", key) from exc
            # Some policies grant object access without HeadBucket: then the object is simply missing.
        except BotoCoreError as exc:
            raise self._error(exc, "checking", key) from exc

    def _missing_bucket_hint(self) -> str:
        return (
            f"bucket {self.bucket!r} does not exist at {self._endpoint()} (Airflow connection "
            f"{self.connection_id!r}); create it or fix storage.uri / the connection's endpoint_url"
        )

    # -- primitives -------------------------------------------------------------------------------
    def read_bytes(self, key: str) -> bytes:
        return self.read_object(key)[0]

    def read_object(self, key: str, max_bytes: int | None = None) -> tuple[bytes, dict[str, str | None]]:
        """An object's bytes and what the same GET answered of its identity: {"etag": the ETag without its
        quotes, "version_id": the VersionId}, each None where S3 sent none (a bucket that keeps no versions).
        ObjectTooLarge, before its body is read, when the GET says it is over `max_bytes` (an object replaced
        with a bigger one after it was listed)."""
        from botocore.exceptions import BotoCoreError, ClientError

        object_key = self._object_key(key)
        try:
            # ChecksumMode lets botocore check the downloaded bytes against the stored checksum.
            response = self.client.get_object(Bucket=self.bucket, Key=object_key, ChecksumMode="ENABLED")
            size = int(response.get("ContentLength") or 0)
            if max_bytes is not None and size > max_bytes:
                response["Body"].close()
                raise ObjectTooLarge(f"{self.uri_for(key)} is {size} bytes; data sources are limited to {max_bytes} bytes")
            data = response["Body"].read()
            version = response.get("VersionId")
            identity = {
                "etag": str(response.get("ETag") or "").strip('"') or None,
                "version_id": None if version in (None, "null") else str(version),
            }
            return data, identity
        except ClientError as exc:
            if self._code(exc) in _NOT_FOUND:
                raise StoreError(
                    f"{self.uri_for(key)} does not exist (bucket {self.bucket!r}, Airflow connection "
                    f"{self.connection_id!r})"
                ) from None
            raise self._error(exc, "reading", key) from exc
        except BotoCoreError as exc:
            raise self._error(exc, "reading", key) from exc

    def write_bytes(self, key: str, data: bytes) -> str:
        object_key = self._object_key(key)
        if not object_key:
            raise StoreError(f"refusing to write an object with an empty key under {self.root_uri}")
        digest = sha256_hex(data)
        multipart = len(data) >= self.multipart_threshold
        try:
            self.client.upload_fileobj(
                io.BytesIO(data),
                self.bucket,
                object_key,
                # SHA256 (per part for multipart uploads) is checked by S3 when the bytes arrive.
                ExtraArgs={"Metadata": {SHA256_METADATA: digest}, "ChecksumAlgorithm": "SHA256"},
                Config=self._transfer_config,
            )
        except Exception as exc:  # botocore errors, some wrapped by s3transfer's worker threads
            raise self._error(exc, "writing", key) from exc
        self._verify_upload(key, data, digest)
        # Large uploads are worth a line of their own; small ones are logged by their callers.
        log.log(
            logging.INFO if multipart else logging.DEBUG,
            "uploaded %s (%d bytes%s, sha256 %s, checksum verified)",
            self.uri_for(key),
            len(data),
            " in parts" if multipart else "",
            digest[:12],
        )
        return self.uri_for(key)

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """A conditional PUT (If-None-Match: *): S3 refuses it with 412 when the object exists."""
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._object_key(key),
                Body=data,
                IfNoneMatch="*",
                Metadata={SHA256_METADATA: sha256_hex(data)},
            )
        except Exception as exc:  # botocore ClientError
            if self._code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False
            raise self._error(exc, "writing", key) from exc
        return True

    def _upload_parts(self, data: bytes) -> list[bytes]:
        """The parts boto3 cut the upload into (one for a single PUT)."""
        if len(data) < self.multipart_threshold:
            return [data]
        from s3transfer.utils import ChunksizeAdjuster

        # The same adjustment s3transfer makes (at most 10,000 parts), so our parts are its parts.
        size = ChunksizeAdjuster().adjust_chunksize(self.part_size, len(data))
        return [data[start : start + size] for start in range(0, len(data), size)]

    def _expected_checksums(self, data: bytes) -> set[str]:
        """SHA256 checksums S3 may report: of the whole object, or the composite of its parts."""
        parts = self._upload_parts(data)
        expected = {_b64_sha256(data)}
        if len(parts) > 1:
            expected.add(_b64_sha256(b"".join(hashlib.sha256(part).digest() for part in parts)))
        return expected

    def _expected_etags(self, data: bytes) -> set[str]:
        """ETags an unencrypted (or SSE-S3) object has: the MD5, or MD5 of part MD5s plus "-<parts>"."""
        parts = self._upload_parts(data)
        expected = {hashlib.md5(data, usedforsecurity=False).hexdigest()}
        if len(parts) > 1:
            joined = b"".join(hashlib.md5(part, usedforsecurity=False).digest() for part in parts)
            expected.add(f"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(parts)}")
        return expected

    def _verify_upload(self, key: str, data: bytes, digest: str) -> None:
        """Compare what S3 stored with what we sent; read it back only when S3 cannot tell us."""
        head = self._head(key, checksums=True)
        uri = self.uri_for(key)
        if head is None:
            raise StoreError(f"{uri} is missing right after it was uploaded; is another writer deleting it?")
        stored_sha = (head.get("Metadata") or {}).get(SHA256_METADATA)
        if stored_sha != digest:
            raise StoreError(
                f"checksum mismatch after writing {uri}: metadata sha256 {stored_sha!r} != {digest}"
            )
        checksum = head.get("ChecksumSHA256")
        if checksum:
            # A composite checksum may carry a "-<parts>" suffix.
            if _MULTIPART_SUFFIX.sub("", checksum) in self._expected_checksums(data):
                return
            log.warning("stored checksum of %s is not one we can recompute; reading it back to check", uri)
        else:
            etag = str(head.get("ETag", "")).strip('"')
            if etag in self._expected_etags(data):
                return
            log.info("%s returned no SHA256 checksum; reading the object back to verify it", uri)
        if sha256_hex(self.read_bytes(key)) != digest:
            raise StoreError(
                f"checksum mismatch after writing {uri}: the stored bytes differ from those sent; "
                "retry the task"
            )

    def exists(self, key: str) -> bool:
        """True for an object, or for a 'folder' that has objects under it."""
        # A missing bucket is caught by the listing below, so the HEAD need not check it.
        if self._object_key(key) and self._head(key, check_bucket=False) is not None:
            return True
        # Two keys: one may be a "folder marker" object, which is not a child.
        return bool(self._list(key, max_keys=2))

    def _list(self, key: str, *, max_keys: int | None = None) -> list[str]:
        """Immediate children under key (one page of at most max_keys when given)."""
        from botocore.exceptions import BotoCoreError, ClientError

        object_key = self._object_key(key)
        folder = f"{object_key}/" if object_key else ""
        names: set[str] = set()
        try:
            if max_keys is not None:
                pages = [
                    self.client.list_objects_v2(
                        Bucket=self.bucket, Prefix=folder, Delimiter="/", MaxKeys=max_keys
                    )
                ]
            else:
                paginator = self.client.get_paginator("list_objects_v2")
                pages = paginator.paginate(
                    Bucket=self.bucket,
                    Prefix=folder,
                    Delimiter="/",
                    PaginationConfig={"PageSize": self.list_page_size},
                )
            for page in pages:
                for common in page.get("CommonPrefixes", []):
                    names.add(common["Prefix"][len(folder) :].rstrip("/"))
                for obj in page.get("Contents", []):
                    names.add(obj["Key"][len(folder) :])
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "listing", key) from exc
        names.discard("")  # a "folder marker" object some tools create
        return sorted(names)

    def list_children(self, key: str) -> list[str]:
        return self._list(key)

    def _objects_under(self, key: str) -> list[dict]:
        """Every object under the 'folder' key (all pages, no delimiter): dicts with Key and LastModified."""
        from botocore.exceptions import BotoCoreError, ClientError

        object_key = self._object_key(key)
        folder = f"{object_key}/" if object_key else ""
        found: list[dict] = []
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(
                Bucket=self.bucket, Prefix=folder, PaginationConfig={"PageSize": self.list_page_size}
            ):
                found.extend(page.get("Contents", []))
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "listing", key) from exc
        return found

    def modified_time(self, key: str) -> float | None:
        head = self._head(key, check_bucket=False)
        modified = head.get("LastModified") if head else None
        return modified.timestamp() if modified is not None else None

    def tree_times(self, key: str) -> dict[str, float]:
        object_key = self._object_key(key)
        folder = f"{object_key}/" if object_key else ""
        times: dict[str, float] = {}
        for obj in self._objects_under(key):
            child = obj["Key"][len(folder) :].split("/", 1)[0]
            if child:
                stamp = obj["LastModified"].timestamp()
                times[child] = max(times.get(child, stamp), stamp)
        return times

    def delete_tree(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        if not safe_join(key):
            raise StoreError(f"refusing to delete the whole store {self.root_uri}")
        keys = [obj["Key"] for obj in self._objects_under(key)]
        if self._object_key(key) and self._head(key, check_bucket=False) is not None:
            keys.append(self._object_key(key))
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            try:
                response = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            except (ClientError, BotoCoreError) as exc:
                raise self._error(exc, "deleting", key) from exc
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                raise StoreError(
                    f"deleting {self.uri_for(key)} failed for {len(errors)} object(s), e.g. {first.get('Key')}: "
                    f"{first.get('Code')} {first.get('Message', '')}".rstrip()
                )

    def object_sha256(self, key: str) -> str | None:
        """From the object's `x-amz-meta-sha256` (one HEAD); objects written by others are read and hashed."""
        head = self._head(key)
        if head is None:
            return None
        stored = (head.get("Metadata") or {}).get(SHA256_METADATA)
        if stored:
            return str(stored)
        return sha256_hex(self.read_bytes(key))


def open_s3_store(uri: str, connection_id: str | None = None) -> S3Store:
    """The store of an `s3://` storage.uri, reached through Airflow connection `connection_id`."""
    return S3Store(uri, connection_id or DEFAULT_CONNECTION)


def s3_uri_problem(uri: str, quote: Quote, names_an_object: bool) -> str | None:
    """s3://bucket/key: a valid bucket name, and a key when the URI names an object (a data file)."""
    if not uri.startswith("s3://"):
        return f"{quote(uri)} is not written s3://bucket/key"
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        return f"{quote(uri)} has no bucket; write s3://bucket/{'key' if names_an_object else 'prefix'}"
    if not S3_BUCKET.fullmatch(bucket) or ".." in bucket:
        return (
            f"bucket {quote(bucket)} in {quote(uri)} is not a valid S3 bucket name (3 to 63 lowercase letters, "
            "digits, '.' and '-', starting and ending with a letter or digit)"
        )
    if names_an_object and not key.strip("/"):
        return f"{quote(uri)} names a bucket, not an object; give the full key of the data file"
    return None


KIND = StoreKind(
    scheme="s3",
    title="an S3 (or MinIO) prefix, through an Airflow AWS connection",
    example="s3://bucket/prefix",
    runs_here=False,
    open=open_s3_store,
    uri_problem=s3_uri_problem,
)

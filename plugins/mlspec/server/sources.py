"""Read the files of a published model version folder (`file://` or `s3://`) for the model server.

The server reads storage itself instead of going through `mlspec.storage.open_store`: it runs
outside Airflow, so for `s3://` it uses boto3's standard environment (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL for MinIO) rather than an Airflow
connection.

What it guarantees:

* it reads only below the roots it was given (`StorageRoots`): a URI with a `..` segment, or one
  that resolves (symlinks included) outside every root, is refused before anything is opened, so
  answers never reveal which paths exist elsewhere;
* it opens only regular files (a FIFO or a device is refused without blocking on it);
* every file has a size cap, checked before and while reading; model files are streamed to a
  private temporary file and hashed on the way, never held in memory whole;
* S3 reads have connect and read timeouts.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from mlspec.errors import StoreError

log = logging.getLogger(__name__)

CHUNK = 1 << 20
SMALL_FILE_LIMIT = 16 << 20  # manifest, signature and schemas


class OutsideRoots(StoreError):
    """The URI is not below any root the server may load from."""


def _segments(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


def _refuse_parent_segments(uri: str, path: str) -> None:
    if any(part == ".." for part in unquote(path).split("/")):
        raise OutsideRoots(f"storage URI {uri!r} has a '..' segment; give the version folder's own URI")


def local_path(uri: str) -> Path:
    """The absolute path of a `file://` URI (`file://models/...` is relative to MLSPEC_HOME), read by
    storage.file_uri_path as the workers read it; a `..` segment raises OutsideRoots."""
    from mlspec.home import mlspec_home
    from mlspec.storage import file_uri_path

    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise StoreError(f"not a file:// URI: {uri}")
    _refuse_parent_segments(uri, parsed.netloc + parsed.path)
    return file_uri_path(uri, mlspec_home)  # the workers' parser: percent-decoded, then checked


@dataclass(frozen=True)
class StorageRoots:
    """The storage URIs a server may load from: `file://` folders and `s3://bucket[/prefix]`."""

    files: tuple[Path, ...] = ()
    s3: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (bucket, prefix segments)

    @classmethod
    def parse(cls, uris: list[str] | tuple[str, ...]) -> StorageRoots:
        files: list[Path] = []
        s3: list[tuple[str, tuple[str, ...]]] = []
        for uri in uris:
            parsed = urlparse(uri)
            if parsed.scheme == "file":
                files.append(local_path(uri).resolve())
            elif parsed.scheme == "s3":
                _refuse_parent_segments(uri, parsed.path)
                # `s3://` alone: every bucket the server's credentials reach (an explicit opt-in).
                s3.append((parsed.netloc, tuple(_segments(unquote(parsed.path)))))
            elif "://" not in uri:
                files.append(Path(uri).expanduser().resolve())
            else:
                raise StoreError(f"root {uri!r}: use file://..., s3://bucket[/prefix] or a local folder")
        return cls(tuple(dict.fromkeys(files)), tuple(dict.fromkeys(s3)))

    def describe(self) -> str:
        parts = [p.as_uri() for p in self.files] + [
            "s3://" + "/".join((bucket, *prefix)) for bucket, prefix in self.s3
        ]
        return ", ".join(parts) or "(none)"

    def check(self, uri: str) -> str:
        """`uri` without a trailing slash when it is below a root; OutsideRoots otherwise."""
        uri = uri.rstrip("/")
        parsed = urlparse(uri)
        if parsed.scheme == "s3" and not parsed.netloc:
            raise StoreError(f"no bucket in {uri!r}; expected s3://bucket/prefix/<name>/<version>")
        refusal = (
            f"storage URI {uri!r} is outside the roots this server loads from ({self.describe()}); "
            "start the server with --allow-root to add one"
        )
        if parsed.scheme == "file":
            path = local_path(uri).resolve()
            if any(path == root or path.is_relative_to(root) for root in self.files):
                return uri
            raise OutsideRoots(refusal)
        if parsed.scheme == "s3":
            _refuse_parent_segments(uri, parsed.path)
            segments = tuple(_segments(unquote(parsed.path)))
            for bucket, prefix in self.s3:
                if bucket in ("", parsed.netloc) and segments[: len(prefix)] == prefix:
                    return uri
            raise OutsideRoots(refusal)
        raise StoreError(f"unsupported storage URI scheme {parsed.scheme!r} in {uri!r}; use file:// or s3://")


class VersionSource:
    """The files of one version folder, opened for one load."""

    def __init__(self, version_uri: str) -> None:
        self.uri = version_uri.rstrip("/")
        parsed = urlparse(self.uri)
        self.scheme = parsed.scheme
        self._client: Any = None
        if self.scheme == "file":
            self._folder = local_path(self.uri)
        elif self.scheme == "s3":
            if not parsed.netloc:
                raise StoreError(
                    f"no bucket in {version_uri!r}; expected s3://bucket/prefix/<name>/<version>"
                )
            self._bucket = parsed.netloc
            self._prefix = "/".join(_segments(unquote(parsed.path)))
        else:
            raise StoreError(
                f"unsupported storage URI scheme {self.scheme!r} in {version_uri!r}; use file:// or s3://"
            )

    def _where(self, file_name: str) -> str:
        return f"{self.uri}/{file_name}"

    # -- reading --------------------------------------------------------------------------------
    def read(self, file_name: str, limit: int = SMALL_FILE_LIMIT) -> bytes:
        """The bytes of a small file (manifest, signature, schemas); StoreError if unreadable or too large."""
        chunks: list[bytes] = []
        self._stream(file_name, limit, chunks.append)
        return b"".join(chunks)

    def copy_hashed(self, file_name: str, target: Path, limit: int) -> str:
        """Stream `file_name` into `target` (created with mode 0600) and return its sha256."""
        digest = hashlib.sha256()
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:

            def sink(chunk: bytes) -> None:
                digest.update(chunk)
                out.write(chunk)

            self._stream(file_name, limit, sink)
        return digest.hexdigest()

    def _too_large(self, file_name: str, size: int, limit: int) -> StoreError:
        return StoreError(
            f"{self._where(file_name)} is {size} bytes, over the server's limit of {limit} bytes "
            "(--max-model-mb for model.onnx)"
        )

    def _stream(self, file_name: str, limit: int, sink) -> None:
        if self.scheme == "file":
            self._stream_file(file_name, limit, sink)
        else:
            self._stream_s3(file_name, limit, sink)

    def _stream_file(self, file_name: str, limit: int, sink) -> None:
        path = self._folder / file_name
        where = self._where(file_name)
        try:
            # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise StoreError(f"{where} does not exist") from None
        except OSError as exc:
            raise StoreError(f"cannot read {where}: {exc.strerror or exc}") from None
        with os.fdopen(fd, "rb", buffering=0) as handle:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise StoreError(f"{where} is not a regular file")
            if info.st_size > limit:
                raise self._too_large(file_name, info.st_size, limit)
            read = 0
            while chunk := handle.read(CHUNK):
                read += len(chunk)
                if read > limit:
                    raise self._too_large(file_name, read, limit)
                sink(chunk)

    def _s3(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"}
            )
            self._client = boto3.client("s3", config=config)
        return self._client

    def _stream_s3(self, file_name: str, limit: int, sink) -> None:
        import botocore.exceptions

        key = "/".join(part for part in (self._prefix, file_name) if part)
        uri = f"s3://{self._bucket}/{key}"
        try:
            response = self._s3().get_object(Bucket=self._bucket, Key=key)
            size = int(response.get("ContentLength") or 0)
            if size > limit:
                response["Body"].close()
                raise self._too_large(file_name, size, limit)
            body = response["Body"]
            read = 0
            while chunk := body.read(CHUNK):
                read += len(chunk)
                if read > limit:
                    body.close()
                    raise self._too_large(file_name, read, limit)
                sink(chunk)
        except botocore.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NoSuchBucket"):
                raise StoreError(f"{uri} does not exist") from None
            raise StoreError(f"cannot read {uri}: {exc}") from None
        except botocore.exceptions.BotoCoreError as exc:
            # No credentials, endpoint unreachable, timeouts: say which environment boto3 reads.
            raise StoreError(
                f"cannot read {uri}: {exc}; the server reads S3 with boto3's standard environment "
                "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL for MinIO)"
            ) from None


def read_version_file(version_uri: str, file_name: str, limit: int = SMALL_FILE_LIMIT) -> bytes:
    """The bytes of a small file in the version folder `version_uri`; StoreError if unreadable."""
    return VersionSource(version_uri).read(file_name, limit)


def default_roots() -> list[str]:
    """The store under MLSPEC_HOME, where `storage.uri: file://models` (the default) publishes."""
    from mlspec.home import mlspec_home

    return [(mlspec_home() / "models").as_uri()]

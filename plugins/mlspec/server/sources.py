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
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from mlspec.errors import StoreError
from mlspec.home import mlspec_home
from mlspec.storage import STORE_KINDS, file_uri_path, schemes_text, store_kind
from mlspec.storage import file as file_store
from mlspec.storage import s3 as s3_store

log = logging.getLogger(__name__)

CHUNK = 1 << 20
SMALL_FILE_LIMIT = 16 << 20  # manifest, signature and schemas

Sink = Callable[[bytes], None]
TooLarge = Callable[[int], StoreError]  # the error for a file of this many bytes


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
    if store_kind(uri) is not file_store.KIND:
        raise StoreError(f"not a file:// URI: {uri}")
    parsed = urlparse(uri)
    _refuse_parent_segments(uri, parsed.netloc + parsed.path)
    return file_uri_path(uri, mlspec_home)  # the workers' parser: percent-decoded, then checked


# -- how the server reads each kind of store (mlspec.storage.STORE_KINDS) ----------------------------
class LocalFolder:
    """A `file://` version folder: regular files only, opened without blocking on a FIFO."""

    @staticmethod
    def root(uri: str) -> Path:
        return local_path(uri).resolve()

    @staticmethod
    def describe(root: Path) -> str:
        return root.as_uri()

    @staticmethod
    def within(roots: tuple[Path, ...], uri: str) -> bool:
        path = local_path(uri).resolve()
        return any(path == root or path.is_relative_to(root) for root in roots)

    def __init__(self, uri: str) -> None:
        self.folder = local_path(uri)

    def stream(self, file_name: str, where: str, limit: int, sink: Sink, too_large: TooLarge) -> None:
        try:
            # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below.
            fd = os.open(self.folder / file_name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise StoreError(f"{where} does not exist") from None
        except OSError as exc:
            raise StoreError(f"cannot read {where}: {exc.strerror or exc}") from None
        with os.fdopen(fd, "rb", buffering=0) as handle:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise StoreError(f"{where} is not a regular file")
            if info.st_size > limit:
                raise too_large(info.st_size)
            read = 0
            while chunk := handle.read(CHUNK):
                read += len(chunk)
                if read > limit:
                    raise too_large(read)
                sink(chunk)


def s3_client() -> Any:
    """A boto3 S3 client from boto3's standard environment, with connect and read timeouts: how the server
    reads version folders and writes request logs."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"})
    return boto3.client("s3", config=config)


class S3Folder:
    """An `s3://` version folder, read with boto3's standard environment, with connect and read timeouts."""

    @staticmethod
    def root(uri: str) -> tuple[str, tuple[str, ...]]:
        """(bucket, prefix segments); `s3://` alone: every bucket the server's credentials reach (an explicit
        opt-in)."""
        parsed = urlparse(uri)
        _refuse_parent_segments(uri, parsed.path)
        return parsed.netloc, tuple(_segments(unquote(parsed.path)))

    @staticmethod
    def describe(root: tuple[str, tuple[str, ...]]) -> str:
        bucket, prefix = root
        return "s3://" + "/".join((bucket, *prefix))

    @staticmethod
    def within(roots: tuple[tuple[str, tuple[str, ...]], ...], uri: str) -> bool:
        parsed = urlparse(uri)
        if not parsed.netloc:
            raise StoreError(f"no bucket in {uri!r}; expected s3://bucket/prefix/<name>/<version>")
        _refuse_parent_segments(uri, parsed.path)
        segments = tuple(_segments(unquote(parsed.path)))
        return any(bucket in ("", parsed.netloc) and segments[: len(prefix)] == prefix for bucket, prefix in roots)

    def __init__(self, uri: str) -> None:
        parsed = urlparse(uri)
        if not parsed.netloc:
            raise StoreError(f"no bucket in {uri!r}; expected s3://bucket/prefix/<name>/<version>")
        self.bucket = parsed.netloc
        self.prefix = "/".join(_segments(unquote(parsed.path)))
        self._client: Any = None

    def _s3(self):
        if self._client is None:
            self._client = s3_client()
        return self._client

    def stream(self, file_name: str, where: str, limit: int, sink: Sink, too_large: TooLarge) -> None:
        import botocore.exceptions

        key = "/".join(part for part in (self.prefix, file_name) if part)
        uri = f"s3://{self.bucket}/{key}"
        try:
            response = self._s3().get_object(Bucket=self.bucket, Key=key)
            size = int(response.get("ContentLength") or 0)
            if size > limit:
                response["Body"].close()
                raise too_large(size)
            body = response["Body"]
            read = 0
            while chunk := body.read(CHUNK):
                read += len(chunk)
                if read > limit:
                    body.close()
                    raise too_large(read)
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


# One reader per store kind, in the table's order; tests/server checks that every kind has one.
READERS: dict[str, type[LocalFolder] | type[S3Folder]] = {
    file_store.KIND.scheme: LocalFolder,
    s3_store.KIND.scheme: S3Folder,
}


def _reader(uri: str) -> tuple[str, type[LocalFolder] | type[S3Folder]]:
    """(the store kind's scheme, how the server reads it) for a storage URI; StoreError for no known kind."""
    kind = store_kind(uri)
    if kind is None:
        raise StoreError(
            f"unsupported storage URI scheme {urlparse(uri).scheme!r} in {uri!r}; use {schemes_text()}"
        )
    return kind.scheme, READERS[kind.scheme]


@dataclass(frozen=True)
class StorageRoots:
    """The storage URIs a server may load from: `file://` folders, `s3://bucket[/prefix]`, and so on for
    each store kind (scheme -> that kind's roots)."""

    roots: tuple[tuple[str, tuple[Hashable, ...]], ...] = ()

    @classmethod
    def parse(cls, uris: list[str] | tuple[str, ...]) -> StorageRoots:
        found: dict[str, list[Hashable]] = {scheme: [] for scheme in STORE_KINDS}
        for uri in uris:
            kind = store_kind(uri)
            if kind is not None:
                found[kind.scheme].append(READERS[kind.scheme].root(uri))
            elif "://" not in uri:  # a local folder
                found[file_store.KIND.scheme].append(Path(uri).expanduser().resolve())
            else:
                raise StoreError(f"root {uri!r}: use file://..., s3://bucket[/prefix] or a local folder")
        return cls(tuple((scheme, tuple(dict.fromkeys(each))) for scheme, each in found.items() if each))

    def describe(self) -> str:
        parts = [READERS[scheme].describe(root) for scheme, roots in self.roots for root in roots]
        return ", ".join(parts) or "(none)"

    def check(self, uri: str) -> str:
        """`uri` without a trailing slash when it is below a root; OutsideRoots otherwise."""
        uri = uri.rstrip("/")
        scheme, reader = _reader(uri)
        if reader.within(dict(self.roots).get(scheme, ()), uri):
            return uri
        raise OutsideRoots(
            f"storage URI {uri!r} is outside the roots this server loads from ({self.describe()}); "
            "start the server with --allow-root to add one"
        )


class VersionSource:
    """The files of one version folder, opened for one load."""

    def __init__(self, version_uri: str) -> None:
        self.uri = version_uri.rstrip("/")
        _, reader = _reader(self.uri)
        self._folder = reader(self.uri)

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

    def _stream(self, file_name: str, limit: int, sink: Sink) -> None:
        def too_large(size: int) -> StoreError:
            return StoreError(
                f"{self._where(file_name)} is {size} bytes, over the server's limit of {limit} bytes "
                "(--max-model-mb for model.onnx)"
            )

        self._folder.stream(file_name, self._where(file_name), limit, sink, too_large)


def default_roots() -> list[str]:
    """The store under MLSPEC_HOME, where `storage.uri: file://models` (the default) publishes."""
    return [(mlspec_home() / "models").as_uri()]

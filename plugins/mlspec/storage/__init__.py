"""Object stores behind one interface: `file://` (embedded default) and `s3://` (amazon provider)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

from mlspec.errors import StoreError
from mlspec.storage.base import (
    DEFAULT_KEEP_RUNS,
    ModelStore,
    PublishedVersion,
    run_key,
    safe_join,
    sha256_hex,
)

__all__ = [
    "DEFAULT_KEEP_RUNS", "ModelStore", "PublishedVersion", "check_uri_text", "open_store", "resolve_file_uri",
    "run_key", "safe_join", "sha256_hex",
]  # fmt: skip

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def check_uri_text(uri: str) -> None:
    """Refuse control characters (a newline, NUL, ...) and a `..` segment anywhere in a URI."""
    found = _CONTROL.search(uri)
    if found:
        raise StoreError(f"URI {uri[:80]!r} contains the control character {found.group()!r}")
    rest = uri.split("://", 1)[-1]
    if ".." in rest.replace("\\", "/").split("/"):
        raise StoreError(f"URI {uri[:80]!r} contains '..'; store and data paths may not climb out of their prefix")


def resolve_file_uri(uri: str) -> Path:
    """`file:///abs/path` is absolute; `file://models` is relative to MLSPEC_HOME (and stays under it)."""
    from mlspec.home import mlspec_home

    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise StoreError(f"not a file:// URI: {uri[:80]!r}")
    check_uri_text(uri)
    relative = (parsed.netloc + parsed.path) if parsed.netloc else ""
    if relative:
        return mlspec_home() / relative.lstrip("/")
    return Path(parsed.path)


def open_store(uri: str, connection_id: str | None = None) -> ModelStore:
    """The store for a spec's `storage.uri` (and `storage.connection` for s3://)."""
    scheme = urlparse(uri).scheme
    if scheme == "file":
        from mlspec.storage.file import FileStore

        path = resolve_file_uri(uri)
        return FileStore(path.as_uri(), path)
    if scheme == "s3":
        from mlspec.storage.s3 import S3Store

        return S3Store(uri, connection_id or "aws_default")
    raise StoreError(f"unsupported storage URI scheme {scheme!r} in {uri[:80]!r}; use file:// or s3://")

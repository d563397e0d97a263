"""Object stores behind one interface: `file://` (embedded default) and `s3://` (amazon provider)."""

from __future__ import annotations

import os
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
    "DEFAULT_KEEP_RUNS", "DEFAULT_MAX_SOURCE_BYTES", "ModelStore", "PublishedVersion", "check_uri_text",
    "file_uri_path", "max_source_bytes", "open_store", "resolve_file_uri", "run_key", "safe_join", "sha256_hex",
]  # fmt: skip

# The largest data source prepare_data reads (and lint accepts for a local file); MLSPEC_MAX_SOURCE_BYTES
# changes it. Sources are read into memory whole, so this bounds what one bad source can cost a worker.
DEFAULT_MAX_SOURCE_BYTES = 1024**3


def max_source_bytes() -> int:
    raw = os.environ.get("MLSPEC_MAX_SOURCE_BYTES", "").strip()
    try:
        value = int(raw) if raw else DEFAULT_MAX_SOURCE_BYTES
    except ValueError:
        raise StoreError(f"MLSPEC_MAX_SOURCE_BYTES must be a number of bytes, not {raw[:40]!r}") from None
    return value if value > 0 else DEFAULT_MAX_SOURCE_BYTES

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
    return file_uri_path(uri, mlspec_home)


def file_uri_path(uri: str, home) -> Path:
    """The path of a file:// URI; `home()` gives the folder relative URIs live under (called only for them)."""
    parsed = urlparse(uri)
    relative = (parsed.netloc + parsed.path) if parsed.netloc else ""
    if relative:
        return home() / relative.lstrip("/")
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

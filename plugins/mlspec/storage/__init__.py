"""Object stores behind one interface: `file://` (embedded default) and `s3://` (amazon provider)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from mlspec.errors import StoreError
from mlspec.storage.base import ModelStore, PublishedVersion, run_key, safe_join, sha256_hex

__all__ = ["ModelStore", "PublishedVersion", "open_store", "resolve_file_uri", "run_key", "safe_join", "sha256_hex"]


def resolve_file_uri(uri: str) -> Path:
    """`file:///abs/path` is absolute; `file://models` is relative to MLSPEC_HOME."""
    from mlspec.home import mlspec_home

    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise StoreError(f"not a file:// URI: {uri}")
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
    raise StoreError(f"unsupported storage URI scheme {scheme!r} in {uri!r}; use file:// or s3://")

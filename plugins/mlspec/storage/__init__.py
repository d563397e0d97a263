"""Object stores behind one interface, one entry per kind in `STORE_KINDS`: `file://` (embedded default)
and `s3://` (amazon provider). Nothing outside this package compares a storage URI's scheme: it asks
`store_kind(uri)`."""

from __future__ import annotations

from urllib.parse import urlparse

from mlspec.errors import StoreError
from mlspec.storage import file, s3
from mlspec.storage.base import (
    DEFAULT_KEEP_RUNS,
    ModelStore,
    PublishedVersion,
    run_key,
    safe_join,
    sha256_hex,
)
from mlspec.storage.kind import StoreKind
from mlspec.storage.local_paths import (
    check_data_path,
    check_store_path,
    check_uri_text,
    data_roots,
    file_uri_path,
    resolve_file_uri,
    store_roots,
)
from mlspec.storage.source_limits import max_source_bytes, source_cap_hint

__all__ = [
    "DEFAULT_KEEP_RUNS", "STORE_KINDS", "ModelStore", "PublishedVersion",
    "StoreKind", "check_data_path", "check_store_path", "check_uri_text", "data_roots", "file_uri_path",
    "max_source_bytes", "open_store", "resolve_file_uri", "run_key", "safe_join", "sha256_hex", "source_cap_hint",
    "store_kind", "store_roots",
]  # fmt: skip

# Every kind of store, by storage.uri scheme: a new one is a module with its KIND and a line here.
STORE_KINDS: dict[str, StoreKind] = {kind.scheme: kind for kind in (file.KIND, s3.KIND)}


def store_kind(uri: str) -> StoreKind | None:
    """The kind of store a URI names (by its scheme), or None when no kind claims it."""
    try:
        scheme = urlparse(uri).scheme
    except ValueError:  # an unbalanced '[' ("Invalid IPv6 URL")
        return None
    return STORE_KINDS.get(scheme)


def schemes_text() -> str:
    """"file:// or s3://": the store kinds as a message lists them."""
    prefixes = [kind.prefix for kind in STORE_KINDS.values()]
    return " or ".join([", ".join(prefixes[:-1]), prefixes[-1]]) if len(prefixes) > 1 else prefixes[0]

def open_store(uri: str, connection_id: str | None = None) -> ModelStore:
    """The store for a spec's `storage.uri` (and `storage.connection` for a kind that needs one). A file://
    store must be within the allowed store roots (`check_store_path`)."""
    kind = store_kind(uri)
    if kind is None:
        raise StoreError(
            f"unsupported storage URI scheme {urlparse(uri).scheme!r} in {uri[:80]!r}; use {schemes_text()}"
        )
    return kind.open(uri, connection_id)

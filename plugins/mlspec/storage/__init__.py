"""Object stores behind one interface, one entry per kind in `STORE_KINDS`: `file://` (embedded default)
and `s3://` (amazon provider). Nothing outside this package compares a storage URI's scheme: it asks
`store_kind(uri)`."""

from __future__ import annotations

import os
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

__all__ = [
    "DEFAULT_KEEP_RUNS", "DEFAULT_MAX_SOURCE_BYTES", "STORE_KINDS", "ModelStore", "PublishedVersion",
    "StoreKind", "check_data_path", "check_store_path", "check_uri_text", "data_roots", "file_uri_path",
    "max_source_bytes", "open_store", "resolve_file_uri", "run_key", "safe_join", "sha256_hex", "store_kind",
    "store_roots",
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

# The largest data source file prepare_data reads (and lint accepts for a local file). Sources are read into
# memory whole, so this bounds what one bad source can cost a worker: MLSPEC_MAX_SOURCE_BYTES when an admin
# sets it (it then confines every spec), else the larger of 1 GiB and the spec's data.limits.max_bytes.
DEFAULT_MAX_SOURCE_BYTES = 1024**3
MAX_SOURCE_BYTES_ENV = "MLSPEC_MAX_SOURCE_BYTES"


def _configured_max_source_bytes() -> int | None:
    raw = os.environ.get(MAX_SOURCE_BYTES_ENV, "").strip()
    try:
        value = int(raw) if raw else 0
    except ValueError:
        raise StoreError(f"{MAX_SOURCE_BYTES_ENV} must be a number of bytes, not {raw[:40]!r}") from None
    return value if value > 0 else None


def max_source_bytes(spec_max_bytes: int | None = None) -> int:
    """The raw-file cap: MLSPEC_MAX_SOURCE_BYTES when set, else max(1 GiB, the spec's max_bytes)."""
    configured = _configured_max_source_bytes()
    if configured is not None:
        return configured
    return max(DEFAULT_MAX_SOURCE_BYTES, spec_max_bytes or 0)


def source_cap_hint() -> str:
    """How to raise the raw-file cap, for the errors that refuse a source over it."""
    if _configured_max_source_bytes() is not None:
        return (
            f"{MAX_SOURCE_BYTES_ENV} (set by the admin of the workers) caps every source; it must be raised "
            "there, data.limits.max_bytes in the spec cannot go beyond it"
        )
    return (
        "raise data.limits.max_bytes in the spec (e.g. max_bytes: 4GB), which also raises the raw-file cap; "
        f"an admin can instead set {MAX_SOURCE_BYTES_ENV} on the workers, which then caps every spec"
    )

def open_store(uri: str, connection_id: str | None = None) -> ModelStore:
    """The store for a spec's `storage.uri` (and `storage.connection` for a kind that needs one). A file://
    store must be within the allowed store roots (`check_store_path`)."""
    kind = store_kind(uri)
    if kind is None:
        raise StoreError(
            f"unsupported storage URI scheme {urlparse(uri).scheme!r} in {uri[:80]!r}; use {schemes_text()}"
        )
    return kind.open(uri, connection_id)

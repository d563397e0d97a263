"""How large a data source file may be: the raw-file cap prepare_data and lint apply, and how to raise it."""

from __future__ import annotations

import os

from mlspec.errors import StoreError

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

"""Data sources, one entry per kind in `SOURCE_KINDS`: `builtin:` and `keras:` data sets by name, `file://`
and `s3://` files of data.format, `sql://` tables of data.query. Nothing outside this package compares a
data.source's scheme: it asks `source_kind(source)`. A new kind is one module here ending with `KIND = SourceKind(...)`, and its line
below (README: "How to add a data source")."""

from __future__ import annotations

from mlspec.sources import builtin, file, keras, s3, sql
from mlspec.sources.kind import SourceKind, SourceRead

__all__ = ["SOURCE_KINDS", "SourceKind", "SourceRead", "schemes_text", "source_kind"]

SOURCE_KINDS: dict[str, SourceKind] = {kind.scheme: kind for kind in (builtin.KIND, keras.KIND, file.KIND, s3.KIND, sql.KIND)}


def source_kind(source: str) -> SourceKind | None:
    """The kind of a data.source (by the text before its first ':'), or None when no kind claims it."""
    return SOURCE_KINDS.get(source.split(":", 1)[0]) if ":" in source else None


def schemes_text() -> str:
    """"builtin:, keras:, file://, s3:// or sql://": the kinds as a message lists them."""
    prefixes = [kind.prefix for kind in SOURCE_KINDS.values()]
    return ", ".join(prefixes[:-1]) + " or " + prefixes[-1]

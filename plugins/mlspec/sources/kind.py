"""What one kind of data source declares: the entry of `mlspec.sources.SOURCE_KINDS` for a `data.source` scheme.

Three shapes exist today. A named kind (`builtin:`, `keras:`) has a closed list of data sets
(`vocabulary.DATA_SOURCES`) and loads one by name; a file kind (`file://`, `s3://`) reads the bytes of a
file of `data.format` (npz, csv, parquet) that `mlspec.ml.data` parses; a table kind (`sql://`) returns the
table of data.query as a pandas DataFrame, which `mlspec.ml.data` reads as it reads a CSV file's. Lint,
prepare_data, the loader and the operations DAG read the table; none of them compares a scheme.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlspec.storage.kind import Quote
from mlspec.vocabulary import DATA_SOURCES

# A named data set as loaded: (x, y, class_names, feature_names); numpy arrays, so typed loosely here.
Loaded = tuple[Any, Any, tuple[str, ...], tuple[str, ...]]


@dataclass(frozen=True)
class SourceRead:
    """What reading a file source needs besides its URI."""

    connection: str | None  # data.connection (a kind that needs none ignores it)
    max_bytes: int  # the raw-file cap (storage.max_source_bytes)
    specs_dir: Path | None  # the spec file's folder: the project folder's rules use it
    query: str | None = None  # data.query as rendered for the run (a table kind reads it)


def _no_problems(source: str, quote: Quote, data: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    return ()


@dataclass(frozen=True)
class SourceKind:
    scheme: str  # data.source is "<scheme>:<name>" or "<scheme>://<path>"
    prefix: str  # how such a source starts as written: "builtin:", "file://"
    title: str  # in words, for people
    next_step: str  # prepare_data's advice when such a source fails; "{name}": what follows the prefix
    runs_here: bool  # True: needs no connection and no network (the operations DAG runs it anywhere)
    # Named kinds: load a data set of `datasets` by name (heavy libraries are imported when it is called).
    load_dataset: Callable[[str], Loaded] | None = None
    # File kinds: the bytes of the file the source names.
    read_bytes: Callable[[str, SourceRead], bytes] | None = None
    # File kinds: the files a folder, glob or prefix names, in name order, as (URI for read_bytes, name below
    # the folder or the pattern's fixed part: its `key=value` folders are partition columns); one file: itself.
    list_files: Callable[[str, SourceRead], list[tuple[str, str]]] | None = None
    # File kinds whose files carry more identity than their bytes: one file's bytes with {"etag": ...,
    # "version_id": ...} (S3's ETag and VersionId) from the same response, so they name the bytes read; the
    # lineage records them beside the file's sha256. Kinds without it are read through read_bytes.
    read_identified: Callable[[str, SourceRead], tuple[bytes, Mapping[str, str | None]]] | None = None
    # Table kinds: the table data.query returns, a pandas DataFrame.
    read_table: Callable[[str, SourceRead], Any] | None = None
    # File kinds on this machine: the path a source names (home(): MLSPEC_HOME), checked by `mlspec lint`.
    local_path: Callable[[str, Callable[[], Path]], Path] | None = None
    # The kind's own lint rules: (field of the data section, message) for each problem.
    lint: Callable[[str, Quote, Mapping[str, Any]], Iterable[tuple[str, str]]] = _no_problems

    @property
    def datasets(self) -> tuple[str, ...]:
        """A named kind's data sets (every `vocabulary.DATA_SOURCES` entry with its prefix); () for a file kind."""
        return tuple(name for name in DATA_SOURCES if name.startswith(self.prefix)) if self.load_dataset else ()

    def next_step_for(self, source: str) -> str:
        """The advice for one source: sql://warehouse's names the connection warehouse."""
        name = source[len(self.prefix):] if source.startswith(self.prefix) else ""
        return self.next_step.replace("{name}", name)

    def problems(self, source: str, quote: Quote, data: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
        """Lint: a named kind's source must be one of its data sets; then the kind's own rules."""
        if self.load_dataset is not None and source not in DATA_SOURCES:
            yield "source", f"unknown dataset {quote(source)}; available: {', '.join(self.datasets)}"
        yield from self.lint(source, quote, data)

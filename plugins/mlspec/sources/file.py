"""`file://<path>`: a data file on this machine, within the allowed data folders (storage.check_data_path)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from mlspec.sources.kind import SourceKind, SourceRead
from mlspec.storage import check_data_path, resolve_file_uri
from mlspec.storage.file import read_regular_file
from mlspec.storage.kind import Quote
from mlspec.storage.local_paths import file_uri_path
from mlspec.vocabulary import DATA_FORMATS

log = logging.getLogger(__name__)

def read_local_file(uri: str, read: SourceRead) -> bytes:
    """A regular file (never a device or a FIFO) within the allowed data folders and the size cap."""
    what = f"data.source {uri[:160]!r}"
    path = check_data_path(resolve_file_uri(uri), what=what, specs_dir=read.specs_dir)
    log.info("reading %s", path)
    return read_regular_file(path, read.max_bytes)


def format_known(source: str, quote: Quote, data: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    """Lint: without data.format, the file's extension must say it."""
    if data.get("format") is None and not source.lower().endswith((".npz", ".csv", ".parquet")):
        yield "format", f"cannot infer the format of {quote(source)}; set data.format to {', '.join(DATA_FORMATS[:-1])} or {DATA_FORMATS[-1]}"


KIND = SourceKind(
    scheme="file",
    prefix="file://",
    title="a file on this machine",
    next_step=(
        "check data.source in the spec: the file must exist within the allowed data folders "
        "(MLSPEC_DATA_ROOTS), then clear this task"
    ),
    runs_here=True,
    read_bytes=read_local_file,
    local_path=file_uri_path,
    lint=format_known,
)

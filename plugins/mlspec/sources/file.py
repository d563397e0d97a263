"""`file://<path>`: a data file on this machine, within the allowed data folders (storage.check_data_path); or a
folder or a glob (`file:///data/cars/*.parquet`) of such files, read in name order."""

from __future__ import annotations

import glob
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlspec.errors import DataSourceError, StoreError
from mlspec.sources.kind import SourceKind, SourceRead
from mlspec.storage import check_data_path, data_roots, resolve_file_uri
from mlspec.storage.file import read_regular_file
from mlspec.storage.kind import Quote
from mlspec.storage.local_paths import file_uri_path
from mlspec.vocabulary import DATA_FORMATS

log = logging.getLogger(__name__)

WILDCARDS = ("*", "?", "[")
# A folder or a pattern may name at most this many files: each is opened, and a message may list them.
MAX_SOURCE_FILES = 10_000


def is_pattern(path: str) -> bool:
    return any(char in path for char in WILDCARDS)


def pattern_root(path: Path) -> Path:
    """The folder a glob's fixed part names: `/data/cars` for `/data/cars/*/*.parquet`."""
    text = str(path)
    fixed = text[: min(text.find(c) for c in WILDCARDS if c in text)]
    return Path(fixed[: fixed.rfind("/") + 1] or "/")


def skipped(name: str) -> bool:
    """Hidden files and folders, and `_SUCCESS`-style markers, as pyarrow datasets skip them."""
    return any(part.startswith((".", "_")) for part in name.split("/"))


def _where(uri: str, read: SourceRead) -> str:
    return f"data.source {uri[:160]!r}; the allowed data folders are {', '.join(map(str, data_roots(read.specs_dir)))}"


def read_local_file(uri: str, read: SourceRead) -> bytes:
    """A regular file (never a device or a FIFO) within the allowed data folders and the size cap. Any refusal
    is a DataSourceError: a retry would find the same file."""
    what = f"data.source {uri[:160]!r}"
    try:
        path = check_data_path(resolve_file_uri(uri), what=what, specs_dir=read.specs_dir)
        if not path.exists():
            raise DataSourceError(f"{path} does not exist ({_where(uri, read)})")
        log.info("reading %s", path)
        return read_regular_file(path, read.max_bytes)
    except DataSourceError:
        raise
    except StoreError as exc:
        raise DataSourceError(str(exc)) from None


def list_local_files(uri: str, read: SourceRead) -> list[tuple[str, str]]:
    """The files a folder (every file below it) or a glob (`**` spans folders) names, in name order, each named
    below the folder or the glob's fixed part; a plain file is itself. Hidden and `_` names are skipped."""
    path = resolve_file_uri(uri)
    text = str(path)
    if is_pattern(text):
        root = pattern_root(path)
        found = (Path(name) for name in glob.glob(text, recursive=True))
    elif path.is_dir():
        root = path
        found = path.rglob("*")
    else:
        return [(uri, path.name)]
    try:
        check_data_path(root, what=f"data.source {uri[:160]!r}", specs_dir=read.specs_dir)
    except StoreError as exc:
        raise DataSourceError(str(exc)) from None
    files = []
    for file in found:
        name = file.relative_to(root).as_posix()
        if not skipped(name) and file.is_file():
            files.append((file.as_uri(), name))
            if len(files) > MAX_SOURCE_FILES:
                raise DataSourceError(
                    f"data.source {uri[:160]!r} names more than {MAX_SOURCE_FILES:,} files; name fewer (a narrower "
                    "glob or folder)"
                )
    if not files:
        raise DataSourceError(f"no data files match {root if root == path else text} ({_where(uri, read)})")
    return sorted(files, key=lambda file: file[1])


def format_known(source: str, quote: Quote, data: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    """Lint: without data.format, the file's extension must say it (a folder's files say it themselves)."""
    named = source.endswith("/") or source.lower().endswith((".npz", ".csv", ".parquet"))
    if data.get("format") is None and not named:
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
    list_files=list_local_files,
    local_path=file_uri_path,
    lint=format_known,
)

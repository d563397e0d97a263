"""`file://` object store: a folder on a local or shared filesystem.

Files are written beside their target and renamed into place, with mode 0644 whatever the umask: a
model server running as another user (as in the compose stack) must be able to read what is published.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from pathlib import Path

from mlspec.errors import StoreError
from mlspec.storage.base import CLAIM, ModelStore, safe_join
from mlspec.storage.kind import Quote, StoreKind
from mlspec.storage.local_paths import check_store_path, file_uri_path, resolve_file_uri
from mlspec.storage.source_limits import source_cap_hint

FILE_MODE = 0o644
# Filesystems without hard links answer link() with one of these; claims then fall back to O_EXCL.
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    for test, kind in (
        (stat.S_ISDIR, "directory"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISFIFO, "FIFO (named pipe)"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return kind
    return "special file"


def _over_cap(what: str, max_bytes: int) -> StoreError:
    return StoreError(f"{what}; data sources are limited to {max_bytes} bytes: {source_cap_hint()}")


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most max_bytes; StoreError for anything else.

    A device or a FIFO is refused before it is opened (and opened without blocking, should it be swapped
    in after the check), so `/dev/zero` is never read and a FIFO with no writer never hangs the task.
    """

    def refuse(mode: int) -> StoreError:
        return StoreError(f"{path} is a {file_kind(mode)}, not a regular file; a data source must be a file")

    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise refuse(info.st_mode)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise StoreError(f"{path} does not exist") from None
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise refuse(info.st_mode)
        if info.st_size > max_bytes:
            raise _over_cap(f"{path} is {info.st_size} bytes", max_bytes)
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew while we read it
        raise _over_cap(f"{path} is more than {max_bytes} bytes", max_bytes)
    return data


class FileStore(ModelStore):
    def __init__(self, root_uri: str, root_path: Path) -> None:
        super().__init__(root_uri)
        self.root_path = root_path

    def _path(self, key: str) -> Path:
        return self.root_path / safe_join(key)

    def read_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise StoreError(f"{self.uri_for(key)} does not exist") from None

    @staticmethod
    def _write_temp(path: Path, data: bytes, *, sync: bool = False) -> str:
        """A complete copy of data in a temporary file beside path (mode 0644); its name."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            os.fchmod(fd, FILE_MODE)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                if sync:
                    handle.flush()
                    os.fsync(handle.fileno())
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return tmp

    def write_bytes(self, key: str, data: bytes) -> str:
        path = self._path(key)
        # Write beside the target and rename: readers never see a partly written file.
        tmp = self._write_temp(path, data)
        try:
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.uri_for(key)

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Write the whole file aside, then hard-link it into place: link() fails when the name exists, so
        exactly one writer wins, and a crash at any point leaves either no file or the complete one."""
        path = self._path(key)
        tmp = self._write_temp(path, data, sync=True)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in _NO_LINKS:
                raise
            return self._create_exclusive_without_links(path, data)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return True

    @staticmethod
    def _create_exclusive_without_links(path: Path, data: bytes) -> bool:
        # Not atomic: a crash between the create and the write leaves a short file, which publishing
        # treats as an unreadable claim (skipped, then abandoned after the grace period).
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), FILE_MODE)
            handle.write(data)
        return True

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def list_children(self, key: str) -> list[str]:
        path = self._path(key)
        if not path.is_dir():
            return []
        return sorted(p.name for p in path.iterdir() if not p.name.startswith(".") or p.name == CLAIM)

    def modified_time(self, key: str) -> float | None:
        try:
            return self._path(key).stat().st_mtime
        except FileNotFoundError:
            return None

    def tree_times(self, key: str) -> dict[str, float]:
        path = self._path(key)
        if not path.is_dir():
            return {}
        times: dict[str, float] = {}
        for child in path.iterdir():
            if child.name.startswith("."):
                continue
            newest = child.lstat().st_mtime
            if child.is_dir() and not child.is_symlink():
                for root, dirs, files in os.walk(child):
                    for name in dirs + files:
                        try:
                            newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
                        except FileNotFoundError:  # deleted while we walked
                            continue
            times[child.name] = newest
        return times

    def delete_tree(self, key: str) -> None:
        if not safe_join(key):
            raise StoreError(f"refusing to delete the whole store {self.root_uri}")
        path = self._path(key)
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        except OSError as exc:
            raise StoreError(f"deleting {self.uri_for(key)} failed: {exc.strerror or exc}") from exc


def open_file_store(uri: str, connection_id: str | None = None) -> FileStore:
    """The store of a `file://` storage.uri, which must be within the allowed store folders
    (`check_store_path`); a folder needs no connection."""
    path = resolve_file_uri(uri)
    check_store_path(path)
    return FileStore(path.as_uri(), path)


def file_uri_problem(uri: str, quote: Quote, names_an_object: bool) -> str | None:
    """A file:// URI needs a path (`file://` alone names nothing)."""
    rest = uri.split("://", 1)[1] if "://" in uri else uri.split(":", 1)[-1]
    if not rest.strip("/"):
        return f"{quote(uri)} has no path; use file://models (under MLSPEC_HOME) or file:///absolute/path"
    return None


KIND = StoreKind(
    scheme="file",
    title="a folder on this machine (or a shared filesystem)",
    example="file://path",
    runs_here=True,
    open=open_file_store,
    uri_problem=file_uri_problem,
    local_path=file_uri_path,
)

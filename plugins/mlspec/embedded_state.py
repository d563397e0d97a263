"""Embedded state files under MLSPEC_HOME (the MLflow and Optuna SQLite databases): made once, under a lock.

Several processes (the tasks of one run, parallel trials, the Models page's threads) may be the first to
use an embedded database at the same moment. Whoever creates, migrates, repairs or replaces one holds an
exclusive ``flock`` on a sibling ``<file>.lock`` for the whole of it, and decides again under the lock
what is needed (so the work is idempotent: the others find it done). A read that must not see a
half-made file takes the same lock shared, and waits (bounded) while a writer holds it.

Standard library only: this module is imported by the Models page and at task start.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from mlspec.errors import MlspecError

log = logging.getLogger(__name__)

LOCK_TIMEOUT_ENV = "MLSPEC_LOCK_TIMEOUT_S"
DEFAULT_LOCK_TIMEOUT_S = 600.0  # a migration of a large MLflow database; a deploy waiting on a slow server
_SIDE_FILES = ("-journal", "-wal", "-shm")
_local = threading.local()


class EmbeddedStateError(MlspecError):
    """An embedded state file could not be locked, read or made."""


class LockError(EmbeddedStateError):
    """A lock (an embedded state file's, or a model's operations lock) could not be taken."""


def lock_path(path: Path) -> Path:
    """The lock file of `path`: ``<path>.lock`` beside it."""
    return path.with_name(path.name + ".lock")


def lock_timeout_s() -> float:
    """How long a lock is waited for: MLSPEC_LOCK_TIMEOUT_S (seconds), else 600; LockError when it is not a
    positive number."""
    raw = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_LOCK_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise LockError(
            f"{LOCK_TIMEOUT_ENV}={raw!r} is not a number of seconds; set it to a positive number "
            f"(e.g. {LOCK_TIMEOUT_ENV}=600) or unset it (default {DEFAULT_LOCK_TIMEOUT_S:g} s)"
        )
    return value


def holder_of(lock: Path) -> str:
    """The note the holder of `lock` wrote ("pid 123: deploy version 3 for alice"), or "an unknown holder"."""
    try:
        return lock.read_text(encoding="utf-8", errors="replace").strip()[:200] or "an unknown holder"
    except OSError:
        return "an unknown holder"


@contextmanager
def locked(
    path: Path, *, shared: bool = False, timeout_s: float | None = None, what: str = "", busy: str = "",
    next_step: str = "",
) -> Iterator[None]:
    """Hold ``<path>.lock`` exclusively (or shared) for the block; LockError after `timeout_s` (default
    MLSPEC_LOCK_TIMEOUT_S, else 600 s), naming the holder: an exclusive holder writes ``pid <pid>: <what>``
    into the lock file (created 0600).

    Exclusive holders exclude each other and shared ones, across processes and threads (each call opens
    its own file description). Re-entering the lock of one path in one thread while holding it
    exclusively is a no-op, so a holder may call helpers that lock too. `busy` and `next_step` word the
    timeout ("another operation on iris holds ...", "wait for it and try again").
    """
    held: set[str] = _local.__dict__.setdefault("held", set())
    key = str(path)
    if key in held:
        yield
        return
    if timeout_s is None:
        timeout_s = lock_timeout_s()
    lock = lock_path(path)
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, (os.O_RDONLY if shared else os.O_RDWR) | os.O_CREAT, 0o600)
    except OSError as exc:
        if not shared:
            raise LockError(
                f"cannot open the lock file {lock} ({exc.strerror or exc}); make its folder writable for "
                "this user (or point MLSPEC_HOME at a folder that is)"
            ) from None
        yield  # a reader that may not write there (a read-only home) reads without the lock
        return
    try:
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        deadline = time.monotonic() + timeout_s
        pause = 0.01
        waited = False
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    log.info("%s is locked by %s; waiting up to %g s", lock, holder_of(lock), timeout_s)
                    waited = True
                if time.monotonic() >= deadline:
                    who = busy or f"{path} is being created or upgraded by another process; it"
                    raise LockError(
                        f"{who} holds {lock} ({holder_of(lock)}) for more than {timeout_s:g} s; "
                        f"{next_step or 'try again in a moment'} (or raise {LOCK_TIMEOUT_ENV}; "
                        f"`fuser -v {lock}` names the process)"
                    ) from None
                time.sleep(pause)  # polling a lock someone else holds, not waiting for a result
                pause = min(pause * 2, 0.25)
        if not shared:
            held.add(key)
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()}: {what or 'creating or upgrading ' + path.name}\n".encode())
        try:
            yield
        finally:
            held.discard(key)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def exists(path: Path) -> bool:
    """The file is there and not empty (SQLite makes a 0-byte file on a connect that wrote nothing)."""
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection (it never creates the file)."""
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)


def unreadable(path: Path) -> str | None:
    """Why the SQLite file at `path` cannot be read ("file is not a database", ...), None when it can."""
    try:
        conn = read_only(path)
    except sqlite3.Error as exc:
        return str(exc)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return None
    except sqlite3.Error as exc:
        return str(exc)
    finally:
        conn.close()


def tables(path: Path) -> set[str]:
    conn = read_only(path)
    try:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


def count_rows(path: Path, table: str) -> int:
    """Rows in `table`; 0 when it does not exist."""
    conn = read_only(path)
    try:
        if table not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}:
            return 0
        return int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
    finally:
        conn.close()


def columns(path: Path) -> dict[str, set[str]]:
    """{table: {column, ...}} of every table (SQLite's own left out)."""
    conn = read_only(path)
    try:
        found = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        names = [r[0] for r in conn.execute(found)]
        return {name: {row[1] for row in conn.execute(f'PRAGMA table_info("{name}")')} for name in names}
    finally:
        conn.close()


def remove(path: Path) -> None:
    """Delete a SQLite file and its journal/WAL side files."""
    for candidate in (path, *(path.with_name(path.name + suffix) for suffix in _SIDE_FILES)):
        candidate.unlink(missing_ok=True)


def move_aside(path: Path) -> Path:
    """Rename `path` (and its side files) to ``<path>.broken-<UTC timestamp>``; returns the new name."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.broken-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.broken-{stamp}-{n}")
    path.rename(target)
    for suffix in _SIDE_FILES:
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(target.with_name(target.name + suffix))
    return target

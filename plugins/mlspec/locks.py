"""One change of a model's production at a time: the per-model file lock under MLSPEC_HOME.

The release service (deploy, smoke test, promote, restore) and the registries that write a model's whole
record at once (Kubeflow's customProperties) hold it, so it sits below both.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlspec.embedded_state import locked
from mlspec.home import mlspec_home


def lock_path(model_name: str) -> Path:
    return mlspec_home() / "locks" / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', model_name)}.lock"


@contextmanager
def model_lock(model_name: str, what: str, timeout_s: float | None = None) -> Iterator[None]:
    """Hold ``$MLSPEC_HOME/locks/<model>.lock`` exclusively (embedded_state.locked: re-entrant in one thread,
    0600, the holder's pid and `what` in the file); waits up to `timeout_s` (MLSPEC_LOCK_TIMEOUT_S, default
    600) for a release that holds it, then LockError naming that release. Local to one machine."""
    path = lock_path(model_name)
    with locked(
        path.with_name(path.stem), timeout_s=timeout_s, what=what, busy=f"another operation on {model_name}",
        next_step="nothing changed. Wait for it to finish and try again",
    ):
        yield

"""Shadow traffic: a copy of a live request runs on the shadow version off the request path, and its
answer is compared row by row with the answer the client got.

The app offers a job once its answer is computed; a bounded queue holds the jobs and one worker
thread runs them, so a slow or failing shadow never delays an answer: when the queue is full the
copy is dropped and counted. Compared per row: `label` when the model has one (equal), else the
argmax of `probabilities`, else `prediction` (|shadow - primary| <= atol + rtol * |primary|).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from mlspec.server.metrics import VersionStats
from mlspec.server.traffic import ShadowSpec
from mlspec.vocabulary import OUTPUTS, SHADOW_OUTCOMES

log = logging.getLogger(__name__)

COMPARED, ERROR, DROPPED = SHADOW_OUTCOMES  # a shadow copy: its rows compared, it failed, or the queue was full
DEFAULT_QUEUE_SIZE = 1000
# Request bodies the queue holds at most, all together: copies of large bodies are dropped (and counted) beyond
# it, so shadowing never holds gigabytes the in-flight limit of live requests does not see.
DEFAULT_QUEUE_BYTES = 64 * 1024 * 1024


def compared_output(output_names) -> tuple[str | None, str | None]:
    """(output, how rows are compared): `label` exactly, else the argmax of `probabilities`, else `prediction`
    within tolerance ("close"); (None, None) when the model has none of them."""
    names = set(output_names)
    probabilities, label = OUTPUTS["classification"]
    for output, mode in ((label, "label"), (probabilities, "argmax"), (OUTPUTS["regression"][0], "close")):
        if output in names:
            return output, mode
    return None, None


class ShadowJob(NamedTuple):
    shadow: Any  # LoadedVersion that gets the copy
    primary: Any  # LoadedVersion that answered
    body: bytes
    header_length: str | None
    # The primary's answer of the compared output, or None (the client did not ask for it).
    primary_values: Any
    spec: ShadowSpec


def compare_rows(
    mode: str, shadow: np.ndarray, primary: np.ndarray, atol: float, rtol: float
) -> tuple[int, int]:
    """(rows that agree, rows that disagree); ValueError when the answers do not line up."""
    if mode == "argmax":
        shadow, primary = np.asarray(shadow).argmax(axis=-1), np.asarray(primary).argmax(axis=-1)
    if mode in ("label", "argmax"):
        a, b = np.asarray(shadow).reshape(-1), np.asarray(primary).reshape(-1)
        if a.shape != b.shape:
            raise ValueError(f"the shadow answered {a.shape[0]} rows, the primary {b.shape[0]}")
        if a.dtype.kind != b.dtype.kind:
            a, b = a.astype(str), b.astype(str)
        same = a == b
    else:
        a, b = np.asarray(shadow, dtype=np.float64), np.asarray(primary, dtype=np.float64)
        rows = b.shape[0] if b.ndim else 1
        if a.size != b.size:
            raise ValueError(f"the shadow answered {a.shape}, the primary {b.shape}")
        a, b = a.reshape(rows, -1), b.reshape(rows, -1)
        same = np.all(np.abs(a - b) <= atol + rtol * np.abs(b), axis=1)
    agree = int(np.count_nonzero(same))
    return agree, int(same.size) - agree


class ShadowRunner:
    """One worker thread behind a bounded queue. `run(loaded, body, header_length, output)` decodes the body
    for `loaded` and returns that output; `stats(loaded)` is the version's VersionStats."""

    def __init__(
        self,
        run: Callable[[Any, bytes, str | None, str], np.ndarray],
        stats: Callable[[Any], VersionStats],
        max_queue: int = DEFAULT_QUEUE_SIZE,
        max_bytes: int = DEFAULT_QUEUE_BYTES,
    ) -> None:
        self._run = run
        self._stats = stats
        self._queue: queue.Queue[ShadowJob | None] = queue.Queue(maxsize=max(1, max_queue))
        self._max_bytes = max_bytes
        self._bytes = 0  # body bytes of the queued jobs (under _bytes_lock)
        self._bytes_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def offer(self, job: ShadowJob) -> None:
        """Queue the copy, or count it dropped when the queue is full (in jobs or in body bytes). Never blocks."""
        if self._thread is None:
            self._start()
        size = len(job.body)
        with self._bytes_lock:
            room = self._bytes + size <= self._max_bytes
            if room:
                self._bytes += size
        try:
            if not room:
                raise queue.Full
            self._queue.put_nowait(job)
        except queue.Full:
            if room:
                self._release(size)
            self._stats(job.shadow).shadow_outcome(job.primary.version, DROPPED)

    def _release(self, size: int) -> None:
        with self._bytes_lock:
            self._bytes -= size

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="mlspec-shadow", daemon=True)
                self._thread.start()

    def close(self) -> None:
        """Stop the worker after the job it runs (queued copies are abandoned: the process is stopping)."""
        if self._thread is None:
            return
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                self._one(job)
            finally:
                self._release(len(job.body))

    def _one(self, job: ShadowJob) -> None:
        stats = self._stats(job.shadow)
        primary = job.primary.version
        started = time.perf_counter()
        try:
            output, mode = compared_output(job.primary.output_names)
            if output is None or output not in job.shadow.output_names:
                raise ValueError(
                    f"no output to compare: the primary answers {job.primary.output_names}, the shadow "
                    f"{job.shadow.output_names}"
                )
            shadow_values = self._run(job.shadow, job.body, job.header_length, output)
            seconds = time.perf_counter() - started
            primary_values = job.primary_values
            if primary_values is None:
                primary_values = self._run(job.primary, job.body, job.header_length, output)
            agree, disagree = compare_rows(mode, shadow_values, primary_values, job.spec.atol, job.spec.rtol)
        except Exception as exc:  # a shadow that cannot answer is counted, never raised
            stats.shadow_outcome(primary, ERROR, time.perf_counter() - started)
            log.debug(
                "shadow model %s version %s failed on a copy: %s", job.shadow.name, job.shadow.version, exc
            )
            return
        stats.shadow_outcome(primary, COMPARED, seconds)
        stats.shadow_compared(primary, agree, disagree)

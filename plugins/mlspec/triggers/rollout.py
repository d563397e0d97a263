"""Watch one rollout step without holding a worker slot.

The rollout task sets the step's traffic, then defers to a :class:`RolloutStepTrigger`: the triggerer reads
the step's live metrics (the model server's /metrics, or a Prometheus server: mlspec.rollout.metrics) and the
rollout's pending command (pause, abort: mlspec.rollout.record) every few seconds, each blocking read in a
thread (asyncio.to_thread), and wakes the task with exactly one event:
``{"status": "pass"|"fail"|"paused"|"aborted", "metrics": {...}, "checks": [...], "elapsed_s": float,
"message": str, "carry": {...}}``. `carry` is what the task needs to go on (which step, the steps passed),
handed back in the event: Airflow's dag.test resumes a task with the event alone, without the defer's kwargs.

A paused or held rollout defers to a :class:`RolloutCommandTrigger`, which waits for a resume or an abort
(``{"status": "resumed"|"aborted"|"timeout", "message": str, "carry": {...}}``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from mlspec.deadlines import format_duration
from mlspec.errors import MlspecError
from mlspec.registry.reading import open_for_reading
from mlspec.release import what_failed
from mlspec.rollout.gates import FAIL, MIN_REQUESTS_PATIENCE, PASS, WAIT, step_verdict
from mlspec.rollout.metrics import StepMetrics, metrics_source
from mlspec.rollout.plan import Step
from mlspec.rollout.record import ABORTED_STEP as ABORTED
from mlspec.rollout.record import PAUSED_STEP as PAUSED
from mlspec.rollout.record import RESUMED_STEP as RESUMED
from mlspec.rollout.record import command_pending_in, record_of
from mlspec.serving import platform_of
from mlspec.spec.model import ModelSpec
from mlspec.vocabulary import ROLLOUT_COMMANDS

log = logging.getLogger(__name__)

PAUSE, RESUME, ABORT = ROLLOUT_COMMANDS
# The events' statuses beside the gates' pass and fail: a step stopped by a person (the record's outcomes of the
# same names), a wait's end.
TIMEOUT = "timeout"  # a paused or held wait's end: rolls back
# How often a step reads its metrics: every min(5 s, bake / 5), never faster than twice a second.
MAX_POLL_S, MIN_POLL_S = 5.0, 0.5
# How often a waiting step logs its progress: every max(2 s, bake / 10), so a 5m bake shows it moving.
MIN_PROGRESS_S = 2.0
# A registry that does not answer a command read within this long is skipped for that poll: the gates go on.
LOOK_TIMEOUT_S = 10.0


def poll_interval_s(bake_s: float) -> float:
    return max(MIN_POLL_S, min(MAX_POLL_S, float(bake_s) / 5))


def progress_every_s(bake_s: float) -> float:
    return max(MIN_PROGRESS_S, float(bake_s) / 10)


def progress_line(step: Step, metrics: StepMetrics, min_requests: int, elapsed_s: float, *, compared: bool) -> str:
    """One poll of a step that still waits, for a person watching the log: what the candidate did so far and
    what the step waits for."""
    p95 = f"p95 {metrics.p95_ms:.1f} ms" if metrics.p95_ms is not None else "no latency yet"
    agreement = ("" if not compared else f", agreement {metrics.agreement:.3f} on {metrics.compared_rows} rows"
                 if metrics.agreement is not None else ", no rows compared yet")
    if elapsed_s < step.bake_s:
        waiting = f"waiting {format_duration(int(elapsed_s))} of {format_duration(step.bake_s)} bake"
    else:
        waiting = (f"the {format_duration(step.bake_s)} bake is over; waiting for min_requests, at most "
                   f"{format_duration(MIN_REQUESTS_PATIENCE * step.bake_s)} in all")
    return (f"{step.kind} {step.percent}%: {metrics.requests} requests so far (min_requests {min_requests}), {p95}, "
            f"errors {metrics.errors}{agreement}; {waiting}")


def snapshot_to_json(snapshot: Any) -> Any:
    """A metrics snapshot as plain JSON for a trigger's kwargs: Prometheus's start time as it is, the server's
    counters as [name, {labels}, value] rows."""
    if isinstance(snapshot, dict):
        return [[name, dict(labels), value] for (name, labels), value in snapshot.items()]
    return snapshot


def snapshot_from_json(data: Any) -> Any:
    """snapshot_to_json's inverse (None stays None: no snapshot)."""
    if isinstance(data, list):
        return {(str(name), frozenset(dict(labels).items())): float(value) for name, labels, value in data}
    return data


def look(registry: Any, model: str, version: int) -> str | None:
    """The command the rollout must act on: a pending pause, resume or abort, or "abort" when the rollout
    is already over (an abort from the CLI rolls back at once and acts on its own command)."""
    found = registry.version_record(model, version)  # one registry read per look
    command = command_pending_in(found)
    if command is not None:
        return command["command"]
    record = record_of(found)
    return ABORT if record is not None and record.final else None


async def look_in_time(registry: Any, model: str, version: int, where: str) -> str | None:
    """look() from a worker thread, at most LOOK_TIMEOUT_S: a registry that errs or hangs yields no command this
    poll (logged), so the gates are still read while it does."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(look, registry, model, version), LOOK_TIMEOUT_S)
    except (MlspecError, TimeoutError) as exc:
        log.warning("%s: could not read the rollout's command: %s", where, exc or f"no answer in {LOOK_TIMEOUT_S:g}s")
        return None


class RolloutStepTrigger(BaseTrigger):
    """Read step `step` (kind, percent, bake_s) of the rollout of `candidate` (production: `production`)
    until its gates pass or fail, or a pause or an abort is asked. `started_at` (epoch seconds): when the
    step's traffic was set; the bake counts from it. `window_start`: the metrics snapshot the task took when it
    set the traffic (snapshot_to_json's), so the window begins with the step and a restarted triggerer keeps it;
    without one the trigger takes its own, and the step then bakes a whole bake from it (a step never passes on
    a window shorter than its bake). Its kwargs are plain JSON (the resolved spec dict)."""

    def __init__(self, spec: dict, spec_file: str, candidate: int, production: int | None, step: dict,
                 started_at: float, endpoint_url: str, carry: dict | None = None, window_start: Any = None,
                 readiness_only: bool = False) -> None:
        super().__init__()
        self.carry = carry or {}
        self.spec = spec
        self.spec_file = spec_file
        self.candidate = candidate
        self.production = production
        self.step = step
        self.started_at = started_at
        self.endpoint_url = endpoint_url
        self.window_start = window_start
        self.readiness_only = readiness_only  # no per-version metrics (KServe): the step only bakes

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "mlspec.triggers.rollout.RolloutStepTrigger",
            {"spec": self.spec, "spec_file": self.spec_file, "candidate": self.candidate,
             "production": self.production, "step": self.step, "started_at": self.started_at,
             "endpoint_url": self.endpoint_url, "carry": self.carry, "window_start": self.window_start,
             "readiness_only": self.readiness_only},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """The step's one event; anything that breaks the watch (a Prometheus connection the triggerer cannot
        find, a malformed answer, a bug) is a `fail` event with the reason: the task rolls back."""
        try:
            async for event in self.watch():
                yield event
                return
        except Exception as exc:  # noqa: BLE001 - a crashed trigger must still wake the task to roll back
            log.exception("the rollout step's watch failed")
            elapsed = time.time() - float(self.started_at)
            yield TriggerEvent(self.event(FAIL, None, [], elapsed, f"the step's watch failed: {what_failed(exc)}"))

    async def watch(self) -> AsyncIterator[TriggerEvent]:
        spec = ModelSpec.from_dict(self.spec, source_file=self.spec_file)
        step = Step(**self.step)
        registry = open_for_reading(spec.registry.backend, spec.registry.connection)  # reads only
        source = metrics_source(spec, self.endpoint_url)
        where = f"{spec.name} version {self.candidate} {step.kind} {step.percent}%"
        compared = platform_of(spec).shadows  # a platform that cannot shadow never has a row both versions answered
        poll_s, progress_s, logged_at = poll_interval_s(step.bake_s), progress_every_s(step.bake_s), None
        metrics, checks, problem = None, [], ""
        start, window_from = snapshot_from_json(self.window_start), float(self.started_at)
        while True:
            elapsed = time.time() - float(self.started_at)
            command = await look_in_time(registry, spec.name, self.candidate, where)  # a blink is not a verdict
            if command in (PAUSE, ABORT):
                status = PAUSED if command == PAUSE else ABORTED
                yield TriggerEvent(self.event(status, metrics, checks, elapsed, f"{where}: {command} asked"))
                return
            if self.readiness_only:  # the task checks the candidate is routed its share once the bake is over
                if elapsed >= step.bake_s:
                    yield TriggerEvent(self.event(PASS, None, [], elapsed, f"{where}: baked {elapsed:.1f}s "
                                                  "(no per-version metrics: readiness only)"))
                    return
                await asyncio.sleep(poll_s)
                continue
            try:
                if start is None:  # the task could not take it: the window begins now
                    start, window_from = await asyncio.to_thread(source.snapshot, spec.name), time.time()
                metrics = await asyncio.to_thread(source.window, spec.name, self.candidate, self.production, start)
            except MlspecError as exc:
                problem = f"the metrics could not be read: {exc}"
                log.warning("%s: %s", where, problem)
                verdict = FAIL if elapsed >= MIN_REQUESTS_PATIENCE * step.bake_s else WAIT
                checks = []
            else:
                problem = ""
                verdict, found = step_verdict(metrics, spec.rollout.gates, time.time() - window_from, step.bake_s,
                                              compared=compared)
                checks = [c.to_dict() | {"line": c.line()} for c in found]
            if verdict != WAIT:
                message = problem or f"{where}: {verdict} after {elapsed:.1f}s"
                yield TriggerEvent(self.event(verdict, metrics, checks, elapsed, message))
                return
            if not problem and (logged_at is None or time.time() - logged_at >= progress_s):
                log.info("%s", progress_line(step, metrics, spec.rollout.gates.min_requests, elapsed,
                                             compared=compared))
                logged_at = time.time()
            await asyncio.sleep(poll_s)

    def event(self, status: str, metrics: Any, checks: list[dict], elapsed: float, message: str) -> dict:
        return {"status": status, "metrics": metrics.to_dict() if metrics is not None else {}, "checks": checks,
                "elapsed_s": round(elapsed, 3), "message": message, "carry": self.carry}


class RolloutCommandTrigger(BaseTrigger):
    """Wait for a person's resume or abort of a paused or held rollout, at most `timeout_s` from
    `since` (epoch seconds)."""

    def __init__(self, spec: dict, spec_file: str, candidate: int, since: float, timeout_s: float,
                 poll_interval_s: float = 2.0, carry: dict | None = None) -> None:
        super().__init__()
        self.carry = carry or {}
        self.spec = spec
        self.spec_file = spec_file
        self.candidate = candidate
        self.since = since
        self.timeout_s = timeout_s
        self.poll_interval_s = poll_interval_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "mlspec.triggers.rollout.RolloutCommandTrigger",
            {"spec": self.spec, "spec_file": self.spec_file, "candidate": self.candidate, "since": self.since,
             "timeout_s": self.timeout_s, "poll_interval_s": self.poll_interval_s, "carry": self.carry},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """The wait's one event; a wait that breaks is a `fail` event with the reason: the task rolls back."""
        try:
            async for event in self.wait():
                yield event
                return
        except Exception as exc:  # noqa: BLE001 - a crashed trigger must still wake the task to roll back
            log.exception("the rollout's wait for a command failed")
            yield TriggerEvent({"status": FAIL, "message": f"the wait for a command failed: {what_failed(exc)}",
                                "carry": self.carry})

    async def wait(self) -> AsyncIterator[TriggerEvent]:
        spec = ModelSpec.from_dict(self.spec, source_file=self.spec_file)
        registry = open_for_reading(spec.registry.backend, spec.registry.connection)  # reads only
        while True:
            command = await look_in_time(registry, spec.name, self.candidate, f"{spec.name} version {self.candidate}")
            if command in (RESUME, ABORT):
                status = RESUMED if command == RESUME else ABORTED
                yield TriggerEvent({"status": status, "message": f"{command} asked", "carry": self.carry})
                return
            waited = time.time() - float(self.since)
            if waited >= float(self.timeout_s):
                yield TriggerEvent({"status": TIMEOUT, "carry": self.carry,
                                    "message": f"no resume or abort within {format_duration(float(self.timeout_s))}"})
                return
            await asyncio.sleep(min(float(self.poll_interval_s), float(self.timeout_s) - waited))

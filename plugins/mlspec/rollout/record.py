"""A rollout's record on the candidate's registry version: its state, and every step with its traffic, its
gates' values and its outcome (the Models page's timeline reads it), and the commands a person sends it.

The record is one JSON tag (registry.record_rollout, which cuts older steps' checks to fit). A command
(`mlspec rollout SPEC --pause|--resume|--abort`, the operations DAG) is another tag
(registry.set_rollout_command), which the rollout acts on once: the record keeps the time of the last
command it acted on (`acted_on`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from mlspec.errors import RegistryError
from mlspec.registry.base import ModelRegistry, VersionRecord, utc_now
from mlspec.rollout.gates import GateCheck
from mlspec.rollout.metrics import StepMetrics
from mlspec.vocabulary import ROLLOUT_COMMANDS, ROLLOUT_FINAL_STATES, ROLLOUT_STATES, ROLLOUT_STEP_KINDS

RUNNING, PAUSED, HELD, AWAITING_APPROVAL, COMPLETED, ROLLED_BACK, ABORTED = ROLLOUT_STATES
PAUSE, RESUME, ABORT = ROLLOUT_COMMANDS
# A record's steps: the plan's shadow and canary steps, a person's approval or command, and the rollback.
APPROVAL, COMMAND, ROLLBACK = "approval", "command", "rollback"
RECORD_STEP_KINDS = (*ROLLOUT_STEP_KINDS, APPROVAL, COMMAND, ROLLBACK)
# How a step ended ("waiting" while it runs).
STEP_OUTCOMES = (
    "passed", "failed", "waiting", "timed_out", "approved", "rejected", "paused", "resumed", "aborted"
)
(PASSED, FAILED, WAITING, TIMED_OUT, APPROVED, REJECTED,
 PAUSED_STEP, RESUMED_STEP, ABORTED_STEP) = STEP_OUTCOMES
# What a command does to the rollout's state, and the outcome of the command's step.
COMMAND_EFFECTS = {
    PAUSE: (PAUSED, PAUSED_STEP), RESUME: (RUNNING, RESUMED_STEP), ABORT: (ABORTED, ABORTED_STEP)
}


def command_time(after: str | None = None) -> str:
    """Now, to the millisecond, and later than `after` (the command before): each command is newer than the
    one it follows, however fast they come."""
    now = datetime.now(UTC)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # as written
    before = _when(after)
    if before is not None and now <= before:
        now = before + timedelta(milliseconds=1)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _when(stamp: Any) -> datetime | None:
    """A record's or command's time; None when absent or not a time (a hand-edited tag is no command)."""
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")) if stamp else None
    except ValueError:
        return None


class RolloutRecord:
    """The record of one rollout (its JSON: to_dict / from_dict)."""

    def __init__(self, version: int, production: int | None, on_fail: str, *, state: str = RUNNING,
                 started: str | None = None, updated: str | None = None, steps: list[dict] | None = None,
                 acted_on: str | None = None, steps_cut: int = 0) -> None:
        self.version = version  # the candidate
        self.production = production  # what served when the rollout began (None: a first version)
        self.on_fail = on_fail
        self._state = state
        self.started = started or utc_now()
        self.updated = updated or self.started
        self.steps = steps if steps is not None else []
        self.acted_on = acted_on  # the `at` of the last command the rollout acted on
        self.steps_cut = steps_cut  # the oldest steps the registry left out to fit its tag

    @property
    def state(self) -> str:
        return self._state

    @state.setter
    def state(self, state: str) -> None:
        if state not in ROLLOUT_STATES:
            raise ValueError(f"unknown rollout state {state!r}; known: {', '.join(ROLLOUT_STATES)}")
        if self.final and state != self._state:  # an abort or a rollback is never undone by a late step
            raise ValueError(f"the rollout of version {self.version} is {self._state}; it cannot become {state}")
        self._state = state
        self.updated = utc_now()

    @property
    def final(self) -> bool:
        return self._state in ROLLOUT_FINAL_STATES

    @property
    def current_step(self) -> dict | None:
        return self.steps[-1] if self.steps else None

    def add_step(self, kind: str, *, percent: int | None = None, traffic: dict | None = None,
                 outcome: str = WAITING, by: str | None = None, message: str | None = None) -> dict:
        """Begin a step (`traffic`: plan.traffic_for's parameters, recorded as each version's share and the
        share copied to the shadow); returns it."""
        if kind not in RECORD_STEP_KINDS:
            raise ValueError(f"unknown rollout step {kind!r}; known: {', '.join(RECORD_STEP_KINDS)}")
        step: dict[str, Any] = {"kind": kind}
        if percent is not None:
            step["percent"] = percent
        if traffic is not None:
            step["traffic"] = self._shares(traffic)
            if traffic.get("shadow"):
                step["shadow"] = traffic["shadow"]["percent"]
        now = utc_now()
        step.update(started=now, outcome=_outcome(outcome))
        if outcome != WAITING:
            step["ended"] = now
        step.update({k: v for k, v in (("by", by), ("message", message)) if v})
        self.steps.append(step)
        self.updated = now
        return step

    def _shares(self, traffic: dict) -> dict[str, int]:
        shares = {str(v): 0 for v in (self.production, self.version) if v is not None}
        shares.update({str(v): int(p) for v, p in (traffic.get("weights") or {}).items()})
        return shares

    def finish_step(self, outcome: str, *, metrics: StepMetrics | None = None, checks: list[GateCheck] = (),
                    by: str | None = None, message: str | None = None) -> dict:
        """End the current step with its outcome, the requests it saw and its gates' checks."""
        step = self.current_step
        if step is None:
            raise ValueError("the rollout has no step to finish")
        step.update(outcome=_outcome(outcome), ended=utc_now())
        if metrics is not None:
            step["requests"] = metrics.requests
        if checks:
            step["checks"] = [c.to_dict() for c in checks]
        step.update({k: v for k, v in (("by", by), ("message", message)) if v})
        self.updated = step["ended"]
        return step

    def act_on(self, command: dict) -> str:
        """Record a person's command (pending_command's) as a step and follow it: the new state."""
        name = command["command"]
        state, outcome = COMMAND_EFFECTS[name]
        self.add_step(COMMAND, outcome=outcome, by=command.get("actor") or None, message=name)
        self.acted_on = command.get("at")
        self.state = state
        return state

    def to_dict(self) -> dict:
        record = {"version": self.version, "production": self.production, "state": self._state,
                  "started": self.started, "updated": self.updated, "on_fail": self.on_fail,
                  "steps": self.steps}
        if self.acted_on:
            record["acted_on"] = self.acted_on
        if self.steps_cut:
            record["steps_cut"] = self.steps_cut
        return record

    @classmethod
    def from_dict(cls, data: dict) -> RolloutRecord:
        production = data.get("production")
        return cls(
            version=int(data["version"]),
            production=None if production is None else int(production),
            on_fail=str(data.get("on_fail", "")),
            state=str(data.get("state", RUNNING)),
            started=data.get("started"),
            updated=data.get("updated"),
            steps=list(data.get("steps") or []),
            acted_on=data.get("acted_on"),
            steps_cut=int(data.get("steps_cut") or 0),
        )


def _outcome(outcome: str) -> str:
    if outcome not in STEP_OUTCOMES:
        raise ValueError(f"unknown step outcome {outcome!r}; known: {', '.join(STEP_OUTCOMES)}")
    return outcome


def load_record(registry: ModelRegistry, model: str, version: int) -> RolloutRecord | None:
    """The version's rollout record, or None when it never had a rollout."""
    return record_of(registry.version_record(model, version))


def record_of(found: VersionRecord | None) -> RolloutRecord | None:
    """The rollout record in a version's registry record, or None."""
    return RolloutRecord.from_dict(found.rollout) if found is not None and found.rollout else None


def save_record(registry: ModelRegistry, model: str, record: RolloutRecord) -> None:
    registry.record_rollout(model, record.version, record.to_dict())


def unfinished_rollouts(registry: ModelRegistry, model: str) -> list[RolloutRecord]:
    """The model's rollouts that are not over (running, paused, held, awaiting approval), oldest first. More
    than one means an older one was abandoned (its task killed or marked failed): the next deploy rolls it back."""
    return unfinished_in(registry.list_versions(model))


def unfinished_in(versions: list[VersionRecord]) -> list[RolloutRecord]:
    """unfinished_rollouts' answer from the model's version records already listed (oldest first)."""
    records = (RolloutRecord.from_dict(found.rollout) for found in versions if found.rollout)
    return [record for record in records if not record.final]


def active_rollout(registry: ModelRegistry, model: str) -> RolloutRecord | None:
    """The model's rollout under way: the newest version whose rollout is not over, or None. The one
    definition: `mlspec rollout --status`, the operations and the Models page all ask this."""
    return active_rollout_in(registry.list_versions(model))


def active_rollout_in(versions: list[VersionRecord]) -> RolloutRecord | None:
    """active_rollout's answer from the model's version records already listed (oldest first)."""
    unfinished = unfinished_in(versions)
    return unfinished[-1] if unfinished else None


def pending_command(registry: ModelRegistry, model: str, version: int) -> dict | None:
    """The command ({"command", "actor", "at"}) sent to the version's rollout since it began that it has not
    acted on yet, or None."""
    return command_pending_in(registry.version_record(model, version))


def command_pending_in(found: VersionRecord | None) -> dict | None:
    """pending_command's answer from a version's registry record already read."""
    if found is None or not found.rollout or not found.rollout_command:
        return None
    record = RolloutRecord.from_dict(found.rollout)
    command = found.rollout_command
    sent = _when(command.get("at"))
    since = max(t for t in (_when(record.started), _when(record.acted_on)) if t is not None)
    return command if sent is not None and sent > since else None


def read_command(registry: ModelRegistry, model: str, version: int) -> str | None:
    """The last pause, resume or abort not yet acted on (pending_command's name)."""
    command = pending_command(registry, model, version)
    return command["command"] if command else None


def send_command(registry: ModelRegistry, model: str, version: int, command: str, actor: str) -> None:
    """Ask the version's running rollout to pause, resume or abort; it acts on its next look (seconds)."""
    if command not in ROLLOUT_COMMANDS:
        raise ValueError(f"unknown rollout command {command!r}; known: {', '.join(ROLLOUT_COMMANDS)}")
    found = registry.version_record(model, version)
    record = RolloutRecord.from_dict(found.rollout) if found is not None and found.rollout else None
    if record is None or record.final:
        what = "never had a rollout" if record is None else f"its rollout is {record.state}"
        raise RegistryError(f"cannot {command} the rollout of {model} version {version}: {what}")
    at = command_time(after=found.rollout_command.get("at"))
    registry.set_rollout_command(model, version, {"command": command, "actor": actor, "at": at})

"""What a person does about a model's rollout: see it, pause it, resume it, abort it.

`mlspec rollout SPEC --status|--pause|--resume|--abort` and the mlspec_operations DAG's rollout actions call
these. Pause and resume are commands written on the candidate's registry record (mlspec.rollout.record): the
rollout task in Airflow acts on them at its next check. An abort writes the command too, and rolls back at
once through the release service under the model's lock, so it works when no Airflow task is running.
"""

from __future__ import annotations

import logging
from typing import Any

from mlspec.approval import deadline_after, reject_for_abort, where_to_approve
from mlspec.errors import MlspecError
from mlspec.locks import model_lock
from mlspec.model_card import endpoint_base
from mlspec.registry import open_registry
from mlspec.registry.base import ModelRegistry
from mlspec.registry.reading import open_for_reading
from mlspec.release import OperationFailed, Release, Trigger
from mlspec.rollout.gates import GateCheck
from mlspec.rollout.plan import CANARY, SHADOW
from mlspec.rollout.record import (
    ABORTED,
    APPROVAL,
    AWAITING_APPROVAL,
    HELD,
    PAUSED,
    RUNNING,
    active_rollout,
    load_record,
    read_command,
    send_command,
)
from mlspec.serving import open_serving
from mlspec.serving.base import Deployment
from mlspec.vocabulary import ROLLOUT_COMMANDS

log = logging.getLogger(__name__)

PAUSE, RESUME, ABORT = ROLLOUT_COMMANDS
STATUS = "status"  # read only: what the rollout does now
APPROVAL_ANSWERS = (APPROVE, REJECT) = ("approve", "reject")  # a person's answer to the approval a rollout waits for
# `mlspec rollout SPEC --<action>`: report, command, or answer the approval.
ROLLOUT_CLI_ACTIONS = (STATUS, *ROLLOUT_COMMANDS, *APPROVAL_ANSWERS)
# The operations' names for them (mlspec.operations.ACTIONS; the mlspec_operations DAG's form).
# --status asks the serving platform what it routes: a platform that does not answer holds it this long at most.
STATUS_SERVING_TIMEOUT_S = 10.0
ROLLOUT_ACTIONS = {"rollout_status": STATUS, "rollout_pause": PAUSE, "rollout_resume": RESUME, "rollout_abort": ABORT}
# The states a command makes sense in (vocabulary.ROLLOUT_STATES), and why it does not in the others.
ALLOWED = {PAUSE: (RUNNING,), RESUME: (PAUSED, HELD), ABORT: (RUNNING, PAUSED, HELD, AWAITING_APPROVAL)}
REFUSALS = {
    (PAUSE, PAUSED): "is paused already; --resume runs its step again, --abort gives production all traffic back",
    (PAUSE, HELD): "is held after a failed gate, stopped already; --resume runs the step again, --abort rolls back",
    (PAUSE, AWAITING_APPROVAL): "waits for a person's approval (--approve or --reject it, or answer it in "
                                "Airflow's Required Actions); --abort rolls back now",
    (RESUME, RUNNING): "is running, not paused or held: there is nothing to resume",
    (RESUME, AWAITING_APPROVAL): "waits for a person's approval, not for a resume: --approve or --reject it (or "
                                 "answer it in Airflow's Required Actions); --abort rolls back now",
}


class RolloutRefused(OperationFailed):
    """The command makes no sense now (no rollout, or not in a state it applies to): nothing was changed."""


def rollout_status(spec: Any) -> dict[str, Any]:
    """The active rollout (version, production, state, current step, the traffic as serving reports it, each
    gate's last value), or the last finished one. Read only."""
    registry = open_for_reading(spec.registry.backend, spec.registry.connection)
    record = active_rollout(registry, spec.name)
    if record is None:
        last = last_rollout(registry, spec.name)
        return {"model": spec.name, "active": False, "last": last}
    data = record.to_dict()
    result: dict[str, Any] = {
        "model": spec.name, "active": True, "rollout": data, "step": last_traffic_step(data),
        "checks": last_checks(data),
        "pending_command": read_command(registry, spec.name, int(data["version"])),
    }
    if data.get("state") == AWAITING_APPROVAL:
        asked = next((s for s in reversed(data.get("steps") or []) if s.get("kind") == APPROVAL), {})
        timeout_s = spec.rollout.approval.timeout_s
        result["approval"] = where_to_approve(spec.source_file or "<spec>", deadline_after(asked.get("started"), timeout_s),
                                              timeout_s)
    try:
        result["traffic"] = open_serving(spec, timeout_s=STATUS_SERVING_TIMEOUT_S).traffic(spec.name)
    except MlspecError as exc:
        result["traffic"] = f"unknown: {exc}"
    return result


def send(spec: Any, command: str, trigger: Trigger | None = None, reason: str = "") -> dict[str, Any]:
    """Write `command` (pause, resume, abort) on the active rollout, after checking it makes sense in the
    rollout's state; an abort then rolls back at once, under the model's lock."""
    trigger = trigger or Trigger.from_cli()
    registry = open_registry(spec.registry.backend, spec.registry.connection)
    record = active_rollout(registry, spec.name)
    if record is None:
        last = last_rollout(registry, spec.name)
        ended = f"; the last one (version {last['version']}) ended {last.get('state', '')}" if last else ""
        raise RolloutRefused(f"{spec.name} has no rollout in progress, so there is nothing to {command}{ended}; "
                             "nothing changed")
    data = record.to_dict()
    version, state = int(data["version"]), str(data.get("state", ""))
    pending = read_command(registry, spec.name, version)
    if state not in ALLOWED[command]:
        why = REFUSALS.get((command, state), f"is {state}")
        if command == RESUME and pending == PAUSE:  # the task has not stopped the step yet: resume after it has
            why = ("is still running: the pause sent is acted on at the rollout task's next check (seconds); "
                   "--resume then runs the step again")
        raise RolloutRefused(f"{command}: the rollout of {spec.name} version {version} {why}; nothing changed")
    if command != ABORT and pending == command:
        raise RolloutRefused(f"{command}: the rollout of {spec.name} version {version} was already asked to {command}; "
                             "the rollout task acts on it at its next check (mlspec rollout --status shows when)")
    send_command(registry, spec.name, version, command, trigger.actor)
    log.info("%s sent %s to the rollout of %s version %d (was %s)", trigger.actor, command, spec.name, version, state)
    result: dict[str, Any] = {"model": spec.name, "action": f"rollout_{command}", "command": command, "version": version,
                              "production": data.get("production"), "state": state, "actor": trigger.actor}
    if command == ABORT:
        result.update(abort_now(spec, data, trigger, reason or f"aborted by {trigger.actor}"))
        # The approval task would wait for its timeout: a Reject ends it now (it finds the rollout aborted).
        if state == AWAITING_APPROVAL and reject_for_abort(spec.name, trigger.actor, reason or "the rollout was aborted"):
            result["next"] += " The pending approval was answered Reject."
    else:
        result["next"] = next_words(spec, command, data)
    return result


def abort_now(spec: Any, data: dict[str, Any], trigger: Trigger, reason: str) -> dict[str, Any]:
    """Production takes all traffic back and the candidate is rolled back, now, under the model's lock
    (Release.roll_back_rollout, which also acts on the abort on the rollout record: state aborted). A rollout
    task that then sees the command finds the rollout over instead of rolling it back a second time."""
    version, production = int(data["version"]), data.get("production")
    with model_lock(spec.name, f"abort the rollout of version {version} for {trigger.actor}"):
        release = Release.open(spec)
        now = load_record(release.registry, spec.name, version)
        if now is not None and now.final:  # the rollout task got the lock first and ended it: not twice
            last = now.current_step or {}
            return {"state": now.state, "story": last.get("message", ""),
                    "next": f"the rollout had just ended ({now.state}, by {last.get('by') or 'the rollout task'}); "
                            "nothing more to do"}
        deployment = candidate_deployment(spec, release.registry, version, production)
        story = release.roll_back_rollout(deployment, reason, trigger, by=trigger.actor, gate=ABORTED)
    serves = f"version {production}" if production is not None else "nothing"
    return {"state": ABORTED, "story": story,
            "next": f"{serves} answers all traffic again; version {version} is rolled back. A new run of the "
                    "pipeline starts a new rollout."}


def candidate_deployment(spec: Any, registry: ModelRegistry, version: int, production: Any) -> Deployment:
    """The candidate's deployment as deploy recorded it on the version (its endpoint, the name it serves under)."""
    record = registry.version_record(spec.name, version)
    recorded = dict(record.deployment) if record is not None else {}
    return Deployment(
        platform=recorded.get("platform") or spec.serving.platform,
        model_name=spec.name,
        version=version,
        endpoint_url=recorded.get("endpoint_url") or endpoint_base(spec),
        served_model_name=recorded.get("served_model_name") or spec.name,
        previous_version=production if isinstance(production, int) else None,
    )


def next_words(spec: Any, command: str, data: dict[str, Any]) -> str:
    """What happens after a pause or a resume, in words."""
    source = spec.source_file or "<spec>"
    step = last_traffic_step(data)
    what = step_words(step) if step else "the current step"
    if command == PAUSE:
        return (f"the rollout task stops {what} at its next check and waits; the traffic stays as it is. "
                f"`mlspec rollout {source} --resume` runs the step again, `--abort` gives production all traffic back")
    return (f"the rollout task runs {what} again from its start at its next check; "
            f"`mlspec rollout {source} --status` follows it")


def last_traffic_step(data: dict[str, Any]) -> dict[str, Any]:
    """The latest traffic step (shadow or canary) of the record; {} before the first."""
    steps = [s for s in data.get("steps") or [] if isinstance(s, dict)]
    return next((s for s in reversed(steps) if s.get("kind") in (SHADOW, CANARY)), steps[-1] if steps else {})


def last_checks(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Each gate's last value: the checks of the latest step that has any."""
    for step in reversed([s for s in data.get("steps") or [] if isinstance(s, dict)]):
        if step.get("checks"):
            return list(step["checks"])
    return []


def step_words(step: dict[str, Any]) -> str:
    kind, percent = step.get("kind", ""), step.get("percent")
    if kind == SHADOW:
        return f"the shadow step ({percent} % copied)"
    if kind == CANARY:
        return f"the canary step at {percent} %"
    return f"the {kind} step" if kind else "the current step"


def last_rollout(registry: ModelRegistry, model_name: str) -> dict[str, Any] | None:
    """The record of the newest version that had a rollout, or None."""
    for record in reversed(registry.list_versions(model_name)):
        if record.rollout:
            return dict(record.rollout)
    return None


def status_lines(result: dict[str, Any], source: str) -> list[str]:
    """`mlspec rollout --status` in words."""
    name = result["model"]
    if not result["active"]:
        last = result.get("last")
        if not last:
            return [f"{name}: no rollout in progress, and none recorded"]
        return [f"{name}: no rollout in progress; the last one: version {last.get('version')} against production "
                f"{last.get('production')}, {last.get('state')} (started {last.get('started')}, last recorded "
                f"{last.get('updated')})"]
    data, step = result["rollout"], result["step"]
    lines = [f"{name}: rollout of version {data['version']} against production {data.get('production')}: "
             f"{str(data.get('state', '')).replace('_', ' ')} (started {data.get('started')}, on a failed gate: "
             f"{data.get('on_fail', 'rollback')})"]
    if step:
        lines.append(f"  step: {step_words(step)}, started {step.get('started')}, outcome {step.get('outcome') or 'pending'}"
                     + (f", {step['requests']} requests" if step.get("requests") is not None else ""))
    lines.append(f"  traffic (as serving reports it): {traffic_words(result.get('traffic'))}")
    for check in result["checks"]:  # in the rollout task's log words: "agreement 0.99 >= 0.95: passed"
        gate = GateCheck(str(check.get("gate", "")), check.get("value"), check.get("limit"), bool(check.get("passed")))
        lines.append(f"  gate {gate.line()}")
    if result.get("pending_command"):
        lines.append(f"  asked to {result['pending_command']}: the rollout task acts on it at its next check")
    if result.get("approval"):
        lines.append(f"  awaiting approval: {result['approval']}")
    lines.append(f"  `mlspec rollout {source} --pause|--resume|--abort` acts on it")
    return lines


def traffic_words(traffic: Any) -> str:
    if not isinstance(traffic, dict):
        return str(traffic)
    weights = traffic.get("weights") or {}
    text = ", ".join(f"version {v} {share} %" for v, share in weights.items()) or "no split"
    shadow = traffic.get("shadow")
    if isinstance(shadow, dict):
        text += f"; version {shadow.get('version')} gets a copy of {shadow.get('percent')} %"
    return text


def summary_line(spec: Any) -> str | None:
    """One line for `mlspec status`: the rollout under way, or None (always None for a spec without a rollout
    section: its status stays as it was)."""
    if getattr(spec, "rollout", None) is None:
        return None
    try:
        record = active_rollout(open_for_reading(spec.registry.backend, spec.registry.connection), spec.name)
    except MlspecError as exc:
        return f"rollout: could not be read ({exc})"
    if record is None:
        return None
    data = record.to_dict()
    step = last_traffic_step(data)
    where = f", {step_words(step)}" if step else ""
    return (f"rollout: version {data['version']} {str(data.get('state', '')).replace('_', ' ')}{where} "
            f"(`mlspec rollout {spec.source_file or '<spec>'} --status`)")


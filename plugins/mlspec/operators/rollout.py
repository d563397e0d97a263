"""rollout, approve_rollout, complete_rollout: the candidate takes live traffic step by step, each step gated
on live metrics, before promote makes it production (a spec's `rollout` section; mlspec.rollout).

Deploy loaded the candidate beside production (answering nothing) and the smoke test checked it. Each step
sets the traffic through the release service, then defers to a RolloutStepTrigger (no worker slot is held
while the step bakes), logs one line per gate check when it wakes, records the step on the candidate's
registry version and goes on with the next step. A failed step rolls back (`on_fail: rollback`: production
answers every request again, the candidate is `rolled_back`, a `rollback` notification) or holds (`on_fail:
hold`: production answers every request and the candidate gets copies only until a person resumes or
aborts, at most approval.timeout). `mlspec rollout SPEC
--pause|--resume|--abort` are read by the step's trigger. With `approval.required`, approve_rollout asks a
person (Airflow's human-in-the-loop approval) before complete_rollout runs the last step; a Reject or no
answer within approval.timeout rolls back.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from functools import cached_property
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk.bases.operator import TRIGGER_FAIL_REPR
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from mlspec.approval import deadline_after, where_to_approve
from mlspec.deadlines import format_duration
from mlspec.errors import MlspecError
from mlspec.locks import model_lock
from mlspec.operators.base import GateFailed, MlspecOperator
from mlspec.release import Release, Trigger, what_failed
from mlspec.rollout.gates import FAIL, MIN_REQUESTS, PASS, READINESS, GateCheck
from mlspec.rollout.metrics import SERVER_SOURCE, StepMetrics, metrics_source
from mlspec.rollout.plan import (
    Step,
    first_version_note,
    steps_after_approval,
    steps_before_approval,
    traffic_for,
    traffic_while_waiting,
)
from mlspec.rollout.record import (
    ABORT,
    ABORTED,
    APPROVAL,
    APPROVED,
    AWAITING_APPROVAL,
    COMPLETED,
    FAILED,
    HELD,
    PASSED,
    PAUSED,
    REJECTED,
    RUNNING,
    TIMED_OUT,
    WAITING,
    RolloutRecord,
    load_record,
    pending_command,
    save_record,
)
from mlspec.serving import Deployment, platform_of
from mlspec.serving.base import RollbackFailed
from mlspec.spec.model import ModelSpec
from mlspec.triggers import rollout as triggers
from mlspec.triggers.rollout import RolloutCommandTrigger, RolloutStepTrigger, snapshot_to_json
from mlspec.vocabulary import ROLLOUT_ON_FAIL

log = logging.getLogger(__name__)

HOLD = ROLLOUT_ON_FAIL[1]  # on_fail: hold (else rollback)


class RolloutOperator(MlspecOperator):
    """Inputs: `deployment` (deploy's result: the candidate and the production version) and `smoke_test`
    (its report). Runs the rollout's steps before the approval (all of them without one); without an
    approval the candidate then answers every request. Output: the steps passed ({kind, percent, checks})."""

    stage = "rollout"
    ui_color = "#fde7c8"
    template_fields = ("deployment", "smoke_test")
    after_approval = False  # complete_rollout: the last step, after a person approved

    def __init__(self, *, deployment: Any, smoke_test: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deployment = deployment
        self.smoke_test = smoke_test  # only orders this task after smoke_test (the compiler wires inputs as edges)

    @property
    def next_step(self) -> str:
        return (f"`mlspec rollout {self.model_spec.source_file or '<spec>'} --status` shows the rollout's steps and "
                "gates; fix the cause above and trigger a new run")

    @cached_property
    def candidate(self) -> Deployment:
        return Deployment.from_xcom(self.handed_over("deployment"))

    def steps(self) -> list[Step]:
        rollout = self.model_spec.rollout
        first = self.candidate.previous_version is None
        if self.after_approval:
            return steps_after_approval(rollout, first_version=first)
        return steps_before_approval(rollout, first_version=first)

    @property
    def finishes(self) -> bool:
        """Whether this task runs the last step (then the candidate answers every request when it passes)."""
        return self.after_approval or not self.model_spec.rollout.approval.required

    # -- the steps --------------------------------------------------------------------------------------
    def execute(self, context) -> Any:
        return self.guarded(context, lambda: self.run(context))

    def run(self, context) -> dict:
        spec = self.model_spec
        if spec.rollout is None:
            raise GateFailed(f"{self.task_id} runs a spec's rollout, but {spec.name}'s spec has no `rollout` section",
                             next_step="add a `rollout` section, or leave this task out of the DAG")
        if not self.after_approval:
            self.start_record()
        if self.candidate.previous_version is None:  # no steps (mlspec.rollout.plan)
            log.info("%s", first_version_note(self.candidate.version))
        return self.run_step(context, 0, [])

    def start_record(self) -> None:
        """The rollout's record. A task a person cleared (or Airflow retried) keeps the history of the tries
        before: a rollout still under way goes on in its record, one that is over is followed by a new one
        that keeps its steps."""
        spec, deployment = self.model_spec, self.candidate
        earlier = load_record(self.registry, spec.name, deployment.version)
        if earlier is not None and not earlier.final:
            log.info("the rollout of %s version %d goes on in its record (%d steps so far)", spec.name,
                     deployment.version, len(earlier.steps))
            earlier.state = RUNNING
            record = earlier
        else:
            record = RolloutRecord(deployment.version, deployment.previous_version, spec.rollout.on_fail,
                                   steps=list(earlier.steps) if earlier is not None else None,
                                   steps_cut=earlier.steps_cut if earlier is not None else 0)
        save_record(self.registry, spec.name, record)

    def run_step(self, context, index: int, passed: list[dict]) -> dict:
        """Set step `index`'s traffic and defer to its trigger; past the last step, finish."""
        steps = self.steps()
        if index >= len(steps):
            return self.finish(context, passed)
        step, deployment = steps[index], self.candidate
        traffic = traffic_for(step, deployment.previous_version, deployment.version, **self.tolerances())
        with model_lock(self.model_spec.name, f"rollout step {step.kind} {step.percent}% of version {deployment.version}"):
            self.stop_if_over(context)
            self.release.set_traffic(traffic)
        readiness_only = self.readiness_only()
        if readiness_only:
            log.info("%s: no per-version metrics; this step checks readiness only", platform_of(self.model_spec).title)
        started, window = time.time(), None if readiness_only else self.window_start()
        self.update_record(lambda r: r.add_step(step.kind, percent=step.percent, traffic=traffic))
        log.info("%s version %d: %s step %d/%d, %d%%, %s bake; traffic %s", self.model_spec.name, deployment.version,
                 step.kind, index + 1, len(steps), step.percent, format_duration(step.bake_s), traffic)
        self.defer(
            trigger=RolloutStepTrigger(
                spec=self.spec, spec_file=self.spec_file, candidate=deployment.version,
                production=deployment.previous_version, step={"kind": step.kind, "percent": step.percent,
                                                              "bake_s": step.bake_s},
                started_at=started, endpoint_url=deployment.endpoint_url, carry={"index": index, "passed": passed},
                window_start=window, readiness_only=readiness_only,
            ),
            method_name="step_done",
        )
        return {}  # never reached: defer raises

    def resume_execution(self, next_method: str, next_kwargs: dict | None, context) -> Any:
        """A trigger that crashed (Airflow resumes with `__fail__`) rolls back like any failed task."""
        if next_method == TRIGGER_FAIL_REPR:
            return self.guarded(context, lambda: super(RolloutOperator, self).resume_execution(
                next_method, next_kwargs, context))
        return super().resume_execution(next_method, next_kwargs, context)

    def step_done(self, context, event: dict) -> dict:
        """Back from the step's trigger: log each check, record the step, then the next step, a hold, a pause
        or a rollback."""
        carry = event["carry"]
        return self.guarded(context, lambda: self.judge_step(context, event, carry["index"], carry["passed"]))

    def judge_step(self, context, event: dict, index: int, passed: list[dict]) -> dict:
        step = self.steps()[index]
        if event["status"] == PASS and self.readiness_only():  # the bake is over: is the candidate routed?
            event = readiness_verdict(event, step, self.candidate, self.release.serving.traffic(self.model_spec.name))
        status, checks = event["status"], list(event.get("checks") or [])
        where = f"{step.kind} {step.percent}%"
        for check in checks:
            log.info("%s: %s", where, check.get("line") or check)
        self.update_record(lambda r: r.finish_step(step_outcome(event, self.model_spec.rollout.gates.min_requests),
                                                   metrics=StepMetrics(**event["metrics"]) if event.get("metrics") else None,
                                                   checks=[GateCheck(**{k: c[k] for k in ("gate", "value", "limit", "passed")})
                                                           for c in checks],
                                                   message=event.get("message")))
        if status == PASS:
            log.info("%s passed after %.1fs (%s requests)", where, event.get("elapsed_s", 0),
                     (event.get("metrics") or {}).get("requests", "?"))
            return self.run_step(context, index + 1, [*passed, {"kind": step.kind, "percent": step.percent,
                                                               "checks": checks}])
        if status == triggers.PAUSED:
            return self.wait_for_command(context, index, passed, PAUSED)
        if status == triggers.ABORTED:
            self.roll_back(context, f"the rollout was aborted during the {where} step", by=self.command_actor(),
                           gate=ABORTED)
        failed = [c for c in checks if not c.get("passed")]
        gate = ", ".join(str(c.get("gate")) for c in failed) or "metrics"
        reason = (f"the {where} step failed its gates after {event.get('elapsed_s', 0):.1f}s: "
                  + ("; ".join(str(c.get("line")) for c in failed) or event.get("message", "")))
        if self.model_spec.rollout.on_fail == HOLD:
            log.error("%s; on_fail hold: production answers every request and the candidate gets copies until a "
                      "person resumes or aborts", reason)
            return self.wait_for_command(context, index, passed, HELD)
        self.roll_back(context, reason, by="the rollout's gates", gate=gate)
        return {}  # never reached

    def wait_for_command(self, context, index: int, passed: list[dict], state: str) -> dict:
        """Paused, or held after a failed gate: wait (deferred) for a resume (the step runs again) or an abort
        (rollback), at most approval.timeout (then rollback)."""
        spec = self.model_spec
        if state == PAUSED:
            self.act_on_pending()
        else:  # held: no gate is read while a person decides, so the candidate answers nothing meanwhile
            with model_lock(spec.name, f"hold the rollout of version {self.candidate.version}"):
                self.stop_if_over(context)
                self.release.set_traffic(self.traffic_while_waiting())
            self.update_record(lambda r: setattr(r, "state", state))
        source = spec.source_file or "<spec>"
        log.warning("the rollout of %s version %d is %s; `mlspec rollout %s --resume` runs the step again, "
                    "`--abort` gives production every request back; %s", spec.name, self.candidate.version, state,
                    source, command_wait(spec.rollout.approval.timeout_s))
        self.defer(
            trigger=RolloutCommandTrigger(spec=self.spec, spec_file=self.spec_file, candidate=self.candidate.version,
                                          since=time.time(), timeout_s=spec.rollout.approval.timeout_s,
                                          carry={"index": index, "passed": passed, "state": state}),
            method_name="command_done",
        )
        return {}  # never reached

    def command_done(self, context, event: dict) -> dict:
        carry = event["carry"]
        return self.guarded(context, lambda: self.act_on_command(context, event, carry["index"], carry["passed"],
                                                                 carry["state"]))

    def act_on_command(self, context, event: dict, index: int, passed: list[dict], state: str) -> dict:
        status = event["status"]
        if status == triggers.RESUMED:
            by = self.command_actor()
            self.act_on_pending()
            log.info("resumed by %s: the step runs again", by)
            return self.run_step(context, index, passed)
        if status == triggers.ABORTED:
            self.roll_back(context, f"the {state} rollout was aborted", by=self.command_actor(), gate=ABORTED)
        if status == FAIL:
            self.roll_back(context, str(event.get("message")), by="the rollout task", gate="error")
        self.roll_back(context, f"the rollout was {state} and no one resumed or aborted it: {event.get('message', '')}",
                       by="the rollout's timeout", gate=f"{state} too long")
        return {}  # never reached

    def finish(self, context, passed: list[dict]) -> dict:
        """Every step of this task passed; after the last one the candidate answers every request."""
        spec, deployment = self.model_spec, self.candidate
        with model_lock(spec.name, f"finish the rollout steps of version {deployment.version}"):
            self.stop_if_over(context)
            if self.finishes:
                self.release.finish_rollout(deployment)
            else:  # no gate is read while the approval waits: the candidate answers nothing meanwhile
                self.release.set_traffic(self.traffic_while_waiting())
        if self.finishes:
            self.update_record(lambda r: setattr(r, "state", COMPLETED))
            log.info("%s version %d passed every rollout step and answers every request; promote makes it "
                     "production", spec.name, deployment.version)
        elif deployment.previous_version is not None:  # a first version is asked no approval
            self.update_record(lambda r: setattr(r, "state", AWAITING_APPROVAL))
            log.info("%s version %d passed the steps before the approval", spec.name, deployment.version)
        return {"version": deployment.version, "production": deployment.previous_version, "steps": passed}

    # -- failure ----------------------------------------------------------------------------------------
    def guarded(self, context, work) -> Any:
        """As every stage (run_guarded), and whatever ends the task mid-rollout (a serving error, a deadline, a
        bug) first gives production every request back: a failed task never leaves the candidate answering."""
        try:
            return self.run_guarded(work)
        except TaskDeferred:
            raise
        except BaseException as exc:
            self.roll_back_after(context, exc)
            raise

    def roll_back_after(self, context, exc: BaseException) -> None:
        """Roll back a rollout the task cannot go on with, unless it is over (rolled back already)."""
        try:  # raise_rolled_back finds a rollout that is over, and rolls back without the registry's answer
            self.roll_back(context, f"the rollout task failed: {what_failed(exc)}", by="the rollout task", gate="error")
        except GateFailed as rolled_back:
            log.error("%s", rolled_back)
        except BaseException as again:  # noqa: BLE001 - the first failure is the task's story
            log.error("the rollout task failed (%s) and rolling back failed too: %s; check with `mlspec status %s`",
                      what_failed(exc), what_failed(again), self.model_spec.source_file or "<spec>")

    def roll_back(self, context, reason: str, *, by: str, gate: str) -> None:
        """Production answers every request again (Release.roll_back_rollout), the record says rolled back;
        always raises GateFailed."""
        raise_rolled_back(self.model_spec, self.release, self.candidate, context, reason, by=by, gate=gate)

    def stop_if_over(self, context) -> None:
        """Call under the model's lock: see stop_if_over."""
        stop_if_over(self.model_spec, self.release, self.candidate, context)

    def command_actor(self) -> str:
        return command_actor(self.registry, self.model_spec.name, self.candidate.version)

    def update_record(self, change) -> None:
        update_record(self.registry, self.model_spec.name, self.candidate.version, change)

    def act_on_pending(self) -> None:
        """Record the pending pause or resume as acted on (a step of its own) and follow it."""
        command = pending_command(self.registry, self.model_spec.name, self.candidate.version)
        if command is not None:
            self.update_record(lambda r: r.act_on(command))

    # -- what the steps use -------------------------------------------------------------------------------
    @cached_property
    def release(self) -> Release:
        return Release.open(self.model_spec, self.store)

    @property
    def registry(self):
        return self.release.registry

    def readiness_only(self) -> bool:
        """The serving platform exports no per-version metrics (KServe) and the gates would read them there
        (metrics.source server): each step only bakes, then checks the candidate is routed its share (ready)."""
        return (self.release.serving.metrics_url(self.candidate) is None
                and self.model_spec.rollout.metrics.source == SERVER_SOURCE)

    def window_start(self) -> Any:
        """The step's metrics as the traffic was set (snapshot_to_json's), so its window starts with the step;
        None when they cannot be read now (the trigger then takes its own and bakes a whole bake from it)."""
        try:
            source = metrics_source(self.model_spec, self.candidate.endpoint_url)
            return snapshot_to_json(source.snapshot(self.model_spec.name))
        except Exception as exc:  # noqa: BLE001 - optional: the trigger reads them (and says why it cannot)
            log.warning("could not read the metrics as the step began (%s); the step's trigger reads them", exc)
            return None

    def traffic_while_waiting(self) -> dict:
        """While a person decides: production answers every request, the candidate gets a copy of each."""
        return traffic_while_waiting(self.candidate.previous_version, self.candidate.version, **self.tolerances())

    def tolerances(self) -> dict:
        """How close two regression predictions must be to agree: the smoke test's tolerances."""
        smoke = self.model_spec.smoke_test
        return {"atol": smoke.atol, "rtol": smoke.rtol}


class CompleteRolloutOperator(RolloutOperator):
    """The last step, after a person approved (approve_rollout); then the candidate answers every request.
    Inputs: `deployment` (deploy's result) and `approval` (approve_rollout's)."""

    stage = "complete_rollout"
    template_fields = ("deployment", "approval")
    after_approval = True

    def __init__(self, *, deployment: Any, approval: Any = None, **kwargs: Any) -> None:
        super().__init__(deployment=deployment, **kwargs)
        self.approval = approval  # only orders this task after approve_rollout (the compiler wires inputs as edges)


def raise_rolled_back(spec, release: Release, deployment: Deployment, context, reason: str, *, by: str,
                      gate: str) -> None:
    """Roll a rollout back through the release service (which records it on the rollout record), or find it
    rolled back already (an abort from the CLI does it at once); always raises GateFailed with the next step."""
    trigger = Trigger.from_context(context)
    source = spec.source_file or "<spec>"
    with model_lock(spec.name, f"roll back the rollout of version {deployment.version}"):
        try:
            record = load_record(release.registry, spec.name, deployment.version)
        except MlspecError as exc:  # the rollback must not wait for the registry: it clears the split first
            log.warning("could not read the rollout record of %s version %d before rolling back: %s", spec.name,
                        deployment.version, exc)
            record = None
        if record is not None and record.final:
            last = record.current_step or {}
            story = (f"the rollout of {spec.name} version {deployment.version} was {record.state} by "
                     f"{last.get('by') or by}: {last.get('message') or reason}")
        else:
            try:
                story = release.roll_back_rollout(deployment, reason, trigger, by=by, gate=gate, context=context)
            except RollbackFailed as exc:
                raise GateFailed(str(exc), next_step=f"serve production by hand (`mlspec deploy {source} --version "
                                 f"{deployment.previous_version}`), then `mlspec status {source}`") from None
    raise GateFailed(story, next_step=(
        f"`mlspec rollout {source} --status` shows each step's gate values; fix the model, its data or the "
        f"rollout gates in {source}, then trigger a new run"))


def stop_if_over(spec, release: Release, deployment: Deployment, context) -> None:
    """Under the model's lock, before the rollout moves traffic on: a rollout that is over (a CLI abort rolled it
    back while the task waited for a worker) or that a person asked to abort goes no further; GateFailed (the
    abort acted on first). A late step, finish or approval never serves a candidate a person took back."""
    record = load_record(release.registry, spec.name, deployment.version)
    if record is None:
        return
    command = pending_command(release.registry, spec.name, deployment.version)
    if record.final or (command is not None and command["command"] == ABORT):
        raise_rolled_back(spec, release, deployment, context, "the rollout was aborted",
                          by=command_actor(release.registry, spec.name, deployment.version), gate=ABORTED)


def update_record(registry, model: str, version: int, change) -> None:
    """Apply `change` to the version's rollout record and save it. The record is the rollout's report: a
    registry that refused it is logged, and the rollout goes on."""
    try:
        record = load_record(registry, model, version)
        if record is None:
            log.warning("%s version %d has no rollout record to update", model, version)
            return
        change(record)
        save_record(registry, model, record)
    except (MlspecError, ValueError) as exc:  # ValueError: the record refused a step it cannot take
        log.warning("could not update the rollout record of %s version %d: %s", model, version, exc)


def command_actor(registry, model: str, version: int) -> str:
    """Who sent the version's rollout its pending (or last) command."""
    try:
        found = registry.version_record(model, version)
    except MlspecError:
        found = None
    return str(((found.rollout_command or {}) if found is not None else {}).get("actor") or "a person")


def command_wait(timeout_s: int) -> str:
    """How long a paused or held rollout waits for a resume or an abort, and where that limit comes from."""
    return (f"it waits at most {format_duration(timeout_s)} (the spec's rollout.approval.timeout, which bounds "
            "every wait for a person, with or without an approval step), then production takes every request back")


def readiness_verdict(event: dict, step: Step, candidate: Deployment, traffic: dict) -> dict:
    """A step that only baked (no per-version metrics): it passes when the platform routes the candidate its
    share (KServe gives a revision traffic only once it is ready), else it fails on a `readiness` check."""
    expected = step.percent
    share = int((traffic.get("weights") or {}).get(str(candidate.version), 0))
    passed = share == expected
    line = (f"{READINESS}: version {candidate.version} routed {share}% of {expected}%: "
            f"{'passed' if passed else 'FAILED'}")
    check = {"gate": READINESS, "value": share, "limit": expected, "passed": passed, "line": line}
    return {**event, "status": PASS if passed else FAIL, "checks": [check],
            "message": event.get("message") if passed else f"the candidate is not ready: {line}"}


def step_outcome(event: dict, min_requests: int) -> str:
    """The record's outcome of a step the trigger ended: passed, failed, timed_out (too few requests after
    3 bakes), paused or aborted."""
    status = event["status"]
    if status == PASS:
        return PASSED
    if status in (triggers.PAUSED, triggers.ABORTED):
        return status  # the record's outcomes of the same names
    short = any(c.get("gate") == MIN_REQUESTS and not c.get("passed") for c in event.get("checks") or [])
    return TIMED_OUT if short else FAILED


class ApproveRolloutOperator(ApprovalOperator):
    """A person approves the rollout's last step (Airflow's human-in-the-loop approval: the Required Actions
    page of the run, or PATCH .../taskInstances/approve_rollout/-1/hitlDetails). Approve: complete_rollout
    runs the last step. Reject, or no answer within approval.timeout: the rollout rolls back and the task
    fails. Inputs: `deployment` (deploy's result) and `rollout` (the steps passed, with their gate values)."""

    template_fields = ("deployment", "rollout")
    ui_color = "#fde7c8"
    stage = "approve_rollout"

    def __init__(self, *, spec: dict, spec_file: str = "", deployment: Any, rollout: Any, **kwargs: Any) -> None:
        model_spec = ModelSpec.from_dict(spec, source_file=spec_file)
        kwargs.setdefault("response_timeout", timedelta(seconds=model_spec.rollout.approval.timeout_s))
        super().__init__(
            subject=f"Approve the last rollout step of {model_spec.name}?",
            defaults=[self.REJECT],  # no answer within the timeout rejects: the rollout rolls back
            **kwargs,
        )
        self.spec = spec
        self.spec_file = spec_file
        self.deployment = deployment
        self.rollout = rollout

    @cached_property
    def model_spec(self):
        return ModelSpec.from_dict(self.spec, source_file=self.spec_file)

    @cached_property
    def candidate(self) -> Deployment:
        return Deployment.from_xcom(self.deployment)

    def execute(self, context) -> Any:
        if self.candidate.previous_version is None:  # nothing to roll out against: no one is asked
            log.info("%s; no approval is asked", first_version_note(self.candidate.version))
            return {"approved": True, "by": None}
        self.subject, self.body = approval_request(self.model_spec, self.candidate, self.rollout or {})
        release = Release.open(self.model_spec)

        def ask(record: RolloutRecord) -> None:
            record.add_step(APPROVAL, outcome=WAITING, message=self.subject,
                            traffic=traffic_while_waiting(self.candidate.previous_version, self.candidate.version))
            record.state = AWAITING_APPROVAL

        update_record(release.registry, self.model_spec.name, self.candidate.version, ask)
        timeout_s = self.model_spec.rollout.approval.timeout_s
        log.info("%s", where_to_approve(self.model_spec.source_file or "<spec>",
                                        deadline_after(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), timeout_s),
                                        timeout_s))
        return super().execute(context)

    def resume_execution(self, next_method: str, next_kwargs: dict | None, context) -> Any:
        """The approval's trigger crashed (Airflow resumes with `__fail__`): the rollout rolls back."""
        if next_method != TRIGGER_FAIL_REPR:
            return super().resume_execution(next_method, next_kwargs, context)
        error = str((next_kwargs or {}).get("error") or "unknown")
        try:
            raise_rolled_back(self.model_spec, Release.open(self.model_spec), self.candidate, context,
                              f"the approval's wait failed: {error}", by="the approval task", gate="error")
        except (GateFailed, MlspecError) as failed:
            raise AirflowFailException(f"approve_rollout: {failed}") from None
        return None  # never reached

    def execute_complete(self, context, event: dict[str, Any]) -> Any:
        spec, release = self.model_spec, Release.open(self.model_spec)
        chosen = list(event.get("chosen_options") or [])
        by = str((event.get("responded_by_user") or {}).get("name") or "") or "no one"
        timed_out = bool(event.get("timedout")) or event.get("error_type") == "timeout"
        approved = chosen == [self.APPROVE] and not timed_out and "error" not in event
        outcome = APPROVED if approved else TIMED_OUT if timed_out else REJECTED

        def answer(record: RolloutRecord) -> None:
            asked = record.current_step or {}
            if asked.get("kind") == APPROVAL and asked.get("outcome") == WAITING:
                record.finish_step(outcome, by=by if not timed_out else None)
            else:  # the request's step was not recorded (the registry refused it then)
                record.add_step(APPROVAL, outcome=outcome, by=by if not timed_out else None)

        try:
            if approved:
                with model_lock(spec.name, f"approve the last rollout step of version {self.candidate.version}"):
                    stop_if_over(spec, release, self.candidate, context)  # an abort while the approval waited
                    update_record(release.registry, spec.name, self.candidate.version, answer)
                    update_record(release.registry, spec.name, self.candidate.version,
                                  lambda r: setattr(r, "state", RUNNING))
                log.info("%s approved the last rollout step of %s version %d", by, spec.name, self.candidate.version)
                return {"approved": True, "by": by}
            update_record(release.registry, spec.name, self.candidate.version, answer)
            why = str((event.get("params_input") or {}).get("reason") or "")  # `mlspec rollout --reject --reason`
            reason = (f"no one approved the last step within {format_duration(spec.rollout.approval.timeout_s)}"
                      if timed_out
                      else f"{by} rejected the last step" + (f": {why}" if why else ""))
            raise_rolled_back(spec, release, self.candidate, context, reason,
                              by=by if not timed_out else "the approval's timeout", gate=outcome)
        except GateFailed as failed:
            message = f"approve_rollout: {failed}\nNext step: {failed.next_step}"
            log.error(message)
            raise AirflowFailException(message) from None
        except MlspecError as exc:
            raise AirflowFailException(f"approve_rollout: the rollback failed: {exc}") from None
        return None  # never reached


def approval_request(spec, candidate: Deployment, rollout: dict) -> tuple[str, str]:
    """(subject, body) of the approval: the model, the candidate, production, the steps passed with each gate's
    value, and what Approve and Reject do."""
    production = candidate.previous_version
    subject = f"{spec.name}: give version {candidate.version} every request? (production: version {production})"
    lines = [f"**{spec.name}** version **{candidate.version}** passed the rollout steps below. While you decide, "
             f"production version **{production}** answers every request and version {candidate.version} gets a "
             "copy of each (shadow), compared with production's answer.", ""]
    for step in rollout.get("steps") or []:
        lines.append(f"- {step.get('kind')} {step.get('percent')}%: " + "; ".join(
            str(c.get("line") or c) for c in step.get("checks") or []))
    last = spec.rollout.canary.steps[-1]
    lines += ["", f"**Approve**: version {candidate.version} takes {last}% of requests for its last step, then "
              "becomes production when its gates pass.",
              f"**Reject** (or no answer within {format_duration(spec.rollout.approval.timeout_s)}): production "
              f"version {production} answers every request again and version {candidate.version} is marked rolled_back."]
    return subject, "\n".join(lines)

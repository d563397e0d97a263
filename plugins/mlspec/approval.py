"""A rollout's approval (Airflow's human-in-the-loop task approve_rollout) answered and timed out where no Airflow
scheduler or UI runs: `mlspec rollout SPEC --approve|--reject` and `mlspec run`.

Answers go through the function behind the Required Actions page's PATCH .../hitlDetails, so Airflow records who
answered, as the UI would. `mlspec run` (dag.test) runs no scheduler, and the scheduler is what ends an
approval no one answered within approval.timeout: run_dag runs the scheduler's awaiting-input timeout sweep
beside dag.test, and keeps Ctrl+C and SIGTERM stopping the run (an in-process task leaves Airflow's SIGTERM
handler behind, which only calls the task's on_kill).

Airflow is imported inside the functions: `mlspec rollout --status` and the rest of the CLI stay light.
"""

from __future__ import annotations

import _thread
import logging
import signal
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from mlspec.deadlines import format_duration
from mlspec.errors import MlspecError
from mlspec.registry.reading import open_for_reading
from mlspec.rollout.record import AWAITING_APPROVAL, active_rollout

log = logging.getLogger(__name__)

APPROVE, REJECT = "Approve", "Reject"  # Airflow's ApprovalOperator options
SWEEP_EVERY_S = 1.0
REARM_EVERY_S = 0.2  # a SIGTERM within this long after a task swapped the handler in only reaches the task's on_kill
# A signal no one sends: the watcher thread "delivers" it to the main thread to put the stop handlers back.
REARM = signal.SIGUSR2


class ApprovalRefused(MlspecError):
    """No approval of the model's rollout is waiting for an answer: nothing was changed."""


class RunStopped(KeyboardInterrupt):
    """Ctrl+C or SIGTERM stopped `mlspec run`."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def where_to_approve(source: str, deadline: str, timeout_s: int) -> str:
    """Where a person answers the approval, and what no answer does (the task's log, `mlspec rollout --status`)."""
    return (f"approve or reject in the Airflow UI (Browse > Required Actions, or the task's page), or `mlspec rollout "
            f"{source} --approve|--reject`; with no answer by {deadline} (approval.timeout {format_duration(timeout_s)}) "
            "it rolls back")


def deadline_after(started: str | None, timeout_s: int) -> str:
    """The approval's deadline in the record's time format, from when it was asked ("unknown" if not recorded)."""
    try:
        asked = datetime.fromisoformat(str(started).replace("Z", "+00:00"))
    except ValueError:
        return "its timeout"
    return (asked + timedelta(seconds=timeout_s)).strftime("%Y-%m-%dT%H:%M:%SZ")


def answer(spec: Any, approve: bool, actor: str, reason: str = "") -> dict[str, Any]:
    """Approve or reject the pending approval of the model's rollout as `actor`, through Airflow's own
    human-in-the-loop API function. ApprovalRefused (nothing changed) when the rollout does not wait for one."""
    record = active_rollout(open_for_reading(spec.registry.backend, spec.registry.connection), spec.name)
    state = record.state if record is not None else None
    if state != AWAITING_APPROVAL:
        now = f"its rollout is {state.replace('_', ' ')}" if state else "it has no rollout in progress"
        raise ApprovalRefused(f"no approval of {spec.name} is waiting for an answer ({now}); nothing changed")
    chosen = APPROVE if approve else REJECT
    run_id = answer_pending(spec.name, chosen, actor, reason)
    if run_id is None:
        raise ApprovalRefused(
            f"the rollout of {spec.name} version {record.version} awaits approval, but no approve_rollout task of this "
            "Airflow waits for an answer (AIRFLOW_HOME names the metadata DB of the run: the same as `mlspec run`'s, "
            "./.airflow by default); nothing changed")
    return {"model": spec.name, "version": record.version, "answer": chosen, "actor": actor, "run_id": run_id,
            "reason": reason}


def answer_pending(dag_id: str, chosen: str, actor: str, reason: str = "") -> str | None:
    """Answer the approve_rollout task of `dag_id` that waits for input (the run id), or None when none waits."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from fastapi import HTTPException
    from sqlalchemy.exc import SQLAlchemyError

    from mlspec.compiler import APPROVE_ROLLOUT

    task_id = APPROVE_ROLLOUT[0]
    try:
        with create_session() as session:
            waiting = (session.query(TaskInstance)
                       .filter(TaskInstance.dag_id == dag_id, TaskInstance.task_id == task_id,
                               TaskInstance.state == TaskInstanceState.AWAITING_INPUT)
                       .order_by(TaskInstance.start_date.desc())
                       .first())
            if waiting is None:
                return None
            payload = UpdateHITLDetailPayload(chosen_options=[chosen], params_input={"reason": reason} if reason else {})
            update_hitl_detail(dag_id=dag_id, dag_run_id=waiting.run_id, task_id=task_id, map_index=waiting.map_index,
                               update_hitl_detail_payload=payload,
                               user=SimpleAuthManagerUser(username=actor, role="user"), session=session)
            return waiting.run_id
    except HTTPException as exc:  # answered meanwhile (409), an option the task does not offer (400)
        raise ApprovalRefused(f"Airflow refused the answer: {exc.detail}; nothing changed") from None
    except SQLAlchemyError as exc:
        raise ApprovalRefused(f"Airflow's metadata DB could not be read ({type(exc).__name__}: {exc}); nothing "
                              "changed") from None


def reject_for_abort(dag_id: str, actor: str, reason: str) -> bool:
    """An abort while the rollout awaits approval: answer the approval with Reject so its task ends now instead
    of at its timeout. Whether a waiting task was answered; a failure is logged (the abort stands)."""
    try:
        return answer_pending(dag_id, REJECT, actor, reason) is not None
    except (ApprovalRefused, ImportError) as exc:
        log.warning("the abort could not answer the pending approval of %s (%s); it ends at its timeout", dag_id, exc)
        return False


def sweep_overdue_approvals() -> None:
    """The scheduler's awaiting-input timeout sweep, once: an approval past its timeout is answered with its
    defaults (Reject: the rollout rolls back)."""
    from types import SimpleNamespace

    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

    SchedulerJobRunner.check_awaiting_input_timeouts(SimpleNamespace(log=log))


def has_approval(dag: Any) -> bool:
    from airflow.providers.standard.operators.hitl import HITLOperator

    return any(isinstance(task, HITLOperator) for task in dag.tasks)


def run_dag(dag: Any, run_conf: dict | None = None) -> Any:
    """dag.test(run_conf), with the approval timeout sweep beside it when the DAG asks a person, and SIGINT and
    SIGTERM raising RunStopped in the main thread (call from the main thread)."""
    done = threading.Event()
    sweeps = has_approval(dag)

    def stop(signum, frame):
        raise RunStopped(signum)

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, REARM)}
    # A SIGINT ignored from the start (a background job of a script) stays ignored, as Python leaves it.
    stopping = [sig for sig in (signal.SIGINT, signal.SIGTERM) if handlers[sig] is not signal.SIG_IGN]

    def rearm(signum=None, frame=None):
        for sig in stopping:
            if signal.getsignal(sig) is not stop:
                signal.signal(sig, stop)

    def watch() -> None:
        swept = time.monotonic()
        while not done.wait(REARM_EVERY_S):
            if any(signal.getsignal(sig) is not stop for sig in stopping) and signal.getsignal(REARM) is rearm:
                _thread.interrupt_main(REARM)  # a task put its own handler in: the main thread puts ours back
            if sweeps and time.monotonic() - swept >= SWEEP_EVERY_S:
                swept = time.monotonic()
                try:
                    sweep_overdue_approvals()
                except Exception as exc:  # noqa: BLE001 - a locked DB now is swept again in a second
                    log.warning("the approval timeout sweep failed (%s); trying again", exc)

    signal.signal(REARM, rearm)
    rearm()
    watcher = threading.Thread(target=watch, name="mlspec-run-watch", daemon=True)
    watcher.start()
    try:
        return dag.test(run_conf=run_conf)
    finally:
        done.set()
        for sig, handler in handlers.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)

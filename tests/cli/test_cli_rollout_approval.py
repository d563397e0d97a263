"""A rollout's approval where no Airflow scheduler or UI runs (issue 16): `mlspec rollout SPEC --approve|--reject`
answers it through Airflow's own human-in-the-loop function, `--abort` answers it Reject, and `mlspec run`'s
dag.test (mlspec.approval.run_dag) ends an unanswered approval at its timeout and stops on Ctrl+C or SIGTERM.

The run that waits is a real dag.test in a child process (Airflow's approval operator as the task
approve_rollout of a DAG named after the model) on the test session's Airflow metadata DB; the rollout record is
the embedded MLflow registry's, beside a real model server (tests/operations/rollout_testkit)."""

from __future__ import annotations

import getpass
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.fixtures.paths import SPECS
from tests.operations.rollout_testkit import running_record, served_home, under_rollout
from tests.operators.operations_testkit import served

ACTOR = f"cli:{getpass.getuser()}"
DAG_FILE = '''
import os
from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG

with DAG(os.environ["WAITING_DAG"], schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
    ApprovalOperator(task_id="approve_rollout", subject="give the candidate every request?", defaults=["Reject"],
                     response_timeout=timedelta(seconds=float(os.environ["WAITING_TIMEOUT_S"])))
'''
RUN = '''
import sys
sys.path.insert(0, sys.argv[1])
from waiting_dag import dag
from mlspec.approval import RunStopped, run_dag
try:
    print("STATE", run_dag(dag).state, flush=True)
except RunStopped as stopped:
    print("STOPPED", stopped, flush=True)
    sys.exit(128 + stopped.signum)
'''


@pytest.fixture(scope="module")
def home(tmp_path_factory, airflow_db):
    with served_home(tmp_path_factory.mktemp("cli-approval-home")) as folder:
        yield folder


class WaitingRun:
    """`dag.test` of a DAG `dag_id` whose task approve_rollout waits for a person, in a child process through
    mlspec.approval.run_dag, as `mlspec run` runs it."""

    def __init__(self, folder: Path, dag_id: str, timeout_s: float = 600) -> None:
        self.dag_id, self.folder = dag_id, folder / dag_id
        (self.folder / "dags").mkdir(parents=True)
        (self.folder / "dags" / "waiting_dag.py").write_text(DAG_FILE)
        env = {**os.environ, "WAITING_DAG": dag_id, "WAITING_TIMEOUT_S": str(timeout_s),
               "AIRFLOW__CORE__DAGS_FOLDER": str(self.folder / "dags")}
        self.out = (self.folder / "run.log").open("w")
        self.process = subprocess.Popen(  # a SIGINT ignored by a background parent must not be inherited
            [sys.executable, "-c", RUN, str(self.folder / "dags")], env=env, stdout=self.out, stderr=subprocess.STDOUT,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def wait_until_asked(self, within_s: float = 120) -> None:
        deadline = time.monotonic() + within_s
        while hitl(self.dag_id) is None or hitl(self.dag_id)["state"] != "awaiting_input":
            assert self.process.poll() is None, self.log()
            assert time.monotonic() < deadline, self.log()
            time.sleep(0.3)

    def ends(self, within_s: float) -> int:
        try:
            return self.process.wait(timeout=within_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"still running after {within_s}s:\n{self.log()}") from None

    def log(self) -> str:
        self.out.flush()
        return (self.folder / "run.log").read_text()[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.out.close()


@pytest.fixture
def waiting_run(tmp_path):
    runs: list[WaitingRun] = []

    def start(dag_id: str, timeout_s: float = 600) -> WaitingRun:
        runs.append(WaitingRun(tmp_path, dag_id, timeout_s))
        return runs[-1]

    yield start
    for run in runs:
        run.stop()


def hitl(dag_id: str) -> dict | None:
    """The approval task's state and its human-in-the-loop answer, from Airflow's metadata DB."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy.orm import joinedload

    with create_session() as session:
        ti = (session.query(TaskInstance).options(joinedload(TaskInstance.hitl_detail))
              .filter(TaskInstance.dag_id == dag_id, TaskInstance.task_id == "approve_rollout")
              .order_by(TaskInstance.start_date.desc()).first())
        if ti is None:
            return None
        detail = ti.hitl_detail
        return {"state": str(ti.state),
                "chosen": list(detail.chosen_options or []) if detail else None,
                "by": (detail.responded_by or {}).get("name") if detail else None,
                "params_input": dict(detail.params_input or {}) if detail else None}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    from mlspec.cli import main

    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def awaiting_approval(home: Path, name: str):
    """A model whose rollout passed its steps before the approval and waits for it (the record as approve_rollout
    leaves it)."""
    model, path = under_rollout(home, name)
    record = running_record("awaiting_approval")
    record["steps"][0]["outcome"] = "passed"
    record["steps"].append({"kind": "approval", "percent": None, "started": "2026-12-07T14:00:05Z", "ended": None,
                            "outcome": "waiting", "message": "give version 2 every request?"})
    model.registry().record_rollout(name, 2, record)
    return model, path


def test_approve_answers_the_waiting_approval_as_the_cli_user_and_status_says_where(home, capsys, waiting_run):
    model, path = awaiting_approval(home, "cli-approve")
    code, out, _ = run(capsys, "rollout", path, "--status")
    assert code == 0
    assert ("awaiting approval: approve or reject in the Airflow UI (Browse > Required Actions, or the task's page), "
            f"or `mlspec rollout {path} --approve|--reject`; with no answer by 2026-12-09T14:00:05Z "
            "(approval.timeout 48h) it rolls back") in out, out
    waiting = waiting_run("cli-approve")
    waiting.wait_until_asked()
    code, out, err = run(capsys, "rollout", path, "--approve")
    assert code == 0, err
    assert f"Approve of the rollout of version 2 recorded in Airflow (by {ACTOR}" in out
    assert waiting.ends(60) == 0, waiting.log()
    assert "STATE success" in waiting.log()
    answered = hitl("cli-approve")
    assert answered["chosen"] == ["Approve"] and answered["by"] == ACTOR and answered["state"] == "success"
    # Answered once: a second answer finds nothing waiting and changes nothing.
    code, _, err = run(capsys, "rollout", path, "--reject")
    assert code == 1 and "no approve_rollout task of this Airflow waits for an answer" in err and "nothing changed" in err
    assert hitl("cli-approve")["chosen"] == ["Approve"]


def test_reject_with_a_reason_and_refusals_when_nothing_waits(home, capsys, waiting_run):
    model, path = under_rollout(home, "cli-reject")  # running, not awaiting approval
    code, _, err = run(capsys, "rollout", path, "--approve")
    assert code == 1 and "no approval of cli-reject is waiting for an answer (its rollout is running); nothing changed" in err
    code, _, err = run(capsys, "rollout", path, "--pause")  # the existing commands are untouched
    assert code == 0, err
    model, path = awaiting_approval(home, "cli-reject")
    code, _, err = run(capsys, "rollout", path, "--reject")  # the registry waits, but no Airflow task does
    assert code == 1 and "no approve_rollout task of this Airflow waits for an answer" in err
    waiting = waiting_run("cli-reject")
    waiting.wait_until_asked()
    code, out, err = run(capsys, "rollout", path, "--reject", "--reason", "p95 too close to the limit")
    assert code == 0, err
    assert waiting.ends(60) == 0, waiting.log()
    answered = hitl("cli-reject")
    assert answered["chosen"] == ["Reject"] and answered["by"] == ACTOR
    assert answered["params_input"] == {"reason": "p95 too close to the limit"}


def test_abort_while_awaiting_approval_answers_it_reject_so_the_run_ends_now(home, capsys, waiting_run):
    model, path = awaiting_approval(home, "cli-abort-approval")
    waiting = waiting_run("cli-abort-approval")
    waiting.wait_until_asked()
    code, out, err = run(capsys, "rollout", path, "--abort", "--reason", "wrong data")
    assert code == 0, err
    assert "The pending approval was answered Reject." in out
    assert waiting.ends(60) == 0, waiting.log()
    answered = hitl("cli-abort-approval")
    assert answered["chosen"] == ["Reject"] and answered["by"] == ACTOR
    assert served(model.spec) == 1
    assert model.registry().version_record("cli-abort-approval", 2).rollout["state"] == "aborted"


def test_run_dag_ends_an_approval_no_one_answers_at_its_timeout(airflow_db, waiting_run):
    waiting = waiting_run("run-approval-timeout", timeout_s=1)
    assert waiting.ends(120) == 0, waiting.log()
    assert "STATE success" in waiting.log()
    assert hitl("run-approval-timeout")["chosen"] == ["Reject"]  # the request's default: a rollout rolls back


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_and_sigterm_stop_a_run_that_waits_for_approval(airflow_db, waiting_run, signum):
    waiting = waiting_run(f"run-stopped-{signum.name.lower()}")
    waiting.wait_until_asked()
    time.sleep(0.5)  # past the task's own SIGTERM handler (it only calls the task's on_kill)
    waiting.process.send_signal(signum)
    assert waiting.ends(20) == 128 + signum, waiting.log()
    assert f"STOPPED {signum.name}" in waiting.log()


def test_mlspec_run_runs_the_dag_with_signals_that_stop_it_and_says_what_is_left(monkeypatch, capsys):
    """cmd_run's wiring without Airflow's run: dag.test runs with SIGTERM raising RunStopped, and a stopped run
    exits 128 + the signal, saying that the rollout it started stays as it is."""
    import mlspec.compiler
    from mlspec import cli
    from mlspec.approval import RunStopped

    class Dag:
        dag_id = "iris-forest"
        tasks: list = []

        def test(self, run_conf=None):
            assert signal.getsignal(signal.SIGTERM).__name__ == "stop"
            raise RunStopped(signal.SIGTERM)

    monkeypatch.setattr(cli, "_point_airflow_at", lambda *a: None)
    monkeypatch.setattr(cli, "_ensure_airflow_db", lambda: None)
    monkeypatch.setattr(mlspec.compiler, "build_dag", lambda spec, spec_text=None: Dag())
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main(["run", str(SPECS / "iris-forest.yaml")]) == 128 + signal.SIGTERM
    assert "mlspec run iris-forest: stopped by SIGTERM; the run is left unfinished" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before


def test_the_approval_task_logs_where_to_answer_and_a_cli_rejection_rolls_back_with_its_reason(home, monkeypatch,
                                                                                               capsys, caplog):
    """approve_rollout's log names both ways to answer and the deadline; a Reject from `mlspec rollout --reject
    --reason` (Airflow's event as the CLI's answer makes it) rolls back with the reason in the story."""
    from types import SimpleNamespace

    import airflow.providers.standard.operators.hitl as hitl_operators
    from airflow.sdk.exceptions import AirflowFailException, TaskAwaitingInput

    from mlspec.operators.rollout import ApproveRolloutOperator
    from mlspec.rollout_operations import candidate_deployment

    model, path = awaiting_approval(home, "cli-approval-log")
    deployment = candidate_deployment(model.spec, model.registry(), 2, 1).to_xcom()
    task = ApproveRolloutOperator(task_id="approve_rollout", spec=model.spec.to_dict(), spec_file=path,
                                  deployment=deployment, rollout={"steps": []})
    monkeypatch.setattr(hitl_operators, "upsert_hitl_detail", lambda **kwargs: None)  # Airflow's DB write: no worker
    capsys.readouterr()
    with caplog.at_level(logging.INFO, logger="mlspec.operators.rollout"), pytest.raises(TaskAwaitingInput):
        task.execute({"task_instance": SimpleNamespace(id="ti-1")})
    logged = capsys.readouterr()  # the task's log reaches stdout, or only caplog once Airflow set its logging up
    assert re.search(r"approve or reject in the Airflow UI \(Browse > Required Actions, or the task's page\), or "
                     rf"`mlspec rollout {re.escape(path)} --approve\|--reject`; with no answer by "
                     r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ \(approval.timeout 48h\) it rolls back",
                     logged.out + logged.err + caplog.text)
    event = {"chosen_options": ["Reject"], "params_input": {"reason": "p95 drifts up"}, "timedout": False,
             "responded_by_user": {"id": ACTOR, "name": ACTOR}}
    with pytest.raises(AirflowFailException, match=f"{ACTOR} rejected the last step: p95 drifts up"):
        task.execute_complete({"run_id": "manual__reject"}, event)
    assert model.registry().version_record("cli-approval-log", 2).rollout["state"] == "rolled_back"
    assert served(model.spec) == 1

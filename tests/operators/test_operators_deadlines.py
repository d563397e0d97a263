"""Every task has a deadline and a notification cannot hang a task (issue 17, adversarial finding 3).

A real SMTP listener on loopback dribbles its greeting one byte at a time (each byte resets the socket's
per-read timeout, so only an overall deadline ends the wait); the notification gives up within its
deadline, logs a warning and the caller goes on. Compiled and hand-written tasks get an
execution_timeout: the built-in one per stage, or the spec's `timeouts`.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import timedelta

import pytest
from tests.fixtures.paths import SPECS

SMTP_DEADLINE_S = 1.5


class DribblingSmtp:
    """Accepts connections on 127.0.0.1 and sends `220 ...` one byte every 0.2 s, never finishing a line."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.connections: list[socket.socket] = []
        self.bytes_sent = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self._dribble, args=(conn,), daemon=True).start()

    def _dribble(self, conn: socket.socket) -> None:
        greeting = b"220 slow.example.com " + b"." * 10_000
        for byte in greeting:
            if self.stop.wait(0.2):
                return
            try:
                conn.sendall(bytes([byte]))
            except OSError:
                return
            self.bytes_sent += 1

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        for conn in self.connections:
            conn.close()


@pytest.fixture
def slow_smtp(monkeypatch: pytest.MonkeyPatch):
    server = DribblingSmtp()
    # A per-read socket timeout of 5 s: every byte arrives well within it, so it never trips.
    extra = {"from_email": "mlspec@example.com", "disable_tls": True, "disable_ssl": True,
             "retry_limit": 0, "timeout": 5}
    connection = {"conn_type": "smtp", "host": "127.0.0.1", "port": server.port, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_SLOW", json.dumps(connection))
    monkeypatch.setenv("MLSPEC_NOTIFY_TIMEOUT_S", str(SMTP_DEADLINE_S))
    yield server
    server.close()


def _bounded(work, limit_s: float):
    """Run `work` in a thread; (finished, result, seconds); a hang is finished=False."""
    result: list = []
    started = time.monotonic()
    thread = threading.Thread(target=lambda: result.append(work()), daemon=True)
    thread.start()
    thread.join(limit_s)
    return not thread.is_alive(), (result[0] if result else None), time.monotonic() - started


def test_a_dribbling_smtp_server_is_given_up_on_within_the_deadline(slow_smtp):
    import logging

    from mlspec.notify import send

    class Kept(logging.Handler):  # Airflow's logging config may stop propagation to pytest's caplog
        def __init__(self) -> None:
            super().__init__()
            self.records: list[logging.LogRecord] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.records.append(record)

    kept, logger = Kept(), logging.getLogger("mlspec.notify")
    logger.addHandler(kept)
    try:
        finished, sent, seconds = _bounded(
            lambda: send("smtp_slow", ["ml-team@example.com"], "subject", ["body"], {}), limit_s=15
        )
    finally:
        logger.removeHandler(kept)
    assert finished, "the notification still waits on the dribbling SMTP server after 15 s"
    assert sent is False
    assert seconds < SMTP_DEADLINE_S + 3
    assert slow_smtp.bytes_sent > 0  # it did connect and was fed bytes
    logged = " ".join(f"{r.levelname.lower()} {r.getMessage()}" for r in kept.records)
    assert "warning" in logged and "(the run goes on)" in logged
    assert f"did not finish within {SMTP_DEADLINE_S:g}s" in logged


def _spec(extra: str = ""):
    from mlspec.spec import load_spec_text

    return load_spec_text((SPECS / "iris-forest.yaml").read_text() + extra, "iris-forest.yaml")


def test_deploys_champion_holds_message_and_the_failure_callback_do_not_hang_the_task(slow_smtp):
    from mlspec.notify import failure_callback, notify_champion_holds

    spec = _spec("notify: {connection: smtp_slow, to: [ml-team@example.com]}\n")
    summary = {"model": spec.name, "version": 2, "champion": {"champion_version": 1}}
    finished, sent, seconds = _bounded(lambda: notify_champion_holds(spec, summary, {}), limit_s=15)
    assert finished and sent is False and seconds < SMTP_DEADLINE_S + 3
    notifier = failure_callback(spec)
    finished, _, seconds = _bounded(lambda: notifier.notify({"run_id": "manual__1"}), limit_s=15)
    assert finished and seconds < SMTP_DEADLINE_S + 3


def test_every_compiled_task_has_a_deadline_and_the_spec_sets_them(monkeypatch):
    from mlspec.compiler import build_dag

    dag = build_dag(_spec())
    deadlines = {task.task_id: task.execution_timeout for task in dag.tasks}
    assert all(isinstance(d, timedelta) and d > timedelta(0) for d in deadlines.values()), deadlines
    assert deadlines["train"] == timedelta(hours=6) and deadlines["smoke_test"] == timedelta(minutes=10)
    assert deadlines["deploy"] == timedelta(minutes=30)

    tuned = build_dag(_spec("timeouts: {train: 2h, default: 45m, deploy: 1h30m}\n"))
    deadlines = {task.task_id: task.execution_timeout for task in tuned.tasks}
    assert deadlines["train"] == timedelta(hours=2)
    assert deadlines["deploy"] == timedelta(minutes=90)
    assert deadlines["evaluate"] == deadlines["prepare_data"] == timedelta(minutes=45)


def test_a_hand_written_operator_gets_its_stage_deadline_unless_given_one():
    from mlspec.operators.evaluate import EvaluateOperator
    from mlspec.operators.train import TrainOperator

    spec = _spec("timeouts: {evaluate: 20m}\n").to_dict()
    assert TrainOperator(task_id="fit", spec=spec, data={}).execution_timeout == timedelta(hours=6)
    evaluate = EvaluateOperator(task_id="score", spec=spec, data={}, model={})
    assert evaluate.execution_timeout == timedelta(minutes=20)
    mine = TrainOperator(task_id="fit2", spec=spec, data={}, execution_timeout=timedelta(minutes=5))
    assert mine.execution_timeout == timedelta(minutes=5)


def test_deploy_waits_at_least_the_serving_timeout():
    from mlspec.deadlines import task_deadline

    spec = _spec().to_dict()
    spec["serving"]["timeout"] = 7200
    assert task_deadline(spec, "deploy") == timedelta(seconds=7200 + 600)


@pytest.mark.parametrize("value", ["0s", "0h0m", "5x", "1h 30m", "-1h", "90"])
def test_a_bad_duration_fails_lint_naming_the_field(value):
    from mlspec.spec import SpecError

    with pytest.raises(SpecError, match=r"timeouts\.train"):
        _spec(f"timeouts: {{train: '{value}'}}\n")


def test_an_unknown_task_in_timeouts_fails_lint():
    from mlspec.spec import SpecError

    with pytest.raises(SpecError, match="timeouts"):
        _spec("timeouts: {trian: 1h}\n")


def test_the_operations_task_and_an_invalid_specs_task_have_deadlines(tmp_path):
    from mlspec.dagbag import build_error_dag
    from mlspec.deadlines import OPERATION_DEADLINE, SPEC_ERROR_DEADLINE
    from mlspec.operations_dag import build_operations_dag
    from mlspec.spec import SpecProblem

    (operation,) = build_operations_dag(tmp_path, ["iris-forest"]).tasks
    assert operation.execution_timeout == OPERATION_DEADLINE == timedelta(hours=1)
    (error,) = build_error_dag("broken", [SpecProblem("broken.yaml", 1, 1, "data", "missing")]).tasks
    assert error.execution_timeout == SPEC_ERROR_DEADLINE

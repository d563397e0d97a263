"""How `make down` finds and stops what `make up` started (scripts/local_stack.py), on stand-in processes.

The stand-ins behave like Airflow's awkward ones: a child that ignores SIGTERM (LocalExecutor workers),
one in a process group of its own (task runners) and one that started a session of its own (a task's
subprocess). Processes outside the recorded session, and a recorded PID that now belongs to another
process, are left alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil

STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
LEADER = f"""
import json, signal, subprocess, sys, time
stubborn = [sys.executable, "-c", {STUBBORN!r}]
children = [
    subprocess.Popen(stubborn),                           # ignores SIGTERM, same process group
    subprocess.Popen(stubborn, process_group=0),          # a process group of its own
    subprocess.Popen(stubborn, start_new_session=True),   # a session of its own: found as a descendant
]
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(sys.argv[1], "w").write(json.dumps([c.pid for c in children]))
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _start_tree(tmp_path: Path) -> tuple[subprocess.Popen, list[int]]:
    pids_file = tmp_path / "children.json"
    leader = subprocess.Popen([sys.executable, "-c", LEADER, str(pids_file)], start_new_session=True)
    deadline = time.monotonic() + 30
    while not pids_file.exists() or not pids_file.read_text():
        assert time.monotonic() < deadline, "the stand-in tree did not start"
        time.sleep(0.1)
    return leader, json.loads(pids_file.read_text())


def test_down_stops_the_whole_recorded_session_and_nothing_else(local_stack, tmp_path):
    outsider = subprocess.Popen([sys.executable, "-c", STUBBORN])  # this test's own child, not recorded
    leader, children = _start_tree(tmp_path)
    try:
        state = tmp_path / "stack.json"
        state.write_text(
            json.dumps({"pid": leader.pid, "create_time": psutil.Process(leader.pid).create_time()})
        )
        found = {proc.pid for proc in local_stack.recorded_processes(json.loads(state.read_text()))}
        assert found == {leader.pid, *children}

        assert local_stack.stop_recorded(state, "stand-in", grace_s=1) is True
        leader.wait(timeout=10)
        assert [pid for pid in children if _alive(pid)] == []
        assert not state.exists()
        assert _alive(outsider.pid)
    finally:
        for pid in [leader.pid, *children]:
            try:
                psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                pass
        outsider.kill()
        outsider.wait()


def test_a_recorded_pid_now_held_by_another_process_is_left_alone(local_stack, tmp_path, capsys):
    other = subprocess.Popen([sys.executable, "-c", STUBBORN], start_new_session=True)
    try:
        state = tmp_path / "stack.json"
        # As if make up had recorded this PID for a process that has since ended and the PID was reused.
        created = psutil.Process(other.pid).create_time()
        state.write_text(json.dumps({"pid": other.pid, "create_time": created - 3600}))
        assert local_stack.stop_recorded(state, "stale", grace_s=1) is True
        assert "not running" in capsys.readouterr().out
        assert _alive(other.pid)
    finally:
        other.kill()
        other.wait()


def test_nothing_recorded_is_nothing_to_stop(local_stack, tmp_path, capsys):
    assert local_stack.stop_recorded(tmp_path / "absent.json", "Airflow", grace_s=1) is True
    assert "nothing recorded" in capsys.readouterr().out

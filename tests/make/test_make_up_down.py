"""`make up` then `make down` leaves no process of theirs running, and nothing listens beyond loopback.

`make up` runs in a temporary AIRFLOW_HOME and MLSPEC_HOME on free ports, exactly as a user runs it (the
Makefile, the launcher, the migration of a fresh metadata DB); the test records every process in the
sessions `make up` recorded (api-server, scheduler and its LocalExecutor workers, dag-processor,
triggerer, the model server) and checks that `make down` ends each one.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from tests.fixtures.paths import REPO
from tests.fixtures.ports import free_port

pytestmark = pytest.mark.airflow_stack

LOOPBACK = {"127.0.0.1", "::1"}


def _make(
    target: str, settings: dict[str, str], env: dict[str, str], timeout_s: float
) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", target, *(f"{k}={v}" for k, v in settings.items())],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def _session(leader: int) -> list[psutil.Process]:
    """Every live process whose session is `leader`'s (with their descendants)."""
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == leader and proc.status() != psutil.STATUS_ZOMBIE:
                found[proc.pid] = proc
        except (OSError, psutil.NoSuchProcess):
            continue
    for proc in list(found.values()):
        try:
            for child in proc.children(recursive=True):
                found.setdefault(child.pid, child)
        except psutil.NoSuchProcess:
            continue
    return list(found.values())


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _describe(procs: list[psutil.Process]) -> str:
    lines = []
    for proc in procs:
        try:
            lines.append(f"{proc.pid} {' '.join(proc.cmdline())[:150]}")
        except psutil.Error:
            lines.append(f"{proc.pid} (gone)")
    return "\n".join(lines)


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_make_up_then_make_down_leaves_nothing_running(tmp_path: Path):
    airflow_port, server_port = free_port(), free_port()
    settings = {
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "MLSPEC_HOME": str(tmp_path / "mlspec-home"),
        "AIRFLOW_PORT": str(airflow_port),
        "PORT": str(server_port),
        "MLSPEC_SERVER_URL": f"http://127.0.0.1:{server_port}",
    }
    # A user's shell: none of the test session's Airflow or mlspec settings.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLSPEC_"))}
    env["MLSPEC_SPEC_CACHE"] = str(tmp_path / "spec-cache")
    if Path(sys.executable).parent != REPO / ".venv" / "bin":
        pytest.skip(
            "make up runs the repository's .venv (`make test` installs it); this session runs another Python"
        )

    started = time.monotonic()
    up = _make("up", settings, env, timeout_s=600)
    up_seconds = time.monotonic() - started
    recorded: list[psutil.Process] = []
    try:
        assert up.returncode == 0, f"make up failed:\n{up.stdout[-3000:]}\n{up.stderr[-5000:]}"
        airflow = json.loads((tmp_path / "airflow" / "up" / "airflow.json").read_text())
        server = json.loads((tmp_path / "mlspec-home" / "server" / "server.json").read_text())
        ready = json.loads((tmp_path / "airflow" / "up" / "ready.json").read_text())
        recorded = _session(airflow["pid"]) + _session(server["pid"])
        # Secrets on disk are the user's alone: Airflow's generated passwords and the model server's token.
        for secret in (
            tmp_path / "airflow" / "simple_auth_manager_passwords.json.generated",
            tmp_path / "mlspec-home" / "server" / "token",
        ):
            assert secret.stat().st_mode & 0o777 == 0o600, f"{secret} is {oct(secret.stat().st_mode & 0o777)}"
        commands = _describe(recorded)
        for component in ("api_server", "scheduler", "dag-processor", "triggerer", "LocalExecutor", "serve"):
            assert component in commands, f"{component} is not running:\n{commands}"
        # LocalExecutor workers: one per core, not 32.
        workers = commands.count("airflow worker -- LocalExecutor")
        assert 1 <= workers <= max(2, len(os.sched_getaffinity(0))), commands

        listening = {
            (conn.laddr.ip, conn.laddr.port)
            for proc in recorded
            if _running(proc)
            for conn in proc.net_connections(kind="inet")
            if conn.status == psutil.CONN_LISTEN
        }
        assert {port for _, port in listening} == {airflow_port, server_port}, listening
        assert {ip for ip, _ in listening} <= LOOPBACK, f"listening beyond loopback: {listening}"
        with urllib.request.urlopen(
            f"http://127.0.0.1:{airflow_port}/api/v2/monitor/health", timeout=10
        ) as answer:
            health = json.loads(answer.read())
        assert {part: health[part]["status"] for part in ("scheduler", "triggerer", "dag_processor")} == {
            "scheduler": "healthy",
            "triggerer": "healthy",
            "dag_processor": "healthy",
        }
        print(
            f"make up: {up_seconds:.0f} s until it returned with a usable UI "
            f"(launcher: {json.dumps(ready['seconds'])}); {len(recorded)} processes"
        )
    finally:
        stopped_at = time.monotonic()
        down = _make("down", settings, env, timeout_s=180)
        down_seconds = time.monotonic() - stopped_at
    assert down.returncode == 0, f"make down failed:\n{down.stdout}\n{down.stderr}"
    left = [proc for proc in recorded if _running(proc)]
    assert not left, f"still running after make down:\n{_describe(left)}"
    assert not _session(airflow["pid"]) and not _session(server["pid"])
    assert _port_is_free(airflow_port) and _port_is_free(server_port)
    assert not (tmp_path / "airflow" / "up" / "airflow.json").exists()
    print(f"make down: {down_seconds:.0f} s")

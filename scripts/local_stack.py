"""`make up` / `make down` / `make serve-bg` / `make stop`: local Airflow and model server, stopped exactly.

    python scripts/local_stack.py up [--airflow-port 8080] [--server-port 8555]
    python scripts/local_stack.py down
    python scripts/local_stack.py serve-bg [--server-port 8555]
    python scripts/local_stack.py stop-server
    python scripts/local_stack.py status

Run it with the venv's Python (the Makefile does). Paths come from the environment: AIRFLOW_HOME,
MLSPEC_HOME, and optionally MLSPEC_SPECS_DIR and the AIRFLOW__* settings the Makefile exports.

`up` starts the components `airflow standalone` starts (api-server, scheduler, dag-processor,
triggerer) under one supervisor process, in a new session of their own, plus the model server in
another, and returns once the UI is usable: the api-server answers, every component reports healthy,
the admin can log in and the spec DAGs are parsed. It does not run `airflow standalone` itself
because standalone gives no way to keep every port on loopback: the scheduler's and the triggerer's
log servers (8793/8794) bind every interface and Airflow has no host setting for them. Here the
api-server binds 127.0.0.1 and the log servers are not started (`--skip-serve-logs`): with every
component on this machine the api-server reads task logs from $AIRFLOW_HOME/logs directly.

`down` stops what `up` recorded, and nothing else: it signals the recorded supervisor, then every
process still in the recorded session (LocalExecutor workers ignore SIGTERM; task runners sit in
process groups of their own but stay in the session) and their descendants, and SIGKILLs whatever
outlives the grace period. A process is only touched when it belongs to this user, is in a recorded
session (or descends from a process that is) and started no earlier than that session's leader.
Never by name.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
# What `airflow standalone` runs, with every port on loopback (see the module docstring).
COMPONENTS: dict[str, list[str]] = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}
DEFAULT_GRACE_S = 20.0


# -- paths and settings ----------------------------------------------------------------------------


def airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or REPO / ".airflow").resolve()


def mlspec_home() -> Path:
    return Path(os.environ.get("MLSPEC_HOME") or REPO / ".mlspec").resolve()


def run_dir() -> Path:
    """The supervisor's state (airflow.json, ready.json) and the components' logs."""
    return airflow_home() / "up"


def server_dir() -> Path:
    return mlspec_home() / "server"


def cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def airflow_env(port: int) -> dict[str, str]:
    """The environment of every Airflow component: loopback only, LocalExecutor sized to this machine."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["AIRFLOW_HOME"] = str(airflow_home())
    env["MLSPEC_HOME"] = str(mlspec_home())
    env.setdefault("MLSPEC_SPECS_DIR", str(REPO / "specs"))
    env.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
    # mlspec registers itself with Airflow through its package entry point; plugins/ is its source, not a
    # plugins folder (plugins/.airflowignore hides it from Airflow's scan where it is pointed at anyway).
    env.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(airflow_home() / "plugins"))
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    env["AIRFLOW__CORE__EXECUTOR"] = "LocalExecutor"
    env["AIRFLOW__CORE__AUTH_MANAGER"] = SIMPLE_AUTH_MANAGER
    env["AIRFLOW__API__HOST"] = "127.0.0.1"
    env["AIRFLOW__API__PORT"] = str(port)
    env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = f"http://127.0.0.1:{port}/execution/"
    # Only used where someone enables the scheduler's health server: loopback there too.
    env["AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST"] = "127.0.0.1"
    # LocalExecutor forks `parallelism` workers up front (32 by default): one per core here.
    env.setdefault("AIRFLOW__CORE__PARALLELISM", str(cpu_count()))
    # Airflow shows whatever a task writes to stderr as ERROR lines. TensorFlow writes notices there from
    # C++ before any logging is set up: the oneDNN notice ("oneDNN custom operations are on ..."), which
    # ignores TF_CPP_MIN_LOG_LEVEL in TensorFlow 2.21 and only goes with the oneDNN graph rewrites off
    # (the plain Eigen kernels: the same speed for these small models), absl's "All log messages before
    # absl::InitializeLog() ..." before it, and harmless ERRORs such as "NodeDef mentions attribute
    # use_unbounded_threadpool" under op determinism, which only level 3 hides. Python errors still
    # raise. MLSPEC_TF_CPP_MIN_LOG_LEVEL=0 make up shows TensorFlow's C++ logs again.
    env["TF_CPP_MIN_LOG_LEVEL"] = os.environ.get("MLSPEC_TF_CPP_MIN_LOG_LEVEL", "3")
    env.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    # MLflow logs INFO lines ("Creating initial MLflow database tables...") to stderr as well.
    env.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    return env


# -- processes ---------------------------------------------------------------------------------------


def _create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _same_process(pid: int, create_time: float) -> bool:
    """Whether `pid` is still the process recorded with `create_time` (not a reused PID)."""
    actual = _create_time(pid)
    return actual is not None and abs(actual - create_time) < 1.0


def recorded_processes(state: dict) -> list[psutil.Process]:
    """Every live process the recorded session leader `state` stands for (see the module docstring)."""
    leader, started = int(state["pid"]), float(state["create_time"])
    leader_now = _create_time(leader)
    if leader_now is not None and abs(leader_now - started) >= 1.0:
        # The leader's PID belongs to another process now, so the session is gone: a session id
        # stays taken while any process is in it.
        return []
    uid = os.getuid()
    members: dict[int, psutil.Process] = {}
    everyone = list(psutil.process_iter(["pid", "ppid", "uids", "create_time"]))
    for proc in everyone:
        info = proc.info
        if info["uids"] is None or info["uids"].real != uid or info["create_time"] is None:
            continue
        if info["create_time"] < started - 1.0:
            continue
        try:
            if os.getsid(info["pid"]) == leader:
                members[info["pid"]] = proc
        except OSError:
            continue
    # Descendants that started a session of their own (e.g. a task's subprocess with start_new_session).
    children: dict[int, list[psutil.Process]] = {}
    for proc in everyone:
        if proc.info["ppid"] is not None:
            children.setdefault(proc.info["ppid"], []).append(proc)
    queue = list(members)
    while queue:
        for child in children.get(queue.pop(), []):
            info = child.info
            if child.pid not in members and info["uids"] is not None and info["uids"].real == uid:
                members[child.pid] = child
                queue.append(child.pid)
    return list(members.values())


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def _alive(procs: Iterable[psutil.Process | None]) -> list[psutil.Process]:
    alive = []
    for proc in procs:
        if proc is None:
            continue
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            pass
    return alive


def _signal(procs: Iterable[psutil.Process], sig: int) -> None:
    for proc in procs:
        try:
            proc.send_signal(sig)  # psutil checks the PID still is this process
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass


def _wait_gone(procs: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout_s
    left = _alive(procs)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = _alive(left)
    return left


def stop_recorded(state_file: Path, what: str, grace_s: float) -> bool:
    """Stop everything the state in `state_file` records; True when nothing of it is left running."""
    state = _read_json(state_file)
    if state is None:
        print(f"{what}: nothing recorded ({state_file} absent)")
        return True
    procs = recorded_processes(state)
    if not procs:
        print(f"{what}: not running")
        state_file.unlink(missing_ok=True)
        return True
    leader = int(state["pid"])
    leader_procs = [p for p in procs if p.pid == leader]
    # The leader stops its own children in order (the supervisor: the components, then the session);
    # everything else only gets SIGTERM once the leader is gone or when there is no leader left.
    if leader_procs:
        _signal(leader_procs, signal.SIGTERM)
        _wait_gone(leader_procs, grace_s + 5)
    left = _alive(recorded_processes(state) or procs)
    if left:
        _signal(left, signal.SIGTERM)
        left = _wait_gone(left, grace_s if not leader_procs else 3)
    killed = 0
    for _ in range(3):
        left = _alive(set(left) | set(recorded_processes(state)))
        if not left:
            break
        killed += len(left)
        _signal(left, signal.SIGKILL)
        left = _wait_gone(left, 10)
    if left:
        pids = ", ".join(str(p.pid) for p in left)
        print(f"{what}: could not stop pid(s) {pids}", file=sys.stderr)
        return False
    state_file.unlink(missing_ok=True)
    extra = f"; {killed} did not stop on SIGTERM and were killed" if killed else ""
    print(f"{what}: stopped {len(procs)} process(es){extra}")
    return True


# -- small helpers -----------------------------------------------------------------------------------


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers bind: a port whose last connections linger in TIME_WAIT is free for them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _http(method: str, url: str, *, body: dict | None = None, token: str | None = None, timeout: float = 5):
    """(status, parsed JSON or text) of one request; (0, error text) when nothing answers."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    except (OSError, ValueError) as error:
        return 0, str(error)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def _say(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}", flush=True)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"


def passwords_file(home: Path) -> Path:
    """Where Airflow's SimpleAuthManager keeps the generated passwords (its setting, else AIRFLOW_HOME)."""
    configured = os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", "").strip()
    return Path(configured) if configured else home / PASSWORDS_FILE


def protect_passwords_file(home: Path) -> Path:
    """Make the passwords file 0600 before Airflow writes it: the api-server opens it for appending and
    writes in place, so a file created here with mode 0600 keeps that mode (Airflow creates it 0644,
    readable by every user of the machine). An existing one is set to 0600."""
    path = passwords_file(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return path


def admin_credentials(home: Path) -> tuple[str, str] | None:
    """(user, password) the simple auth manager generated in `home`, once the api-server wrote them."""
    passwords = _read_json(passwords_file(home))
    if not passwords:
        return None
    user = "admin" if "admin" in passwords else next(iter(passwords))
    return user, passwords[user]


# -- the model server --------------------------------------------------------------------------------


def server_url(port: int) -> str:
    return os.environ.get("MLSPEC_SERVER_URL") or f"http://127.0.0.1:{port}"


def start_server(port: int) -> subprocess.Popen | None:
    """`mlspec serve` in a session of its own, recorded in $MLSPEC_HOME/server/server.json and server.pid;
    None when a model server already answers at the URL (it is used; stopped only if make started it).
    """
    url = server_url(port)
    folder = server_dir()
    folder.mkdir(parents=True, exist_ok=True)
    state_file = folder / "server.json"
    if _http("GET", f"{url}/v2/health/live", timeout=2)[0] == 200:
        state = _read_json(state_file)
        if state and recorded_processes(state):
            print(f"model server already running at {url} (pid {state['pid']})")
        else:
            print(
                f"a model server not started by make answers at {url}: using it (make down leaves it alone)"
            )
        return None
    argv = [
        str(BIN / "mlspec"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--state-dir",
        str(folder),
    ]
    with (folder / "server.log").open("ab") as log:
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "MLSPEC_HOME": str(mlspec_home())},
        )
    created = _create_time(proc.pid) or time.time()
    _write_json(state_file, {"pid": proc.pid, "create_time": created, "url": url})
    (folder / "server.pid").write_text(f"{proc.pid}\n")
    return proc


def wait_for_server(proc: subprocess.Popen, port: int, timeout_s: float) -> bool:
    """Whether the model server `proc` answers within `timeout_s`; stops it (and says why) when not."""
    url = server_url(port)
    deadline = time.monotonic() + timeout_s
    while _http("GET", f"{url}/v2/health/live", timeout=2)[0] != 200:
        if proc.poll() is not None or time.monotonic() > deadline:
            print(f"the model server did not start:\n{_tail(server_dir() / 'server.log')}", file=sys.stderr)
            stop_server()
            return False
        time.sleep(0.3)
    print(f"model server started at {url} (pid {proc.pid}; make stop or make down stops it)")
    return True


def serve_bg(port: int, timeout_s: float = 60) -> int:
    proc = start_server(port)
    return 0 if proc is None or wait_for_server(proc, port, timeout_s) else 1


def stop_server(grace_s: float = 10) -> bool:
    folder = server_dir()
    ok = stop_recorded(folder / "server.json", "model server", grace_s)
    if ok:
        (folder / "server.pid").unlink(missing_ok=True)
    return ok


# -- Airflow -----------------------------------------------------------------------------------------


def migrate(env: dict[str, str]) -> None:
    """`airflow db migrate` once per AIRFLOW_HOME (the marker is the one the Makefile's demo uses)."""
    home = airflow_home()
    marker = home / ".migrated"
    if marker.exists():
        return
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "migrate.log"
    with log_path.open("wb") as log:
        result = subprocess.run(
            [str(BIN / "airflow"), "db", "migrate"], stdout=log, stderr=subprocess.STDOUT, env=env
        )
    if result.returncode != 0:
        raise SystemExit(f"airflow db migrate failed:\n{_tail(log_path)}")
    marker.touch()


def supervise(port: int) -> int:
    """The session leader `up` starts: runs the components until SIGTERM, then stops them and the session."""
    folder = run_dir()
    env = airflow_env(port)
    stopping = False

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    procs: dict[str, subprocess.Popen] = {}
    for name, argv in COMPONENTS.items():
        with (folder / f"{name}.log").open("ab") as log:
            procs[name] = subprocess.Popen(
                [str(BIN / "airflow"), *argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=REPO,
            )
    _write_json(folder / "components.json", {name: proc.pid for name, proc in procs.items()})
    say = _say
    say(f"supervisor {os.getpid()}: started " + ", ".join(f"{n} ({p.pid})" for n, p in procs.items()))
    reported: set[str] = set()
    while not stopping:
        for name, proc in procs.items():
            if name not in reported and proc.poll() is not None:
                reported.add(name)
                say(f"supervisor: {name} exited with {proc.returncode} (see {name}.log)")
        time.sleep(0.5)
    say("supervisor: stopping")
    for proc in procs.values():
        if proc.poll() is None:
            proc.terminate()
    grace = float(os.environ.get("MLSPEC_UP_GRACE_S", DEFAULT_GRACE_S))
    deadline = time.monotonic() + grace
    running = dict(procs)
    while running and time.monotonic() < deadline:
        time.sleep(0.2)
        for name, proc in list(running.items()):
            if proc.poll() is not None:
                say(f"supervisor: {name} exited with {proc.returncode}")
                del running[name]
    for name in running:
        say(f"supervisor: {name} still running after {grace:.0f} s")
    # Whatever is left in the session (workers that ignore SIGTERM, task runners): SIGKILL.
    me = os.getpid()
    state = {"pid": me, "create_time": _create_time(me)}
    rest = [p for p in recorded_processes(state) if p.pid != me]
    _signal(rest, signal.SIGKILL)
    _wait_gone(rest, 10)
    for proc in procs.values():
        if proc.poll() is None:
            proc.wait(timeout=5)
    say(f"supervisor: stopped ({len(rest)} left in the session were killed)")
    return 0


def wait_until_usable(port: int, state: dict, started: float, timeout_s: float) -> dict:
    """Seconds (since `started`) until the api-server answered, every component was healthy, the admin
    could log in and the DAGs were listed; raises SystemExit with the logs' tails when that does not come."""
    base = f"http://127.0.0.1:{port}"
    folder = run_dir()
    marks: dict[str, float] = {}
    deadline = started + timeout_s
    specs = Path(airflow_env(port)["MLSPEC_SPECS_DIR"])
    has_specs = specs.is_dir() and any(p.suffix in (".yaml", ".yml") for p in specs.iterdir())
    token = None
    while True:
        now = time.monotonic()
        if not _same_process(int(state["pid"]), float(state["create_time"])):
            _fail_up("the supervisor exited")
        components = _read_json(folder / "components.json") or {}
        for name, pid in components.items():
            if not _alive([_process(int(pid))]):
                _fail_up(f"{name} exited", folder / f"{name}.log")
        if now > deadline:
            _fail_up(
                f"Airflow was not usable within {timeout_s:.0f} s (reached: {sorted(marks) or 'nothing'})"
            )
        if "api" not in marks:
            if _http("GET", f"{base}/", timeout=3)[0] == 200:
                marks["api"] = now - started
        elif "healthy" not in marks:
            status, health = _http("GET", f"{base}/api/v2/monitor/health", timeout=3)
            parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
            if (
                status == 200
                and isinstance(health, dict)
                and all((health.get(part) or {}).get("status") == "healthy" for part in parts)
            ):
                marks["healthy"] = now - started
        elif token is None:
            credentials = admin_credentials(airflow_home())
            if credentials:
                status, answer = _http(
                    "POST",
                    f"{base}/auth/token",
                    body={"username": credentials[0], "password": credentials[1]},
                )
                if status in (200, 201) and isinstance(answer, dict):
                    token = answer["access_token"]
                    marks["login"] = now - started
        else:
            status, answer = _http("GET", f"{base}/api/v2/dags?limit=1", token=token)
            listed = answer.get("total_entries", 0) if status == 200 and isinstance(answer, dict) else 0
            if listed > 0 or (status == 200 and not has_specs):
                marks["dags"] = now - started
                marks["dag_count"] = listed
                return marks
        time.sleep(0.5)


def _fail_up(reason: str, log: Path | None = None) -> None:
    folder = run_dir()
    logs = [log] if log else [folder / f"{name}.log" for name in COMPONENTS]
    details = "\n".join(f"--- {path}\n{_tail(path, 20)}" for path in logs)
    print(f"make up failed: {reason}\n{details}\nstopping what was started", file=sys.stderr)
    stop_recorded(folder / "airflow.json", "Airflow", grace_s=5)
    stop_server()
    raise SystemExit(1)


def up(airflow_port: int, server_port: int, timeout_s: float, with_server: bool) -> int:
    started = time.monotonic()
    folder = run_dir()
    folder.mkdir(parents=True, exist_ok=True)
    state_file = folder / "airflow.json"
    state = _read_json(state_file)
    if state and recorded_processes(state):
        print(f"Airflow is already running: http://127.0.0.1:{state['port']} (stop it with: make down)")
        return 0 if (not with_server or serve_bg(server_port) == 0) else 1
    if not _port_free(airflow_port):
        print(f"port {airflow_port} on 127.0.0.1 is taken: set AIRFLOW_PORT=<free port>", file=sys.stderr)
        return 1
    # The model server and Airflow start side by side; both are waited for below.
    server = start_server(server_port) if with_server else None
    env = airflow_env(airflow_port)
    protect_passwords_file(airflow_home())  # before the api-server generates the admin password into it
    try:
        migrate(env)
    except SystemExit:
        stop_server()
        raise
    for stale in ("components.json", "ready.json"):
        (folder / stale).unlink(missing_ok=True)
    with (folder / "supervisor.log").open("ab") as log:
        leader = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "_supervise",
                "--airflow-port",
                str(airflow_port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
            cwd=REPO,
        )
    state = {
        "pid": leader.pid,
        "create_time": _create_time(leader.pid) or time.time(),
        "port": airflow_port,
        "url": f"http://127.0.0.1:{airflow_port}",
    }
    _write_json(state_file, state)
    if server is not None and not wait_for_server(server, server_port, timeout_s):
        stop_recorded(state_file, "Airflow", grace_s=5)
        return 1
    marks = wait_until_usable(airflow_port, state, started, timeout_s)
    user, password = admin_credentials(airflow_home()) or ("admin", "?")
    _write_json(folder / "ready.json", {**state, "seconds": marks, "user": user})
    print(
        f"Airflow is up after {marks['dags']:.0f} s (api-server {marks['api']:.0f} s, all components healthy "
        f"{marks['healthy']:.0f} s, {marks['dag_count']} DAGs listed {marks['dags']:.0f} s)\n"
        f"  UI       http://127.0.0.1:{airflow_port}  user {user}, password {password}\n"
        f"           (from {passwords_file(airflow_home())}, mode 0600)\n"
        f"  logs     {folder}/<component>.log, task logs under {airflow_home() / 'logs'}\n"
        f"  stop     make down"
    )
    return 0


def status() -> int:
    for what, state_file in (
        ("Airflow", run_dir() / "airflow.json"),
        ("model server", server_dir() / "server.json"),
    ):
        state = _read_json(state_file)
        procs = recorded_processes(state) if state else []
        print(f"{what}: {f'{len(procs)} process(es) running' if procs else 'not running'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up")
    p_up.add_argument("--airflow-port", type=int, default=int(os.environ.get("AIRFLOW__API__PORT", 8080)))
    p_up.add_argument("--server-port", type=int, default=8555)
    p_up.add_argument("--timeout", type=float, default=float(os.environ.get("MLSPEC_UP_TIMEOUT_S", 300)))
    p_up.add_argument("--no-server", action="store_true", help="Airflow only")
    p_down = sub.add_parser("down")
    p_down.add_argument(
        "--grace", type=float, default=float(os.environ.get("MLSPEC_UP_GRACE_S", DEFAULT_GRACE_S))
    )
    p_serve = sub.add_parser("serve-bg")
    p_serve.add_argument("--server-port", type=int, default=8555)
    sub.add_parser("stop-server")
    sub.add_parser("status")
    p_sup = sub.add_parser("_supervise")
    p_sup.add_argument("--airflow-port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.command == "up":
        return up(args.airflow_port, args.server_port, args.timeout, not args.no_server)
    if args.command == "down":
        airflow_ok = stop_recorded(run_dir() / "airflow.json", "Airflow", args.grace)
        return 0 if stop_server() and airflow_ok else 1
    if args.command == "serve-bg":
        return serve_bg(args.server_port)
    if args.command == "stop-server":
        return 0 if stop_server() else 1
    if args.command == "status":
        return status()
    return supervise(args.airflow_port)


if __name__ == "__main__":
    sys.exit(main())

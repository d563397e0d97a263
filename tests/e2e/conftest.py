"""End-to-end fixtures: a real `mlspec serve` process and a specs folder Airflow compiles from."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from airflow.models.xcom import XComModel


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def model_server(tmp_path_factory):
    """The local model server, started the way a user does (`mlspec serve`), on a free loopback port."""
    port = free_port()
    state = tmp_path_factory.mktemp("server-state")
    log = open(state / "server.log", "wb")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlspec"), "serve", "--port", str(port), "--state-dir", str(state)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/live", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.3)
    else:
        process.kill()
        pytest.fail("mlspec serve did not start: " + (state / "server.log").read_text()[-2000:])
    os.environ["MLSPEC_SERVER_URL"] = url
    yield url
    os.environ.pop("MLSPEC_SERVER_URL", None)
    process.terminate()
    process.wait(timeout=30)
    log.close()


@pytest.fixture
def run_spec(airflow_db, model_server, tmp_path, monkeypatch):
    """Write a spec into a fresh specs folder and run its DAG through Airflow (dag.test)."""
    specs = tmp_path / "specs"
    specs.mkdir()
    monkeypatch.setenv("MLSPEC_SPECS_DIR", str(specs))

    def run(text: str, name: str, **run_conf):
        from mlspec.compiler import build_dag
        from mlspec.spec import load_spec

        (specs / f"{name}.yaml").write_text(text)
        spec = load_spec(specs / f"{name}.yaml")
        dag_run = build_dag(spec, spec_text=text).test(run_conf=run_conf or None)
        return spec, dag_run

    return run


def task_states(dag_run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def xcom(dag_run, task_id: str):
    """What a task of a finished run handed on through XCom (read back from Airflow's DB)."""
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter(XComModel.dag_id == dag_run.dag_id, XComModel.run_id == dag_run.run_id, XComModel.task_id == task_id)
            .filter(XComModel.key == "return_value")
            .one()
        )
        return XComModel.deserialize_value(row)

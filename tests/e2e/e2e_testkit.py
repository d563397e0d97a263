"""Helpers for the end-to-end tests: an `mlspec serve` process, and reading back what a DAG run did.

The other production backends (a moto S3 server, an `mlflow server`) are in tests/fixtures/; like
`model_server_process` they are context managers too, so a test module decides their scope.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from tests.fixtures.ports import free_port
from tests.fixtures.processes import server_process


@contextmanager
def model_server_process(state_dir: Path, extra_env: dict[str, str]) -> Iterator[str]:
    """`mlspec serve` on 127.0.0.1:<free port> with `extra_env` (e.g. boto3's S3 settings); yields its URL.

    Stopped by PID (its process group) when the block ends.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    mlspec = Path(sys.executable).parent / "mlspec"
    argv = [mlspec, "serve", "--port", str(port), "--state-dir", str(state_dir)]
    with server_process(
        argv,
        health_url=f"{url}/v2/health/live",
        log_path=state_dir / "server.log",
        what="mlspec serve",
        timeout_s=60,
        env={**os.environ, **extra_env},
    ):
        yield url


def served_version(server_url: str, model: str) -> str | None:
    response = httpx.get(f"{server_url}/v2/models/{model}")
    return response.json()["parameters"]["served_version"] if response.status_code == 200 else None


def task_states(dag_run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def xcom(dag_run, task_id: str):
    """What a task of a finished run handed on through XCom (read back from Airflow's DB)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter(XComModel.dag_id == dag_run.dag_id, XComModel.run_id == dag_run.run_id)
            .filter(XComModel.task_id == task_id)
            .filter(XComModel.key == "return_value")
            .one()
        )
        return XComModel.deserialize_value(row)

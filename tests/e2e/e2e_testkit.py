"""Production backends on loopback for the end-to-end test: a moto S3 server, an `mlflow server`, and an
`mlspec serve` process that reads s3:// through boto3's standard environment.

Plain context managers (no fixtures), so a test module decides their scope. Every server binds to
127.0.0.1 on a free port and is stopped when its block ends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from tests.e2e.conftest import free_port

BIN = Path(sys.executable).parent
# moto accepts any credentials; these only have to be the same on every client.
AWS_KEY, AWS_SECRET, AWS_REGION = "testing", "testing", "us-east-1"


@dataclass(frozen=True)
class MotoS3:
    endpoint: str

    def connection_json(self) -> str:
        """An Airflow `aws` connection (for AIRFLOW_CONN_<ID>) pointing at this server."""
        return json.dumps(
            {
                "conn_type": "aws",
                "login": AWS_KEY,
                "password": AWS_SECRET,
                "extra": {"endpoint_url": self.endpoint, "region_name": AWS_REGION},
            }
        )

    def client(self):
        """A plain boto3 client, to set up and inspect the bucket behind mlspec's back."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=AWS_KEY,
            aws_secret_access_key=AWS_SECRET,
            region_name=AWS_REGION,
        )

    def boto3_environment(self) -> dict[str, str]:
        """What a process outside Airflow (the model server) needs to read this server with boto3."""
        return {
            "AWS_ACCESS_KEY_ID": AWS_KEY,
            "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
            "AWS_DEFAULT_REGION": AWS_REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
        }


@contextmanager
def moto_s3_server() -> Iterator[MotoS3]:
    """A real S3 API (moto's server, in a thread of this process) on 127.0.0.1:<free port>."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield MotoS3(f"http://127.0.0.1:{port}")
    finally:
        server.stop()


@dataclass(frozen=True)
class MlflowServer:
    url: str
    port: int
    root: Path

    def connection_json(self) -> str:
        """An Airflow `http` connection (for AIRFLOW_CONN_<ID>) naming this tracking server."""
        return json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": self.port, "schema": "http"})


def _stop_process_group(process: subprocess.Popen) -> None:
    # `mlflow server` runs uvicorn workers in child processes: stop its whole process group.
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)


@contextmanager
def mlflow_tracking_server(root: Path) -> Iterator[MlflowServer]:
    """`mlflow server` on 127.0.0.1:<free port> with a SQLite backend under `root` (the same start as
    tests/registry_mlflow/conftest.py; it takes 10-40 s on a small machine)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    # The background job runner (huey consumers for GenAI jobs) serves neither the registry nor
    # tracking; leaving it off keeps a 2-core machine responsive.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    log_path = root / "mlflow-server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                str(BIN / "mlflow"),
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--backend-store-uri",
                f"sqlite:///{root / 'mlflow.db'}",
                "--default-artifact-root",
                str(root / "artifacts"),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=root,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until(
                lambda: _answers(f"{url}/health"),
                process,
                timeout_s=180,
                what="mlflow server",
                log_path=log_path,
            )
            yield MlflowServer(url=url, port=port, root=root)
        finally:
            _stop_process_group(process)


@contextmanager
def model_server_process(state_dir: Path, extra_env: dict[str, str]) -> Iterator[str]:
    """`mlspec serve` on 127.0.0.1:<free port> with `extra_env` (e.g. boto3's S3 settings); yields its URL."""
    port = free_port()
    env = {**os.environ, **extra_env}
    log_path = state_dir / "server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [str(BIN / "mlspec"), "serve", "--port", str(port), "--state-dir", str(state_dir)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until(
                lambda: _answers(f"{url}/v2/health/live"),
                process,
                timeout_s=60,
                what="mlspec serve",
                log_path=log_path,
            )
            yield url
        finally:
            _stop_process_group(process)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _wait_until(ready, process: subprocess.Popen, *, timeout_s: float, what: str, log_path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{_tail(log_path)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer within {timeout_s:.0f} s:\n{_tail(log_path)}")
        time.sleep(0.5)


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"


def served_version(server_url: str, model: str) -> str | None:
    response = httpx.get(f"{server_url}/v2/models/{model}")
    return response.json()["parameters"]["served_version"] if response.status_code == 200 else None

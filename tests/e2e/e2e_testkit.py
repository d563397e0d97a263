"""Helpers for the end-to-end tests: reading back what a DAG run did and what the model server serves.

The servers themselves (`mlspec serve`, a moto S3 server, an `mlflow server`) are in tests/fixtures/.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import httpx


@contextmanager
def kept_messages(logger_name: str) -> Iterator[list[str]]:
    """What a logger says at INFO and above while the block runs, kept by a handler of its own: after a
    first dag.test, Airflow's logging config no longer sends mlspec's records to stdout or caplog."""
    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler, logger = Keep(), logging.getLogger(logger_name)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


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

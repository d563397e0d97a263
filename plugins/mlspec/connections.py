"""Reading Airflow connections the same way in every backend (Airflow 3 task SDK first)."""

from __future__ import annotations


def get_connection(connection_id: str):
    try:
        from airflow.sdk import BaseHook
    except ImportError:  # pragma: no cover - older Airflow
        from airflow.hooks.base import BaseHook
    return BaseHook.get_connection(connection_id)


def connection_token(connection_id: str) -> str | None:
    """A bearer token kept in the connection's extra {"token": ...} or its password."""
    connection = get_connection(connection_id)
    return connection.extra_dejson.get("token") or connection.password or None

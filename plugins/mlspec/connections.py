"""Airflow connections, read one way for every backend (registry, tracking, serving).

A bearer token is the connection's extra {"token": ...}; when there is none, its password is the
token, unless the connection also has a login (then login and password are basic auth).
"""

from __future__ import annotations

from typing import Any

from mlspec.errors import MlspecError


def get_connection(connection_id: str, *, used_for: str, error_type: type[MlspecError] = MlspecError) -> Any:
    """The Airflow connection, or `error_type` saying which connection, what for and how to create it."""
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(connection_id)
    except Exception as exc:  # AirflowNotFoundException and secrets-backend failures alike
        raise error_type(
            f"could not read Airflow connection {connection_id!r} for {used_for} ({exc}); create it in the UI, "
            f"with `airflow connections add`, or as AIRFLOW_CONN_{connection_id.upper()}"
        ) from exc


def bearer_token(connection: Any) -> str | None:
    """The connection's bearer token (see the module docstring for the precedence)."""
    extra = connection.extra_dejson or {}
    if extra.get("token"):
        return str(extra["token"])
    return None if connection.login else (connection.password or None)


def connection_token(connection_id: str, *, used_for: str) -> str | None:
    return bearer_token(get_connection(connection_id, used_for=used_for))

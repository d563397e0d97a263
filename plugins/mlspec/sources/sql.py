"""`sql://<connection_id>`: the table data.query returns from the database of an Airflow connection.

It is read through the hook of the connection's type, which must be a common.sql `DbApiHook` (`get_df_by_chunks`):
every database with an Airflow provider works; PostgreSQL (apache-airflow-providers-postgres) is the tested
one. The result is a table like a CSV file's: data.label and data.features pick its columns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from mlspec.connections import get_connection
from mlspec.errors import DataError
from mlspec.sources.kind import SourceKind, SourceRead
from mlspec.storage import source_cap_hint
from mlspec.storage.kind import Quote

PREFIX = "sql://"
# An Airflow connection id as data.connection allows it (the schema's pattern), or a template to fill in.
CONNECTION_ID = re.compile(r"[A-Za-z0-9_.-]{1,250}|.*\{\{.*\}\}.*", re.DOTALL)
# Rows a query's result is read in, so a result over the cap is given up early, not held whole first.
CHUNK_ROWS = 50_000
MAX_ERROR_CHARS = 300  # a driver's message can run to the whole query; its first line says what failed


def connection_id(source: str) -> str:
    return source[len(PREFIX):]


def query_rules(source: str, quote: Quote, data: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    """Lint: the source names one connection, data.query says what to read, and nothing else names a file."""
    if not CONNECTION_ID.fullmatch(connection_id(source)):
        yield "source", (
            f"{quote(source)} must be sql://<connection_id>, an Airflow connection id of letters, digits, '_', '.' "
            "and '-' (the database, its host and credentials live in the connection)"
        )
    if not data.get("query"):
        yield "source", "a sql:// source needs data.query, the SQL that reads the table (e.g. SELECT * FROM iris)"
    if data.get("connection") is not None:
        yield "connection", "a sql:// source names its connection itself (sql://<connection_id>); remove data.connection"
    if data.get("format") is not None:
        yield "format", "a sql:// source is a table a query returns; remove data.format"


def _first_line(exc: BaseException) -> str:
    """The driver's own reason, first line: pandas and SQLAlchemy wrap it in "Execution failed on sql ..."."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    exc = getattr(exc, "orig", None) or exc  # SQLAlchemy's DBAPIError keeps the driver's error
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def read_query(source: str, read: SourceRead) -> Any:
    """The DataFrame data.query returns on the connection's database; every failure is a DataError that
    names the connection."""
    conn_id = connection_id(source)
    if not read.query:
        raise DataError(
            f"{source} needs a query, the SQL that reads the table: data.query (evaluation.holdout.query for a "
            "holdout, which never borrows data.query)"
        )
    connection = get_connection(conn_id, used_for=f"data.source {source}", error_type=DataError)
    try:
        hook = connection.get_hook()
    except Exception as exc:  # noqa: BLE001 - an unknown type or a provider that is not installed
        raise DataError(
            f"Airflow connection {conn_id!r} is of type {connection.conn_type!r}, whose hook could not be opened "
            f"({_first_line(exc)}); install the Airflow provider of that database on the workers"
        ) from exc
    if not callable(getattr(hook, "get_df", None)):
        raise DataError(
            f"Airflow connection {conn_id!r} is of type {connection.conn_type!r}, not a database that answers SQL "
            "(its hook is no common.sql DbApiHook)"
        )
    try:
        return _bounded_frame(source, hook.get_df_by_chunks(read.query, chunksize=CHUNK_ROWS, df_type="pandas"), read)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - the driver's own errors (bad SQL, no such table, refused login)
        raise DataError(f"data.query failed on Airflow connection {conn_id!r}: {_first_line(exc)}") from exc


def _bounded_frame(source: str, chunks: Iterable[Any], read: SourceRead) -> Any:
    """The query's result as one DataFrame, read CHUNK_ROWS rows at a time and given up, with the cap, once its
    cells as 8-byte numbers pass the data source cap (a file source is refused before it is read, too)."""
    import pandas as pd

    frames, rows = [], 0
    for chunk in chunks:
        frames.append(chunk)
        rows += len(chunk)
        if rows * len(chunk.columns) * 8 > read.max_bytes:
            raise DataError(
                f"{source}: data.query's result passed {rows:,} rows x {len(chunk.columns):,} columns, more than "
                f"the data source cap of {read.max_bytes:,} bytes as 8-byte numbers; it was not read further. "
                f"Select fewer rows or columns in data.query, or raise the cap: {source_cap_hint()}"
            )
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


KIND = SourceKind(
    scheme="sql",
    prefix=PREFIX,
    title="the table a query returns from a database (an Airflow connection)",
    next_step=(
        "check the Airflow connection {name} (host, port, database, login) and data.query in the spec, "
        "then clear this task"
    ),
    runs_here=False,
    read_table=read_query,
    lint=query_rules,
)

"""data.source sql://<connection_id> with data.query: lint's rules, and the table read through the connection's
common.sql hook from a real PostgreSQL server (tests/fixtures/postgres.py). Before, lint said
"unsupported source 'sql://...'" and the only way in was an export by hand."""

from __future__ import annotations

import numpy as np
import pytest
from tests.fixtures.paths import SPECS

from mlspec.errors import DataError
from mlspec.ml.data import load_source
from mlspec.operators.data import PrepareDataOperator
from mlspec.sources import SOURCE_KINDS, SourceRead, source_kind
from mlspec.spec import SpecError, load_spec_text

IRIS = (SPECS / "iris-forest.yaml").read_text()
QUERY = "SELECT * FROM iris ORDER BY species, sepal_length"


def sql_spec(data: str) -> str:
    return IRIS.replace("  source: builtin:iris\n", data)


def lint_messages(data: str) -> list[tuple[int, str, str]]:
    with pytest.raises(SpecError) as raised:
        load_spec_text(sql_spec(data))
    return [(p.line, p.path, p.message) for p in raised.value.problems]


def test_a_sql_source_with_its_query_passes_lint():
    spec = load_spec_text(sql_spec(f"  source: sql://warehouse\n  query: {QUERY}\n  label: species\n"))
    assert (spec.data.source, spec.data.query) == ("sql://warehouse", QUERY)
    assert source_kind("sql://warehouse") is SOURCE_KINDS["sql"]


@pytest.mark.parametrize(
    ("data", "line", "path", "message"),
    [
        ("  source: sql://warehouse\n", 12, "data.source", "a sql:// source needs data.query"),
        ("  source: builtin:iris\n  query: SELECT 1\n", 13, "data.query", "read by a sql:// source only"),
        ("  source: sql://ware house\n  query: SELECT 1\n", 12, "data.source", "must be sql://<connection_id>"),
        ("  source: sql://w\n  query: SELECT 1\n  connection: other\n", 14, "data.connection", "names its connection"),
        ("  source: sql://w\n  query: SELECT 1\n  format: csv\n", 14, "data.format", "remove data.format"),
    ],
)
def test_lint_refuses_a_sql_source_without_its_query_and_a_query_anywhere_else(data, line, path, message):
    assert [(ln, p) for ln, p, m in lint_messages(data) if message in m] == [(line, path)]


def read(source: str, query: str | None):
    kind = source_kind(source)
    return kind.read_table(source, SourceRead(connection=None, max_bytes=1 << 30, specs_dir=None, query=query))


@pytest.fixture
def warehouse(postgres_server, airflow_db, monkeypatch):
    """The Airflow connection `warehouse` to the test server, as a deployment sets it in the environment."""
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", postgres_server.airflow_uri)
    return "warehouse"


def test_the_query_is_read_through_the_connections_hook_into_the_table_path(warehouse):
    x, y, class_names, feature_names, *_ = load_source(
        f"sql://{warehouse}", fmt=None, features=None, label="species", read_bytes=bytes,
        read_table=lambda source: read(source, QUERY),
    )
    assert x.shape == (150, 4) and all(x.dtypes == np.float64)  # a table: the raw DataFrame
    assert feature_names == ("sepal_length", "sepal_width", "petal_length", "petal_width")
    assert class_names == ("setosa", "versicolor", "virginica") and np.bincount(y).tolist() == [50, 50, 50]
    # data.features and data.label pick columns as they do in a CSV file, with the same messages.
    x, _, _, names, *_ = load_source(
        f"sql://{warehouse}", fmt=None, features=["petal_length", "petal_width"], label="species",
        read_bytes=bytes, read_table=lambda source: read(source, QUERY),
    )
    assert x.shape == (150, 2) and names == ("petal_length", "petal_width")
    with pytest.raises(DataError, match=r"data.label.*'kind'|'kind'.*data.label"):
        load_source(
            f"sql://{warehouse}", fmt=None, features=None, label="kind", read_bytes=bytes,
            read_table=lambda source: read(source, QUERY),
        )


def test_a_result_over_the_source_cap_is_given_up_while_it_is_read(warehouse, monkeypatch):
    from mlspec.sources import sql

    monkeypatch.setattr(sql, "CHUNK_ROWS", 40)  # 150 iris rows arrive in 4 chunks
    cap = 60 * 5 * 8  # 60 rows of the 5 columns as 8-byte numbers
    with pytest.raises(DataError) as raised:
        source_kind("sql://warehouse").read_table(
            "sql://warehouse", SourceRead(connection=None, max_bytes=cap, specs_dir=None, query=QUERY)
        )
    assert str(raised.value).startswith(
        "sql://warehouse: data.query's result passed 80 rows x 5 columns, more than the data source cap of 2,400 "
        "bytes as 8-byte numbers; it was not read further."
    )
    # Under the cap, the chunks come back as one table in the query's order.
    whole = read("sql://warehouse", QUERY)
    assert len(whole) == 150 and whole.index.tolist() == list(range(150))
    assert whole["species"].tolist() == sorted(whole["species"].tolist())


def test_a_query_the_database_refuses_names_the_connection_and_the_drivers_reason(warehouse):
    with pytest.raises(DataError) as raised:
        read(f"sql://{warehouse}", "SELECT * FROM irises")
    assert str(raised.value) == (
        "data.query failed on Airflow connection 'warehouse': relation \"irises\" does not exist"
    )


def test_an_unknown_connection_says_how_to_create_it(airflow_db):
    with pytest.raises(DataError, match=r"could not read Airflow connection 'nowhere'.*AIRFLOW_CONN_NOWHERE"):
        read("sql://nowhere", "SELECT 1")


def test_a_connection_that_is_no_database_is_refused(airflow_db, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_FILES", "fs://")
    with pytest.raises(DataError, match=r"'files' is of type 'fs', not a database that answers SQL"):
        read("sql://files", "SELECT 1")


def prepare_data(source: str) -> PrepareDataOperator:
    spec = load_spec_text(sql_spec(f"  source: {source}\n  query: SELECT * FROM irises\n  label: species\n"))
    return PrepareDataOperator(spec=spec.to_dict(), task_id="prepare_data", retries=3)


@pytest.mark.parametrize("connection", ["warehouse", "nowhere"])
def test_prepare_data_fails_at_once_and_its_next_step_names_the_connection(warehouse, connection):
    """A bad query or a missing connection fails the task without the retry that cannot help, and the
    advice is about the connection and the query (it was "check data.source in the spec" for every source)."""
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException) as raised:
        prepare_data(f"sql://{connection}").execute({"run_id": "manual__1"})
    message = str(raised.value)
    assert message.startswith("prepare_data failed for model iris-forest: ")
    assert f"Next step: check the Airflow connection {connection} (host, port, database, login) and data.query" in message

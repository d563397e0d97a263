"""Where tables come from (issue 13 §3): a spec reads its table from a real PostgreSQL server through an
Airflow connection (sql://), or the file its run's date names (`{{ ds }}`), and trains end to end through
Airflow to a smoke-tested endpoint."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from tests.e2e.e2e_testkit import task_states, xcom
from tests.fixtures.paths import SPECS

pytestmark = pytest.mark.e2e

FOREST = (SPECS / "iris-forest.yaml").read_text()


def test_a_spec_trains_on_the_table_its_query_returns_from_postgresql(run_spec, postgres_server, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", postgres_server.airflow_uri)
    text = FOREST.replace("name: iris-forest", "name: iris-sql").replace(
        "  source: builtin:iris\n",
        "  source: sql://warehouse\n"
        "  query: SELECT sepal_length, sepal_width, petal_length, petal_width, species FROM iris\n"
        "  label: species\n",
    )
    spec, dag_run = run_spec(text, "iris-sql")
    assert str(dag_run.state) == "success", task_states(dag_run)
    prepared = xcom(dag_run, "prepare_data")
    assert prepared["source"] == "sql://warehouse"
    assert prepared["class_names"] == ["setosa", "versicolor", "virginica"] and prepared["input_shape"] == [4]
    assert sum(prepared["samples"].values()) == 150
    assert xcom(dag_run, "evaluate")["metrics"]["accuracy"] >= 0.85


def iris_csv(path: Path) -> None:
    from sklearn.datasets import load_iris

    bunch = load_iris()
    lines = ["sepal_length,sepal_width,petal_length,petal_width,species"]
    lines += [",".join(f"{v:g}" for v in row) + f",{bunch.target_names[t]}" for row, t in zip(bunch.data, bunch.target, strict=True)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def test_a_dated_file_pattern_trains_on_the_file_of_the_runs_logical_date(
    airflow_db, model_server, tmp_path, monkeypatch
):
    from mlspec.compiler import build_dag
    from mlspec.spec import load_spec

    daily = tmp_path / "daily"
    iris_csv(daily / "2024-03-05.csv")  # no file for any other day: a run of another date would fail
    specs = tmp_path / "specs"
    specs.mkdir()
    monkeypatch.setenv("MLSPEC_SPECS_DIR", str(specs))
    text = FOREST.replace("name: iris-forest", "name: iris-daily").replace(
        "  source: builtin:iris\n", f"  source: '{daily.as_uri()}/{{{{ ds }}}}.csv'\n  label: species\n"
    )
    (specs / "iris-daily.yaml").write_text(text)
    spec = load_spec(specs / "iris-daily.yaml")
    assert spec.data.source.endswith("/daily/{{ ds }}.csv")
    dag_run = build_dag(spec, spec_text=text).test(logical_date=dt.datetime(2024, 3, 5, tzinfo=dt.UTC))
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert xcom(dag_run, "prepare_data")["source"] == f"{daily.as_uri()}/2024-03-05.csv"
    assert xcom(dag_run, "evaluate")["metrics"]["accuracy"] >= 0.85

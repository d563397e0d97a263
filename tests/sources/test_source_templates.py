"""data.source and data.query are Jinja templates rendered with the run's context. Before, a source like
`file:///data/{{ ds }}.csv` passed lint and failed at run time on the literal braces; now prepare_data renders
it (Airflow's template_fields), and lint compiles it and looks for today's file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from tests.fixtures.paths import SPECS

from mlspec.cli import lint_file
from mlspec.operators.data import PrepareDataOperator
from mlspec.spec import SpecError, load_spec_text
from mlspec.spec.lint.templates import rendered_today

FOREST = (SPECS / "iris-forest.yaml").read_text()


def with_data(data: str) -> str:
    return FOREST.replace("  source: builtin:iris\n", data)


@pytest.mark.parametrize(
    ("data", "line", "path", "message"),
    [
        ("  source: 'file://data/{{ ds }.csv'\n", 12, "data.source", "not a valid template: unexpected '}'"),
        ("  source: 'file://data/{{ ds | day }}.csv'\n", 12, "data.source", "No filter named 'day'"),
        (
            "  source: sql://warehouse\n  query: \"SELECT * FROM t WHERE day = '{% if ds %}'\"\n",
            13, "data.query", "not a valid template",
        ),
    ],
)
def test_lint_finds_a_bad_template_at_its_line(data: str, line: int, path: str, message: str):
    with pytest.raises(SpecError) as raised:
        load_spec_text(with_data(data))
    assert [(p.line, p.path) for p in raised.value.problems if message in p.message] == [(line, path)]


def test_templates_with_the_runs_dates_pass_lint():
    spec = load_spec_text(with_data(
        "  source: sql://warehouse\n"
        "  query: \"SELECT * FROM sales WHERE day >= '{{ data_interval_start | ds }}' AND day < '{{ ds }}'\"\n"
    ))
    assert "{{ data_interval_start | ds }}" in spec.data.query


def test_rendered_today_fills_the_date_filters_as_airflow_does():
    day = dt.date(2024, 3, 5)
    assert rendered_today("{{ ds }}/{{ ds_nodash }}/{{ data_interval_start | ds }}", day) == "2024-03-05/20240305/2024-03-05"
    assert rendered_today("{{ data_interval_end | ds }} {{ logical_date.year }}", day) == "2024-03-06 2024"
    assert rendered_today("{{ params.region }}", day) is None  # a run's value lint cannot know


def lint(tmp_path: Path, text: str) -> list:
    spec = tmp_path / "project" / "specs" / "daily.yaml"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(text)
    return lint_file(spec)[1]


def test_lint_warns_when_a_dated_local_file_for_today_does_not_exist(tmp_path: Path, mlspec_home: Path):
    text = with_data("  source: 'file://data/daily/{{ ds }}.csv'\n  label: species\n")
    today = dt.datetime.now(dt.UTC).date().isoformat()
    (problem,) = lint(tmp_path, text)
    assert (problem.severity, problem.path, problem.line) == ("warning", "data.source", 12)
    assert f"no file 'file://data/daily/{today}.csv' for today's date" in problem.message
    (mlspec_home / "data" / "daily").mkdir(parents=True)
    (mlspec_home / "data" / "daily" / f"{today}.csv").write_text("a,species\n1,x\n")
    assert lint(tmp_path, text) == []


def test_prepare_data_renders_source_and_query_with_the_runs_context():
    spec = load_spec_text(with_data(
        "  source: sql://warehouse_{{ ds_nodash }}\n"
        "  query: \"SELECT * FROM sales WHERE day = '{{ data_interval_start | ds }}'\"\n"
    ))
    operator = PrepareDataOperator(spec=spec.to_dict(), task_id="prepare_data")
    assert PrepareDataOperator.template_fields == ("source", "query", "holdout_source", "holdout_query")
    start = dt.datetime(2024, 3, 5, tzinfo=dt.UTC)
    operator.render_template_fields({"ds": "2024-03-05", "ds_nodash": "20240305", "data_interval_start": start})
    assert operator.source == "sql://warehouse_20240305"
    assert operator.query == "SELECT * FROM sales WHERE day = '2024-03-05'"
    assert "connection warehouse_20240305 " in operator.next_step


@pytest.mark.parametrize(
    ("data", "line", "path", "message"),
    [
        (
            "  source: 'file://data/{{ dss }}.csv'\n", 12, "data.source",
            "data.source names 'dss', which is not in the context Airflow renders it with; did you mean 'ds'?",
        ),
        (
            "  source: 'file://data/{{ nosuchvar }}.csv'\n", 12, "data.source",
            "data.source names 'nosuchvar', which is not in the context Airflow renders it with (ds, ds_nodash, ts, "
            "logical_date, data_interval_start, data_interval_end, params, macros, run_id, dag_run, ...)",
        ),
        (
            "  source: sql://warehouse\n  query: \"SELECT 1 {% if x %}{{ logical_dat | ds }}{% endif %}\"\n", 13,
            "data.query", "data.query names 'x', which is not in the context",
        ),
        (
            "  source: sql://warehouse\n  query: \"SELECT 1 {% if x %}{{ logical_dat | ds }}{% endif %}\"\n", 13,
            "data.query", "data.query names 'logical_dat', which is not in the context Airflow renders it with; did "
            "you mean 'logical_date'?",
        ),
    ],
)
def test_lint_finds_a_name_the_runs_context_lacks(data: str, line: int, path: str, message: str):
    with pytest.raises(SpecError) as raised:
        load_spec_text(with_data(data))
    assert [(p.line, p.path) for p in raised.value.problems if message in p.message] == [(line, path)]


def test_the_context_names_lint_knows_are_airflows():
    from airflow.sdk.definitions.context import KNOWN_CONTEXT_KEYS

    from mlspec.spec.lint.templates import CONTEXT_NAMES

    assert set(CONTEXT_NAMES) == KNOWN_CONTEXT_KEYS


def test_names_a_template_sets_itself_and_every_context_name_pass_lint():
    load_spec_text(with_data(
        "  source: sql://warehouse\n"
        "  query: \"{% set day = ds %}SELECT * FROM t WHERE day = '{{ day }}' AND run = '{{ run_id }}' "
        "AND x = '{{ params.x | default(1) }}' AND y = '{{ macros.ds_add(ds, -1) }}' AND z = '{{ dag_run.conf }}'\"\n"
    ))


def test_a_template_that_cannot_render_fails_prepare_data_without_a_retry():
    import jinja2
    from airflow.sdk.exceptions import AirflowFailException
    from jinja2.sandbox import SandboxedEnvironment

    spec = load_spec_text(with_data("  source: sql://warehouse\n  query: \"SELECT * FROM t WHERE r = '{{ params.region }}'\"\n"))
    operator = PrepareDataOperator(spec=spec.to_dict(), task_id="prepare_data")
    strict = SandboxedEnvironment(undefined=jinja2.StrictUndefined)  # as an Airflow DAG renders by default
    with pytest.raises(AirflowFailException) as raised:  # a retry renders the same
        operator.render_template_fields({"params": {}}, strict)
    message = str(raised.value)
    assert "prepare_data failed for model" in message and "data.source or data.query could not be rendered" in message
    assert "'dict object' has no attribute 'region'" in message and "Next step: " in message

"""data.source and data.query (and evaluation.holdout's source and query) are Jinja templates that Airflow
renders with each run's context when prepare_data runs (`{{ ds }}`, `{{ data_interval_start | ds }}`, ...). Lint
compiles them and checks every name they read is one of that context's (CONTEXT_NAMES), so a bad template or a
misspelled name is found at its line before any run, and renders a local file pattern with today's date
(`rendered_today`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from mlspec.sources.columns import did_you_mean
from mlspec.spec.errors import SpecProblem, quote
from mlspec.spec.yaml_loader import LoadedYaml

# The spec's fields prepare_data renders: data.source and data.query, and the holdout's own source and query.
TEMPLATED_FIELDS = (
    ("data", "source"), ("data", "query"), ("evaluation", "holdout", "source"), ("evaluation", "holdout", "query"),
)
# The names of the context Airflow renders a task's templates with: airflow.sdk.definitions.context's
# KNOWN_CONTEXT_KEYS (a test keeps them equal; lint does not import Airflow), the common ones first.
CONTEXT_NAMES = (
    "ds", "ds_nodash", "ts", "logical_date", "data_interval_start", "data_interval_end", "params", "macros",
    "run_id", "dag_run", "ts_nodash", "ts_nodash_with_tz", "dag", "task", "task_instance", "ti", "var", "conn",
    "prev_data_interval_start_success", "prev_data_interval_end_success", "prev_start_date_success",
    "prev_end_date_success", "task_instance_key_str", "try_number", "test_mode", "templates_dict", "inlets",
    "inlet_events", "outlets", "outlet_events", "triggering_asset_events", "expanded_ti_count", "map_index_template",
    "task_reschedule_count", "partition_date", "partition_key", "asset_state_store", "task_state_store", "exception",
    "reason",
)  # fmt: skip
_COMMON_NAMES = 10  # a message lists this many of them


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


def _environment():
    """A sandbox with Airflow's date filters (airflow.templates.FILTERS), so a misspelled filter is found too;
    names that are not defined fail, as they do in an Airflow DAG (StrictUndefined)."""
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, cache_size=0)
    env.filters.update({
        "ds": lambda value: value.strftime("%Y-%m-%d"),
        "ds_nodash": lambda value: value.strftime("%Y%m%d"),
        "ts": lambda value: value.isoformat(),
        "ts_nodash": lambda value: value.strftime("%Y%m%dT%H%M%S"),
        "ts_nodash_with_tz": lambda value: value.isoformat().replace("-", "").replace(":", ""),
    })
    return env


def template_error(text: str) -> str | None:
    """Why Jinja cannot compile `text`, or None when it can (or it is no template)."""
    if not is_template(text):
        return None
    import jinja2

    try:
        _environment().from_string(text)
    except jinja2.TemplateError as exc:
        line = f" (template line {exc.lineno})" if getattr(exc, "lineno", None) and "\n" in text else ""
        return f"{(exc.message or type(exc).__name__).rstrip('.')}{line}"
    return None


def unknown_names(text: str) -> list[tuple[str, int]]:
    """(name, template line) of each name a template that compiles reads but neither sets itself nor finds in
    Airflow's context (where rendering fails: StrictUndefined), in the order they first appear."""
    if not is_template(text):
        return []
    import jinja2
    from jinja2 import meta, nodes

    try:
        tree = _environment().parse(text)
    except jinja2.TemplateError:
        return []  # template_error reports it
    unknown = meta.find_undeclared_variables(tree) - set(CONTEXT_NAMES)
    first: dict[str, int] = {}
    for node in tree.find_all(nodes.Name):
        if node.name in unknown:
            first.setdefault(node.name, node.lineno)
    return sorted(first.items(), key=lambda item: (item[1], text.find(item[0])))


def check_templates(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    """Each templated field compiles and reads only names it sets or Airflow's context has."""
    for place in TEMPLATED_FIELDS:
        text = value_at(spec, place)
        if not isinstance(text, str):
            continue
        field = ".".join(place)
        error = template_error(text)
        if error:
            yield doc.problem(
                place,
                f"{field} is not a valid template: {error}; it is rendered with the run's context, "
                "e.g. {{ ds }} or {{ data_interval_start | ds }}",
            )
            continue
        for name, line in unknown_names(text):
            meant = did_you_mean(name, CONTEXT_NAMES)
            hint = f"did you mean {quote(meant)}?" if meant else f"({', '.join(CONTEXT_NAMES[:_COMMON_NAMES])}, ...)"
            at = f" (template line {line})" if "\n" in text else ""
            yield doc.problem(
                place,
                f"{field} names {quote(name)}{at}, which is not in the context Airflow renders it with"
                + (f"; {hint}" if meant else f" {hint}"),
            )


def value_at(spec: dict, place: tuple[str, ...]) -> object:
    """The value at `place` in the spec, or None where a section on the way is absent (a null holdout)."""
    value: object = spec
    for key in place:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def rendered_today(text: str, today: dt.date | None = None) -> str | None:
    """`text` rendered as for a daily run whose logical date is today (midnight UTC to midnight UTC); None when
    it does not compile or uses a name this context lacks (a run's params, a Variable)."""
    import jinja2

    day = today or dt.datetime.now(dt.UTC).date()
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    end = start + dt.timedelta(days=1)
    context = {
        "ds": start.strftime("%Y-%m-%d"), "ds_nodash": start.strftime("%Y%m%d"), "ts": start.isoformat(),
        "ts_nodash": start.strftime("%Y%m%dT%H%M%S"), "logical_date": start, "data_interval_start": start,
        "data_interval_end": end, "params": {},
    }
    try:
        return _environment().from_string(text).render(context)
    except jinja2.TemplateError:
        return None

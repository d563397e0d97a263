"""data.source and data.query are Jinja templates that Airflow renders with each run's context when
prepare_data runs (`{{ ds }}`, `{{ data_interval_start | ds }}`, ...). Lint compiles them, so a bad template
is found at its line before any run, and renders a local file pattern with today's date (`rendered_today`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from mlspec.spec.errors import SpecProblem
from mlspec.spec.yaml_loader import LoadedYaml

TEMPLATED_FIELDS = ("source", "query")


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


def check_templates(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    """Each templated data field compiles."""
    for field in TEMPLATED_FIELDS:
        text = spec["data"].get(field)
        error = template_error(text) if isinstance(text, str) else None
        if error:
            yield doc.problem(
                ("data", field),
                f"data.{field} is not a valid template: {error}; it is rendered with the run's context, "
                "e.g. {{ ds }} or {{ data_interval_start | ds }}",
            )


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

"""schedule: a cron preset or a valid five-field cron expression; a warning when runs would start more
than once an hour."""

from __future__ import annotations

from collections.abc import Iterator

from mlspec.spec.errors import SpecProblem, quote
from mlspec.spec.yaml_loader import LoadedYaml

CRON_PRESETS = {"@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly", "@annually"}


def check_schedule(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    schedule = spec["schedule"]
    if not isinstance(schedule, str):
        return
    if schedule == "@continuous":
        yield _frequent(doc, spec, "@continuous starts the next run as soon as one ends, many times an hour")
        return
    if schedule in CRON_PRESETS:
        return
    if schedule.startswith("@"):
        yield doc.problem(("schedule",), f"unknown preset {quote(schedule)}; use one of {', '.join(sorted(CRON_PRESETS))}")
        return
    from croniter import croniter

    if len(schedule.split()) != 5 or not croniter.is_valid(schedule):
        yield doc.problem(("schedule",), f"{quote(schedule)} is not a valid cron expression (five fields: minute hour day month weekday)")
        return
    minutes = croniter(schedule).expanded[0]
    per_hour = 60 if "*" in minutes else len(minutes)
    if per_hour > 1:
        yield _frequent(doc, spec, f"{quote(schedule)} starts a run up to {per_hour} times an hour")


def _frequent(doc: LoadedYaml, spec: dict, what: str) -> SpecProblem:
    """The warning for a sub-hourly schedule."""
    keep = spec["storage"].get("keep_runs")
    return doc.problem(
        ("schedule",),
        f"{what}; every run trains a model and leaves a scratch folder in the store "
        f"(storage.keep_runs: {keep} keeps the newest). Hourly or slower is usual; check this is meant",
        severity="warning",
    )

"""Every task's deadline (Airflow's execution_timeout): built-in defaults per stage, settable in the spec.

`timeouts: {train: 2h, default: 1h}` in a spec: a task id names one stage's deadline, `default` every
stage the spec does not name; what neither names keeps the built-in default below. A task still running
at its deadline fails with AirflowTaskTimeout (and retries where its stage retries), so a hung
connection can never hold a run, and with max_active_runs=1 every later run, forever.

Durations: one to four `<number><unit>` parts, units d, h, m, s (`90s`, `30m`, `1h30m`, `2d`).
Parsing stays light: only the standard library.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

# Built-in deadlines per stage (task id), in seconds. train is per trial in a tuned spec.
DEFAULT_DEADLINES_S = {
    "prepare_data": 30 * 60,
    "validate_data": 15 * 60,
    "plan_trials": 15 * 60,
    "train": 6 * 3600,
    "select_best": 15 * 60,
    "evaluate": 30 * 60,
    "export_onnx": 30 * 60,
    "store": 15 * 60,
    "register": 15 * 60,
    "deploy": 30 * 60,
    "smoke_test": 10 * 60,
    "promote": 15 * 60,
}
FALLBACK_DEADLINE_S = 60 * 60  # a stage not listed above (a hand-written operator subclass)
# The operations DAG's one task: registry, serving (deploy waits up to serving.timeout) and a smoke test.
OPERATION_DEADLINE = timedelta(hours=1)
# An invalid spec's DAG: its one task only fails with the spec's problems.
SPEC_ERROR_DEADLINE = timedelta(minutes=5)
# Deploy waits up to serving.timeout for the endpoint to become ready, and may roll back after.
DEPLOY_MARGIN_S = 10 * 60

_PART = re.compile(r"([0-9]+)([dhms])")
_UNIT_S = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str, *, where: str = "timeouts") -> int:
    """Seconds in a duration like `1h30m`; ValueError naming `where` when it is not one."""
    value = str(text).strip()
    parts = _PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ValueError(f"{where}: {value[:40]!r} is not a duration like 90s, 30m, 1h30m or 2d")
    seconds = sum(int(number) * _UNIT_S[unit] for number, unit in parts)
    if seconds <= 0:
        raise ValueError(f"{where}: a deadline must be longer than 0s, not {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """A duration as people write it (parse_duration reads it back): `48h` (hours are the largest unit, as
    the approval's default is written), `5m`, `1h30m`, `90s` (seconds under 10 minutes that are no whole
    minute), `0.5s`."""
    if seconds != int(seconds) or seconds <= 0 or (seconds < 600 and seconds % 60):
        return f"{seconds:g}s"
    rest, parts = int(seconds), []
    for unit in ("h", "m", "s"):
        count, rest = divmod(rest, _UNIT_S[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def task_deadline(resolved: dict[str, Any], stage: str) -> timedelta:
    """The deadline of `stage` for a resolved spec dict (ModelSpec.to_dict())."""
    timeouts = {k: v for k, v in dict(resolved.get("timeouts") or {}).items() if v is not None}
    if stage in timeouts:  # named on purpose: as written (lint warns when deploy's is under deploy_floor_s)
        return timedelta(seconds=parse_duration(timeouts[stage], where=f"timeouts.{stage}"))
    if "default" in timeouts:
        seconds = parse_duration(timeouts["default"], where="timeouts.default")
    else:
        seconds = DEFAULT_DEADLINES_S.get(stage, FALLBACK_DEADLINE_S)
    if stage == "deploy":  # a blanket default never kills a deploy still waiting for readiness
        seconds = max(seconds, deploy_floor_s(resolved))
    return timedelta(seconds=seconds)


def deploy_floor_s(resolved: dict[str, Any]) -> int:
    """The shortest deploy deadline that outlasts its readiness wait (serving.timeout) with room to roll back."""
    return int((resolved.get("serving") or {}).get("timeout") or 0) + DEPLOY_MARGIN_S

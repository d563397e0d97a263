"""timeouts: an explicit deploy deadline outlasts the endpoint's readiness wait, with room to roll back."""

from __future__ import annotations

from collections.abc import Iterator

from mlspec.deadlines import DEPLOY_MARGIN_S, deploy_floor_s, parse_duration
from mlspec.spec.errors import SpecProblem
from mlspec.spec.yaml_loader import LoadedYaml


def check_deploy_deadline(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    """An explicit timeouts.deploy must outlast the readiness wait (serving.timeout), with room to roll back."""
    written = (spec.get("timeouts") or {}).get("deploy")
    if written is None:
        return  # the built-in deadline or timeouts.default: never under the floor (mlspec.deadlines)
    try:
        seconds = parse_duration(written, where="timeouts.deploy")
    except ValueError:
        return  # the schema reports a malformed duration
    wait, floor = int(spec["serving"]["timeout"]), deploy_floor_s(spec)
    if seconds <= wait:
        yield doc.problem(
            ("timeouts", "deploy"),
            f"{written} is not longer than serving.timeout ({wait}s): the deploy would be killed while still waiting "
            f"for the endpoint to become ready, before it can roll back; use at least {_duration(floor)} "
            f"(serving.timeout + {DEPLOY_MARGIN_S // 60}m) or leave timeouts.deploy out",
        )
    elif seconds < floor:
        yield doc.problem(
            ("timeouts", "deploy"),
            f"{written} leaves less than {DEPLOY_MARGIN_S // 60}m after serving.timeout ({wait}s) to load, roll back "
            f"and record; a slow endpoint can be killed mid-rollback. Use at least {_duration(floor)} or leave it out",
            severity="warning",
        )


def _duration(seconds: int) -> str:
    """Seconds as a timeouts duration (`1h10m`, `20m`, `90s`)."""
    parts = [(seconds // 3600, "h"), (seconds % 3600 // 60, "m"), (seconds % 60, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n) or "0s"

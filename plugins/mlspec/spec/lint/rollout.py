"""rollout and serving.log_requests: canary steps that end at 100, a metrics source the gates can read, and
what the serving platform cannot do (its entry in mlspec.serving.platforms says; the schema checks the values
and the duration words)."""

from __future__ import annotations

from collections.abc import Iterator

from mlspec.serving.platforms import platform_named
from mlspec.spec.errors import SpecProblem
from mlspec.spec.yaml_loader import LoadedYaml
from mlspec.vocabulary import ROLLOUT_GATES, ROLLOUT_METRICS_SOURCES

# The gates that read the candidate's own metrics (min_requests only says how many requests they need).
METRIC_GATES = tuple(gate for gate in ROLLOUT_GATES if gate != "min_requests")
SERVER_SOURCE, PROMETHEUS_SOURCE = ROLLOUT_METRICS_SOURCES


def check_rollout(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    rollout = spec.get("rollout")
    if rollout is None:
        return
    yield from _steps(doc, rollout["canary"]["steps"])
    yield from _metrics_source(doc, rollout)
    platform = platform_named(spec["serving"]["platform"])
    refusal = platform.rollout_refusal(platform.settings_of(spec["serving"])) if platform.rollout_refusal else None
    if refusal:
        yield doc.problem(("rollout",), refusal, at_key=True)
    if rollout["shadow"] is not None and not platform.shadows:
        yield doc.problem(
            ("rollout", "shadow"),
            f"{platform.title} cannot shadow: it has no way to copy live requests to a second version; remove "
            "rollout.shadow (the canary steps still run) or serve with a platform that shadows",
        )
    if rollout["gates"]["agreement"] is not None and not platform.shadows:
        yield doc.problem(
            ("rollout", "gates", "agreement"),
            f"{platform.title} cannot shadow, so no request reaches both versions and agreement is never measured; "
            "remove the gate or serve with a platform that shadows",
            severity="warning",
        )
    if rollout["gates"]["agreement"] is None and rollout["gates"]["p95_ms"] is None:
        wanted = "agreement (e.g. 0.95) or p95_ms (e.g. 250)" if platform.shadows else "p95_ms (e.g. 250)"
        yield doc.problem(
            ("rollout", "gates"),
            "neither agreement nor p95_ms is set, so a step passes on error_rate and min_requests alone: a "
            f"candidate that answers without errors but wrongly or slowly takes all traffic; set {wanted}",
            severity="warning", at_key=True,
        )
    gates = [gate for gate in METRIC_GATES if rollout["gates"][gate] is not None]
    if gates and rollout["metrics"]["source"] == SERVER_SOURCE and not platform.version_metrics:
        yield doc.problem(
            ("rollout", "gates"),
            f"{platform.title} exposes no per-version mlspec metrics, so with metrics.source server the gates "
            f"{', '.join(gates)} are not read and only readiness is checked; use metrics.source prometheus "
            "(a Prometheus server that scrapes the predictors)",
            severity="warning",
        )


def _steps(doc: LoadedYaml, steps: list[int]) -> Iterator[SpecProblem]:
    """Strictly increasing, the last 100: the candidate answers every request before it becomes production."""
    for index in range(1, len(steps)):
        if steps[index] <= steps[index - 1]:
            yield doc.problem(
                ("rollout", "canary", "steps", index),
                f"{steps[index]} does not grow from the step before it ({steps[index - 1]}): each step gives the "
                "candidate a larger share, e.g. [10, 50, 100]",
            )
            return
    if steps[-1] != 100:
        yield doc.problem(
            ("rollout", "canary", "steps", len(steps) - 1),
            f"the last step is {steps[-1]}, not 100: the candidate answers every request in its last step before it "
            "becomes production; end the steps with 100",
        )


def _metrics_source(doc: LoadedYaml, rollout: dict) -> Iterator[SpecProblem]:
    metrics = rollout["metrics"]
    if metrics["source"] == PROMETHEUS_SOURCE and not metrics["connection"]:
        yield doc.problem(
            ("rollout", "metrics", "connection"),
            "metrics.source prometheus needs the Airflow connection id of the Prometheus server (an http "
            "connection: host and port), e.g. connection: prometheus_default",
        )
    elif metrics["source"] == SERVER_SOURCE and metrics["connection"]:
        yield doc.problem(
            ("rollout", "metrics", "connection"),
            "unused: metrics.source server reads the endpoint's own /metrics; set source: prometheus to read "
            "through this connection",
            severity="warning",
        )


def check_request_logging(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    platform = platform_named(spec["serving"]["platform"])
    if spec["serving"].get("log_requests") is not None and not platform.logs_requests:
        yield doc.problem(
            ("serving", "log_requests"),
            f"ignored: {platform.title} does not log requests (the local model server, `mlspec serve`, does)",
            severity="warning",
        )

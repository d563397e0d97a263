"""Rollout sections and the server's metrics for the rollout tests."""

from __future__ import annotations

import json

from mlspec.spec import load_spec_text
from mlspec.spec.model import RolloutGates, RolloutSpec

SPEC = """\
apiVersion: mlspec/v1
kind: ModelSpec
metadata: {name: iris}
data: {source: builtin:iris}
model:
  layers:
    - dense: {units: 3, activation: softmax}
"""


def gates(p95_ms=None, error_rate=None, agreement=None, min_requests=100) -> RolloutGates:
    return RolloutGates(p95_ms, error_rate, agreement, min_requests)


def rollout_spec(shadow=None, steps=(10, 50, 100), bake_s=300, approval=False, source="server",
                 connection=None) -> RolloutSpec:
    """A spec's rollout section, loaded (and linted) the way a spec file is."""
    section: dict = {"canary": {"steps": list(steps), "bake": f"{bake_s}s"},
                     "approval": {"required": approval, "timeout": "48h"},
                     "metrics": {"source": source, **({"connection": connection} if connection else {})}}
    if shadow:
        section["shadow"] = {"percent": shadow[0], "for": f"{shadow[1]}s"}
    return load_spec_text(SPEC + f"rollout: {json.dumps(section)}\n", "rollout.yaml").rollout


class ServerCounters:
    """The model server's metric names in a CollectorRegistry of their own (prometheus_client), for tests of
    the gates' reading without a model server; a test counts the answers it wants the server to have given."""

    def __init__(self, started: float | None = None) -> None:
        """`started`: the server's start-time gauge (unix seconds); None: a server that does not export it."""
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        from mlspec.vocabulary import (
            LATENCY_BUCKETS_S,
            METRIC_LATENCY,
            METRIC_REQUESTS,
            METRIC_SHADOW_LATENCY,
            METRIC_SHADOW_REQUESTS,
            METRIC_SHADOW_ROWS,
            METRIC_START_TIME,
        )

        self.registry = registry = CollectorRegistry()
        if started is not None:
            Gauge(METRIC_START_TIME, "server start", registry=registry).set(started)
        self.requests = Counter(METRIC_REQUESTS, "live requests", ["model", "version", "code"],
                                registry=registry)
        self.latency = Histogram(METRIC_LATENCY, "latency", ["model", "version"], buckets=LATENCY_BUCKETS_S,
                                 registry=registry)
        self.shadow_requests = Counter(METRIC_SHADOW_REQUESTS, "shadow copies",
                                       ["model", "version", "primary", "outcome"], registry=registry)
        self.shadow_rows = Counter(METRIC_SHADOW_ROWS, "shadow rows",
                                   ["model", "version", "primary", "result"], registry=registry)
        self.shadow_latency = Histogram(METRIC_SHADOW_LATENCY, "shadow latency", ["model", "version"],
                                        buckets=LATENCY_BUCKETS_S, registry=registry)

    def answer(self, model: str, version: str, code: int, seconds: list[float]) -> None:
        """len(seconds) live answers with status `code`, each taking its seconds."""
        self.requests.labels(model, version, str(code)).inc(len(seconds))
        for s in seconds:
            self.latency.labels(model, version).observe(s)

    def shadow(self, model: str, version: str, primary: str, *, compared: int, errors: int, dropped: int,
               agree: int, disagree: int, seconds: float) -> None:
        """Shadow copies `version` ran of what `primary` answered (each `seconds` long), and rows compared."""
        for outcome, count in (("compared", compared), ("error", errors), ("dropped", dropped)):
            self.shadow_requests.labels(model, version, primary, outcome).inc(count)
        for result, count in (("agree", agree), ("disagree", disagree)):
            self.shadow_rows.labels(model, version, primary, result).inc(count)
        for _ in range(compared + errors):
            self.shadow_latency.labels(model, version).observe(seconds)

    def text(self) -> str:
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()

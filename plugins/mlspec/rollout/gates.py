"""A rollout step's gates: each limit of the spec's `rollout.gates` checked against the step's metrics, and
the step's verdict (wait, pass or fail) from the checks and the time it has baked.

A gate with no value (no rows compared, no latency observed) is not a pass: it fails when the step ends, but
never ends a step early. A gate that fails on a measured value ends the step at once once the step has its
`min_requests`, so a bad candidate does not keep serving until the bake is over.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlspec.vocabulary import ROLLOUT_GATES

if TYPE_CHECKING:
    from mlspec.rollout.metrics import StepMetrics
    from mlspec.spec.model import RolloutGates

P95_MS, ERROR_RATE, AGREEMENT, MIN_REQUESTS = ROLLOUT_GATES
# The verdicts of step_verdict.
WAIT, PASS, FAIL = "wait", "pass", "fail"
# A step without min_requests waits this many bakes before it fails.
MIN_REQUESTS_PATIENCE = 3
READINESS = "readiness"  # KServe without per-version metrics: the candidate is routed its share


@dataclass(frozen=True)
class GateCheck:
    gate: str  # one of ROLLOUT_GATES
    value: float | None  # None: nothing to measure it on
    limit: float
    passed: bool
    detail: str = ""  # what the value was measured on, for the log line

    @property
    def at_most(self) -> bool:
        """Whether the limit is a ceiling (p95_ms, error_rate) or a floor (agreement, min_requests)."""
        return is_ceiling(self.gate)

    def line(self) -> str:
        """One log line: 'agreement 0.912 >= 0.95: FAILED (on 480 rows compared)'."""
        value = "none" if self.value is None else _number(self.value)
        words = f"{self.gate} {value} {'<=' if self.at_most else '>='} {_number(self.limit)}: "
        words += "passed" if self.passed else "FAILED"
        return f"{words} ({self.detail})" if self.detail else words

    def to_dict(self) -> dict:
        """The check as the rollout record keeps it."""
        return {"gate": self.gate, "value": self.value, "limit": self.limit, "passed": self.passed}


def is_ceiling(gate: str) -> bool:
    """Whether a gate's limit is a ceiling (p95_ms, error_rate: the value must stay at or under it)."""
    return gate in (P95_MS, ERROR_RATE)


def _number(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"


def check_gates(metrics: StepMetrics, gates: RolloutGates, *, compared: bool = True) -> list[GateCheck]:
    """min_requests, then each gate the spec sets. `compared=False` (a platform that cannot shadow: no row
    reaches both versions) leaves agreement out."""
    requests = metrics.requests
    checks = [GateCheck(MIN_REQUESTS, requests, gates.min_requests, requests >= gates.min_requests,
                        f"{metrics.dropped} shadow copies dropped" if metrics.dropped else "")]
    if gates.p95_ms is not None:
        p95 = metrics.p95_ms
        checks.append(GateCheck(P95_MS, p95, gates.p95_ms, p95 is not None and p95 <= gates.p95_ms,
                                f"over {requests} requests" if p95 is not None else "no latency observed"))
    if gates.error_rate is not None:
        rate = metrics.errors / requests if requests else None
        passed = rate is not None and rate <= gates.error_rate
        checks.append(GateCheck(ERROR_RATE, rate, gates.error_rate, passed,
                                f"{metrics.errors} of {requests} requests" if requests else "no requests"))
    if gates.agreement is not None and compared:
        agreement = metrics.agreement
        checks.append(GateCheck(
            AGREEMENT, agreement, gates.agreement, agreement is not None and agreement >= gates.agreement,
            f"on {metrics.compared_rows} rows compared" if agreement is not None else "no rows compared",
        ))
    return checks


def step_verdict(
    metrics: StepMetrics, gates: RolloutGates, elapsed_s: float, bake_s: int, *, compared: bool = True
) -> tuple[str, list[GateCheck]]:
    """("wait" | "pass" | "fail", the checks).

    wait: the bake is not over, or the step has fewer than min_requests and has waited less than 3 bakes.
    fail: a gate failed on a measured value once min_requests were seen (even during the bake), a gate
    failed after the bake, or min_requests were not reached after 3 bakes. pass: baked, enough requests,
    every gate passed.
    """
    checks = check_gates(metrics, gates, compared=compared)
    enough = metrics.requests >= gates.min_requests
    if enough and any(not c.passed and c.value is not None for c in checks):
        return FAIL, checks
    if elapsed_s < bake_s:
        return WAIT, checks
    if not enough:
        return (WAIT if elapsed_s < MIN_REQUESTS_PATIENCE * bake_s else FAIL), checks
    return (PASS if all(c.passed for c in checks) else FAIL), checks

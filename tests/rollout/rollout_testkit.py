"""Rollout sections and metrics for the rollout tests."""

from __future__ import annotations

from dataclasses import dataclass


# Until mlspec.spec.model has RolloutSpec (issue 16, H1): the contract's shape.
@dataclass(frozen=True)
class ShadowStep:
    percent: int
    for_s: int


@dataclass(frozen=True)
class CanarySpec:
    steps: tuple[int, ...]
    bake_s: int


@dataclass(frozen=True)
class RolloutGates:
    p95_ms: float | None
    error_rate: float | None
    agreement: float | None
    min_requests: int


@dataclass(frozen=True)
class ApprovalSpec:
    required: bool
    timeout_s: int


@dataclass(frozen=True)
class RolloutMetricsSpec:
    source: str
    connection: str | None


@dataclass(frozen=True)
class RolloutSpec:
    shadow: ShadowStep | None
    canary: CanarySpec
    gates: RolloutGates
    approval: ApprovalSpec
    on_fail: str
    metrics: RolloutMetricsSpec


def gates(p95_ms=None, error_rate=None, agreement=None, min_requests=100) -> RolloutGates:
    return RolloutGates(p95_ms, error_rate, agreement, min_requests)


def rollout_spec(shadow=None, steps=(10, 50, 100), bake_s=300, approval=False, source="server",
                 connection=None) -> RolloutSpec:
    return RolloutSpec(
        shadow=ShadowStep(*shadow) if shadow else None,
        canary=CanarySpec(tuple(steps), bake_s),
        gates=gates(),
        approval=ApprovalSpec(approval, 48 * 3600),
        on_fail="rollback",
        metrics=RolloutMetricsSpec(source, connection),
    )

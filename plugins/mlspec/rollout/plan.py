"""A rollout's steps, and the traffic the model server routes during each.

A spec's `rollout` section becomes a list of steps: an optional shadow step (the candidate gets a copy of
live requests; production answers them all), then one canary step per `canary.steps` share (the candidate
answers that share of live requests). With an approval, the last canary step (100 %) waits for a person.
A first version has no steps: with no production there is nothing to protect or compare with (and a brand-new
model has no clients whose traffic a step could wait for), so it answers every request after its smoke test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlspec.vocabulary import ROLLOUT_STEP_KINDS

if TYPE_CHECKING:
    from mlspec.spec.model import RolloutSpec

SHADOW, CANARY = ROLLOUT_STEP_KINDS


@dataclass(frozen=True)
class Step:
    kind: str  # "shadow" | "canary"
    percent: int  # shadow: share of live requests copied to the candidate; canary: share it answers
    bake_s: int  # how long the step watches the gates: shadow.for_s, canary.bake_s


def plan(rollout: RolloutSpec, *, first_version: bool = False) -> list[Step]:
    """[shadow?] + one canary step per share; none for a first version (first_version_note says why)."""
    if first_version:
        return []
    steps = [Step(SHADOW, rollout.shadow.percent, rollout.shadow.for_s)] if rollout.shadow is not None else []
    return steps + [Step(CANARY, percent, rollout.canary.bake_s) for percent in rollout.canary.steps]


def first_version_note(version: int) -> str:
    """What the rollout's tasks log for a first version, which has no steps (and asks no approval)."""
    return (f"no production version: nothing to roll out against; version {version} takes every request after "
            "its smoke test")


def steps_before_approval(rollout: RolloutSpec, *, first_version: bool = False) -> list[Step]:
    """Every step, or, when a person approves, every step but the last canary step."""
    steps = plan(rollout, first_version=first_version)
    return steps[:-1] if rollout.approval.required else steps


def steps_after_approval(rollout: RolloutSpec, *, first_version: bool = False) -> list[Step]:
    """The last canary step when a person approves before it, else none."""
    return plan(rollout, first_version=first_version)[-1:] if rollout.approval.required else []


NO_SPLIT = {"weights": None}  # the served version answers every request


def traffic_for(
    step: Step, production: int | None, candidate: int, *, atol: float | None = None,
    rtol: float | None = None,
) -> dict:
    """The model server's traffic parameters for `step` (POST /v2/repository/models/{m}/traffic).

    Shadow: production answers everything and the candidate gets `percent` of the requests as copies.
    Canary under 100 %: the split, and every request the production answers is copied to the candidate too,
    so agreement is measured on all of them. Canary 100 %: the candidate answers all and production shadows
    it. A first version (no production) answers everything alone. atol/rtol: how close two regression
    predictions must be to agree (the spec's smoke_test tolerances); labels are compared exactly.
    """
    cand = str(candidate)
    if production is None:
        return {"weights": {cand: 100}}
    prod = str(production)
    if step.kind == SHADOW:
        return {"weights": {prod: 100}, "shadow": _shadow(cand, step.percent, atol, rtol)}
    if step.percent >= 100:
        return {"weights": {cand: 100}, "shadow": _shadow(prod, 100, atol, rtol)}
    weights = {prod: 100 - step.percent, cand: step.percent}
    return {"weights": weights, "shadow": _shadow(cand, 100, atol, rtol)}


def _shadow(version: str, percent: int, atol: float | None, rtol: float | None) -> dict:
    shadow: dict = {"version": version, "percent": percent}
    if atol is not None:
        shadow["atol"] = atol
    if rtol is not None:
        shadow["rtol"] = rtol
    return shadow


def traffic_while_waiting(
    production: int | None, candidate: int, *, atol: float | None = None, rtol: float | None = None,
) -> dict:
    """The traffic while a person decides (the approval before the last step, a step held after a failed gate):
    no gate is read then, so production answers every request and the candidate only gets a copy of each
    (a shadow at 100 %). A first version has nothing else to answer: it answers alone."""
    return traffic_for(Step(SHADOW, 100, 0), production, candidate, atol=atol, rtol=rtol)

"""The live metrics a rollout step's gates read: what the candidate did since the step began.

The model server counts every request, latency and shadow comparison in its /metrics (the names in
mlspec.vocabulary); a step takes a snapshot when it starts and reads the window since then.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class StepMetrics:
    """The candidate's traffic in a step's window.

    The candidate's traffic is what it answered live plus the shadow copies it ran (in a shadow step it
    answers no live request; in a canary step under 100 % it gets copies of what production answered too).
    Agreement compares rows both ways: the candidate shadowing production, and production shadowing the
    candidate (canary 100 %).
    """

    requests: int  # candidate live requests + shadow copies compared or errored
    errors: int  # candidate live 5xx + shadow errors
    p95_ms: float | None  # over the candidate's live and shadow latency histograms; None: nothing observed
    agreement: float | None  # agree / (agree + disagree); None: no rows compared
    compared_rows: int
    dropped: int  # shadow copies dropped (the shadow queue was full)

    def to_dict(self) -> dict:
        return asdict(self)

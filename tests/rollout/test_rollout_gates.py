"""A step's gates and verdict (mlspec.rollout.gates): one readable line per check; wait, pass or fail."""

from __future__ import annotations

from tests.rollout.rollout_testkit import gates, rollout_spec

from mlspec.rollout.gates import GateCheck, check_gates, step_verdict
from mlspec.rollout.metrics import StepMetrics

ALL = gates(p95_ms=250, error_rate=0.01, agreement=0.95, min_requests=200)


def metrics(requests=480, errors=0, p95_ms=3.1, agreement=0.99, compared_rows=480, dropped=0) -> StepMetrics:
    return StepMetrics(requests, errors, p95_ms, agreement, compared_rows, dropped)


def lines(checks: list[GateCheck]) -> list[str]:
    return [c.line() for c in checks]


def test_each_gate_is_one_line():
    checks = check_gates(metrics(errors=2, agreement=0.912), ALL)
    assert lines(checks) == [
        "min_requests 480 >= 200: passed",
        "p95_ms 3.1 <= 250: passed (over 480 requests)",
        "error_rate 0.004167 <= 0.01: passed (2 of 480 requests)",
        "agreement 0.912 >= 0.95: FAILED (on 480 rows compared)",
    ]
    assert checks[-1].to_dict() == {"gate": "agreement", "value": 0.912, "limit": 0.95, "passed": False}


def test_only_the_gates_a_spec_sets_are_checked():
    checks = check_gates(metrics(dropped=7), gates(p95_ms=10))
    assert lines(checks) == ["min_requests 480 >= 100: passed (7 shadow copies dropped)",
                             "p95_ms 3.1 <= 10: passed (over 480 requests)"]


def test_nothing_measured_is_not_a_pass():
    checks = check_gates(metrics(requests=0, p95_ms=None, agreement=None, compared_rows=0), ALL)
    assert lines(checks) == [
        "min_requests 0 >= 200: FAILED",
        "p95_ms none <= 250: FAILED (no latency observed)",
        "error_rate none <= 0.01: FAILED (no requests)",
        "agreement none >= 0.95: FAILED (no rows compared)",
    ]


def test_a_platform_that_cannot_shadow_has_no_agreement_to_check():
    gate_names = [c.gate for c in check_gates(metrics(agreement=None, compared_rows=0), ALL, compared=False)]
    assert gate_names == ["min_requests", "p95_ms", "error_rate"]
    assert step_verdict(metrics(agreement=None), ALL, 10, 5, compared=False)[0] == "pass"


def test_a_step_waits_out_its_bake_then_passes():
    assert step_verdict(metrics(), ALL, elapsed_s=4.9, bake_s=5)[0] == "wait"
    verdict, checks = step_verdict(metrics(), ALL, elapsed_s=5, bake_s=5)
    assert verdict == "pass" and all(c.passed for c in checks)


def test_a_measured_failure_ends_the_step_during_the_bake():
    assert step_verdict(metrics(p95_ms=400), ALL, elapsed_s=1, bake_s=5)[0] == "fail"
    assert step_verdict(metrics(errors=30), ALL, elapsed_s=1, bake_s=5)[0] == "fail"
    # ... but not before min_requests: a few slow first requests are not a verdict
    assert step_verdict(metrics(requests=20, p95_ms=400), ALL, elapsed_s=1, bake_s=5)[0] == "wait"


def test_too_few_requests_wait_up_to_three_bakes_then_fail():
    few = metrics(requests=150)
    assert step_verdict(few, ALL, elapsed_s=5, bake_s=5)[0] == "wait"
    assert step_verdict(few, ALL, elapsed_s=14.9, bake_s=5)[0] == "wait"
    verdict, checks = step_verdict(few, ALL, elapsed_s=15, bake_s=5)
    assert verdict == "fail" and checks[0].line() == "min_requests 150 >= 200: FAILED"


def test_a_gate_with_no_value_fails_only_when_the_bake_is_over():
    unmeasured = metrics(agreement=None, compared_rows=0)
    assert step_verdict(unmeasured, ALL, elapsed_s=1, bake_s=5)[0] == "wait"
    assert step_verdict(unmeasured, ALL, elapsed_s=5, bake_s=5)[0] == "fail"


def test_a_rollout_without_gates_stops_a_candidate_that_fails_its_requests():
    default = rollout_spec().gates  # no `gates` in the spec: error_rate 0.01
    verdict, checks = step_verdict(metrics(requests=500, errors=500, p95_ms=None, agreement=None), default, 1, 300)
    assert verdict == "fail" and lines(checks)[-1] == "error_rate 1 <= 0.01: FAILED (500 of 500 requests)"
    assert step_verdict(metrics(requests=500, errors=5), default, 300, 300)[0] == "pass"

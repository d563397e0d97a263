"""Issue 16's spec surface: the `rollout` section, serving.log_requests and the rollback notify event, with
their defaults, typed accessors, lint (file:line and field), and specs without them resolving as before."""

from __future__ import annotations

import dataclasses

import pytest
from tests.fixtures.paths import SPECS

from mlspec.notify import EVENTS
from mlspec.spec import SpecError, load_spec, load_spec_text
from mlspec.spec.lint import check
from mlspec.spec.model import (
    ApprovalSpec,
    CanarySpec,
    RequestLogSpec,
    RolloutGates,
    RolloutMetricsSpec,
    ShadowStep,
)
from mlspec.spec.schema import fill_defaults, fill_task_defaults, load_schema
from mlspec.spec.yaml_loader import load_yaml
from mlspec.vocabulary import ROLLOUT_GATES, ROLLOUT_METRICS_SOURCES, ROLLOUT_ON_FAIL

BASE = """\
apiVersion: mlspec/v1
kind: ModelSpec
metadata:
  name: cars
data:
  source: file://data/cars.csv
  label: Miles_per_Gallon
model:
  framework: sklearn
  task: regression
  estimator: random_forest
"""
# Serverless: KServe honours canaryTrafficPercent only there (a rollout in RawDeployment is a lint error).
KSERVE = ("serving:\n  platform: kserve\n  runtime: kserve-ovms\n  kserve: {deployment_mode: Serverless}\n"
          "storage:\n  uri: s3://models/cars\n")

# spec_hash of today's example specs, computed at 9e6754f (before the rollout section existed): a spec without
# `rollout` or `serving.log_requests` resolves to the same dict, so its versions and DAGs stay the same.
HASHES_BEFORE_ROLLOUT = {
    "iris.yaml": "f7c5c24929c57722cb0290eb995636e59792a08bc23c6f1ec954e77f9e51a81c",
    "penguins.yaml": "9cc3151a880b5182b849e81a32bb22be58d98acb3ac2da17282948091b4854aa",
}


def spec_of(extra: str = ""):
    return load_spec_text(BASE + extra, "cars.yaml")


def errors_of(extra: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        spec_of(extra)
    return [str(p) for p in info.value.problems]


def warnings_of(extra: str) -> list[str]:
    doc = load_yaml(BASE + extra, "cars.yaml")
    resolved = fill_task_defaults(fill_defaults(doc.data))
    return [str(p) for p in check(doc, resolved) if p.severity == "warning"]


@pytest.mark.parametrize("name", sorted(HASHES_BEFORE_ROLLOUT))
def test_a_spec_without_rollout_keeps_its_spec_hash(name):
    spec = load_spec(SPECS / name)
    assert spec.rollout is None and spec.serving.log_requests is None
    assert "rollout" not in spec.to_dict() and "log_requests" not in spec.to_dict()["serving"]
    assert spec.spec_hash == HASHES_BEFORE_ROLLOUT[name]


def test_no_default_section_is_filled_in_for_an_absent_rollout():
    assert "default" not in load_schema()["properties"]["rollout"]
    assert "default" not in load_schema()["properties"]["serving"]["properties"]["log_requests"]


def test_an_empty_rollout_gets_every_default():
    rollout = spec_of("rollout: {}\n").rollout
    assert rollout.shadow is None
    assert rollout.canary == CanarySpec(steps=(10, 50, 100), bake_s=300)
    # error_rate is on unless set to null: a rollout without gates still stops a candidate that fails requests
    assert rollout.gates == RolloutGates(p95_ms=None, error_rate=0.01, agreement=None, min_requests=100)
    assert spec_of("rollout:\n  gates: {error_rate: null}\n").rollout.gates.error_rate is None
    assert rollout.approval == ApprovalSpec(required=False, timeout_s=48 * 3600)
    assert rollout.on_fail == "rollback"
    assert rollout.metrics == RolloutMetricsSpec(source="server", connection=None)


def test_the_issue_s_example_reads_back_typed():
    spec = spec_of(
        "rollout:\n"
        "  shadow: {percent: 100, for: 10m}\n"
        "  canary: {steps: [10, 50, 100], bake: 5m}\n"
        "  gates:\n    p95_ms: 250\n    error_rate: 0.01\n    agreement: 0.95\n    min_requests: 200\n"
        "  approval: {required: true, timeout: 48h}\n"
        "  on_fail: hold\n"
        "serving:\n  log_requests: {sample: 0.1, max_mb_per_hour: 100}\n"
        "notify:\n  to: [ml-team@example.com]\n  events: [failure, champion_holds, rollback]\n"
    )
    rollout = spec.rollout
    assert rollout.shadow == ShadowStep(percent=100, for_s=600)
    assert rollout.canary == CanarySpec(steps=(10, 50, 100), bake_s=300)
    assert rollout.gates == RolloutGates(p95_ms=250, error_rate=0.01, agreement=0.95, min_requests=200)
    assert rollout.approval == ApprovalSpec(required=True, timeout_s=172800)
    assert rollout.on_fail == "hold"
    assert spec.serving.log_requests == RequestLogSpec(sample=0.1, max_mb_per_hour=100.0)
    assert spec.notify.events == ("failure", "champion_holds", "rollback")
    as_dict = spec.to_dict()
    assert as_dict["rollout"]["shadow"] == {"percent": 100, "for": "10m"}
    assert as_dict["rollout"]["metrics"] == {"source": "server", "connection": None}
    with pytest.raises(dataclasses.FrozenInstanceError):
        rollout.canary.bake_s = 1  # type: ignore[misc]


def test_second_long_bakes_and_partial_sections():
    rollout = spec_of("rollout:\n  shadow: {for: 1s}\n  canary: {steps: [100], bake: 2s}\n  gates: {agreement: 1}\n").rollout
    assert rollout.shadow == ShadowStep(percent=100, for_s=1)
    assert rollout.canary == CanarySpec(steps=(100,), bake_s=2)
    assert rollout.gates.agreement == 1 and rollout.gates.min_requests == 100 and rollout.gates.p95_ms is None
    assert spec_of("rollout:\n  canary: {bake: 1h30m}\n").rollout.canary.bake_s == 5400
    assert spec_of("serving:\n  log_requests: {}\n").serving.log_requests == RequestLogSpec(sample=0.1, max_mb_per_hour=100.0)


def test_the_schema_words_are_the_vocabulary_and_notify_s_events():
    properties = load_schema()["properties"]["rollout"]["properties"]
    assert tuple(properties["on_fail"]["enum"]) == ROLLOUT_ON_FAIL
    assert tuple(properties["metrics"]["properties"]["source"]["enum"]) == ROLLOUT_METRICS_SOURCES
    assert tuple(properties["gates"]["properties"]) == ROLLOUT_GATES
    assert tuple(load_schema()["properties"]["notify"]["properties"]["events"]["items"]["enum"]) == EVENTS
    assert "rollback" in EVENTS


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        # lint: the steps grow and end at 100
        ("rollout:\n  canary: {steps: [10, 10, 100]}\n", "cars.yaml:13:24: rollout.canary.steps[1]: 10 does not grow from the step before it (10)"),
        ("rollout:\n  canary:\n    steps: [50, 20, 100]\n", "cars.yaml:14:17: rollout.canary.steps[1]: 20 does not grow"),
        ("rollout:\n  canary: {steps: [10, 50]}\n", "cars.yaml:13:24: rollout.canary.steps[1]: the last step is 50, not 100"),
        # lint: a Prometheus source needs its connection
        ("rollout:\n  metrics: {source: prometheus}\n", "cars.yaml:13:12: rollout.metrics.connection: metrics.source prometheus needs the Airflow connection id"),
        # lint: KServe cannot shadow
        ("rollout:\n  shadow: {for: 1s}\n" + KSERVE, "cars.yaml:13:11: rollout.shadow: KServe cannot shadow"),
        # the schema: values, ranges and duration words, at their place
        ("rollout:\n  canary: {steps: [0, 100]}\n", "cars.yaml:13:20: rollout.canary.steps[0]: 0 is less than the minimum of 1"),
        ("rollout:\n  canary: {steps: [10, 101]}\n", "rollout.canary.steps[1]: 101 is greater than the maximum of 100"),
        ("rollout:\n  canary: {steps: [10.5, 100]}\n", "rollout.canary.steps[0]: 10.5 is not of type 'integer'"),
        ("rollout:\n  canary: {steps: []}\n", "rollout.canary.steps"),
        ("rollout:\n  canary: {bake: 5 min}\n", "cars.yaml:13:18: rollout.canary.bake: '5 min' is not a duration longer than 0s like 30s, 5m"),
        ("rollout:\n  shadow: {for: 0s}\n", "rollout.shadow.for: '0s' is not a duration longer than 0s"),
        ("rollout:\n  approval: {timeout: 2 days}\n", "rollout.approval.timeout: '2 days' is not a duration"),
        ("rollout:\n  shadow: {percent: 0}\n", "rollout.shadow.percent: 0 is less than the minimum of 1"),
        ("rollout:\n  gates: {p95_ms: 0}\n", "cars.yaml:13:19: rollout.gates.p95_ms: 0 is less than or equal to the minimum of 0"),
        ("rollout:\n  gates: {error_rate: 1}\n", "rollout.gates.error_rate: 1 is greater than or equal to the maximum of 1"),
        ("rollout:\n  gates: {error_rate: -0.1}\n", "rollout.gates.error_rate: -0.1 is less than the minimum of 0"),
        ("rollout:\n  gates: {agreement: 0}\n", "rollout.gates.agreement: 0 is less than or equal to the minimum of 0"),
        ("rollout:\n  gates: {agreement: 1.5}\n", "rollout.gates.agreement: 1.5 is greater than the maximum of 1"),
        ("rollout:\n  gates: {min_requests: 0}\n", "rollout.gates.min_requests: 0 is less than the minimum of 1"),
        ("rollout:\n  gates: {latency: 3}\n", "rollout.gates.latency: unknown key `latency`"),
        ("rollout:\n  on_fail: rollbak\n", "rollout.on_fail: 'rollbak' is not allowed; allowed values: rollback, hold; did you mean `rollback`?"),
        ("rollout:\n  metrics: {source: grafana}\n", "rollout.metrics.source: 'grafana' is not allowed; allowed values: server, prometheus"),
        ("rollout: null\n", "rollout: None is not of type 'object'"),
        ("serving:\n  log_requests: {sample: 0}\n", "serving.log_requests.sample: 0 is less than or equal to the minimum of 0"),
        ("serving:\n  log_requests: {sample: 1.5}\n", "serving.log_requests.sample: 1.5 is greater than the maximum of 1"),
        ("serving:\n  log_requests: {max_mb_per_hour: 0}\n", "serving.log_requests.max_mb_per_hour: 0 is less than or equal"),
        ("notify:\n  to: [a@example.com]\n  events: [rolback]\n", "notify.events[0]: 'rolback' is not allowed; allowed values: failure, champion_holds, rollback"),
    ],
)
def test_bad_rollout_settings_are_refused_at_their_place(extra, expected):
    problems = errors_of(extra)
    assert any(expected in problem for problem in problems), problems


def test_kserve_gates_read_from_the_server_are_a_warning_and_prometheus_silences_it():
    gates = "rollout:\n  gates: {p95_ms: 250, error_rate: 0.01}\n" + KSERVE
    (warning,) = warnings_of(gates)
    assert warning.startswith("cars.yaml:13:10: warning: rollout.gates: KServe exposes no per-version mlspec metrics")
    assert "p95_ms, error_rate are not read and only readiness is checked; use metrics.source prometheus" in warning
    assert spec_of(gates).rollout.gates.p95_ms == 250  # a warning: the spec still loads
    assert warnings_of(gates.replace("rollout:\n", "rollout:\n  metrics: {source: prometheus, connection: prom}\n")) == []
    # no metric gate (error_rate, on by default, turned off): nothing unread, only the warning that none is set
    (no_gate,) = warnings_of("rollout:\n  gates: {min_requests: 5, error_rate: null}\n" + KSERVE)
    assert "neither agreement nor p95_ms is set" in no_gate


def test_warnings_on_what_the_platform_or_source_cannot_use():
    (agreement,) = [w for w in warnings_of("rollout:\n  gates: {agreement: 0.9}\n  metrics: {source: prometheus, connection: p}\n" + KSERVE)]
    assert "rollout.gates.agreement: KServe cannot shadow, so no request reaches both versions" in agreement
    (logging,) = warnings_of("serving:\n  platform: kserve\n  runtime: kserve-ovms\n  log_requests: {}\nstorage:\n  uri: s3://m/c\n")
    assert logging.startswith("cars.yaml:15:17: warning: serving.log_requests: ignored: KServe does not log requests")
    (unused,) = warnings_of("rollout:\n  gates: {agreement: 0.9}\n  metrics: {connection: prom}\n")
    assert "rollout.metrics.connection: unused: metrics.source server reads the endpoint's own /metrics" in unused


def test_a_local_rollout_with_every_gate_has_no_problem():
    text = "rollout:\n  shadow: {for: 1s}\n  gates: {p95_ms: 250, error_rate: 0.01, agreement: 0.95}\n"
    assert warnings_of(text) == []
    assert spec_of(text).rollout.shadow.for_s == 1


@pytest.mark.parametrize(("extra", "where", "wanted"), [
    ("rollout: {gates: {}}\n", "cars.yaml:12:11: warning: rollout.gates", "set agreement (e.g. 0.95) or p95_ms (e.g. 250)"),
    ("rollout:\n  gates: {error_rate: 0.05}\n", "cars.yaml:13:3: warning: rollout.gates", "set agreement"),
    ("rollout:\n  gates: {min_requests: 5}\n  metrics: {source: prometheus, connection: p}\n" + KSERVE,
     "cars.yaml:13:3: warning: rollout.gates", "set p95_ms (e.g. 250)"),
])
def test_a_rollout_without_agreement_or_p95_is_a_warning(extra, where, wanted):
    (warning,) = warnings_of(extra)
    assert warning.startswith(where), warning
    assert "neither agreement nor p95_ms is set, so a step passes on error_rate and min_requests alone" in warning
    assert wanted in warning
    assert warnings_of(extra.replace("gates: {", "gates: {p95_ms: 250, ", 1).replace(", }", "}")) == []  # one is enough

"""Issue 16's "Done when" stories at the model server + rollout core level, fast: a real `mlspec serve`,
real scikit-learn digits models published the way the store task publishes them, real traffic from the
load generator, gates read by mlspec.rollout from the server's /metrics and from a real Prometheus.

The steps are driven here the way the rollout's trigger drives them (set the step's traffic, poll the
metrics window until step_verdict says pass or fail), with second-long bakes. The Airflow-level stories
(operators, approval, the registry record) are tests/e2e/test_e2e_rollout.py.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import httpx
import numpy as np
import pytest
from tests.fixtures.load_generator import LoadGenerator, LoadSummary, tensor_bodies
from tests.fixtures.mlspec_serve import model_server_process
from tests.fixtures.prometheus import start_prometheus, wait_for_scrape

from mlspec.rollout.gates import FAIL, PASS, WAIT, GateCheck, step_verdict
from mlspec.rollout.metrics import MetricsSource, PrometheusMetrics, ServerMetrics, StepMetrics
from mlspec.rollout.plan import Step, plan, traffic_for
from mlspec.spec.model import (
    ApprovalSpec,
    CanarySpec,
    RolloutGates,
    RolloutMetricsSpec,
    RolloutSpec,
    ShadowStep,
)
from mlspec.vocabulary import METRIC_SHADOW_REQUESTS, METRIC_SHADOW_ROWS

PRODUCTION, AGREEING, WEAKER = 1, 2, 3  # the version numbers every scenario's model gets
RATE = 200  # live requests per second
GATES = RolloutGates(p95_ms=250, error_rate=0.01, agreement=0.95, min_requests=100)


# -- real models, published as the store task publishes them --------------------------------------
@cache
def digits_models() -> tuple[dict[int, bytes], np.ndarray, tuple[str, ...], dict]:
    """Three scikit-learn digits classifiers exported to ONNX by mlspec's own adapter: production (logistic
    regression), a retrain that agrees with it (another C, ~99 % same labels) and a weaker model (a depth-4
    tree, ~57 % accurate); plus the test rows (the traffic), the class names and the input schema."""
    from sklearn.datasets import load_digits

    from mlspec.ml.data import split
    from mlspec.ml.frameworks import TrainingPlan, get_adapter
    from mlspec.ml.io_schema import input_schema

    digits = load_digits()
    names = tuple(str(i) for i in range(10))
    dataset = split(
        digits.data.astype(np.float32),
        digits.target.astype(np.int64),
        names,
        validation=0.1,
        test=0.2,
        seed=0,
        stratify=True,
        method="random",
    )
    sklearn = get_adapter("sklearn")

    def trained(estimator: str, params: dict) -> bytes:
        plan = TrainingPlan(
            framework="sklearn",
            task="classification",
            preprocess=({"scale": {"divide_by": 16.0}},),
            seed=0,
            estimator=estimator,
            params=params,
        )
        model = sklearn.build(plan, dataset)
        sklearn.fit(model, plan, dataset)
        return sklearn.to_onnx(model, task="classification", opset=17, sample=dataset.x_train[:8])

    models = {
        PRODUCTION: trained("logistic_regression", {"max_iter": 500}),
        AGREEING: trained("logistic_regression", {"max_iter": 500, "C": 0.5}),
        WEAKER: trained("decision_tree", {"max_depth": 4}),
    }
    return models, np.asarray(dataset.x_test), names, input_schema(dataset)


def publish_versions(store_root: Path, name: str) -> dict[int, str]:
    """Versions 1, 2, 3 of `name` in a file store: model.onnx, signature.json, input_schema.json,
    output_schema.json and metrics.json, as the store task publishes them. Returns version -> URI."""
    from mlspec.ml.io_schema import output_schema
    from mlspec.ml.onnx_export import onnx_signature
    from mlspec.storage import open_store

    models, _, names, inputs = digits_models()
    store = open_store(store_root.as_uri())
    uris = {}
    for version, onnx_bytes in models.items():
        signature = onnx_signature(onnx_bytes)
        files = {
            "model.onnx": onnx_bytes,
            "signature.json": json.dumps(signature).encode(),
            "input_schema.json": json.dumps(inputs).encode(),
            "output_schema.json": json.dumps(output_schema("classification", names, signature)).encode(),
            "metrics.json": json.dumps({"accuracy": 0.9}).encode(),
        }
        published = store.publish_version(name, files, run_id=f"scenario/{name}/{version}")
        assert published.version == version
        uris[version] = published.uri
    return uris


# -- the server ------------------------------------------------------------------------------------
@dataclass
class Endpoint:
    """One model on the running `mlspec serve`, through its HTTP API (admin calls with the server token)."""

    url: str
    model: str
    uris: dict[int, str]

    def admin(self, path: str, parameters: dict | None) -> dict:
        token = os.environ["MLSPEC_SERVER_TOKEN"]
        response = httpx.post(
            f"{self.url}/v2/repository/models/{self.model}/{path}",
            json={"parameters": parameters},
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        assert response.status_code == 200, f"{path} {parameters}: {response.status_code} {response.text}"
        return response.json()

    def load(self, version: int, *, serve: bool) -> dict:
        return self.admin(
            "load", {"storage_uri": self.uris[version], "version": str(version), "serve": serve}
        )

    def set_traffic(self, traffic: dict | None) -> dict:
        return self.admin("traffic", traffic if traffic is not None else {"weights": None})

    def metadata(self) -> dict:
        response = httpx.get(f"{self.url}/v2/models/{self.model}", timeout=10)
        assert response.status_code == 200, response.text
        return response.json()["parameters"]

    def traffic(self) -> dict:
        return self.metadata()["traffic"]

    def route(self, request_id: str) -> str:
        """The version that answers a request with this id."""
        x = digits_models()[1][:1]
        response = httpx.post(
            f"{self.url}/v2/models/{self.model}/infer",
            json={"id": request_id, **tensor_bodies(x, "input")[0]},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return response.json()["model_version"]


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlspec serve` as a user starts it, for this module's scenarios."""
    with model_server_process(tmp_path_factory.mktemp("scenario-server"), {}) as url:
        yield url


@pytest.fixture(scope="module")
def store_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("scenario-models")


def endpoint_with_candidate(serve: str, store_root: Path, name: str, candidate: int) -> Endpoint:
    """`name` with version 1 in production (served, 100 %) and `candidate` loaded beside it, answering no
    live traffic: where the rollout starts after deploy and the smoke test."""
    endpoint = Endpoint(serve, name, publish_versions(store_root, name))
    endpoint.load(PRODUCTION, serve=True)
    endpoint.load(candidate, serve=False)
    metadata = endpoint.metadata()
    assert metadata["served_version"] == str(PRODUCTION)
    assert metadata["traffic"]["weights"] == {str(PRODUCTION): 100}
    return endpoint


def live_traffic(endpoint: Endpoint, **kwargs) -> LoadGenerator:
    bodies = tensor_bodies(digits_models()[1], "input")
    return LoadGenerator(endpoint.url, endpoint.model, bodies, rate=RATE, workers=4, **kwargs)


# -- one step, driven as the rollout trigger drives it ---------------------------------------------
@dataclass
class StepResult:
    step: Step
    verdict: str
    checks: list[GateCheck]
    metrics: StepMetrics
    elapsed_s: float
    answers: LoadSummary  # the live answers sent during the step

    def lines(self) -> list[str]:
        return [check.line() for check in self.checks]


def run_step(
    endpoint: Endpoint, step: Step, candidate: int, source: MetricsSource, load: LoadGenerator
) -> StepResult:
    endpoint.set_traffic(traffic_for(step, PRODUCTION, candidate))
    since = time.monotonic()
    start = source.snapshot(endpoint.model)
    while True:
        metrics = source.window(endpoint.model, candidate, PRODUCTION, start)
        elapsed = time.monotonic() - since
        verdict, checks = step_verdict(metrics, GATES, elapsed, step.bake_s)
        if verdict != WAIT:
            break
        assert elapsed < 3 * step.bake_s + 30, f"step {step} never decided: {[c.line() for c in checks]}"
        time.sleep(0.2)
    until = time.monotonic()
    answers = load.summary(since=since, until=until, production=str(PRODUCTION))
    return StepResult(step, verdict, checks, metrics, until - since, answers)


def within_binomial_bounds(summary: LoadSummary, version: int, percent: int) -> bool:
    """The version's share of the step's answers is within 4.5 standard deviations of `percent`."""
    p, n = percent / 100, summary.ok
    return abs(summary.share(str(version)) - p) <= 4.5 * math.sqrt(p * (1 - p) / n) + 1e-9


def rollout(shadow_s: int, bake_s: int) -> RolloutSpec:
    return RolloutSpec(
        shadow=ShadowStep(percent=100, for_s=shadow_s),
        canary=CanarySpec(steps=(10, 50, 100), bake_s=bake_s),
        gates=GATES,
        approval=ApprovalSpec(required=False, timeout_s=3600),
        on_fail="rollback",
        metrics=RolloutMetricsSpec(source="server", connection=None),
    )


# -- the stories ---------------------------------------------------------------------------------------
def test_an_agreeing_fast_candidate_goes_shadow_10_50_100_and_becomes_production(serve, store_root):
    endpoint = endpoint_with_candidate(serve, store_root, "digits-promoted", AGREEING)
    source = ServerMetrics(serve)
    results: list[StepResult] = []
    with live_traffic(endpoint) as load:
        for step in plan(rollout(shadow_s=1, bake_s=2)):
            result = run_step(endpoint, step, AGREEING, source, load)
            results.append(result)
            assert result.verdict == PASS, (step, result.lines(), result.answers)
            if step.percent == 50:
                # A retried request (the same id) lands on the same version.
                for n in range(15):
                    assert len({endpoint.route(f"retry-{n}") for _ in range(3)}) == 1
        # The release's last switch: the candidate becomes the served version with the whole traffic.
        endpoint.load(AGREEING, serve=True)
        finished = time.monotonic()
        load.wait_for(100, since=finished)
    after = load.summary(since=finished)

    shadow, *canaries = results
    assert [r.step.kind for r in results] == ["shadow", "canary", "canary", "canary"]
    # Shadow: production answers everything while the candidate is compared on copies of it.
    assert shadow.answers.non_production_share == 0.0, shadow.answers
    assert shadow.metrics.compared_rows >= GATES.min_requests
    assert shadow.metrics.agreement is not None and shadow.metrics.agreement >= 0.95
    # Each canary step: the candidate answers its share of live requests, within binomial bounds.
    for result in canaries:
        percent = result.step.percent
        assert result.answers.ok >= 100, result.answers
        assert within_binomial_bounds(result.answers, AGREEING, percent), (percent, result.answers)
        assert set(result.answers.by_version) <= {str(PRODUCTION), str(AGREEING)}
        assert all(check.passed for check in result.checks), result.lines()
    # Every answer succeeded and names the version that produced it, in its body and its header alike.
    assert set(load.summary().by_status) == {200}, load.summary()
    assert all(a.model_version == a.header_version for a in load.answers())
    # The candidate is production now: served, alone, and answering every request.
    metadata = endpoint.metadata()
    assert metadata["served_version"] == str(AGREEING)
    assert metadata["traffic"] == {"weights": {str(AGREEING): 100}, "shadow": None}
    assert after.by_version == {str(AGREEING): after.ok} and after.ok >= 100, after


def test_a_weaker_candidate_is_caught_by_the_shadow_agreement_gate_while_production_answers_all(
    serve, store_root
):
    endpoint = endpoint_with_candidate(serve, store_root, "digits-caught", WEAKER)
    source = ServerMetrics(serve)
    bake_s = 10  # the gate fails the step as soon as min_requests were compared: long before the bake ends
    with live_traffic(endpoint) as load:
        shadow = run_step(endpoint, plan(rollout(shadow_s=bake_s, bake_s=1))[0], WEAKER, source, load)
        assert shadow.step.kind == "shadow"
        # on_fail rollback: production takes the whole traffic back, the candidate no longer shadows.
        endpoint.set_traffic(None)
        rolled_back = time.monotonic()
        load.wait_for(50, since=rolled_back)

    assert shadow.verdict == FAIL, shadow.lines()
    assert shadow.elapsed_s < bake_s, shadow.elapsed_s
    failed = {c.gate: c for c in shadow.checks if not c.passed}
    assert set(failed) == {"agreement"}, shadow.lines()
    assert failed["agreement"].value < 0.8 and shadow.metrics.compared_rows >= GATES.min_requests
    # Production answered 100 % of live requests, before, during and after the shadow step.
    everything = load.summary(production=str(PRODUCTION))
    assert everything.by_status == {200: everything.answers}, everything
    assert everything.non_production_share == 0.0 and everything.by_version == {
        str(PRODUCTION): everything.ok
    }
    assert endpoint.traffic() == {"weights": {str(PRODUCTION): 100}, "shadow": None}
    assert endpoint.metadata()["served_version"] == str(PRODUCTION)
    disagreeing = metric_value(
        serve, METRIC_SHADOW_ROWS, model=endpoint.model, version="3", result="disagree"
    )
    assert disagreeing > 0


def test_a_real_prometheus_scrapes_metrics_and_its_gate_verdict_matches_the_servers(
    serve, store_root, tmp_path
):
    target = serve.removeprefix("http://")
    base_url, stop = start_prometheus(tmp_path / "prometheus", [target], scrape_interval="1s")
    try:
        wait_for_scrape(base_url, target)
        server_source, prometheus_source = ServerMetrics(serve), PrometheusMetrics(base_url, endpoint_url=serve)
        verdicts = {}
        for name, candidate in (("digits-prom-weaker", WEAKER), ("digits-prom-agreeing", AGREEING)):
            endpoint = endpoint_with_candidate(serve, store_root, name, candidate)
            step = plan(rollout(shadow_s=1, bake_s=1))[0]
            server_start, prometheus_start = server_source.snapshot(name), prometheus_source.snapshot(name)
            # Prometheus's window starts at its first scrape after the step's start (what came before is the
            # step before): the traffic goes after it, so both sources see all of it
            wait_for_scrape(base_url, target, after=prometheus_start)
            started = time.monotonic()
            endpoint.set_traffic(traffic_for(step, PRODUCTION, candidate))
            send(endpoint, 300)
            wait_for_shadow_copies(serve, name, str(candidate), 300)
            wait_for_scrape(base_url, target, after=time.time())
            elapsed = max(time.monotonic() - started, step.bake_s)
            by_server = server_source.window(name, candidate, PRODUCTION, server_start)
            by_prometheus = prometheus_source.window(name, candidate, PRODUCTION, prometheus_start)
            server_verdict, server_checks = step_verdict(by_server, GATES, elapsed, step.bake_s)
            prometheus_verdict, prometheus_checks = step_verdict(by_prometheus, GATES, elapsed, step.bake_s)
            lines = [c.line() for c in server_checks], [c.line() for c in prometheus_checks]
            # Both read the same counters over the same window: the same requests, rows and verdict.
            assert prometheus_verdict == server_verdict, lines
            assert by_prometheus.requests == by_server.requests == 300, lines
            assert by_prometheus.compared_rows == by_server.compared_rows, lines
            assert by_prometheus.agreement == pytest.approx(by_server.agreement), lines
            verdicts[candidate] = server_verdict
            endpoint.set_traffic(None)
    finally:
        stop()
    assert verdicts == {WEAKER: FAIL, AGREEING: PASS}, verdicts


# -- helpers -----------------------------------------------------------------------------------------
def send(endpoint: Endpoint, count: int) -> LoadSummary:
    with live_traffic(endpoint, max_requests=count) as load:
        load.wait_for(count)
    summary = load.summary()
    assert summary.by_status == {200: count}, summary
    return summary


def metric_value(url: str, name: str, **labels: str) -> float:
    """The sum of `name`'s samples with these labels in the server's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def wait_for_shadow_copies(server_url: str, model: str, version: str, copies: int) -> None:
    """Poll until the server's shadow worker handled `copies` copies of `model`'s requests for `version`."""
    deadline = time.monotonic() + 30
    while metric_value(server_url, METRIC_SHADOW_REQUESTS, model=model, version=version) < copies:
        assert time.monotonic() < deadline, f"the server's shadow worker did not handle {copies} copies"
        time.sleep(0.1)

"""The gates' metrics from a real `mlspec serve` under real traffic: its own /metrics and a real Prometheus
scraping it give the same StepMetrics, and they match what the clients saw."""

from __future__ import annotations

import os
import time

import httpx
import numpy as np
import pytest
from tests.fixtures.load_generator import LoadGenerator, tensor_bodies
from tests.fixtures.mlspec_serve import model_server_process
from tests.fixtures.prometheus import prometheus_process, wait_for_scrape
from tests.fixtures.server_testkit import classifier_onnx, classifier_signature, publish

from mlspec.rollout.metrics import PrometheusMetrics, ServerMetrics, StepMetrics
from mlspec.rollout.plan import Step, traffic_for

REQUESTS = 200


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`mlspec serve` with two models, each a production version 1 and a candidate version 2 (the same
    weights for "same", other weights for "other"), and a Prometheus scraping the server every second."""
    store = tmp_path_factory.mktemp("store")
    with model_server_process(tmp_path_factory.mktemp("server-state"), {}) as url:
        admin = {"Authorization": f"Bearer {os.environ['MLSPEC_SERVER_TOKEN']}"}
        for model, candidate_seed in (("same", 1), ("other", 2)):
            for version, seed in ((1, 1), (2, candidate_seed)):
                uri = publish(store, model, classifier_onnx(seed), classifier_signature(), f"run-{version}")
                parameters = {"storage_uri": uri, "version": str(version), "serve": version == 1}
                load = httpx.post(f"{url}/v2/repository/models/{model}/load", json={"parameters": parameters},
                                  headers=admin, timeout=60)
                assert load.status_code == 200, load.text
        target = url.removeprefix("http://")
        with prometheus_process(tmp_path_factory.mktemp("prometheus"), [target]) as prometheus_url:
            wait_for_scrape(prometheus_url, target)
            yield url, admin, target, prometheus_url


def canary_window(served, model: str) -> tuple[StepMetrics, StepMetrics, dict]:
    """A canary step at 50 % (every request production answers copied to the candidate): REQUESTS requests,
    then both sources' windows and the versions that answered."""
    url, admin, target, prometheus_url = served
    traffic = traffic_for(Step("canary", 50, 1), 1, 2)
    assert httpx.post(f"{url}/v2/repository/models/{model}/traffic", json={"parameters": traffic},
                      headers=admin, timeout=30).status_code == 200
    # Prometheus keeps only the endpoint's series (its instance) and starts the window at the first scrape
    # after the step's start: the server's snapshot is taken after that scrape, with no traffic in between
    server, prometheus = ServerMetrics(url), PrometheusMetrics(prometheus_url, endpoint_url=url)
    from_prometheus = prometheus.snapshot(model)
    wait_for_scrape(prometheus_url, target, after=from_prometheus)
    from_server = server.snapshot(model)
    rows = np.random.default_rng(7).normal(size=(REQUESTS, 64)).astype(np.float32)
    with LoadGenerator(url, model, tensor_bodies(rows, "input"), workers=4, max_requests=REQUESTS) as load:
        load.wait_for(REQUESTS, timeout_s=60)
    summary = load.summary()
    by_version = summary.by_version
    assert summary.ok == REQUESTS and set(by_version) <= {"1", "2"}, str(summary)
    deadline = time.monotonic() + 20  # the shadow copies run off the request path
    while (window := server.window(model, 2, 1, from_server)).compared_rows < by_version["1"]:
        assert time.monotonic() < deadline, f"shadow copies compared: {window}"
        time.sleep(0.1)
    wait_for_scrape(prometheus_url, target, after=time.time())
    return window, prometheus.window(model, 2, 1, from_prometheus), by_version


def test_a_candidate_that_agrees(served):
    from_server, from_prometheus, by_version = canary_window(served, "same")
    assert from_prometheus == from_server
    # the candidate answered its share live and ran a copy of each of production's answers
    assert from_server.requests == REQUESTS and by_version.get("2", 0) > 0
    assert (from_server.errors, from_server.dropped) == (0, 0)
    assert from_server.compared_rows == by_version["1"] and from_server.agreement == 1.0
    assert 0 < from_server.p95_ms < 1000


def test_a_candidate_that_disagrees(served):
    from_server, from_prometheus, by_version = canary_window(served, "other")
    assert from_prometheus == from_server
    assert from_server.compared_rows == by_version["1"] and from_server.agreement < 0.5

"""The load generator the rollout scenarios drive: real requests, unique ids, each answer's version."""

from __future__ import annotations

import time

import numpy as np
from tests.fixtures.load_generator import LoadGenerator, tensor_bodies
from tests.fixtures.server_testkit import load

X = np.random.default_rng(3).normal(size=(20, 64)).astype(np.float32)


def test_paced_traffic_records_every_answer_with_its_version(server, publish_classifier):
    assert load(server.client(), "digits", publish_classifier("digits", 1), "1").status_code == 200
    started = time.monotonic()
    generator = LoadGenerator(
        server.url, "digits", tensor_bodies(X, "input"), rate=100, workers=3, max_requests=60
    )
    with generator:
        answers = generator.wait_for(60, timeout_s=30)
    took = time.monotonic() - started

    assert took >= 0.55  # 60 requests at 100/s: the pace holds (the first goes at once)
    assert len({a.request_id for a in answers}) == 60
    assert sorted(a.body_index for a in answers) == sorted(i % 20 for i in range(60))
    summary = generator.summary(production="1")
    assert summary.by_status == {200: 60} and summary.by_version == {"1": 60}, summary
    assert summary.non_production_share == 0.0 and summary.share("1") == 1.0
    assert summary.p95_ms is not None and summary.p95_ms > 0


def test_ids_travel_in_the_header_and_a_server_that_does_not_answer_is_status_0(
    server, publish_classifier, closed_port
):
    assert load(server.client(), "digits", publish_classifier("digits", 1), "1").status_code == 200
    with LoadGenerator(
        server.url,
        "digits",
        tensor_bodies(X, "input", rows_per_request=4),
        id_in="header",
        workers=2,
        max_requests=10,
    ) as generator:
        generator.wait_for(10)
    assert generator.summary().by_version == {"1": 10}

    with LoadGenerator(
        f"http://127.0.0.1:{closed_port}",
        "digits",
        tensor_bodies(X, "input"),
        workers=1,
        max_requests=3,
        timeout_s=2,
    ) as refused:
        refused.wait_for(3)
    summary = refused.summary()
    assert summary.by_status == {0: 3} and summary.ok == 0 and "ConnectError" in summary.errors[0]

"""`GET /metrics` of the local model server, parsed with prometheus_client's parser: requests by status
per version, latency histograms, rows, class counts by class name, a regression's prediction histogram, the
traffic gauges, and counters that stay monotonic across an unload and a reload (issue 16)."""

from __future__ import annotations

import time

import numpy as np
from tests.fixtures.server_testkit import TEST_TOKEN, load
from tests.fixtures.server_traffic import (
    CLASS_NAMES,
    infer_body,
    labelled_classifier_onnx,
    publish_model,
    regressor_onnx,
    rows,
    scrape,
    value,
)

from mlspec.server.app import ServerConfig
from mlspec.server.metrics import PREDICTION_BUCKETS
from mlspec.vocabulary import (
    LATENCY_BUCKETS_S,
    METRIC_CLASSES,
    METRIC_LATENCY,
    METRIC_PREDICTION,
    METRIC_REQUESTS,
    METRIC_ROWS,
    METRIC_SHADOW_PERCENT,
    METRIC_SHADOW_REQUESTS,
    METRIC_START_TIME,
    METRIC_TRAFFIC,
)


def test_metrics_count_answers_errors_rows_and_classes_per_version(start_server, tmp_path, store_root):
    # auth "token": the model endpoints need the token, and /metrics too (it names models, versions, classes).
    server = start_server(config=ServerConfig(allow_roots=(tmp_path.as_uri(),), auth="token"))
    client = server.client()
    model = labelled_classifier_onnx(0)
    assert load(client, "m", publish_model(store_root, "m", model)).status_code == 200
    assert (
        client.post(
            "/v2/repository/models/m/load",
            json={
                "parameters": {
                    "storage_uri": publish_model(store_root, "m", labelled_classifier_onnx(1)),
                    "serve": False,
                }
            },
        ).status_code
        == 200
    )
    x = rows(30, seed=4)
    for start in range(0, 30, 3):  # ten requests of three rows
        assert client.post("/v2/models/m/infer", json=infer_body(x[start : start + 3])).status_code == 200
    bad = client.post(
        "/v2/models/m/infer",
        json={"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]},
    )
    assert bad.status_code == 400
    assert client.post("/v2/models/m/versions/2/infer", json=infer_body(x[:2])).status_code == 200
    assert server.client(token=None).post("/v2/models/m/infer", json=infer_body(x[:1])).status_code == 401

    refused = server.client(token=None).get("/metrics")
    assert refused.status_code == 401 and "/metrics" in refused.json()["error"]
    wrong = server.client(token=None).get("/metrics", headers={"Authorization": "Bearer wrong"})
    assert wrong.status_code == 401
    assert server.client(token=None).get("/v2/health/ready").status_code == 200  # probes stay open
    samples = scrape(server.client(), token=TEST_TOKEN)
    assert value(samples, METRIC_REQUESTS, model="m", version="1", code="200") == 10
    assert value(samples, METRIC_REQUESTS, model="m", version="1", code="400") == 1
    assert value(samples, METRIC_REQUESTS, model="m", version="2", code="200") == 1
    assert value(samples, METRIC_ROWS, model="m", version="1") == 30
    assert value(samples, METRIC_ROWS, model="m", version="2") == 2
    # The refused request (400) is counted by code but not timed: its fast refusal would pull p95 down.
    assert value(samples, f"{METRIC_LATENCY}_count", model="m", version="1") == 10
    assert value(samples, f"{METRIC_LATENCY}_bucket", model="m", version="1", le="+Inf") == 10
    assert (
        len([k for k in samples if k[0] == f"{METRIC_LATENCY}_bucket" and ("version", "1") in k[1]])
        == len(LATENCY_BUCKETS_S) + 1
    )
    assert 0 < value(samples, f"{METRIC_LATENCY}_sum", model="m", version="1") < 10
    # Classes by the published names (output_schema.json), counted from the label output.
    labels = predict_direct_labels(model, x)
    for index, name in enumerate(CLASS_NAMES):
        expected = int(np.count_nonzero(labels == index))
        assert (
            value(samples, METRIC_CLASSES, model="m", version="1", output="label", **{"class": name})
            == expected
        )
    # Gauges: the served version answers 100 %, the other none.
    assert value(samples, METRIC_TRAFFIC, model="m", version="1") == 100
    assert value(samples, METRIC_TRAFFIC, model="m", version="2") == 0
    assert value(samples, METRIC_SHADOW_PERCENT, model="m", version="2") == 0


def predict_direct_labels(model: bytes, x: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    return session.run(["label"], {"input": x})[0]


def test_a_regression_answers_a_prediction_histogram(server, store_root):
    client = server.client()
    assert (
        load(client, "r", publish_model(store_root, "r", regressor_onnx(1.0), regression=True)).status_code
        == 200
    )
    x = rows(8, seed=1)
    assert client.post("/v2/models/r/infer", json=infer_body(x)).status_code == 200
    samples = scrape(client)
    predictions = x.sum(axis=1)
    assert (
        value(samples, f"{METRIC_PREDICTION}_bucket", model="r", version="1", output="prediction", le="+Inf")
        == 8
    )
    for bound in PREDICTION_BUCKETS:
        expected = int(np.count_nonzero(predictions <= bound))
        assert (
            value(
                samples,
                f"{METRIC_PREDICTION}_bucket",
                model="r",
                version="1",
                output="prediction",
                le=repr(bound),
            )
            == expected
        )


def test_traffic_gauges_follow_the_split_and_counters_survive_an_unload(server, store_root):
    client = server.client()
    assert load(client, "m", publish_model(store_root, "m", labelled_classifier_onnx(0))).status_code == 200
    uri = publish_model(store_root, "m", labelled_classifier_onnx(1))
    assert (
        client.post(
            "/v2/repository/models/m/load", json={"parameters": {"storage_uri": uri, "serve": False}}
        ).status_code
        == 200
    )
    # Every loaded version has its series before its first request (Prometheus' increase() needs the zero).
    samples = scrape(client)
    assert (METRIC_REQUESTS, (("code", "200"), ("model", "m"), ("version", "2"))) in samples
    # And the shadow series a rollout will move, both ways between the served version and the candidate.
    for shadow, primary in (("2", "1"), ("1", "2")):
        labels = (("model", "m"), ("outcome", "compared"), ("primary", primary), ("version", shadow))
        assert samples[(METRIC_SHADOW_REQUESTS, labels)] == 0
    traffic = {"weights": {"1": 80, "2": 20}, "shadow": {"version": "2", "percent": 50}}
    assert client.post("/v2/repository/models/m/traffic", json={"parameters": traffic}).status_code == 200
    samples = scrape(client)
    assert value(samples, METRIC_TRAFFIC, model="m", version="1") == 80
    assert value(samples, METRIC_TRAFFIC, model="m", version="2") == 20
    assert value(samples, METRIC_SHADOW_PERCENT, model="m", version="2") == 50
    assert value(samples, METRIC_SHADOW_PERCENT, model="m", version="1") == 0

    ids = [f"q{i}" for i in range(40)]
    answered = [
        client.post("/v2/models/m/infer", json=infer_body(rows(1), i)).json()["model_version"] for i in ids
    ]
    assert 0 < answered.count("2") < len(ids)  # both versions answered: the counts below are not 0 == 0
    samples = scrape(client)
    for version in ("1", "2"):
        assert value(samples, METRIC_REQUESTS, model="m", version=version, code="200") == answered.count(
            version
        )
    assert (
        client.post("/v2/repository/models/m/traffic", json={"parameters": {"weights": None}}).status_code
        == 200
    )
    assert (
        client.post("/v2/repository/models/m/unload", json={"parameters": {"version": "2"}}).status_code
        == 200
    )
    assert (
        client.post(
            "/v2/repository/models/m/load", json={"parameters": {"storage_uri": uri, "serve": False}}
        ).status_code
        == 200
    )
    again = scrape(client)
    assert value(again, METRIC_REQUESTS, model="m", version="2", code="200") == answered.count("2")
    assert value(again, METRIC_TRAFFIC, model="m", version="2") == 0


def test_the_start_time_gauge_tells_a_restarted_server_from_a_quiet_one(start_server, tmp_path):
    """mlspec_server_start_time_seconds: no labels, when the server began counting; a restart moves it, so a
    gate knows the counters began again (rollout.metrics reads it)."""
    before = time.time()
    first = start_server(tmp_path / "state")
    after = time.time()
    samples = scrape(first.client())
    started = [(labels, v) for (name, labels), v in samples.items() if name == METRIC_START_TIME]
    assert len(started) == 1 and started[0][0] == (), started
    assert before <= started[0][1] <= after
    assert scrape(first.client())[(METRIC_START_TIME, ())] == started[0][1]  # steady while it runs
    first.stop()
    second = start_server(tmp_path / "state")
    assert scrape(second.client())[(METRIC_START_TIME, ())] > started[0][1]

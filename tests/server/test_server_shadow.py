"""Shadow traffic on the local model server: the production version answers every request, a copy runs on the
shadow version off the request path, rows are compared and counted (agree / disagree), copies a full queue
cannot hold are dropped and counted, and a shadow that cannot answer counts errors (issue 16)."""

from __future__ import annotations

import json
import time

import numpy as np
from tests.fixtures.server_testkit import load
from tests.fixtures.server_traffic import (
    infer_body,
    labelled_classifier_onnx,
    publish_model,
    rows,
    scrape,
    value,
    wait_for,
)

from mlspec.server.app import ServerConfig
from mlspec.server.traffic import request_hash, shadow_bucket
from mlspec.vocabulary import METRIC_SHADOW_LATENCY, METRIC_SHADOW_REQUESTS, METRIC_SHADOW_ROWS


def _load_candidate(client, uri: str):
    answer = client.post(
        "/v2/repository/models/m/load", json={"parameters": {"storage_uri": uri, "serve": False}}
    )
    assert answer.status_code == 200, answer.text


def _traffic(client, weights: dict, shadow: dict | None):
    answer = client.post(
        "/v2/repository/models/m/traffic", json={"parameters": {"weights": weights, "shadow": shadow}}
    )
    assert answer.status_code == 200, answer.text


def _labels(model: bytes, x: np.ndarray) -> np.ndarray:
    import onnxruntime

    return onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"]).run(
        ["label"], {"input": x}
    )[0]


def _shadow(client, shadow: str, primary: str) -> dict[str, float]:
    samples = scrape(client)
    counts = {
        outcome: value(
            samples, METRIC_SHADOW_REQUESTS, model="m", version=shadow, primary=primary, outcome=outcome
        )
        for outcome in ("compared", "error", "dropped")
    }
    for result in ("agree", "disagree"):
        counts[result] = value(
            samples, METRIC_SHADOW_ROWS, model="m", version=shadow, primary=primary, result=result
        )
    counts["latency_count"] = value(samples, f"{METRIC_SHADOW_LATENCY}_count", model="m", version=shadow)
    counts["latency_sum"] = value(samples, f"{METRIC_SHADOW_LATENCY}_sum", model="m", version=shadow)
    return counts


def test_a_shadow_that_answers_differently_is_counted_row_by_row_while_production_answers(server, store_root):
    client = server.client()
    production, weaker = labelled_classifier_onnx(0), labelled_classifier_onnx(1)
    assert load(client, "m", publish_model(store_root, "m", production)).status_code == 200
    _load_candidate(client, publish_model(store_root, "m", weaker))  # version 2: other weights
    _load_candidate(client, publish_model(store_root, "m", production))  # version 3: the same model again
    _traffic(client, {"1": 100}, {"version": "2", "percent": 100})
    # Before any copy, the shadow's series are there at zero (a gate's window starts from them).
    assert _shadow(client, "2", "1")["compared"] == 0 and ("disagree" in _shadow(client, "2", "1"))

    x = rows(100, seed=7)
    for i in range(20):
        answer = client.post("/v2/models/m/infer", json=infer_body(x[5 * i : 5 * i + 5], f"s{i}"))
        assert answer.status_code == 200 and answer.json()["model_version"] == "1"
    counts = wait_for(
        lambda: (c := _shadow(client, "2", "1"))["compared"] == 20 and c, what="20 compared copies"
    )
    disagree = int(np.count_nonzero(_labels(production, x) != _labels(weaker, x)))
    assert 0 < disagree < 100
    assert (counts["agree"], counts["disagree"], counts["error"], counts["dropped"]) == (
        100 - disagree,
        disagree,
        0,
        0,
    )
    assert counts["latency_count"] == 20 and counts["latency_sum"] > 0

    # A versioned request is not copied; a request that asks only for probabilities is compared all the same.
    assert client.post("/v2/models/m/versions/1/infer", json=infer_body(x[:5], "direct")).status_code == 200
    only = {**infer_body(x[:5], "only-probabilities"), "outputs": [{"name": "probabilities"}]}
    assert client.post("/v2/models/m/infer", json=only).status_code == 200
    counts = wait_for(lambda: (c := _shadow(client, "2", "1"))["compared"] == 21 and c, what="the 21st copy")
    assert counts["agree"] + counts["disagree"] == 105

    # The same model as shadow agrees on every row; at 100 % the candidate answers, production shadows it.
    _traffic(client, {"1": 100}, {"version": "3", "percent": 100})
    for i in range(10):
        assert (
            client.post("/v2/models/m/infer", json=infer_body(x[5 * i : 5 * i + 5], f"t{i}")).status_code
            == 200
        )
    counts = wait_for(lambda: (c := _shadow(client, "3", "1"))["compared"] == 10 and c, what="10 copies to 3")
    assert (counts["agree"], counts["disagree"]) == (50, 0)
    _traffic(client, {"2": 100}, {"version": "1", "percent": 100})
    for i in range(4):
        answer = client.post("/v2/models/m/infer", json=infer_body(x[:5], f"u{i}"))
        assert answer.json()["model_version"] == "2"
    wait_for(lambda: _shadow(client, "1", "2")["compared"] == 4, what="copies of version 2's answers")


def test_a_shadow_percent_copies_that_share_of_requests(server, store_root):
    client = server.client()
    assert load(client, "m", publish_model(store_root, "m", labelled_classifier_onnx(0))).status_code == 200
    _load_candidate(client, publish_model(store_root, "m", labelled_classifier_onnx(1)))
    _traffic(client, {"1": 100}, {"version": "2", "percent": 25})
    x = rows(1)
    ids = [f"p{i}" for i in range(400)]
    for request_id in ids:
        assert client.post("/v2/models/m/infer", json=infer_body(x, request_id)).status_code == 200
    # Which requests are copied is a function of their ids alone: exactly these.
    copied = sum(shadow_bucket(request_hash(json.dumps({"id": i}).encode(), None, None)) < 25 for i in ids)
    assert abs(copied - 100) <= 4.5 * (400 * 0.25 * 0.75) ** 0.5, copied
    wait_for(lambda: _shadow(client, "2", "1")["compared"] == copied, what=f"{copied} copies")


def test_a_full_queue_drops_copies_and_never_delays_the_answer(start_server, tmp_path, store_root):
    server = start_server(config=ServerConfig(allow_roots=(tmp_path.as_uri(),), shadow_queue=1))
    client = server.client()
    assert load(client, "m", publish_model(store_root, "m", labelled_classifier_onnx(0))).status_code == 200
    slow = labelled_classifier_onnx(
        1, hidden=1536, layers=16
    )  # the same signature, ~40 M multiply-adds a row
    _load_candidate(client, publish_model(store_root, "m", slow))
    _traffic(client, {"1": 100}, {"version": "2", "percent": 100})
    x = rows(1)
    started = time.perf_counter()
    for i in range(30):
        answer = client.post("/v2/models/m/infer", json=infer_body(x, f"d{i}"))
        assert answer.status_code == 200 and answer.json()["model_version"] == "1"
    answered_s = time.perf_counter() - started
    counts = wait_for(
        lambda: (c := _shadow(client, "2", "1"))["compared"] + c["dropped"] + c["error"] == 30 and c,
        what="every copy compared or dropped",
    )
    assert counts["dropped"] >= 1 and counts["error"] == 0, counts
    shadow_s = counts["latency_sum"] / counts["latency_count"]
    # Had the answers waited for the shadow, 30 of them would take at least 30 shadow runs.
    assert answered_s < 30 * shadow_s / 2, (answered_s, shadow_s)


def test_copies_over_the_queue_s_byte_limit_are_dropped_and_production_answers(start_server, tmp_path, store_root):
    # A limit below one request body: no copy is queued, each is counted dropped, every answer is production's.
    server = start_server(config=ServerConfig(allow_roots=(tmp_path.as_uri(),), shadow_queue_bytes=16))
    client = server.client()
    assert load(client, "m", publish_model(store_root, "m", labelled_classifier_onnx(0))).status_code == 200
    _load_candidate(client, publish_model(store_root, "m", labelled_classifier_onnx(1)))
    _traffic(client, {"1": 100}, {"version": "2", "percent": 100})
    for i in range(5):
        answer = client.post("/v2/models/m/infer", json=infer_body(rows(1), f"b{i}"))
        assert answer.status_code == 200 and answer.json()["model_version"] == "1"
    counts = _shadow(client, "2", "1")
    assert (counts["dropped"], counts["compared"], counts["error"]) == (5, 0, 0), counts


def _renamed_input(model: bytes, name: str) -> bytes:
    """The same model taking its input under another name: a changed input schema."""
    import onnx

    proto = onnx.load_from_string(model)
    proto.graph.input[0].name = name
    for node in proto.graph.node:
        node.input[:] = [name if value == "input" else value for value in node.input]
    return proto.SerializeToString()


def _one_row_only(model: bytes) -> bytes:
    """The same model behind a Reshape to one row: it loads, then fails in onnxruntime on a batch of two."""
    import onnx
    from onnx import helper, numpy_helper

    proto = onnx.load_from_string(model)
    for node in proto.graph.node:
        node.input[:] = ["one_row" if value == "input" else value for value in node.input]
    proto.graph.initializer.append(numpy_helper.from_array(np.array([1, 8], dtype=np.int64), "one_row_shape"))
    proto.graph.node.insert(0, helper.make_node("Reshape", ["input", "one_row_shape"], ["one_row"]))
    return proto.SerializeToString()


def test_a_shadow_that_cannot_answer_counts_errors(server, store_root):
    """A copy the candidate cannot answer, whatever the reason, is an `error` outcome, never compared: it
    takes 4 features (a 400 at its own URL), its input has another name (a changed input schema), or
    onnxruntime fails on production's valid input."""
    client = server.client()
    production = labelled_classifier_onnx(0)
    assert load(client, "m", publish_model(store_root, "m", production)).status_code == 200
    candidates = {
        "2": publish_model(store_root, "m", labelled_classifier_onnx(1, features=4), features=4),
        "3": publish_model(store_root, "m", _renamed_input(production, "features"), input_name="features"),
        "4": publish_model(store_root, "m", _one_row_only(production)),
    }
    for version, uri in candidates.items():
        _load_candidate(client, uri)
        refused = client.post(f"/v2/models/m/versions/{version}/infer", json=infer_body(rows(2)))
        assert refused.status_code >= 400, refused.text
        _traffic(client, {"1": 100}, {"version": version, "percent": 100})
        for i in range(5):
            answer = client.post("/v2/models/m/infer", json=infer_body(rows(2), f"e{version}-{i}"))
            assert answer.status_code == 200 and answer.json()["model_version"] == "1"
        counts = wait_for(
            lambda v=version: (c := _shadow(client, v, "1"))["error"] == 5 and c, what=f"5 errors, v{version}"
        )
        assert counts["compared"] == 0 and counts["agree"] + counts["disagree"] == 0, (version, counts)


def test_a_shadow_in_a_split_compares_only_the_requests_the_other_version_answered(server, store_root):
    client = server.client()
    assert load(client, "m", publish_model(store_root, "m", labelled_classifier_onnx(0))).status_code == 200
    _load_candidate(client, publish_model(store_root, "m", labelled_classifier_onnx(1)))
    _traffic(client, {"1": 50, "2": 50}, {"version": "2", "percent": 100})  # a canary step's traffic
    answered = [
        client.post("/v2/models/m/infer", json=infer_body(rows(1), f"c{i}")).json()["model_version"]
        for i in range(60)
    ]
    assert 0 < answered.count("1") < 60
    counts = wait_for(
        lambda: (c := _shadow(client, "2", "1"))["compared"] == answered.count("1") and c,
        what="a copy of each request version 1 answered",
    )
    assert counts["agree"] + counts["disagree"] == answered.count("1")
    # Version 2's own answers are never copied to itself.
    assert _shadow(client, "2", "2")["compared"] == 0

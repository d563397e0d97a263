"""Traffic on the local model server: versions loaded without serving, weights per version routed by a stable
hash of the request id, the traffic in metadata, the index and state.json, and every bad traffic body refused
with a reason (issue 16)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter

import pytest
from tests.fixtures.server_testkit import load
from tests.fixtures.server_traffic import infer_body, labelled_classifier_onnx, publish_model, rows

from mlspec.server import app as server_app
from mlspec.server.app import INLINE_BODY_BYTES, ServerConfig, create_app


def _load(client, name: str, uri: str | None = None, version: str | None = None, serve: bool = True):
    parameters = {"storage_uri": uri, "version": version, "serve": serve}
    return client.post(
        f"/v2/repository/models/{name}/load",
        json={"parameters": {k: v for k, v in parameters.items() if v is not None}},
    )


def _traffic(client, name: str, parameters):
    return client.post(f"/v2/repository/models/{name}/traffic", json={"parameters": parameters})


@pytest.fixture
def three_versions(server, store_root):
    """Model `m` with versions 1 (served), 2 and 3 loaded without serving; the client."""
    client = server.client()
    assert _load(client, "m", publish_model(store_root, "m", labelled_classifier_onnx(0))).status_code == 200
    for seed in (1, 2):
        answer = _load(
            client, "m", publish_model(store_root, "m", labelled_classifier_onnx(seed)), serve=False
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["served_version"] == "1"
    return client


def _answers(client, ids, **kwargs) -> list[str]:
    x = rows(1)
    versions = []
    for request_id in ids:
        response = client.post("/v2/models/m/infer", json=infer_body(x, request_id), **kwargs)
        assert response.status_code == 200, response.text
        assert response.headers["x-mlspec-model-version"] == response.json()["model_version"]
        versions.append(response.json()["model_version"])
    return versions


def test_a_version_loaded_without_serving_answers_only_at_its_versioned_url(three_versions):
    client = three_versions
    assert set(_answers(client, [f"r{i}" for i in range(20)])) == {"1"}
    response = client.post("/v2/models/m/versions/3/infer", json=infer_body(rows(1)))
    assert response.json()["model_version"] == "3" and response.headers["x-mlspec-model-version"] == "3"
    assert client.get("/v2/models/m").json()["parameters"]["traffic"] == {
        "weights": {"1": 100},
        "shadow": None,
    }
    index = {row["version"]: row for row in client.post("/v2/repository/index").json()}
    assert {v: (r["served"], r["traffic_percent"], r["shadow_percent"]) for v, r in index.items()} == {
        "1": (True, 100, 0),
        "2": (False, 0, 0),
        "3": (False, 0, 0),
    }


def test_weights_split_requests_by_request_id_and_a_retry_lands_on_the_same_version(three_versions):
    client = three_versions
    answer = _traffic(client, "m", {"weights": {"1": 60, "2": 30, "3": 10}})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "name": "m",
        "served_version": "1",
        "traffic": {"weights": {"1": 60, "2": 30, "3": 10}, "shadow": None},
    }
    ids = [f"request-{i}" for i in range(600)]
    first = _answers(client, ids)
    counts = Counter(first)
    # Binomial bounds at about 4.5 standard deviations: 600 x p +- 4.5 sqrt(600 p (1 - p)).
    for version, share in (("1", 0.6), ("2", 0.3), ("3", 0.1)):
        spread = 4.5 * (600 * share * (1 - share)) ** 0.5
        assert abs(counts[version] - 600 * share) <= spread, counts
    assert _answers(client, ids[:100]) == first[:100]  # retried: the same version answers
    # Without a body id, the X-Request-Id header decides; without either, the body itself.
    x = rows(1)
    by_header = [
        client.post("/v2/models/m/infer", json=infer_body(x), headers={"X-Request-Id": f"h{i}"}).json()[
            "model_version"
        ]
        for i in range(60)
    ]
    again = [
        client.post("/v2/models/m/infer", json=infer_body(x), headers={"X-Request-Id": f"h{i}"}).json()[
            "model_version"
        ]
        for i in range(60)
    ]
    assert by_header == again and len(set(by_header)) > 1
    bodies = [infer_body(rows(1, seed)) for seed in range(30)]
    assert [client.post("/v2/models/m/infer", json=b).json()["model_version"] for b in bodies] == [
        client.post("/v2/models/m/infer", json=b).json()["model_version"] for b in bodies
    ]
    # A versioned URL bypasses the split; the metadata, the index and the served version say what routes.
    assert (
        client.post("/v2/models/m/versions/3/infer", json=infer_body(x, "request-0")).json()["model_version"]
        == "3"
    )
    assert client.get("/v2/models/m").json()["parameters"]["traffic"]["weights"] == {
        "1": 60,
        "2": 30,
        "3": 10,
    }
    index = {row["version"]: row["traffic_percent"] for row in client.post("/v2/repository/index").json()}
    assert index == {"1": 60, "2": 30, "3": 10}
    # Cleared: the served version answers everything again.
    cleared = _traffic(client, "m", {"weights": None})
    assert cleared.json()["traffic"] == {"weights": {"1": 100}, "shadow": None}
    assert set(_answers(client, ids[:50])) == {"1"}


def test_a_large_body_is_routed_off_the_event_loop_by_the_same_id(three_versions, monkeypatch):
    """Finding a large body's id (parsing it) on the event loop would hold every model's requests meanwhile:
    it runs in the request pool, and the id still picks the version a small body with that id gets."""
    hashed_on: list[tuple[int, str]] = []
    real = server_app.request_hash

    def recorded(body, *args):
        hashed_on.append((len(body), threading.current_thread().name))
        return real(body, *args)

    monkeypatch.setattr(server_app, "request_hash", recorded)
    client = three_versions
    assert _traffic(client, "m", {"weights": {"1": 50, "2": 50}}).status_code == 200
    large = rows(1000)
    assert len(json.dumps(infer_body(large, "x"))) > INLINE_BODY_BYTES
    ids = [f"large-{i}" for i in range(12)]
    by_large = []
    for request_id in ids:
        response = client.post("/v2/models/m/infer", json=infer_body(large, request_id))
        assert response.status_code == 200, response.text
        by_large.append(response.json()["model_version"])
    assert by_large == _answers(client, ids) and set(by_large) == {"1", "2"}
    large_threads = {name for size, name in hashed_on if size > INLINE_BODY_BYTES}
    assert large_threads and all(name.startswith("mlspec-infer") for name in large_threads), large_threads


def test_the_same_id_picks_the_same_version_in_another_process():
    """blake2b, not Python's salted hash(): another interpreter (another hash seed) routes the same way."""
    script = (
        "import json, sys\n"
        "from mlspec.server.traffic import Route, Traffic, request_hash\n"
        "route = Route.bind(Traffic({'2': 50, '3': 50}), {'2': '2', '3': '3'}, int)\n"
        "ids = [f'id-{i}' for i in range(200)]\n"
        "hashes = [request_hash(json.dumps({'id': i}).encode(), None, None) for i in ids]\n"
        "print(json.dumps([route.pick(h)[0] for h in hashes]))\n"
    )
    picks = []
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
        picks.append(json.loads(out.stdout))
    assert picks[0] == picks[1] and 70 < picks[0].count("2") < 130


BAD_BODIES = [
    ({"weights": {"1": 50, "2": 40}}, 400, "must sum to 100, they sum to 90"),
    ({"weights": {"1": 110, "2": -10}}, 400, "non-negative integer"),
    ({"weights": {"1": 50.0, "2": 50}}, 400, "non-negative integer"),
    ({"weights": {"1": True, "2": 99}}, 400, "non-negative integer"),
    ({"weights": {"1": "100"}}, 400, "non-negative integer"),
    ({"weights": {}}, 400, "non-empty object"),
    ({"weights": [["1", 100]]}, 400, "non-empty object"),
    ({"weights": {"": 100}}, 400, "version number or name"),
    ({"shadow": {"version": "2"}}, 400, "parameters.weights is required"),
    ({"weights": None, "shadow": {"version": "2"}}, 400, "shadow needs weights"),
    ({"weights": {"1": 100}, "mirror": True}, 400, "unknown keys ['mirror']"),
    ({"weights": {"1": 100}, "shadow": {"version": "2", "percent": 0}}, 400, "from 1 to 100"),
    ({"weights": {"1": 100}, "shadow": {"version": "2", "percent": 101}}, 400, "from 1 to 100"),
    ({"weights": {"1": 100}, "shadow": {"version": "2", "atol": -1}}, 400, "atol must be a non-negative"),
    ({"weights": {"1": 100}, "shadow": {"version": "2", "rtol": "x"}}, 400, "rtol must be a non-negative"),
    ({"weights": {"1": 100}, "shadow": {"percent": 10}}, 400, "shadow.version is required"),
    ({"weights": {"1": 100}, "shadow": {"version": "2", "copy": 1}}, 400, "unknown keys ['copy']"),
    ({"weights": {"1": 100}, "shadow": "2"}, 400, "must be null or"),
    # A version shadowing itself: every request would run twice and agree with itself.
    ({"weights": {"1": 100}, "shadow": {"version": "1"}}, 400, "version 1 answers every request"),
    ({"weights": {"2": 100, "1": 0}, "shadow": {"version": 2}}, 400, "version 2 answers every request"),
    ("weights", 400, "the body must be"),
    ({"weights": {"1": 90, "7": 10}}, 404, "no version '7' loaded"),
    ({"weights": {"1": 100}, "shadow": {"version": "9"}}, 404, "no version '9' loaded"),
]


@pytest.mark.parametrize(("parameters", "status", "reason"), BAD_BODIES)
def test_a_bad_traffic_body_is_refused_with_its_reason_and_changes_nothing(
    three_versions, parameters, status, reason
):
    client = three_versions
    response = _traffic(client, "m", parameters)
    assert response.status_code == status, response.text
    assert reason in response.json()["error"]
    assert client.get("/v2/models/m").json()["parameters"]["traffic"] == {
        "weights": {"1": 100},
        "shadow": None,
    }


def test_traffic_needs_the_token_ready_versions_and_a_known_model(three_versions, server, store_root):
    client = three_versions
    assert (
        server.client(token=None)
        .post("/v2/repository/models/m/traffic", json={"parameters": {"weights": None}})
        .status_code
        == 401
    )
    assert _traffic(client, "nope", {"weights": {"1": 100}}).status_code == 404
    assert client.post("/v2/repository/models/m/traffic", content=b"{").status_code == 400
    assert client.post("/v2/repository/models/m/traffic", json={}).status_code == 400
    # A version whose load failed is known but not ready: 409 with the reason.
    broken = publish_model(store_root, "m", b"not onnx")
    assert _load(client, "m", broken, serve=False).status_code == 400
    response = _traffic(client, "m", {"weights": {"1": 50, "4": 50}})
    assert response.status_code == 409 and "version 4 is not ready" in response.json()["error"]


def test_a_version_the_traffic_holds_cannot_be_unloaded_or_evicted_and_serving_one_clears_the_split(
    three_versions, store_root
):
    client = three_versions
    shadow = {"version": "3", "percent": 100}
    assert _traffic(client, "m", {"weights": {"1": 90, "2": 10}, "shadow": shadow}).status_code == 200
    for version in ("2", "3"):
        response = client.post("/v2/repository/models/m/unload", json={"parameters": {"version": version}})
        assert response.status_code == 409 and "is in its traffic" in response.json()["error"], response.text
    # Loading a fourth version without serving it evicts none the traffic holds (the server keeps three).
    assert (
        _load(
            client, "m", publish_model(store_root, "m", labelled_classifier_onnx(3)), serve=False
        ).status_code
        == 200
    )
    assert client.get("/v2/models/m").json()["versions"] == ["1", "2", "3", "4"]
    # A version loaded with serve false leaves the split alone; loaded as served, it clears the split.
    assert client.get("/v2/models/m").json()["parameters"]["traffic"]["weights"] == {"1": 90, "2": 10}
    answer = load(client, "m", version="4")
    assert answer.status_code == 200 and answer.json()["served_version"] == "4"
    assert client.get("/v2/models/m").json()["parameters"]["traffic"] == {
        "weights": {"4": 100},
        "shadow": None,
    }
    assert set(_answers(client, [f"x{i}" for i in range(20)])) == {"4"}
    assert (
        client.post("/v2/repository/models/m/unload", json={"parameters": {"version": "2"}}).status_code
        == 200
    )


def test_a_restarted_server_restores_the_traffic_from_its_state(start_server, tmp_path, store_root):
    state_dir = tmp_path / "state"
    first = start_server(state_dir)
    client = first.client()
    assert _load(client, "m", publish_model(store_root, "m", labelled_classifier_onnx(0))).status_code == 200
    assert (
        _load(
            client, "m", publish_model(store_root, "m", labelled_classifier_onnx(1)), serve=False
        ).status_code
        == 200
    )
    traffic = {
        "weights": {"1": 50, "2": 50},
        "shadow": {"version": "2", "percent": 25, "atol": 0.001, "rtol": 0.01},
    }
    assert _traffic(client, "m", traffic).json()["traffic"] == traffic
    assert json.loads((state_dir / "state.json").read_text())["m"]["traffic"] == traffic
    ids = [f"r{i}" for i in range(80)]
    before = _answers(client, ids)
    client.close()
    first.stop()

    second = start_server(
        state_dir, app=create_app(state_dir, config=ServerConfig(allow_roots=(tmp_path.as_uri(),)))
    )
    client = second.client()
    assert client.get("/v2/models/m").json()["parameters"]["traffic"] == traffic
    assert client.get("/v2/models/m").json()["parameters"]["served_version"] == "1"
    assert _answers(client, ids) == before
    assert (
        client.post("/v2/repository/models/m/unload", json={"parameters": {"version": "2"}}).status_code
        == 409
    )


def test_a_restart_drops_the_part_of_the_traffic_whose_version_did_not_restore(
    start_server, tmp_path, store_root
):
    state_dir = tmp_path / "state"
    first = start_server(state_dir)
    client = first.client()
    assert _load(client, "m", publish_model(store_root, "m", labelled_classifier_onnx(0))).status_code == 200
    shadow_uri = publish_model(store_root, "m", labelled_classifier_onnx(1))
    assert _load(client, "m", shadow_uri, serve=False).status_code == 200
    assert _traffic(client, "m", {"weights": {"1": 100}, "shadow": {"version": "2"}}).status_code == 200
    client.close()
    first.stop()
    (store_root / "m" / "2" / "model.onnx").write_bytes(b"changed after publishing")

    config = ServerConfig(allow_roots=(tmp_path.as_uri(),))
    second = start_server(state_dir, app=create_app(state_dir, config=config))
    client = second.client()
    parameters = client.get("/v2/models/m").json()["parameters"]
    assert parameters["traffic"] == {"weights": {"1": 100}, "shadow": None}
    assert set(_answers(client, [f"r{i}" for i in range(10)])) == {"1"}

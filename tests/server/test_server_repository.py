"""The model repository extension: load, replace, roll back, unload, persist, read from S3."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from tests.fixtures.server_testkit import classifier_onnx, classifier_signature, load, predict_direct, publish

from mlspec.storage import resolve_file_uri

X = np.random.default_rng(11).normal(size=(4, 64)).astype(np.float32)


def _predict(client: httpx.Client, path: str = "/v2/models/digits/infer") -> tuple[str, np.ndarray]:
    tensor = {"name": "input", "shape": list(X.shape), "datatype": "FP32", "data": X.reshape(-1).tolist()}
    body = {"inputs": [tensor]}
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    payload = response.json()
    answer = np.asarray(payload["outputs"][0]["data"], dtype=np.float32).reshape(4, 10)
    return payload["model_version"], answer


@pytest.fixture
def client(server):
    with server.client(timeout=30) as http:
        yield http


def test_a_new_version_replaces_the_served_one_only_when_loaded(client, publish_classifier):
    v1 = publish_classifier("digits", 1)
    v2 = publish_classifier("digits", 2)
    assert load(client, "digits", v1, "1").status_code == 200
    version, before = _predict(client)
    assert version == "1"
    np.testing.assert_array_equal(before, predict_direct(classifier_onnx(1), X))

    response = load(client, "digits", v2)  # no version given: taken from the manifest
    assert response.status_code == 200, response.text
    assert response.json()["served_version"] == "2"
    version, after = _predict(client)
    assert version == "2"
    np.testing.assert_array_equal(after, predict_direct(classifier_onnx(2), X))
    assert not np.array_equal(before, after)
    # Both stay loaded and addressable; metadata says which one serves.
    assert _predict(client, "/v2/models/digits/versions/1/infer")[0] == "1"
    metadata = client.get("/v2/models/digits").json()
    assert metadata["versions"] == ["1", "2"]
    assert metadata["parameters"]["served_version"] == "2"


def test_loading_a_loaded_version_serves_it_again_without_a_new_session(server, client, publish_classifier):
    v1 = publish_classifier("digits", 1)
    v2 = publish_classifier("digits", 2)
    load(client, "digits", v1, "1")
    session_v1 = server.repository.get("digits", "1").session
    load(client, "digits", v2, "2")
    # Rollback: by version only (still in memory), and by version + the same URI.
    for body in ({"version": "1"}, {"version": "1", "storage_uri": v1 + "/"}):
        response = client.post("/v2/repository/models/digits/load", json={"parameters": body})
        assert response.status_code == 200, response.text
        assert _predict(client)[0] == "1"
        assert server.repository.get("digits", "1").session is session_v1
        load(client, "digits", version="2")
        assert _predict(client)[0] == "2"


def test_a_failed_load_leaves_the_served_version_serving(client, publish_classifier, store_root):
    v1 = publish_classifier("digits", 1)
    load(client, "digits", v1, "1")

    # Version 2: model.onnx changed after publishing -> its sha256 no longer matches the manifest.
    v2 = publish_classifier("digits", 2)
    (resolve_file_uri(v2) / "model.onnx").write_bytes(classifier_onnx(3))
    response = load(client, "digits", v2, "2")
    assert response.status_code == 400
    error = response.json()["error"]
    assert "model.onnx has sha256" in error and "version 1 keeps serving" in error
    assert _predict(client)[0] == "1"

    # Version 3: published intact, but not a model onnxruntime can open.
    v3 = publish(store_root, "digits", b"\x08\x07garbage", classifier_signature(), "run-corrupt")
    response = load(client, "digits", v3, "3")
    assert response.status_code == 400
    assert "onnxruntime refused model.onnx" in response.json()["error"]
    assert _predict(client)[0] == "1"

    # Version 4: a signature that does not describe the model.
    signature = classifier_signature()
    signature["inputs"][0]["name"] = "pixels"
    v4 = publish(store_root, "digits", classifier_onnx(4), signature, "run-bad-signature")
    response = load(client, "digits", v4, "4")
    assert response.status_code == 400
    assert "declares inputs ['pixels']" in response.json()["error"]

    # Version 5: asked for as version 6 -> the manifest disagrees.
    v5 = publish_classifier("digits", 5)
    response = load(client, "digits", v5, "6")
    assert response.status_code == 400 and "manifest.json is for version 5" in response.json()["error"]

    version, answer = _predict(client)
    assert version == "1"
    np.testing.assert_array_equal(answer, predict_direct(classifier_onnx(1), X))
    states = {row["version"]: row["state"] for row in client.post("/v2/repository/index").json()}
    assert states == {"1": "READY", **{v: "UNAVAILABLE" for v in ("2", "3", "4", "6")}}
    assert client.get("/v2/models/digits/versions/2/ready").status_code == 503
    ready_only = client.post("/v2/repository/index", json={"ready": True}).json()
    assert [(row["version"], row["served"]) for row in ready_only] == [("1", True)]


def test_unload_one_version_or_the_whole_model(client, publish_classifier):
    v1 = publish_classifier("digits", 1)
    v2 = publish_classifier("digits", 2)
    load(client, "digits", v1, "1")
    load(client, "digits", v2, "2")
    response = client.post("/v2/repository/models/digits/unload", json={"parameters": {"version": "2"}})
    assert response.status_code == 200
    assert response.json()["served_version"] == "1"  # the served one went: the one served before it serves
    assert _predict(client)[0] == "1"
    assert client.get("/v2/models/digits/versions/2").status_code == 404

    assert client.post("/v2/repository/models/digits/unload").status_code == 200
    assert client.get("/v2/models/digits").status_code == 404
    assert client.post("/v2/repository/index").json() == []


def test_old_versions_are_unloaded_beyond_the_limit(start_server, publish_classifier):
    server = start_server(max_loaded_versions=2)
    with server.client(timeout=30) as client:
        uris = [publish_classifier("digits", seed) for seed in (1, 2, 3)]
        for version, uri in enumerate(uris, start=1):
            assert load(client, "digits", uri, str(version)).status_code == 200
        # Version 1 was evicted; 2 (the rollback target) and 3 (served) stay.
        assert client.get("/v2/models/digits").json()["versions"] == ["2", "3"]
        assert load(client, "digits", version="2").status_code == 200
        assert load(client, "digits", uris[0], "1").status_code == 200  # reloading from storage works
        assert client.get("/v2/models/digits").json()["versions"] == ["1", "2"]


def test_a_restarted_server_serves_what_it_served_before(start_server, publish_classifier, tmp_path):
    state_dir = tmp_path / "server-state"
    first = start_server(state_dir)
    v1 = publish_classifier("digits", 1)
    v2 = publish_classifier("digits", 2)
    iris_model = classifier_onnx(9, features=4, classes=3)
    iris = publish(tmp_path / "other", "iris", iris_model, classifier_signature(4, 3), "r")
    with first.client(timeout=30) as client:
        load(client, "digits", v1, "1")
        load(client, "digits", v2, "2")
        load(client, "digits", version="1")  # rolled back: 1 serves, 2 stays loaded
        load(client, "iris", iris, "1")
        before = _predict(client)
    state = json.loads((state_dir / "state.json").read_text())
    assert state == {
        "digits": {"served_version": "1", "versions": {"1": v1, "2": v2}},
        "iris": {"served_version": "1", "versions": {"1": iris}},
    }
    first.stop()

    second = start_server(state_dir)
    with second.client(timeout=30) as client:
        assert client.get("/v2/health/ready").status_code == 200
        version, answer = _predict(client)
        assert (version, answer.tolist()) == (before[0], before[1].tolist())
        assert client.get("/v2/models/digits").json()["versions"] == ["1", "2"]
        assert client.get("/v2/models/iris/ready").status_code == 200
        client.post("/v2/repository/models/iris/unload")
    assert set(json.loads((state_dir / "state.json").read_text())) == {"digits"}


def test_a_version_that_cannot_be_restored_is_reported_and_kept(start_server, publish_classifier, tmp_path):
    state_dir = tmp_path / "server-state"
    v1 = publish_classifier("digits", 1)
    state_dir.mkdir()
    state = {"digits": {"served_version": "2", "versions": {"1": v1, "2": v1[: -len("/1")] + "/2"}}}
    (state_dir / "state.json").write_text(json.dumps(state))
    server = start_server(state_dir)
    with server.client(timeout=30) as client:
        # The version that served before is missing: the model says so, and version 1 (loaded) does
        # not silently answer in its place.
        response = client.post("/v2/models/digits/infer", json={"inputs": []})
        assert response.status_code == 503
        assert "version 2, which this server served before its restart" in response.json()["error"]
        assert _predict(client, "/v2/models/digits/versions/1/infer")[0] == "1"
        rows = {row["version"]: row for row in client.post("/v2/repository/index").json()}
        assert rows["1"]["state"] == "READY" and rows["1"]["served"] is False
        assert rows["2"]["state"] == "UNAVAILABLE" and "does not exist" in rows["2"]["reason"]
        assert json.loads((state_dir / "state.json").read_text()) == state
        # Serving version 1 is an explicit decision; version 2 stays recorded until it is unloaded.
        assert load(client, "digits", version="1").status_code == 200
        assert _predict(client)[0] == "1"
        assert json.loads((state_dir / "state.json").read_text())["digits"]["versions"] == state["digits"]["versions"]
        unload = client.post("/v2/repository/models/digits/unload", json={"parameters": {"version": "2"}})
        assert unload.status_code == 200
    assert json.loads((state_dir / "state.json").read_text()) == {
        "digits": {"served_version": "1", "versions": {"1": v1}}
    }


def test_a_version_is_loaded_from_s3(start_server, s3_server):
    import boto3

    from mlspec.server.app import ServerConfig

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="models")
    files = {
        "model.onnx": classifier_onnx(5),
        "signature.json": json.dumps(classifier_signature()).encode(),
    }
    hashes = {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}
    manifest = {"name": "digits", "version": 3, "run_id": "r", "files": hashes}
    files["manifest.json"] = json.dumps(manifest).encode()
    for name, data in files.items():
        s3.put_object(Bucket="models", Key=f"team/digits/3/{name}", Body=data)

    server = start_server(config=ServerConfig(allow_roots=("s3://models/team",)))
    client = server.client()
    response = load(client, "digits", "s3://models/team/digits/3", "3")
    assert response.status_code == 200, response.text
    version, answer = _predict(client)
    assert version == "3"
    np.testing.assert_array_equal(answer, predict_direct(classifier_onnx(5), X))

    response = load(client, "digits", "s3://models/team/digits/4", "4")
    assert response.status_code == 400
    assert "s3://models/team/digits/4/manifest.json does not exist" in response.json()["error"]
    assert _predict(client)[0] == "3"


def test_file_uris_relative_to_mlspec_home_are_read(client, mlspec_home: Path):
    uri = publish(mlspec_home / "models", "digits", classifier_onnx(1), classifier_signature(), "run-home")
    relative = "file://models/digits/1"
    assert uri == (mlspec_home / "models" / "digits" / "1").as_uri()
    assert load(client, "digits", relative, "1").status_code == 200
    assert _predict(client)[0] == "1"

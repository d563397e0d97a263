"""Who may change what the server serves, and from where: the admin token, `--auth token`, storage roots.

Issue 9, "Broken" 1: anyone who reached the server could replace production with any folder on the
disk under the same version number, unload models, and learn which paths exist.
"""

from __future__ import annotations

import os
import stat

import numpy as np
from tests.fixtures.server_testkit import TEST_TOKEN, classifier_onnx, load, predict_direct

X = np.random.default_rng(3).normal(size=(2, 64)).astype(np.float32)


def _body() -> dict:
    return {
        "inputs": [{"name": "input", "shape": [2, 64], "datatype": "FP32", "data": X.reshape(-1).tolist()}]
    }


def test_the_repository_api_needs_the_admin_token(server, publish_classifier):
    uri = publish_classifier("digits", 1)
    with server.client(token=None) as anonymous, server.client(token="not-the-token") as wrong:
        for client in (anonymous, wrong):
            for path, body in [
                ("/v2/repository/models/digits/load", {"parameters": {"storage_uri": uri}}),
                ("/v2/repository/models/digits/unload", {}),
                ("/v2/repository/index", {}),
            ]:
                response = client.post(path, json=body)
                assert response.status_code == 401, path
                assert response.headers["www-authenticate"].startswith("Bearer")
                assert "token" in response.json()["error"]
        assert server.repository.index() == []
    with server.client() as admin:
        assert load(admin, "digits", uri).status_code == 200
        assert admin.post("/v2/repository/index").status_code == 200
    with server.client(token=None) as anonymous:
        # Inference and metadata stay open by default (auth "admin"); unload does not.
        assert anonymous.post("/v2/models/digits/infer", json=_body()).status_code == 200
        assert anonymous.post("/v2/repository/models/digits/unload").status_code == 401
        assert anonymous.get("/v2/models/digits/ready").status_code == 200


def test_auth_token_protects_inference_and_metadata_too(start_server, publish_classifier, tmp_path):
    from mlspec.server.app import ServerConfig

    server = start_server(config=ServerConfig(auth="token", allow_roots=(tmp_path.as_uri(),)))
    with server.client() as admin:
        assert load(admin, "digits", publish_classifier("digits", 1)).status_code == 200
        assert admin.post("/v2/models/digits/infer", json=_body()).status_code == 200
    with server.client(token=None) as anonymous:
        assert anonymous.post("/v2/models/digits/infer", json=_body()).status_code == 401
        assert anonymous.get("/v2/models/digits").status_code == 401
        assert anonymous.get("/v2/models/digits/ready").status_code == 401
        # Probes stay open.
        assert anonymous.get("/v2/health/live").status_code == 200
        assert anonymous.get("/v2/health/ready").status_code == 200
        assert anonymous.get("/v2").status_code == 200


def test_the_token_is_generated_into_the_state_folder_with_mode_0600(start_server, tmp_path, monkeypatch):
    from mlspec.home import read_server_token

    monkeypatch.delenv("MLSPEC_SERVER_TOKEN")
    state_dir = tmp_path / "state"
    server = start_server(state_dir)
    token_file = state_dir / "token"
    token = token_file.read_text().strip()
    assert len(token) >= 32
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert read_server_token(state_dir) == token
    with server.client(token=token) as admin:
        assert admin.post("/v2/repository/index").status_code == 200
    with server.client(token=TEST_TOKEN) as other:
        assert other.post("/v2/repository/index").status_code == 401
    server.stop()
    # A restart keeps the token; MLSPEC_SERVER_TOKEN, when set, wins over the file.
    again = start_server(state_dir)
    assert (state_dir / "token").read_text().strip() == token
    with again.client(token=token) as admin:
        assert admin.post("/v2/repository/index").status_code == 200
    monkeypatch.setenv("MLSPEC_SERVER_TOKEN", "from-the-environment")
    assert read_server_token(state_dir) == "from-the-environment"


def test_loads_read_only_below_the_allowed_roots(server, publish_classifier, tmp_path):
    inside = publish_classifier("digits", 1)
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    link = tmp_path / "models" / "escape"
    link.symlink_to(outside, target_is_directory=True)
    with server.client() as client:
        refused = {
            "file:///etc": "outside the roots",
            "file:///nowhere/digits/2": "outside the roots",
            outside.as_uri(): "outside the roots",
            link.as_uri() + "/digits/1": "outside the roots",
            inside + "/../../../..": "'..'",
            inside.replace("/digits/1", "/digits/%2E%2E/%2e%2e/../digits/1"): "'..'",
            "s3://someone-elses-bucket/digits/1": "outside the roots",
            "http://example.invalid/digits/1": "unsupported storage URI scheme",
        }
        messages = set()
        for uri, fragment in refused.items():
            response = load(client, "digits", uri, "1")
            assert response.status_code in (400, 403), uri
            assert fragment in response.json()["error"], uri
            if fragment == "outside the roots":
                assert response.status_code == 403, uri
                messages.add(response.json()["error"].replace(uri.rstrip("/"), "<uri>"))
        # Existing and missing paths outside the roots get the same answer: nothing is revealed.
        assert len(messages) == 1
        assert client.post("/v2/repository/index").json() == []
        assert load(client, "digits", inside).status_code == 200


def test_a_loaded_version_is_never_replaced_by_another_folder(server, publish_classifier):
    v1 = publish_classifier("digits", 1)
    other = publish_classifier("digits-copy", 7)  # a real, published model elsewhere under the roots
    with server.client() as client:
        assert load(client, "digits", v1, "1").status_code == 200
        swapped = load(client, "digits", other, "1")  # its manifest names digits-copy
        assert swapped.status_code in (400, 409)
        response = client.post("/v2/models/digits/infer", json=_body())
        got = np.asarray(response.json()["outputs"][0]["data"], dtype=np.float32).reshape(2, 10)
        np.testing.assert_array_equal(got, predict_direct(classifier_onnx(1), X))
        # Same number, another folder of the same model: 409, the loaded version stays.
        os.makedirs(
            server.repository.get("digits").storage_uri.replace("file://", "") + "-copy", exist_ok=True
        )
        conflict = load(client, "digits", v1 + "-copy", "1")
        assert conflict.status_code == 409
        assert "already loaded from" in conflict.json()["error"]
        assert server.repository.get("digits", "1").storage_uri == v1


def test_a_version_folder_of_another_model_is_refused(server, publish_classifier):
    iris = publish_classifier("iris", 1)
    with server.client() as client:
        response = load(client, "digits", iris, "1")
        assert response.status_code == 400
        assert "is for model 'iris'" in response.json()["error"]

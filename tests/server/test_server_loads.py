"""Loads under faults: storage that never answers, concurrent loads, size and count caps, state writes
that fail, unreadable state files, versions that fail their checks at restart, SIGTERM.

Issue 9, "Broken" 3 and the server items of "Weak".
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from tests.fixtures.ports import free_port
from tests.fixtures.processes import server_process
from tests.fixtures.server_testkit import TEST_TOKEN, auth_headers, classifier_onnx, load, predict_direct

from mlspec.storage import resolve_file_uri

X = np.random.default_rng(5).normal(size=(2, 64)).astype(np.float32)


def _infer(client: httpx.Client, path: str = "/v2/models/digits/infer") -> httpx.Response:
    tensor = {"name": "input", "shape": [2, 64], "datatype": "FP32", "data": X.reshape(-1).tolist()}
    return client.post(path, json={"inputs": [tensor]})


def _config(tmp_path: Path, **overrides):
    from mlspec.server.app import ServerConfig

    return ServerConfig(allow_roots=(tmp_path.as_uri(),), **overrides)


def _wait_for(predicate, what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


class Gate:
    """Stands in for storage that does not answer: build_version waits until the test opens the gate."""

    def __init__(self, monkeypatch) -> None:
        import mlspec.server.repository as repository

        self.real = repository.build_version
        self.entered = threading.Event()
        self.open = threading.Event()
        monkeypatch.setattr(repository, "build_version", self)

    def __call__(self, *args, **kwargs):
        self.entered.set()
        self.open.wait(timeout=120)
        return self.real(*args, **kwargs)


def test_a_load_that_never_finishes_times_out_and_inference_goes_on(
    start_server, publish_classifier, tmp_path, monkeypatch
):
    server = start_server(config=_config(tmp_path, load_timeout_s=1, max_concurrent_loads=1))
    client = server.client()
    assert load(client, "digits", publish_classifier("digits", 1)).status_code == 200
    stuck_uri = publish_classifier("stuck", 1)
    gate = Gate(monkeypatch)

    timed_out = load(client, "stuck", stuck_uri, "1")
    assert timed_out.status_code == 504 and "did not finish within 1s" in timed_out.json()["error"]
    # The stuck load still holds its model and the only load slot: a second load of the model is
    # refused at once, a load of another model waits for a slot no longer than the timeout.
    again = load(client, "stuck", stuck_uri, "1")
    assert again.status_code == 409 and "in progress" in again.json()["error"]
    other = load(client, "other", publish_classifier("other", 2), "1")
    assert other.status_code == 504 and "load slot" in other.json()["error"]
    # Inference, probes and metadata never wait for loads.
    for _ in range(20):
        assert _infer(client).status_code == 200
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2/models/digits").status_code == 200

    # Storage answers at last: the load that was reported as timed out does not go on to serve.
    gate.open.set()
    _wait_for(lambda: server.repository.busy("stuck") is None, "the stuck load to end")
    assert client.get("/v2/models/stuck/ready").status_code == 503
    rows = {row["name"]: row for row in client.post("/v2/repository/index").json()}
    assert rows["stuck"]["state"] == "UNAVAILABLE" and "load timeout" in rows["stuck"]["reason"]
    assert load(client, "stuck", stuck_uri, "1").status_code == 200  # and it can be loaded now
    client.close()


def test_a_fifo_instead_of_a_file_is_refused_without_blocking(server, publish_classifier):
    uri = publish_classifier("digits", 1)
    folder = resolve_file_uri(uri)
    (folder / "manifest.json").unlink()
    os.mkfifo(folder / "manifest.json")
    with server.client() as client:
        response = load(client, "digits", uri, "1")
        assert response.status_code == 400
        assert "manifest.json is not a regular file" in response.json()["error"]


def test_a_second_load_of_the_same_model_answers_409(server, publish_classifier, monkeypatch):
    v1, v2 = publish_classifier("digits", 1), publish_classifier("digits", 2)
    gate = Gate(monkeypatch)
    result: dict = {}

    def first_load() -> None:
        with server.client() as own:
            result["response"] = load(own, "digits", v1, "1")

    caller = threading.Thread(target=first_load)
    caller.start()
    try:
        assert gate.entered.wait(timeout=30)
        with server.client() as client:
            second = load(client, "digits", v2, "2")
            assert second.status_code == 409 and "a load of version 1" in second.json()["error"]
            unload = client.post("/v2/repository/models/digits/unload")
            assert unload.status_code == 409
            # Another model loads meanwhile.
            gate.open.set()
            assert load(client, "iris", publish_classifier("iris", 3), "1").status_code == 200
    finally:
        gate.open.set()
        caller.join(timeout=60)
    assert result["response"].status_code == 200


def test_model_files_over_the_size_cap_are_refused(start_server, publish_classifier, tmp_path):
    server = start_server(config=_config(tmp_path, max_model_bytes=1000))
    with server.client() as client:
        response = load(client, "digits", publish_classifier("digits", 1), "1")
    assert response.status_code == 400
    assert "over the server's limit of 1000 bytes" in response.json()["error"]


def test_the_number_of_loaded_models_is_capped(start_server, publish_classifier, tmp_path):
    server = start_server(config=_config(tmp_path, max_models=2))
    with server.client() as client:
        assert load(client, "a", publish_classifier("a", 1)).status_code == 200
        assert load(client, "b", publish_classifier("b", 2)).status_code == 200
        c = publish_classifier("c", 3)
        refused = load(client, "c", c)
        assert refused.status_code == 507 and "limit (--max-models)" in refused.json()["error"]
        assert load(client, "a", publish_classifier("a", 4)).status_code == 200  # a new version is fine
        assert client.post("/v2/repository/models/b/unload").status_code == 200
        assert load(client, "c", c).status_code == 200


def test_a_failed_load_of_a_made_up_model_leaves_the_server_ready(server, publish_classifier, store_root):
    with server.client() as client:
        assert load(client, "digits", publish_classifier("digits", 1)).status_code == 200
        missing = load(client, "made-up", (store_root / "made-up" / "1").as_uri(), "1")
        assert missing.status_code == 400
        assert client.get("/v2/health/ready").status_code == 200
        assert client.get("/v2/models/digits/ready").status_code == 200
        assert client.get("/v2/models/made-up/ready").status_code == 503


def test_a_load_is_done_only_once_the_state_is_written(start_server, publish_classifier, tmp_path):
    state_dir = tmp_path / "state"
    server = start_server(state_dir)
    v1, v2 = publish_classifier("digits", 1), publish_classifier("digits", 2)
    with server.client() as client:
        assert load(client, "digits", v1).status_code == 200
        saved = (state_dir / "state.json").read_text()
        # state.json can no longer be replaced (a directory stands in its place).
        (state_dir / "state.json").unlink()
        (state_dir / "state.json").mkdir()
        (state_dir / "state.json" / "keep").write_text("x")
        response = load(client, "digits", v2)
        assert response.status_code == 500
        assert "could not write its state" in response.json()["error"]
        assert "version 1 keeps serving" in response.json()["error"]
        assert _infer(client).json()["model_version"] == "1"
        assert client.post("/v2/repository/models/digits/unload").status_code == 500
        assert _infer(client).json()["model_version"] == "1"
        shutil.rmtree(state_dir / "state.json")
        (state_dir / "state.json").write_text(saved)
        assert load(client, "digits", v2).status_code == 200
    assert json.loads((state_dir / "state.json").read_text())["digits"]["served_version"] == "2"
    assert not [p for p in state_dir.iterdir() if p.name.startswith(".state.json.")]  # no temporary left


@pytest.mark.parametrize(
    "content",
    [
        '{"digits": {"served_version": "1", "vers',
        "[1, 2]",
        '{"digits": []}',
        '{"digits": {"versions": {"1": 5}}}',
    ],
)
def test_an_unreadable_state_file_is_set_aside_with_a_clear_log_line(start_server, tmp_path, caplog, content):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "state.json").write_text(content)
    with caplog.at_level(logging.ERROR, logger="mlspec.server.repository"):
        server = start_server(state_dir)
    aside = [p for p in state_dir.iterdir() if p.name.startswith("state.json.unreadable-")]
    assert len(aside) == 1 and aside[0].read_text() == content
    assert not (state_dir / "state.json").exists()
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("is unreadable" in m and str(aside[0]) in m for m in messages), messages
    with server.client() as client:
        assert client.get("/v2/health/ready").status_code == 200
        assert client.post("/v2/repository/index").json() == []


def test_a_served_version_that_fails_its_checks_at_restart_is_reported_not_replaced(
    start_server, publish_classifier, tmp_path
):
    state_dir = tmp_path / "state"
    v1, v2 = publish_classifier("digits", 1), publish_classifier("digits", 2)
    first = start_server(state_dir)
    with first.client() as client:
        assert load(client, "digits", v1).status_code == 200
        assert load(client, "digits", v2).status_code == 200
    first.stop()
    (resolve_file_uri(v2) / "model.onnx").write_bytes(classifier_onnx(9))  # corrupted after publishing

    second = start_server(state_dir)
    with second.client() as client:
        response = _infer(client)
        assert response.status_code == 503
        assert "version 2, which this server served before its restart" in response.json()["error"]
        assert "sha256" in response.json()["error"]
        assert client.get("/v2/models/digits/ready").status_code == 503
        rows = {row["version"]: row for row in client.post("/v2/repository/index").json()}
        assert rows["2"]["state"] == "UNAVAILABLE" and "sha256" in rows["2"]["reason"]
        assert rows["1"]["state"] == "READY" and rows["1"]["served"] is False
        answer = _infer(client, "/v2/models/digits/versions/1/infer").json()["outputs"][0]["data"]
        np.testing.assert_array_equal(
            np.asarray(answer, np.float32).reshape(2, 10), predict_direct(classifier_onnx(1), X)
        )
    assert json.loads((state_dir / "state.json").read_text()) == {
        "digits": {"served_version": "2", "versions": {"1": v1, "2": v2}}
    }


def test_sigterm_stops_the_server_while_a_load_hangs_on_storage(tmp_path):
    """`mlspec serve` reading S3 from an endpoint that accepts connections and never answers."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # connections complete in the backlog; nobody ever reads or answers
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "MLSPEC_SERVER_TOKEN": TEST_TOKEN,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{silent.getsockname()[1]}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    argv = [
        Path(sys.executable).parent / "mlspec",
        "serve",
        "--port",
        str(port),
        "--state-dir",
        str(tmp_path / "state"),
        "--allow-root",
        "s3://hung",
        "--load-timeout",
        "2",
        "--max-concurrent-loads",
        "1",
        "--shutdown-timeout",
        "3",
    ]
    try:
        with server_process(
            argv,
            health_url=f"{url}/v2/health/live",
            log_path=tmp_path / "server.log",
            what="mlspec serve",
            timeout_s=60,
            env=env,
        ) as process:
            body = {"parameters": {"storage_uri": "s3://hung/digits/1", "version": "1"}}
            timed_out = httpx.post(
                f"{url}/v2/repository/models/digits/load", json=body, headers=auth_headers(), timeout=30
            )
            assert timed_out.status_code == 504, timed_out.text
            assert httpx.get(f"{url}/v2/health/live", timeout=5).status_code == 200
            # One more load in flight while SIGTERM arrives.
            waiting = threading.Thread(
                target=lambda: httpx.post(
                    f"{url}/v2/repository/models/x/load", json=body, headers=auth_headers(), timeout=30
                ),
                daemon=True,
            )
            waiting.start()
            time.sleep(0.5)
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except Exception:
                pytest.fail(
                    "SIGTERM did not stop the server:\n" + (tmp_path / "server.log").read_text()[-3000:]
                )
            assert process.returncode is not None
    finally:
        silent.close()

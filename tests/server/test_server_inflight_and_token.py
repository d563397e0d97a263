"""Bytes in flight are capped across requests, and a short admin token is refused at start (issue 17,
weak findings: six concurrent 60 MB bodies took the server to 1 GB; a 22-character token was accepted).
"""

from __future__ import annotations

import json
import socket
import time

import pytest
from tests.fixtures.server_testkit import load

MIB = 1024 * 1024
ROW = [0.5] * 64
GOOD = json.dumps({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": ROW}]}).encode()


def _headers(length: int) -> bytes:
    return (
        "POST /v2/models/digits/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    stream = sock.makefile("rb")
    status = int(stream.readline().split()[1])
    headers = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        key, _, value = line.decode().partition(":")
        headers[key.strip().lower()] = value.strip()
    return status, headers, stream.read(int(headers.get("content-length", 0)))


def _until(condition, what: str, timeout_s: float = 20) -> None:
    """Poll a server-side condition (not a sleep standing in for one)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def capped(start_server, publish_classifier, tmp_path):
    from mlspec.server.app import ServerConfig
    from mlspec.server.tensors import Limits

    config = ServerConfig(
        allow_roots=(tmp_path.as_uri(),), limits=Limits(max_body_bytes=1 * MIB), max_inflight_bytes=2 * MIB
    )
    server = start_server(config=config)
    with server.client() as client:
        assert load(client, "digits", publish_classifier("digits", 1), "1").status_code == 200
    return server


def test_a_request_over_the_bytes_in_flight_is_answered_503_with_retry_after(capped):
    body = GOOD + b" " * (MIB - len(GOOD))  # valid JSON of exactly the largest body size
    waiting = []
    for _ in range(2):  # two bodies of 1 MiB each, half sent: they hold the whole 2 MiB cap
        sock = socket.create_connection(("127.0.0.1", capped.port), timeout=30)
        sock.sendall(_headers(len(body)) + body[: MIB // 2])
        waiting.append(sock)
    _until(lambda: capped.app.inflight == 2 * MIB, "the two bodies to be counted in flight")

    with socket.create_connection(("127.0.0.1", capped.port), timeout=30) as third:
        third.sendall(_headers(len(body)))  # refused before its body is read
        status, headers, answer = _answer(third)
    assert status == 503
    assert headers["retry-after"] == "1"
    error = json.loads(answer)["error"]
    assert "holding 2097152 bytes of request bodies" in error and "limit across requests is 2097152" in error

    for sock in waiting:  # the first two finish and are answered
        sock.sendall(body[MIB // 2 :])
        status, _, answer = _answer(sock)
        assert status == 200, answer
        sock.close()
    _until(lambda: capped.app.inflight == 0, "the answered bodies to be released")
    with capped.client() as client:  # room again
        assert client.post("/v2/models/digits/infer", content=body).status_code == 200
    assert capped.app.inflight == 0


def test_a_client_that_leaves_mid_body_releases_its_bytes(capped):
    sock = socket.create_connection(("127.0.0.1", capped.port), timeout=30)
    sock.sendall(_headers(MIB) + b"{")
    _until(lambda: capped.app.inflight == MIB, "the body to be counted in flight")
    sock.close()
    _until(lambda: capped.app.inflight == 0, "the abandoned body to be released")


def test_the_cap_must_admit_the_largest_body_and_comes_from_the_environment(monkeypatch, tmp_path):
    from mlspec.server.app import ServerConfig, create_app, max_inflight_bytes_from_env
    from mlspec.server.errors import ServerSetupError
    from mlspec.server.tensors import Limits

    with pytest.raises(ServerSetupError, match="below the largest request body.*--max-inflight-mb"):
        create_app(config=ServerConfig(limits=Limits(max_body_bytes=8 * MIB), max_inflight_bytes=4 * MIB))
    monkeypatch.setenv("MLSPEC_SERVER_MAX_INFLIGHT_MB", "512")
    assert max_inflight_bytes_from_env() == 512 * MIB
    monkeypatch.setenv("MLSPEC_SERVER_MAX_INFLIGHT_MB", "lots")
    with pytest.raises(ServerSetupError, match="MLSPEC_SERVER_MAX_INFLIGHT_MB='lots' is not a positive"):
        max_inflight_bytes_from_env()


SHORT = "x" * 22  # the length that was accepted


def test_a_short_token_is_refused_at_start_naming_where_it_came_from(monkeypatch, tmp_path):
    from mlspec.server.app import ServerConfig, create_app
    from mlspec.server.errors import ServerSetupError

    monkeypatch.setenv("MLSPEC_SERVER_TOKEN", SHORT)
    with pytest.raises(ServerSetupError, match="MLSPEC_SERVER_TOKEN is 22 characters; it needs at least 32"):
        create_app(tmp_path / "state")
    with pytest.raises(ServerSetupError, match=r"ServerConfig\.token"):
        create_app(config=ServerConfig(token=SHORT))

    monkeypatch.delenv("MLSPEC_SERVER_TOKEN")
    state = tmp_path / "state"
    state.mkdir()
    (state / "token").write_text(SHORT + "\n")
    (state / "token").chmod(0o600)
    with pytest.raises(ServerSetupError, match=f"the token file {state / 'token'} is 22 characters.*delete"):
        create_app(state)
    (state / "token").unlink()
    create_app(state)  # the server generates a long one
    assert len((state / "token").read_text().strip()) >= 32


def _serve(argv: list[str]) -> int | None:
    """`mlspec serve ...` in a thread: its exit code, or None when it is still serving after 30 s."""
    import threading

    from mlspec.cli import main

    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(main(["serve", "--port", "0", *argv])), daemon=True)
    thread.start()
    thread.join(30)
    return codes[0] if codes else None


def test_mlspec_serve_exits_with_the_message_instead_of_serving(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("MLSPEC_SERVER_TOKEN", SHORT)
    assert _serve(["--state-dir", str(tmp_path / "state")]) == 2
    message = capsys.readouterr().err
    assert "mlspec serve: the model server's admin token from MLSPEC_SERVER_TOKEN is 22" in message
    monkeypatch.setenv("MLSPEC_SERVER_TOKEN", "y" * 40)
    assert _serve(["--max-body-mb", "8", "--max-inflight-mb", "4"]) == 2
    assert "below the largest request body" in capsys.readouterr().err

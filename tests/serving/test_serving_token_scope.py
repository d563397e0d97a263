"""The model server's admin token goes only to the configured server (MLSPEC_SERVER_URL), never to a URL
taken from a spec (`serving.url`), an Asset event or a page request (issue 17, adversarial finding 1).

A real HTTP listener on a loopback port records every request's headers; deploy, the smoke test, the
status read (`mlspec status`, the operations) and the Models page aimed at it must not receive the token.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from tests.fixtures.paths import REPO, SPECS

from mlspec.errors import ServingError

ADMIN_TOKEN = "the-admin-token-of-the-configured-server-0123456789"
CONFIGURED = "http://127.0.0.1:8555"


class Listener:
    """An HTTP server on 127.0.0.1 that answers like a live, ready model server and records headers."""

    def __init__(self, post_status: int = 404) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                listener.requests.append((self.command, self.path, headers))
                body = json.dumps({"name": "digits", "versions": [], "parameters": {}}).encode()
                status = 200 if self.path.startswith("/v2/health") else 404
                self.send_response(post_status if self.command == "POST" else status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args) -> None:  # quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def authorizations(self) -> set[str | None]:
        return {headers.get("authorization") for _, _, headers in self.requests}

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def listener(monkeypatch: pytest.MonkeyPatch) -> Iterator[Listener]:
    monkeypatch.setenv("MLSPEC_SERVER_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("MLSPEC_SERVER_URL", CONFIGURED)
    server = Listener()
    yield server
    server.stop()


def _spec(url: str, *, auth: str = "none", connection: str | None = None):
    from mlspec.spec import load_spec_text

    serving = f"  auth: {auth}\n  url: {url}\n" + (f"  connection: {connection}\n" if connection else "")
    text = (SPECS / "digits.yaml").read_text().replace("  auth: none\n", serving, 1)
    spec = load_spec_text(text, "digits.yaml")
    assert spec.serving.url == url
    return spec


def _no_admin_token(listener: Listener) -> None:
    assert listener.requests, "the listener received nothing: the test proves nothing"
    assert listener.authorizations() == {None}
    assert not any(ADMIN_TOKEN in str(headers) for _, _, headers in listener.requests)


def test_deploy_to_a_spec_url_sends_no_admin_token(listener):
    from mlspec.serving import open_serving

    backend = open_serving(_spec(listener.url), store=None)
    with pytest.raises(ServingError):
        backend.deploy("digits", 1, "file:///nowhere/digits/1")
    _no_admin_token(listener)


def test_status_and_rollback_reads_on_a_spec_url_send_no_admin_token(listener):
    from mlspec.serving import Deployment, open_serving

    backend = open_serving(_spec(listener.url), store=None)
    assert backend.served_version("digits") is None  # `mlspec status`, promote, operations
    with pytest.raises(ServingError):
        backend.rollback(Deployment("local", "digits", 2, listener.url, "digits", previous_version=1))
    _no_admin_token(listener)


def test_the_models_page_sends_no_admin_token_to_a_spec_url(listener):
    from mlspec.ui.data import _served_version

    assert _served_version(_spec(listener.url), timeout_s=5) is None
    _no_admin_token(listener)


def test_the_models_page_sends_a_spec_connections_token_to_its_own_server(listener, monkeypatch):
    """serving.url with serving.connection: the page's serving read carries that connection's token, as deploy does
    (review item 8); a connection pointing elsewhere is a problem on the page naming it, and nothing is sent."""
    from mlspec.ui.data import _served_version, model_status

    port = int(listener.url.rsplit(":", 1)[1])
    monkeypatch.setenv("AIRFLOW_CONN_REMOTE_SERVER", json.dumps(
        {"conn_type": "http", "host": "127.0.0.1", "port": port, "password": "remote-token"}))
    monkeypatch.setenv("AIRFLOW_CONN_OTHER_SERVER", json.dumps(
        {"conn_type": "http", "host": "127.0.0.1", "port": port + 1, "password": "other-token"}))
    assert _served_version(_spec(listener.url, connection="remote_server"), timeout_s=5) is None
    assert listener.requests and listener.authorizations() == {"Bearer remote-token"}
    listener.requests.clear()
    status = model_status(_spec(listener.url, connection="other_server"), timeout_s=5)
    assert not status.serving_ok and not listener.requests
    assert any("serving unavailable" in p and "connection 'other_server'" in p for p in status.problems), status.problems


def test_the_smoke_test_sends_no_admin_token_to_a_spec_url(listener):
    from mlspec.serving.smoke_test import SmokeTestFailed, run_smoke_test, spec_settings

    spec = _spec(listener.url)
    settings = spec_settings(spec)
    assert settings["token"] is None
    signature = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
                 "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}]}
    with pytest.raises(SmokeTestFailed):
        run_smoke_test(endpoint_url=listener.url, model_name="digits", version=1,
                       x=np.zeros((2, 2), np.float32), expected={"probabilities": np.eye(2)},
                       signature=signature, **settings)
    _no_admin_token(listener)


def test_auth_token_with_a_foreign_url_and_no_connection_names_the_field_and_the_next_step(listener):
    from mlspec.serving.smoke_test import endpoint_token

    with pytest.raises(ServingError, match=r"serving\.url http://127\.0\.0\.1:\d+ is not the configured "
                       r"model server.*Airflow connection.*serving\.connection"):
        endpoint_token(_spec(listener.url, auth="token"))


def test_a_deploy_refused_for_want_of_a_token_says_why_none_was_sent(listener):
    from mlspec.serving import open_serving

    refusing = Listener(post_status=401)
    try:
        with pytest.raises(ServingError, match=r"HTTP 401.*serving\.url .* is not the configured model "
                           r"server .*serving\.connection"):
            open_serving(_spec(refusing.url), store=None).deploy("digits", 1, "file:///nowhere/digits/1")
        _no_admin_token(refusing)
    finally:
        refusing.stop()


def test_the_example_scoring_dag_sends_no_token_to_an_event_url(listener):
    import importlib.util

    path = REPO / "examples" / "score_on_new_model.py"
    module_spec = importlib.util.spec_from_file_location("score_on_new_model", path)
    example = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(example)
    extra = {"infer_url": f"{listener.url}/v2/models/digits/infer"}
    with pytest.raises(Exception, match="404"):
        example.score(extra, [[0.0, 1.0]], {"name": "x"})
    _no_admin_token(listener)


def test_the_configured_server_gets_the_admin_token(listener, monkeypatch):
    """The other side of the rule: the listener *is* the configured server, so deploy and status send it."""
    from mlspec.serving import open_serving

    monkeypatch.setenv("MLSPEC_SERVER_URL", listener.url + "/")
    assert open_serving(_spec(listener.url), store=None).served_version("digits") is None
    assert listener.authorizations() == {f"Bearer {ADMIN_TOKEN}"}


def test_a_connection_token_goes_only_to_the_connections_own_host(listener, monkeypatch):
    from mlspec.serving import open_serving

    port = int(listener.url.rsplit(":", 1)[1])
    monkeypatch.setenv("AIRFLOW_CONN_REMOTE_SERVER", json.dumps(
        {"conn_type": "http", "host": "127.0.0.1", "port": port, "password": "remote-token"}))
    monkeypatch.setenv("AIRFLOW_CONN_OTHER_SERVER", json.dumps(
        {"conn_type": "http", "host": "http://127.0.0.1", "port": port + 1, "password": "other-token"}))
    backend = open_serving(_spec(listener.url, connection="remote_server"), store=None)
    assert backend.served_version("digits") is None
    assert listener.authorizations() == {"Bearer remote-token"}
    with pytest.raises(ServingError, match=r"connection 'other_server' points at http://127\.0\.0\.1:\d+, "
                       r"not at serving\.url .*sent only to its own server"):
        open_serving(_spec(listener.url, connection="other_server"), store=None)

"""Helpers for the MLflow registry tests (imported by name; never from a conftest)."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from tests.fixtures.ports import free_port


def tiny_onnx_model(scale: float) -> bytes:
    """A real one-node ONNX model, y = scale * x on 4 features, at an IR version onnxruntime loads
    (so MLflow's pyfunc runs it and the registered files are what the pipeline publishes)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "k"], ["y"])],
        "scale",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
        initializer=[helper.make_tensor("k", TensorProto.FLOAT, [1], [scale])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model.SerializeToString()


@dataclass
class SigningInProxy:
    """A reverse proxy in front of a real `mlflow server` that lets through only requests carrying one
    Authorization header, as a server behind basic auth or a token gateway does, and records each request."""

    url: str
    port: int
    accepted: str
    seen: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, Authorization or "")

    @property
    def refused(self) -> list[tuple[str, str, str]]:
        return [request for request in self.seen if request[2] != self.accepted]


@contextmanager
def signing_in_proxy(upstream: str, accepted: str) -> Iterator[SigningInProxy]:
    """Serve a SigningInProxy for `upstream` on a free loopback port until the block ends."""
    target = urlsplit(upstream)
    port = free_port()
    proxy = SigningInProxy(url=f"http://127.0.0.1:{port}", port=port, accepted=accepted)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def forward(self) -> None:
            authorization = self.headers.get("Authorization", "")
            proxy.seen.append((self.command, self.path, authorization))
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if authorization != accepted:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="mlflow"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            skip = {"host", "authorization", "connection", "content-length"}
            headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
            upstream_conn = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
            try:
                upstream_conn.request(self.command, self.path, body=body, headers=headers)
                response = upstream_conn.getresponse()
                payload = response.read()
            finally:
                upstream_conn.close()
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in {"transfer-encoding", "connection", "content-length"}:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = forward

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, name=f"signing-in-proxy-{port}", daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)

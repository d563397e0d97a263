"""Helpers shared by the server and serving tests: real ONNX models, published versions, a real server."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import numpy as np


def classifier_onnx(seed: int, features: int = 64, classes: int = 10) -> bytes:
    """softmax(x @ W + b) with random weights: a real model whose answers depend on the seed."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(features, classes)).astype(np.float32)
    bias = rng.normal(size=(classes,)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input", "W"], ["logits_raw"]),
            helper.make_node("Add", ["logits_raw", "b"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
        ],
        "classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", classes])],
        initializer=[numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def classifier_signature(features: int = 64, classes: int = 10) -> dict:
    return {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, features]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, classes]}],
        "opset": 17,
        "class_names": [str(i) for i in range(classes)],
    }


def identity_onnx() -> bytes:
    """One identity per datatype: FP64, INT32, INT64 and BOOL inputs come back unchanged."""
    import onnx
    from onnx import TensorProto, helper

    types = {
        "f64": TensorProto.DOUBLE,
        "i32": TensorProto.INT32,
        "i64": TensorProto.INT64,
        "flag": TensorProto.BOOL,
    }
    graph = helper.make_graph(
        [helper.make_node("Identity", [f"{n}_in"], [f"{n}_out"]) for n in types],
        "identities",
        [helper.make_tensor_value_info(f"{n}_in", t, ["batch", 2]) for n, t in types.items()],
        [helper.make_tensor_value_info(f"{n}_out", t, ["batch", 2]) for n, t in types.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def identity_signature() -> dict:
    datatypes = {"f64": "FP64", "i32": "INT32", "i64": "INT64", "flag": "BOOL"}
    return {
        "inputs": [{"name": f"{n}_in", "datatype": d, "shape": [-1, 2]} for n, d in datatypes.items()],
        "outputs": [{"name": f"{n}_out", "datatype": d, "shape": [-1, 2]} for n, d in datatypes.items()],
        "opset": 17,
    }


def publish(root: Path, name: str, model: bytes, signature: dict, run_id: str) -> str:
    """Publish a version folder with the project's own ModelStore; returns the version folder URI."""
    from mlspec.storage import open_store

    store = open_store(root.as_uri())
    published = store.publish_version(
        name,
        {
            "model.onnx": model,
            "signature.json": json.dumps(signature).encode(),
            "metrics.json": json.dumps({"accuracy": 0.9}).encode(),
        },
        run_id=run_id,
    )
    return published.uri


class RunningServer:
    """uvicorn serving an app on 127.0.0.1 in a background thread."""

    def __init__(self, app) -> None:
        import uvicorn

        self.app = app
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test model server did not start")
            time.sleep(0.02)

    @property
    def repository(self):
        return self.app.state.repository

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


def load(client, name: str, uri: str | None = None, version: str | None = None):
    parameters = {k: v for k, v in {"storage_uri": uri, "version": version}.items() if v is not None}
    return client.post(f"/v2/repository/models/{name}/load", json={"parameters": parameters})


def predict_direct(model: bytes, x: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"input": x.astype(np.float32)})[0]


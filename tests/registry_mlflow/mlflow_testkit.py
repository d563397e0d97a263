"""Helpers for the MLflow registry tests (imported by name; never from a conftest)."""

from __future__ import annotations


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

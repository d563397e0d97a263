"""Export a trained Keras model to ONNX, describe its signature, and prove ONNX Runtime agrees.

The signature is read back from the ONNX file through onnxruntime, so names, datatypes
(Open Inference Protocol spelling: FP32, INT64, ...) and shapes are what a server will see.
Dynamic dimensions (the batch) are -1.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from mlspec.errors import MlspecError

if TYPE_CHECKING:
    import keras

from mlspec.server.tensors import ORT_TYPES  # one table of v2 datatypes, shared with the server

log = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"



class ExportError(MlspecError):
    """The model could not be converted to ONNX."""


class ParityError(MlspecError):
    """ONNX Runtime's answers differ from the trained model's by more than export.parity.atol."""


def export_onnx(model: keras.Model, *, opset: int) -> tuple[bytes, dict[str, Any]]:
    """Convert `model` and return `(onnx_bytes, signature)`.

    signature: {"inputs": [{"name", "datatype", "shape"}], "outputs": [...], "opset": opset,
    "class_names": []}; the caller fills class_names. The ONNX input is "input" and the output
    "probabilities", with a dynamic batch dimension.
    """
    import tensorflow as tf
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    input_shape = tuple(int(d) for d in model.input_shape[1:])
    spec = tf.TensorSpec((None, *input_shape), tf.float32, name=INPUT_NAME)

    @tf.function(input_signature=[spec])
    def serve(x: Any) -> Any:
        return model(x, training=False)

    # tf2onnx.convert.from_function would turn the tensors Keras 3 layers capture (the mean and
    # variance of Normalization) into extra graph inputs; freezing every capture to a constant
    # first leaves "input" as the only input.
    tf_logger = tf.get_logger()
    old_level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)  # tf2onnx calls TF1 freezing APIs that log deprecation notices
    try:
        frozen = convert_variables_to_constants_v2(serve.get_concrete_function())
        output_tensor = frozen.outputs[0].name
        model_proto, _ = tf2onnx.convert.from_graph_def(
            frozen.graph.as_graph_def(),
            name="mlspec_model",
            input_names=[f"{INPUT_NAME}:0"],
            output_names=[output_tensor],
            opset=opset,
            tensors_to_rename={f"{INPUT_NAME}:0": INPUT_NAME, output_tensor: OUTPUT_NAME},
        )
    except Exception as exc:  # noqa: BLE001 - converter failures are many types; one clear line
        raise ExportError(f"tf2onnx could not convert the model at opset {opset}: {exc}") from exc
    finally:
        tf_logger.setLevel(old_level)
    onnx_bytes = model_proto.SerializeToString()
    import onnxruntime as ort

    log.info(
        "onnxruntime %s; providers available: %s (parity runs on CPUExecutionProvider)",
        ort.__version__,
        ", ".join(ort.get_available_providers()),
    )
    signature = onnx_signature(onnx_bytes)
    signature["opset"] = opset
    signature["class_names"] = []
    log.info(
        "exported ONNX (opset %d, %d bytes): %s -> %s",
        opset,
        len(onnx_bytes),
        ", ".join(f"{t['name']}{t['shape']} {t['datatype']}" for t in signature["inputs"]),
        ", ".join(f"{t['name']}{t['shape']} {t['datatype']}" for t in signature["outputs"]),
    )
    return onnx_bytes, signature


def onnx_signature(onnx_bytes: bytes) -> dict[str, Any]:
    """Inputs and outputs of an ONNX model as a server sees them (OIP datatypes, -1 for dynamic dims)."""
    session = _session(onnx_bytes)

    def describe(args: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": arg.name,
                "datatype": ORT_TYPES.get(arg.type, arg.type),
                "shape": [d if isinstance(d, int) else -1 for d in arg.shape],
            }
            for arg in args
        ]

    return {"inputs": describe(session.get_inputs()), "outputs": describe(session.get_outputs())}


def onnx_predict(onnx_bytes: bytes, x: np.ndarray) -> np.ndarray:
    """Run the model's first output (class probabilities) on ONNX Runtime's CPU provider."""
    session = _session(onnx_bytes)
    name = session.get_inputs()[0].name
    return np.asarray(session.run(None, {name: np.asarray(x, dtype=np.float32)})[0])


def check_parity(model: keras.Model, onnx_bytes: bytes, x: np.ndarray, *, atol: float) -> float:
    """Max absolute difference between Keras and ONNX Runtime outputs on `x`; ParityError above atol."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) == 0:
        raise ParityError("no samples to compare the ONNX model with the trained model")
    expected = np.asarray(model.predict(x, verbose=0), dtype=np.float64)
    actual = np.asarray(onnx_predict(onnx_bytes, x), dtype=np.float64)
    if expected.shape != actual.shape:
        raise ParityError(
            f"ONNX output shape {actual.shape} differs from the trained model's {expected.shape}"
        )
    diff = np.abs(expected - actual)
    per_sample = diff.reshape(len(x), -1).max(axis=1)
    worst = int(np.argmax(per_sample))
    max_diff = float(per_sample[worst])
    if not np.isfinite(max_diff) or max_diff > atol:
        raise ParityError(
            f"ONNX Runtime disagrees with the trained model: max abs difference {max_diff:.3g} "
            f"at sample {worst} exceeds export.parity.atol {atol:g} "
            f"({int((per_sample > atol).sum())} of {len(x)} samples over); "
            "try another export.opset, or report the layer types to the mlspec maintainers"
        )
    log.info("ONNX parity on %d samples: max abs difference %.3g (atol %g)", len(x), max_diff, atol)
    return max_diff


def _session(onnx_bytes: bytes) -> Any:
    import onnxruntime as ort

    available = ort.get_available_providers()
    log.debug("onnxruntime providers available: %s (using CPUExecutionProvider)", ", ".join(available))
    options = ort.SessionOptions()
    options.log_severity_level = 3  # warnings about unused initializers are noise here
    try:
        return ort.InferenceSession(onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - invalid model bytes
        raise ExportError(f"onnxruntime cannot load the ONNX model ({len(onnx_bytes)} bytes): {exc}") from exc

"""ONNX models as a server sees them, whatever framework made them: signature, predictions, parity.

The signature is read back from the ONNX file through onnxruntime, so names, datatypes
(Open Inference Protocol spelling: FP32, INT64, ...) and shapes are what a server will see.
Dynamic dimensions (the batch) are -1. The conversion itself belongs to each framework adapter.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from mlspec.errors import MlspecError
from mlspec.inference_protocol import ORT_TYPES  # one table of v2 datatypes, shared with the server

log = logging.getLogger(__name__)


class ExportError(MlspecError):
    """The model could not be converted to ONNX."""


class ModelRunError(MlspecError):
    """ONNX Runtime could not run the model on the inputs given (a name, type or shape it does not take)."""


class ParityError(MlspecError):
    """ONNX Runtime's answers differ from the trained model's by more than export.parity.atol."""


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


def onnx_predict(onnx_bytes: bytes, x: np.ndarray | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every output of the model, by name, from ONNX Runtime's CPU provider.

    `x`: the float32 array of a single-input model, or named feeds, one per input (a table model's
    columns, as `mlspec.ml.model_io.model_inputs` builds them). ModelRunError where ONNX Runtime cannot
    run the model on them."""
    session = _session(onnx_bytes)
    if isinstance(x, Mapping):
        feeds = {name: np.asarray(value) for name, value in x.items()}
    else:
        feeds = {session.get_inputs()[0].name: np.asarray(x, dtype=np.float32)}
    try:
        values = session.run(None, feeds)
    except Exception as exc:  # noqa: BLE001 - onnxruntime's errors share no base class but Exception
        raise ModelRunError(f"onnxruntime could not run the model on these inputs: {_first_line(exc)}") from exc
    return {output.name: np.asarray(value) for output, value in zip(session.get_outputs(), values, strict=True)}


def check_parity(expected: dict[str, np.ndarray], actual: dict[str, np.ndarray], *, atol: float, rtol: float = 0.0) -> float:
    """Compare the trained model's answers with ONNX Runtime's, output by output.

    Float outputs (probabilities, prediction) may differ by at most `atol + rtol * |expected|` (float32
    keeps about 7 significant digits, so a prediction near 300 cannot agree to 1e-4); integer and text
    outputs (label: a class index, or the class value itself) must be equal. Returns the largest float
    difference; ParityError names the output and sample.
    """
    missing = sorted(set(expected) - set(actual))
    if missing:
        raise ParityError(f"the ONNX model lacks the output(s) {', '.join(missing)}; it has {', '.join(sorted(actual))}")
    worst_diff = 0.0
    for name, want in expected.items():
        want, got = np.asarray(want), np.asarray(actual[name])
        if len(want) == 0:
            raise ParityError("no samples to compare the ONNX model with the trained model")
        if want.shape != got.shape:
            raise ParityError(f"ONNX output {name!r} has shape {got.shape}, the trained model's {want.shape}")
        if want.dtype.kind in "iubUSO" or got.dtype.kind in "USO":
            wrong = np.flatnonzero((want != got).reshape(len(want), -1).any(axis=1))
            if len(wrong):
                raise ParityError(
                    f"ONNX Runtime's {name!r} differs from the trained model's on {len(wrong)} of {len(want)} "
                    f"samples (first: sample {int(wrong[0])}: {got[wrong[0]]} vs {want[wrong[0]]})"
                )
            continue
        want64, got64 = want.astype(np.float64).reshape(len(want), -1), got.astype(np.float64).reshape(len(want), -1)
        diff = np.abs(want64 - got64)
        over = ~(diff <= atol + rtol * np.abs(want64))  # NaN counts as over
        per_sample = diff.max(axis=1)
        if over.any():
            samples_over = over.any(axis=1)
            worst = int(np.argmax(np.where(samples_over, np.nan_to_num(per_sample, nan=np.inf), -1.0)))
            allowed = f"export.parity.atol {atol:g}" + (f" + rtol {rtol:g} x |value|" if rtol else "")
            raise ParityError(
                f"ONNX Runtime disagrees with the trained model on {name!r}: max abs difference {per_sample[worst]:.3g} "
                f"at sample {worst} exceeds {allowed} ({int(samples_over.sum())} of {len(want)} samples over)"
            )
        worst_diff = max(worst_diff, float(per_sample.max()))
    log.info(
        "ONNX parity on %d samples: max abs difference %.3g (atol %g, rtol %g)",
        len(next(iter(expected.values()))), worst_diff, atol, rtol,
    )
    return worst_diff


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__


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

"""Open Inference Protocol (KServe v2) tensors: decode request inputs into numpy, encode outputs.

Besides the JSON tensor format of the protocol, the server understands Triton's binary tensor
data extension (a JSON header of `Inference-Header-Content-Length` bytes followed by raw tensors),
because that is what `tritonclient` and other v2 clients send by default.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlspec.server.errors import BadRequest

HEADER_LENGTH = "inference-header-content-length"

# v2 datatype -> numpy dtype. BYTES (strings) is left out on purpose: mlspec models take numbers.
DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
_NUMPY_TO_DATATYPE = {dtype: name for name, dtype in DATATYPES.items()}

# onnxruntime's type strings -> v2 datatype.
ORT_TYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}

# Which kinds of JSON values a datatype accepts (numpy kind codes): an integer tensor refuses 1.5
# instead of silently truncating it.
_ACCEPTED_KINDS = {"b": "b", "u": "bui", "i": "bui", "f": "buif"}


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output as the protocol's metadata describes it; -1 marks a variable dimension."""

    name: str
    datatype: str
    shape: list[int]

    def to_json(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass
class InferRequest:
    """A parsed inference request: numpy inputs by name, and which outputs to return in which form."""

    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: list[str] | None  # None: every output of the model
    binary_outputs: dict[str, bool] = field(default_factory=dict)  # per requested output
    binary_default: bool = False  # the request's `binary_data_output` parameter


def _parse_header(body: bytes, header_length: str | None) -> tuple[dict, bytes]:
    if header_length is not None:
        try:
            length = int(header_length)
        except ValueError:
            raise BadRequest(f"Inference-Header-Content-Length {header_length!r} is not an integer") from None
        if not 0 <= length <= len(body):
            raise BadRequest(
                f"Inference-Header-Content-Length {length} does not fit a body of {len(body)} bytes"
            )
        header, binary = body[:length], body[length:]
    else:
        header, binary = body, b""
    try:
        payload = json.loads(header)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise BadRequest("the request body must be a JSON object with an 'inputs' list")
    return payload, binary


def _shape_of(raw: Any, where: str) -> list[int]:
    if not isinstance(raw, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in raw):
        raise BadRequest(f"{where}: 'shape' must be a list of integers, got {raw!r}")
    if any(d < 0 for d in raw):
        raise BadRequest(f"{where}: 'shape' {raw} has a negative dimension")
    return raw


def _decode_json_data(data: Any, datatype: str, shape: list[int], where: str) -> np.ndarray:
    dtype = DATATYPES[datatype]
    if not isinstance(data, list):
        raise BadRequest(f"{where}: 'data' must be a JSON array")
    try:
        values = np.asarray(data)
    except ValueError:
        raise BadRequest(f"{where}: 'data' is ragged; nest it to the tensor's shape or flatten it") from None
    size = math.prod(shape)
    if values.size != size:
        raise BadRequest(f"{where}: shape {shape} needs {size} values, 'data' has {values.size}")
    if values.ndim > 1 and list(values.shape) != shape:
        raise BadRequest(f"{where}: nested 'data' has shape {list(values.shape)}, not the declared {shape}")
    if values.size and values.dtype.kind not in _ACCEPTED_KINDS[dtype.kind]:
        kind = {"f": "non-integer numbers", "U": "strings", "O": "mixed or huge values"}.get(
            values.dtype.kind, f"values of kind {values.dtype.kind!r}"
        )
        raise BadRequest(f"{where}: datatype {datatype} cannot hold {kind} found in 'data'")
    if values.size and dtype.kind in "iu" and values.dtype.kind in "iu":
        info = np.iinfo(dtype)
        if values.min() < info.min or values.max() > info.max:
            raise BadRequest(f"{where}: 'data' has values outside the range of {datatype}")
    # The kind and range checks above make this cast lossless except for float precision.
    return values.astype(dtype, casting="unsafe").reshape(shape)


def parse_infer_request(body: bytes, header_length: str | None) -> InferRequest:
    """Parse a v2 inference request (JSON, or JSON header + binary tensors); BadRequest when malformed."""
    payload, binary = _parse_header(body, header_length)
    raw_inputs = payload.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise BadRequest("the request needs a non-empty 'inputs' list")
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest(f"'id' must be a string, got {request_id!r}")
    parameters = payload.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadRequest("'parameters' must be a JSON object")

    inputs: dict[str, np.ndarray] = {}
    offset = 0
    for index, raw in enumerate(raw_inputs):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise BadRequest(f"inputs[{index}] must be an object with a string 'name'")
        name = raw["name"]
        where = f"input {name!r}"
        if name in inputs:
            raise BadRequest(f"{where} is given twice")
        datatype = raw.get("datatype")
        if datatype not in DATATYPES:
            raise BadRequest(
                f"{where}: datatype {datatype!r} is not supported; use one of {', '.join(DATATYPES)}"
            )
        shape = _shape_of(raw.get("shape"), where)
        input_parameters = raw.get("parameters") or {}
        binary_size = input_parameters.get("binary_data_size") if isinstance(input_parameters, dict) else None
        if binary_size is not None:
            if not isinstance(binary_size, int) or binary_size < 0 or offset + binary_size > len(binary):
                raise BadRequest(f"{where}: binary_data_size {binary_size!r} does not fit the binary body")
            expected = math.prod(shape) * DATATYPES[datatype].itemsize
            if binary_size != expected:
                raise BadRequest(
                    f"{where}: shape {shape} of {datatype} needs {expected} bytes, "
                    f"binary_data_size is {binary_size}"
                )
            chunk = binary[offset : offset + binary_size]
            offset += binary_size
            inputs[name] = np.frombuffer(chunk, dtype=DATATYPES[datatype].newbyteorder("<")).reshape(shape)
        else:
            if "data" not in raw:
                raise BadRequest(f"{where} has no 'data'")
            inputs[name] = _decode_json_data(raw["data"], datatype, shape, where)
    if offset != len(binary):
        raise BadRequest(f"the body has {len(binary) - offset} bytes of binary data no input claims")

    outputs: list[str] | None = None
    binary_outputs: dict[str, bool] = {}
    raw_outputs = payload.get("outputs")
    if raw_outputs is not None:
        if not isinstance(raw_outputs, list):
            raise BadRequest("'outputs' must be a list of {'name': ...} objects")
        outputs = []
        for index, raw in enumerate(raw_outputs):
            if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
                raise BadRequest(f"outputs[{index}] must be an object with a string 'name'")
            output_parameters = raw.get("parameters") or {}
            if output_parameters.get("classification"):
                raise BadRequest(f"output {raw['name']!r}: the classification extension is not supported")
            outputs.append(raw["name"])
            if "binary_data" in output_parameters:
                binary_outputs[raw["name"]] = bool(output_parameters["binary_data"])
    return InferRequest(
        id=request_id,
        inputs=inputs,
        outputs=outputs,
        binary_outputs=binary_outputs,
        binary_default=bool(parameters.get("binary_data_output", False)),
    )


def conform_inputs(
    inputs: dict[str, np.ndarray], specs: list[TensorSpec], model: str
) -> dict[str, np.ndarray]:
    """Check names and shapes against the model's inputs and convert each to the model's datatype."""
    expected = {spec.name: spec for spec in specs}
    unknown = sorted(set(inputs) - set(expected))
    if unknown:
        raise BadRequest(
            f"model {model} has no input named {unknown[0]!r}; its inputs are {sorted(expected)}"
        )
    missing = sorted(set(expected) - set(inputs))
    if missing:
        raise BadRequest(f"model {model} needs input {missing[0]!r}, which the request does not give")
    feeds: dict[str, np.ndarray] = {}
    for name, spec in expected.items():
        array = inputs[name]
        shape = list(array.shape)
        if len(shape) != len(spec.shape) or any(
            w not in (-1, g) for w, g in zip(spec.shape, shape, strict=True)
        ):
            raise BadRequest(
                f"input {name!r} of model {model} has shape {spec.shape}; the request gives {shape}"
            )
        if spec.datatype not in DATATYPES:
            raise BadRequest(f"input {name!r} of model {model} is {spec.datatype}, which is unsupported here")
        target = DATATYPES[spec.datatype]
        if array.dtype != target:
            given = _NUMPY_TO_DATATYPE.get(array.dtype, str(array.dtype))
            if not np.can_cast(array.dtype, target, casting="same_kind"):
                raise BadRequest(
                    f"input {name!r} of model {model} is {spec.datatype}; "
                    f"{given} data cannot be converted to it"
                )
            array = array.astype(target)
        feeds[name] = np.ascontiguousarray(array)
    return feeds


def datatype_of(array: np.ndarray) -> str:
    try:
        return _NUMPY_TO_DATATYPE[array.dtype]
    except KeyError:
        raise BadRequest(f"the model produced a {array.dtype} tensor, which is unsupported here") from None


def encode_response(
    *, model_name: str, model_version: str, request: InferRequest, outputs: dict[str, np.ndarray]
) -> tuple[bytes, dict[str, str]]:
    """The response body and headers: plain JSON, or a JSON header plus binary tensors when asked for."""
    header: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request.id is not None:
        header["id"] = request.id
    tensors = []
    blobs: list[bytes] = []
    for name, array in outputs.items():
        entry: dict[str, Any] = {"name": name, "datatype": datatype_of(array), "shape": list(array.shape)}
        if request.binary_outputs.get(name, request.binary_default):
            blob = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = array.reshape(-1).tolist()
        tensors.append(entry)
    header["outputs"] = tensors
    text = json.dumps(header).encode()
    if not blobs:
        return text, {"content-type": "application/json"}
    return text + b"".join(blobs), {
        "content-type": "application/octet-stream",
        HEADER_LENGTH: str(len(text)),
    }

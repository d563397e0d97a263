"""Open Inference Protocol (KServe v2) tensors: decode request inputs into numpy, encode outputs.

Besides the JSON tensor format of the protocol, the server understands Triton's binary tensor
data extension (a JSON header of `Inference-Header-Content-Length` bytes followed by raw tensors),
because that is what `tritonclient` and other v2 clients send by default.

Everything a request says is checked before it costs memory: the rank, every dimension, the batch
(first dimension) and the element count against `Limits`, before the data is converted. Numbers
must be finite: JSON has no NaN or Infinity, a literal such as 1e400 overflows, and a value that
overflows the input's datatype (1e39 for FP32) is refused too, so an answer never carries a bare
NaN. JSON is parsed with orjson and numpy arrays are written straight to JSON (non-finite outputs
become null, as strict JSON requires).

BYTES tensors (a table model's category columns, its text `label`) are JSON strings, or in binary
each element's 4-byte little-endian length followed by its UTF-8 bytes (Triton's serialization);
in numpy they are object arrays of str, as onnxruntime takes and gives them. The one exception to
"finite numbers only" is a gap (JSON null, or NaN in a binary FP tensor) in a column input whose
spec fills it (mlspec.server.columns): it becomes NaN, "" or the published fill value.
"""

from __future__ import annotations

import array as pyarray
import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

try:  # the fast path for large JSON bodies; without it orjson parses everything
    import simdjson
except ImportError:  # pragma: no cover - a dependency, but the server works without it
    simdjson = None

from mlspec.inference_protocol import BYTES_DATATYPE, FLOAT_DATATYPES, NUMPY_DTYPES
from mlspec.ml.columns import is_gap
from mlspec.server.columns import InputColumn, TableInputs
from mlspec.server.errors import BadRequest
from mlspec.vocabulary import INPUT_NAME

HEADER_LENGTH = "inference-header-content-length"

# v2 datatype -> numpy dtype (the protocol's table, mlspec.inference_protocol).
DATATYPES: dict[str, np.dtype] = {name: np.dtype(dtype) for name, dtype in NUMPY_DTYPES.items()}
_NUMPY_TO_DATATYPE = {dtype: name for name, dtype in DATATYPES.items()}
_LITTLE_ENDIAN = {name: dtype.newbyteorder("<") for name, dtype in DATATYPES.items()}

# Which kinds of JSON values a datatype accepts (numpy kind codes): an integer tensor refuses 1.5
# instead of silently truncating it.
_ACCEPTED_KINDS = {"b": "b", "u": "bui", "i": "bui", "f": "buif"}

# numpy cannot hold more dimensions than this; no model here has more than a handful.
MAX_RANK = 32


@dataclass(frozen=True)
class Limits:
    """What one inference request may ask for; beyond it the server answers 400 (413 for the body)."""

    max_body_bytes: int = 64 * 1024 * 1024
    max_elements: int = 1 << 22  # values in all inputs of one request together
    max_batch: int = 1024  # the first dimension of each input
    max_string_bytes: int = 64 * 1024  # one element of a BYTES tensor, in UTF-8


DEFAULT_LIMITS = Limits()


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


def loads(data: bytes | str) -> Any:
    """Strict JSON (no NaN, no Infinity, no number that overflows a double); BadRequest when it is not."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        hint = "; JSON has no NaN or Infinity; send null for a missing value" if _at_non_json_number(data, exc.pos) else ""
        raise BadRequest(f"the request body is not valid JSON: {exc}{hint}") from None


# What Python's json.dumps, JavaScript and numpy write for a float JSON cannot hold.
_NON_JSON_NUMBER = re.compile(r"-?(?:NaN|nan|Infinity|infinity|inf|Inf)\b")


def _at_non_json_number(data: bytes | str, position: int) -> bool:
    """The body fails at NaN, Infinity or -Infinity (orjson points at the sign or just after it)."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes | bytearray | memoryview) else data
    return any(_NON_JSON_NUMBER.match(text, start) for start in (position, max(position - 1, 0)))


# From this size on, JSON bodies are parsed with simdjson, which writes each input's `data` (a flat
# array of numbers, the common case) straight into a float64 array: no Python float per value.
SIMD_MIN_BYTES = 16 * 1024


def _plain(value: Any) -> Any:
    if isinstance(value, simdjson.Object):
        return value.as_dict()
    if isinstance(value, simdjson.Array):
        return value.as_list()
    return value


def _input_entry(item: Any) -> Any:
    if not isinstance(item, simdjson.Object):
        return _plain(item)
    entry = {}
    data = None
    for key in item.keys():
        if key == "data":
            data = item[key]
        else:
            entry[key] = _plain(item[key])
    if data is not None:
        if isinstance(data, simdjson.Array) and entry.get("datatype") in FLOAT_DATATYPES:
            try:
                entry["data"] = np.frombuffer(data.as_buffer(of_type="d"), dtype=np.float64)
            except (TypeError, ValueError):  # not only numbers (nested, booleans, null, strings)
                entry["data"] = data.as_list()
        else:
            entry["data"] = _plain(data)
    return entry


def _loads_large(body: bytes) -> dict | None:
    """The request as orjson would give it, but each float input's flat `data` already a float64
    array; None when simdjson is missing or refuses the body (then orjson parses it and says why).

    A fresh parser per request: its buffers go with it, and no simdjson object outlives the call.
    """
    if simdjson is None:
        return None
    parser = simdjson.Parser()
    try:
        doc = parser.parse(body)
    except Exception:  # invalid JSON, NaN, 1e400, integers beyond 64 bits: orjson says what is wrong
        return None
    try:
        if not isinstance(doc, simdjson.Object):
            return None
        payload = {}
        for key in doc.keys():
            value = doc[key]
            if key == "inputs" and isinstance(value, simdjson.Array):
                payload[key] = [_input_entry(item) for item in value]
            else:
                payload[key] = _plain(value)
            del value
    except Exception:
        return None
    finally:
        del doc
    # simdjson flattens nested arrays into the buffer: take it only where `data` was a flat array
    # of numbers, i.e. the body has no '[' beyond those of everything else written again. Any
    # doubt (nested data, escapes written differently) lets orjson parse the body instead.
    skeleton = dict(payload)
    if isinstance(payload.get("inputs"), list):
        skeleton["inputs"] = [
            {**entry, "data": []}
            if isinstance(entry, dict) and isinstance(entry.get("data"), np.ndarray)
            else entry
            for entry in payload["inputs"]
        ]
    brackets = int(np.count_nonzero(np.frombuffer(body, dtype=np.uint8) == ord("[")))
    if brackets != orjson.dumps(skeleton).count(b"["):
        return None
    return payload


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
    payload = _loads_large(header) if len(header) >= SIMD_MIN_BYTES else None
    if payload is None:
        payload = loads(header)
    if not isinstance(payload, dict):
        raise BadRequest("the request body must be a JSON object with an 'inputs' list")
    return payload, binary


def _object(raw: Any, where: str) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BadRequest(f"{where} must be a JSON object, got {type(raw).__name__}")
    return raw


def _flag(raw: Any, where: str) -> bool:
    if not isinstance(raw, bool):
        raise BadRequest(f"{where} must be true or false, got {raw!r}")
    return raw


def _shape_of(raw: Any, where: str, limits: Limits) -> list[int]:
    if not isinstance(raw, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in raw):
        raise BadRequest(f"{where}: 'shape' must be a list of integers, got {str(raw)[:80]}")
    if len(raw) > MAX_RANK:
        raise BadRequest(f"{where}: 'shape' has {len(raw)} dimensions; at most {MAX_RANK} are accepted")
    for dim in raw:
        if dim < 0:
            raise BadRequest(f"{where}: 'shape' {raw} has a negative dimension")
        if dim > limits.max_elements:
            raise BadRequest(
                f"{where}: dimension {dim} of 'shape' exceeds the server's limit of {limits.max_elements} elements"
            )
    if raw and raw[0] > limits.max_batch:
        raise BadRequest(f"{where}: batch {raw[0]} exceeds the server's limit of {limits.max_batch}")
    return raw


# Flat JSON lists of numbers are converted by the array module in one C loop that refuses strings,
# null and nested lists (TypeError) and out-of-range integers (OverflowError); anything else takes
# numpy's exact path below, which says what is wrong.
_ARRAY_CODES = {"f": ("d", np.float64), "i": ("q", np.int64), "u": ("q", np.int64)}


def _flat_numbers(data: list, dtype: np.dtype) -> np.ndarray | None:
    code = _ARRAY_CODES.get(dtype.kind)
    if code is None:
        return None
    try:
        return np.frombuffer(pyarray.array(code[0], data), dtype=code[1])
    except (TypeError, OverflowError, ValueError):
        return None


def _row(flat_index: int, shape: list[int]) -> int:
    """The row (index along the first dimension) of the flat_index-th element of a tensor of `shape`."""
    return flat_index // max(1, math.prod(shape[1:]))


def _fill_nulls(values: np.ndarray, column: InputColumn, shape: list[int]) -> np.ndarray:
    """`values` (numpy's object array of JSON data) with each null replaced by the column's gap value,
    as numbers again; BadRequest naming the column when its spec does not fill gaps."""
    gaps = np.frompyfunc(lambda value: value is None, 1, 1)(values).astype(bool)
    if not gaps.any():
        return values
    refused = column.gap_refused("a null", _row(int(np.flatnonzero(gaps)[0]), shape))
    if refused:
        raise BadRequest(refused)
    values = values.copy()
    values[gaps] = column.gap_value
    try:
        return np.asarray(values.tolist())
    except (ValueError, TypeError, OverflowError, RecursionError):
        return values  # still mixed: the caller's kind check says what is wrong


def _decode_json_data(
    data: Any, datatype: str, shape: list[int], where: str, column: InputColumn | None = None
) -> np.ndarray:
    dtype = DATATYPES[datatype]
    if isinstance(data, np.ndarray):  # parsed straight to float64 (_loads_large)
        values = data
    elif not isinstance(data, list):
        raise BadRequest(f"{where}: 'data' must be a JSON array")
    else:
        values = _flat_numbers(data, dtype)
    size = math.prod(shape)
    if values is None:
        try:
            values = np.asarray(data)
        except (ValueError, TypeError, OverflowError, RecursionError):
            raise BadRequest(
                f"{where}: 'data' is ragged or nested too deep; nest it to the tensor's shape or flatten it"
            ) from None
        if column is not None and values.dtype == object and values.size:
            values = _fill_nulls(values, column, shape)
        if values.size and values.dtype.kind not in _ACCEPTED_KINDS[dtype.kind]:
            kind = {"f": "non-integer numbers", "U": "strings", "O": "mixed, null or huge values"}.get(
                values.dtype.kind, f"values of kind {values.dtype.kind!r}"
            )
            raise BadRequest(f"{where}: datatype {datatype} cannot hold {kind} found in 'data'")
    if values.size != size:
        raise BadRequest(f"{where}: shape {shape} needs {size} values, 'data' has {values.size}")
    if values.ndim > 1 and list(values.shape) != shape:
        raise BadRequest(f"{where}: nested 'data' has shape {list(values.shape)}, not the declared {shape}")
    if values.size and dtype.kind in "iu" and values.dtype.kind in "iu":
        info = np.iinfo(dtype)
        if values.min() < info.min or values.max() > info.max:
            raise BadRequest(f"{where}: 'data' has values outside the range of {datatype}")
    # The kind and range checks above make this cast lossless except for float precision; a float
    # that overflows the datatype becomes inf and is refused by the caller's finiteness check.
    with np.errstate(over="ignore", invalid="ignore"):
        return values.astype(dtype, copy=False).reshape(shape)


def _not_finite(where: str, datatype: str) -> BadRequest:
    return BadRequest(
        f"{where}: 'data' has NaN, Infinity or a value too large for {datatype}; only finite numbers "
        "are accepted"
    )


def _check_finite(array: np.ndarray, where: str, datatype: str, column: InputColumn | None) -> None:
    """Only finite numbers, except NaN (a gap) in a column input whose spec fills it."""
    if array.dtype.kind != "f" or not array.size or np.isfinite(array).all():
        return
    if column is None or np.isinf(array).any():
        raise _not_finite(where, datatype)
    refused = column.gap_refused("NaN", _row(int(np.flatnonzero(np.isnan(array))[0]), list(array.shape)))
    if refused:
        raise BadRequest(refused)


_LENGTH = struct.Struct("<I")  # the length in front of each element of a binary BYTES tensor


def _text(value: str, index: int, where: str, limits: Limits) -> str:
    if len(value) > limits.max_string_bytes or (
        len(value) * 4 > limits.max_string_bytes
        and len(value.encode("utf-8", "surrogatepass")) > limits.max_string_bytes
    ):
        raise BadRequest(
            f"{where}: element {index} is longer than the server's limit of {limits.max_string_bytes} bytes "
            "per string"
        )
    return value


def _flat_elements(data: list, shape: list[int], where: str) -> list:
    """The elements of JSON `data` given flat, or nested exactly to `shape`."""
    values = data
    if any(isinstance(value, list) for value in data):
        for dim in shape[1:]:
            if not all(isinstance(value, list) and len(value) == dim for value in values):
                raise BadRequest(
                    f"{where}: 'data' is ragged or nested too deep; nest it to the tensor's shape or flatten it"
                )
            values = [value for nested in values for value in nested]
    size = math.prod(shape)
    if len(values) != size:
        raise BadRequest(f"{where}: shape {shape} needs {size} values, 'data' has {len(values)}")
    return values


def _decode_json_bytes(
    data: Any, shape: list[int], where: str, limits: Limits, column: InputColumn | None
) -> np.ndarray:
    """JSON strings (a null where the column fills gaps) as an object array of str."""
    if not isinstance(data, list):
        raise BadRequest(f"{where}: 'data' must be a JSON array")
    values = _flat_elements(data, shape, where)
    array = np.empty(len(values), dtype=object)
    for index, value in enumerate(values):
        if isinstance(value, str):
            array[index] = _text(value, index, where, limits)
        elif value is None and column is not None:
            refused = column.gap_refused("a null", _row(index, shape))
            if refused:
                raise BadRequest(refused)
            array[index] = column.gap_value
        else:
            found = "null" if value is None else type(value).__name__
            raise BadRequest(f"{where}: datatype BYTES holds strings; 'data' has {found} at element {index}")
    return array.reshape(shape)


def _decode_binary_bytes(chunk: bytes, shape: list[int], where: str, limits: Limits) -> np.ndarray:
    """Triton's binary BYTES: per element a 4-byte little-endian length, then that many UTF-8 bytes."""
    size = math.prod(shape)
    if size * _LENGTH.size > len(chunk):
        raise BadRequest(
            f"{where}: {len(chunk)} bytes of binary data cannot hold the {size} strings of shape {shape}"
        )
    array = np.empty(size, dtype=object)
    offset = 0
    for index in range(size):
        if offset + _LENGTH.size > len(chunk):
            raise BadRequest(
                f"{where}: the binary data ends after {index} of the {size} strings of shape {shape}"
            )
        (length,) = _LENGTH.unpack_from(chunk, offset)
        offset += _LENGTH.size
        if length > limits.max_string_bytes:
            raise BadRequest(
                f"{where}: element {index} is {length} bytes, over the server's limit of "
                f"{limits.max_string_bytes} bytes per string"
            )
        if offset + length > len(chunk):
            raise BadRequest(
                f"{where}: element {index} says {length} bytes, beyond the end of its binary data"
            )
        try:
            array[index] = str(chunk[offset : offset + length], "utf-8")
        except UnicodeDecodeError:
            raise BadRequest(f"{where}: element {index} is not UTF-8 text") from None
        offset += length
    if offset != len(chunk):
        raise BadRequest(
            f"{where}: binary_data_size {len(chunk)} is {len(chunk) - offset} bytes more than its {size} strings"
        )
    return array.reshape(shape)


def _blank_gaps(array: np.ndarray, column: InputColumn | None, shape: list[int]) -> np.ndarray:
    """A text that is empty or only spaces is a category's missing value, as in training (mlspec.ml.columns.
    is_gap): it reaches the graph as "", its fill's cue, and like a null is refused in a column whose spec
    does not fill gaps."""
    if column is None or not array.size:
        return array
    flat = array.reshape(-1)
    blank = np.flatnonzero(np.frompyfunc(is_gap, 1, 1)(flat).astype(bool))
    if not blank.size:
        return array
    if not column.fills_gaps:
        what = "an empty string" if flat[blank[0]] == "" else "a string of only spaces"
        raise BadRequest(column.gap_refused(f"{what} (a missing value)", _row(int(blank[0]), shape)))
    flat = flat.copy()
    flat[blank] = ""
    return flat.reshape(array.shape)


def parse_infer_request(
    body: bytes, header_length: str | None, limits: Limits = DEFAULT_LIMITS, table: TableInputs | None = None
) -> InferRequest:
    """Parse a v2 inference request (JSON, or JSON header + binary tensors); BadRequest when malformed.

    `table`: the model's column inputs, whose published spec says which of them accept a gap."""
    columns: Mapping[str, InputColumn] = table.columns if table is not None else {}
    if header_length is None and len(body) > 2 * limits.max_elements:
        # Every value but the last of each list is followed by a comma: refuse before parsing.
        commas = int(np.count_nonzero(np.frombuffer(body, dtype=np.uint8) == ord(",")))
        if commas > limits.max_elements + 4096:
            raise BadRequest(
                f"the request holds more than the server's limit of {limits.max_elements} values"
            )
    payload, binary = _parse_header(body, header_length)
    raw_inputs = payload.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise BadRequest("the request needs a non-empty 'inputs' list")
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest(f"'id' must be a string, got {str(request_id)[:80]}")
    parameters = _object(payload.get("parameters"), "'parameters'")

    # Shapes first: nothing is converted before the whole request is known to fit the limits.
    shapes: list[list[int]] = []
    total = 0
    for index, raw in enumerate(raw_inputs):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise BadRequest(f"inputs[{index}] must be an object with a string 'name'")
        where = f"input {raw['name'][:80]!r}"
        datatype = raw.get("datatype")
        if not isinstance(datatype, str) or datatype not in DATATYPES:
            raise BadRequest(
                f"{where}: datatype {str(datatype)[:40]!r} is not supported; use one of {', '.join(DATATYPES)}"
            )
        shape = _shape_of(raw.get("shape"), where, limits)
        total += math.prod(shape)
        if total > limits.max_elements:
            raise BadRequest(
                f"the request holds more than the server's limit of {limits.max_elements} values"
            )
        shapes.append(shape)

    inputs: dict[str, np.ndarray] = {}
    offset = 0
    for raw, shape in zip(raw_inputs, shapes, strict=True):
        name = raw["name"]
        where = f"input {name[:80]!r}"
        if name in inputs:
            raise BadRequest(f"{where} is given twice")
        datatype = raw["datatype"]
        input_parameters = _object(raw.get("parameters"), f"{where}: 'parameters'")
        binary_size = input_parameters.get("binary_data_size")
        if binary_size is not None:
            if (
                not isinstance(binary_size, int)
                or isinstance(binary_size, bool)
                or binary_size < 0
                or offset + binary_size > len(binary)
            ):
                raise BadRequest(
                    f"{where}: binary_data_size {str(binary_size)[:40]} does not fit the binary body"
                )
            chunk = binary[offset : offset + binary_size]
            offset += binary_size
            if datatype == BYTES_DATATYPE:
                array = _blank_gaps(_decode_binary_bytes(chunk, shape, where, limits), columns.get(name), shape)
            else:
                expected = math.prod(shape) * DATATYPES[datatype].itemsize
                if binary_size != expected:
                    raise BadRequest(
                        f"{where}: shape {shape} of {datatype} needs {expected} bytes, "
                        f"binary_data_size is {binary_size}"
                    )
                array = np.frombuffer(chunk, dtype=_LITTLE_ENDIAN[datatype]).reshape(shape)
        else:
            if "data" not in raw:
                raise BadRequest(f"{where} has no 'data'")
            if datatype == BYTES_DATATYPE:
                array = _decode_json_bytes(raw["data"], shape, where, limits, columns.get(name))
                array = _blank_gaps(array, columns.get(name), shape)
            else:
                array = _decode_json_data(raw["data"], datatype, shape, where, columns.get(name))
        _check_finite(array, where, datatype, columns.get(name))
        inputs[name] = array
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
            output_parameters = _object(raw.get("parameters"), f"outputs[{index}].parameters")
            if output_parameters.get("classification"):
                raise BadRequest(
                    f"output {raw['name'][:80]!r}: the classification extension is not supported"
                )
            outputs.append(raw["name"])
            if "binary_data" in output_parameters:
                binary_outputs[raw["name"]] = _flag(
                    output_parameters["binary_data"], f"outputs[{index}].parameters.binary_data"
                )
    binary_default = parameters.get("binary_data_output", False)
    return InferRequest(
        id=request_id,
        inputs=inputs,
        outputs=outputs,
        binary_outputs=binary_outputs,
        binary_default=_flag(binary_default, "parameters.binary_data_output"),
    )


def _split_columns(array: np.ndarray, table: TableInputs, model: str) -> dict[str, np.ndarray]:
    """Today's single `input` [N, F] of a table model whose columns are all numbers, as its column inputs."""
    names = list(table.columns)
    if array.ndim != 2 or array.shape[1] != len(names):
        raise BadRequest(
            f"model {model} takes one input per column ({', '.join(names)}); a single {INPUT_NAME!r} must "
            f"have shape [N, {len(names)}] with the columns in that order, the request gives {list(array.shape)}"
        )
    return {name: array[:, index : index + 1] for index, name in enumerate(names)}


def conform_inputs(
    inputs: dict[str, np.ndarray], specs: list[TensorSpec], model: str, table: TableInputs | None = None
) -> dict[str, np.ndarray]:
    """Check names and shapes against the model's inputs and convert each to the model's datatype.

    An input of shape [-1, 1] also takes [N]; a table model whose columns are all numbers also takes
    today's single `input` [N, F] in column order."""
    if (
        table is not None
        and len(inputs) == 1
        and INPUT_NAME in inputs
        and table.all_numbers
        and all(spec.name != INPUT_NAME for spec in specs)
    ):
        inputs = _split_columns(inputs[INPUT_NAME], table, model)
    if len(inputs) == len(specs) == 1:
        # One input, as almost every model here has: skip the set arithmetic.
        (given,) = inputs
        if given != specs[0].name:
            raise _unknown_input(given, specs, model, table)
    else:
        expected_names = {spec.name for spec in specs}
        unknown = sorted(set(inputs) - expected_names)
        if unknown:
            raise _unknown_input(unknown[0], specs, model, table)
        missing = sorted(expected_names - set(inputs))
        if missing:
            raise BadRequest(f"model {model} needs input {missing[0]!r}, which the request does not give")
    if table is not None:
        _check_same_rows(inputs, table, model)
    feeds: dict[str, np.ndarray] = {}
    for spec in specs:
        name = spec.name
        array = inputs[name]
        if array.ndim == 1 and len(spec.shape) == 2 and spec.shape[1] == 1:  # a column sent as [N]
            array = array.reshape(-1, 1)
        shape = array.shape
        if len(shape) != len(spec.shape) or any(
            w not in (-1, g) for w, g in zip(spec.shape, shape, strict=True)
        ):
            raise BadRequest(
                f"input {name!r} of model {model} has shape {spec.shape}; the request gives {list(shape)}"
            )
        target = DATATYPES.get(spec.datatype)
        if target is None:
            raise BadRequest(f"input {name!r} of model {model} is {spec.datatype}, which is unsupported here")
        if array.dtype != target:
            given = _NUMPY_TO_DATATYPE.get(array.dtype.newbyteorder("="), str(array.dtype))
            # Strings never become numbers, nor numbers strings (numpy would allow the latter).
            if target.kind == "O" or not np.can_cast(array.dtype, target, casting="same_kind"):
                raise BadRequest(
                    f"input {name!r} of model {model} is {spec.datatype}; "
                    f"{given} data cannot be converted to it"
                )
            with np.errstate(over="ignore", invalid="ignore"):
                array = array.astype(target)
            # NaN was vetted when the request was parsed (a gap in a column that fills it); a
            # value that overflows the model's datatype (FP64 1e300 into FP32) is refused here.
            if array.dtype.kind == "f" and np.isinf(array).any():
                raise _not_finite(f"input {name!r} of model {model}", spec.datatype)
        feeds[name] = np.ascontiguousarray(array)
    return feeds


def _unknown_input(given: str, specs: list[TensorSpec], model: str, table: TableInputs | None) -> BadRequest:
    """A request names an input the model does not have: its inputs in the model's order (a table
    model's: column order), and for a table model that the column is not one it reads."""
    names = [spec.name for spec in specs]
    if table is None:
        return BadRequest(f"model {model} has no input named {given[:80]!r}; its inputs are {names}")
    if given == INPUT_NAME:  # the single array of a model of numbers only, which this table is not
        return BadRequest(
            f"model {model} has no input named {given!r}: it takes one input per column, in this order: "
            f"{', '.join(names)}"
        )
    return BadRequest(
        f"model {model} has no input named {given[:80]!r}: it is not a column the model reads (left out of "
        f"data.features, or in data.exclude); send only its columns, in this order: {', '.join(names)}"
    )


def _check_same_rows(inputs: dict[str, np.ndarray], table: TableInputs, model: str) -> None:
    """Every column input of a table model holds the same rows ([N] or [N, 1]): say which do not."""
    by_count: dict[int, list[str]] = {}
    for name in table.columns:
        if name in inputs and inputs[name].ndim:
            by_count.setdefault(int(inputs[name].shape[0]), []).append(name)
    if len(by_count) <= 1:
        return

    def names(group: list[str]) -> str:
        return ", ".join(group[:3]) + (f" (and {len(group) - 3} more)" if len(group) > 3 else "")

    counts = "; ".join(f"{names(group)}: {count} row{'s' * (count != 1)}" for count, group in by_count.items())
    raise BadRequest(
        f"the column inputs of model {model} hold different numbers of rows ({counts}); send the same rows in "
        "every column"
    )


def datatype_of(array: np.ndarray) -> str:
    try:
        return _NUMPY_TO_DATATYPE[array.dtype]
    except KeyError:
        raise BadRequest(f"the model produced a {array.dtype} tensor, which is unsupported here") from None


_DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


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
        binary = request.binary_outputs.get(name, request.binary_default)
        if array.dtype.kind == "O":  # BYTES: a text label
            texts = [value if isinstance(value, str) else str(value) for value in array.reshape(-1).tolist()]
            if binary:
                encoded = [text.encode("utf-8", "surrogatepass") for text in texts]
                blob = b"".join(_LENGTH.pack(len(item)) + item for item in encoded)
                entry["parameters"] = {"binary_data_size": len(blob)}
                blobs.append(blob)
            else:
                entry["data"] = texts
        elif binary:
            blob = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            # Written by orjson straight from the array; NaN and Infinity become null (strict JSON).
            entry["data"] = np.ascontiguousarray(array).reshape(-1)
        tensors.append(entry)
    header["outputs"] = tensors
    text = orjson.dumps(header, option=_DUMPS_OPTIONS)
    if not blobs:
        return text, {"content-type": "application/json"}
    return text + b"".join(blobs), {
        "content-type": "application/octet-stream",
        HEADER_LENGTH: str(len(text)),
    }

"""The Open Inference Protocol (KServe v2) as mlspec speaks it, defined once: datatypes, paths, requests, curl.

The model server (mlspec.server) and every client (deploy, the smoke test, promote's summary, the model
card, the Models page, the DAG docs) build their URLs, requests and example commands here, so they
cannot drift apart. Standard library only: importing it costs nothing at DAG parse time and creates no
import circle between the server and its clients.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from mlspec.vocabulary import INPUT_NAME

# v2 datatype -> numpy dtype name. BYTES (strings: a table model's category columns and text labels)
# are Python str objects in numpy, as onnxruntime takes and gives them.
NUMPY_DTYPES: dict[str, str] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": "object",
}
FLOAT_DATATYPES = frozenset(name for name, dtype in NUMPY_DTYPES.items() if dtype.startswith("float"))
# Every exported model of an array source takes raw features as one FP32 input (mlspec.ml.frameworks.base);
# a table model takes one input per column instead.
DEFAULT_DATATYPE = "FP32"
BYTES_DATATYPE = "BYTES"

# onnxruntime's type strings -> v2 datatype.
ORT_TYPES: dict[str, str] = {
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

LIVE_PATH = "/v2/health/live"
SERVER_READY_PATH = "/v2/health/ready"


def numpy_dtype(datatype: str) -> str:
    """The numpy dtype name of a v2 datatype; float32 for one mlspec does not serve."""
    return NUMPY_DTYPES.get(datatype, NUMPY_DTYPES[DEFAULT_DATATYPE])


def model_path(name: str, version: int | str | None = None) -> str:
    """`/v2/models/<name>`: what serves (production); with a version, that version."""
    return f"/v2/models/{name}" + (f"/versions/{version}" if version is not None else "")


def ready_path(name: str, version: int | str | None = None) -> str:
    return f"{model_path(name, version)}/ready"


def infer_path(name: str, version: int | str | None = None) -> str:
    return f"{model_path(name, version)}/infer"


def model_url(base: str, name: str, version: int | str | None = None) -> str:
    return f"{base.rstrip('/')}{model_path(name, version)}"


def infer_url(base: str, name: str, version: int | str | None = None) -> str:
    """`<base>/v2/models/<name>/infer` answers with what serves (production); with a version, that version."""
    return f"{base.rstrip('/')}{infer_path(name, version)}"


def repository_path(name: str, action: str) -> str:
    """The model repository extension: `/v2/repository/models/<name>/load` or `.../unload`."""
    return f"/v2/repository/models/{name}/{action}"


def infer_request(
    data: Sequence[Any], shape: Sequence[int], *, name: str = INPUT_NAME, datatype: str = DEFAULT_DATATYPE
) -> dict:
    """A JSON inference request of one input tensor."""
    return {"inputs": [{"name": name, "shape": list(shape), "datatype": datatype, "data": list(data)}]}


def rows_request(rows: Sequence[Mapping[str, Any]], columns: Sequence[Mapping[str, Any]]) -> dict:
    """A table model's JSON inference request: one [N, 1] input per column ({"name", "datatype"}: an
    input_schema.json column or a signature input), N raw rows ({column: value}; None sends null)."""
    return {
        "inputs": [
            {"name": c["name"], "shape": [len(rows), 1], "datatype": c["datatype"], "data": [row.get(c["name"]) for row in rows]}
            for c in columns
        ]
    }


def curl(url: str, request: Mapping[str, Any]) -> str:
    """The shell command that POSTs `request` to `url`. A URL holding a shell variable ($ENDPOINT,
    ${MLSPEC_SERVER_URL:-...}) stays expandable in double quotes; any other is quoted as it is."""
    body = json.dumps(request, separators=(",", ":"))
    target = f'"{url}"' if url.startswith("$") else shlex.quote(url)
    return f"curl -s -X POST {target} -H 'Content-Type: application/json' -d {shlex.quote(body)}"

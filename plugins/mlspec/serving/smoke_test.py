"""Smoke test of a deployed endpoint: does it answer the Open Inference Protocol like the offline model?

It checks readiness, compares the model metadata with the published signature, sends each sample
as its own request (one request per sample, as an application would) and compares the endpoint's
answers with the offline ONNX Runtime predictions: the same `label` for classification, a
`prediction` within atol + rtol * |expected| for regression. Works against any v2 endpoint: the local server
and KServe runtimes alike.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from mlspec.connections import connection_token
from mlspec.errors import ServingError
from mlspec.inference_protocol import LIVE_PATH, infer_path, model_path, numpy_dtype, ready_path, rows_request
from mlspec.model_card import endpoint_base
from mlspec.serving.credentials import foreign_server_hint, is_configured_server, token_for

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

# Requests whose error text is quoted in the report; the rest are only counted.
_QUOTED_ERRORS = 3

class SmokeTestFailed(ServingError):
    """The endpoint answered wrongly, too slowly or not at all; `report` holds the numbers."""

    def __init__(self, message: str, report: dict) -> None:
        super().__init__(message)
        self.report = report


def _shapes_compatible(declared: list, served: list) -> bool:
    if len(declared) != len(served):
        return False
    return all(a == b or -1 in (a, b) for a, b in zip(declared, served, strict=True))


def _metadata_problems(metadata: dict, signature: dict) -> list[str]:
    problems = []
    for kind in ("inputs", "outputs"):
        served = {t.get("name"): t for t in metadata.get(kind) or []}
        for tensor in signature.get(kind) or []:
            name = tensor["name"]
            actual = served.get(name)
            if actual is None:
                problems.append(
                    f"the endpoint's model has no {kind[:-1]} named {name!r} "
                    f"(it has {sorted(map(str, served))})"
                )
                continue
            if actual.get("datatype") != tensor["datatype"]:
                problems.append(
                    f"{kind[:-1]} {name!r} is {actual.get('datatype')} at the endpoint but "
                    f"{tensor['datatype']} in the signature"
                )
            served_shape = list(actual.get("shape") or [])
            if "shape" in tensor and not _shapes_compatible(list(tensor["shape"]), served_shape):
                problems.append(
                    f"{kind[:-1]} {name!r} has shape {served_shape} at the endpoint but "
                    f"{tensor['shape']} in the signature"
                )
    return problems


def _comparison(task: str, signature: dict, expected: dict, *, atol: float, rtol: float):
    """(output to ask for, expected answer per sample, agrees(answer, expected) -> bool)."""
    import numpy as np

    names = [t["name"] for t in signature["outputs"]]
    if task == "regression":
        name = "prediction" if "prediction" in names else names[0]
        want = np.asarray(expected[name], dtype=np.float64).reshape(len(expected[name]), -1)
        return name, want, lambda answer, row: bool(np.allclose(answer.reshape(-1), row, atol=atol, rtol=rtol))
    if "label" in names:
        want = np.asarray(expected["label"]).reshape(-1)
        if want.dtype.kind in "USO":  # a table classifier answers the class itself (a name)
            return "label", want, lambda answer, label: str(answer.reshape(-1)[0]) == str(label)
        return "label", want, lambda answer, label: int(answer.reshape(-1)[0]) == int(label)
    # A classifier exported before the label output existed: compare the argmax of its probabilities.
    first = names[0]
    want = np.argmax(np.asarray(expected[first]), axis=1)
    return first, want, lambda answer, label: int(np.argmax(answer)) == int(label)


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error") or response.text)
    except (ValueError, AttributeError):
        return (response.text or "")[:300]


def endpoint_token(spec) -> str | None:
    """The bearer token the smoke test sends to the spec's endpoint.

    kserve: with `serving.auth: token`, the token of the Kubernetes connection (mlspec.connections).
    local: the token deploy sends too (mlspec.serving.credentials.token_for): the model server's own
    token (MLSPEC_SERVER_TOKEN, else MLSPEC_HOME/server/token) only when the endpoint is the configured
    server (MLSPEC_SERVER_URL), else the token of `serving.connection`, else none; with
    `serving.auth: token` (the server runs `mlspec serve --auth token`) it must exist.
    """
    serving = spec.serving
    if serving.platform == "local":
        url = endpoint_base(spec)
        token = token_for(url, connection_id=serving.connection)
        if token is None and serving.auth == "token":
            if not serving.connection and not is_configured_server(url):
                raise ServingError(f"{spec.name}: serving.auth is token but {foreign_server_hint(url)}")
            raise ServingError(
                "serving.auth is token but no model server token was found: set MLSPEC_SERVER_TOKEN, or run "
                "the server with its state folder at MLSPEC_HOME/server (as `make serve` does)"
                if not serving.connection
                else f"serving.auth is token but Airflow connection {serving.connection!r} holds no token "
                "(set its password, or extra {\"token\": ...})"
            )
        return token
    if serving.auth != "token":
        return None
    return connection_token(serving.connection or "kubernetes_default", used_for="the endpoint's bearer token")


def spec_settings(spec) -> dict:
    """run_smoke_test's settings from a spec: its smoke_test section, task and endpoint token."""
    return {
        "min_agreement": spec.smoke_test.min_agreement,
        "max_latency_ms": spec.smoke_test.max_latency_ms,
        "task": spec.model.task,
        "atol": spec.smoke_test.atol,
        "rtol": spec.smoke_test.rtol,
        "token": endpoint_token(spec),
    }


def run_smoke_test(
    *,
    endpoint_url: str,
    model_name: str,
    version: int | None,
    x: np.ndarray | Sequence[Mapping[str, Any]],
    expected: dict[str, np.ndarray],
    signature: dict,
    min_agreement: float,
    max_latency_ms: float,
    task: str = "classification",
    atol: float = 1e-4,
    rtol: float = 1e-3,
    token: str | None = None,
    timeout_s: float = 30,
) -> dict:
    """Send each row of `x` to the endpoint and compare its answers with `expected`, the offline
    ONNX Runtime outputs by name (onnx_export.onnx_predict).

    `x`: the samples of a single-input model (an array), or a table model's rows as JSON values
    ({column: raw value or None}, as input_schema.json's example), each sent as one input per column
    (BYTES for a category, null where a value is missing).

    Returns the report `{samples, agreement, p50_ms, p95_ms, passed, problems, ...}` (plain JSON
    values) when every check holds; raises SmokeTestFailed carrying the same report otherwise.
    """
    import numpy as np

    rows = not isinstance(x, np.ndarray) and all(isinstance(row, Mapping) for row in x)
    if not rows:
        x = np.asarray(x)
    if len(x) == 0:
        raise ServingError(f"smoke test of {model_name}: no samples to send")
    if not signature.get("inputs") or not signature.get("outputs"):
        raise ServingError(f"smoke test of {model_name}: the signature has no inputs or outputs")
    if len(signature["inputs"]) != 1 and not rows:
        raise ServingError(
            f"smoke test of {model_name}: the model has {len(signature['inputs'])} inputs; send a table model's "
            "rows as {column: value} to smoke-test it"
        )

    base = endpoint_url.rstrip("/")
    metadata_path = model_path(model_name, version)
    what = f"model {model_name}" + (f" version {version}" if version is not None else "") + f" at {base}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    output_name, want, agrees = _comparison(task, signature, expected, atol=atol, rtol=rtol)
    text = want.dtype.kind in "USO"
    if len(want) != len(x):
        raise ServingError(f"smoke test of {model_name}: {len(x)} samples but {len(want)} expected answers")

    def inputs(sample: Any) -> list[dict]:
        if rows:
            return rows_request([sample], signature["inputs"])["inputs"]
        input_spec = signature["inputs"][0]
        dtype = np.dtype(numpy_dtype(input_spec["datatype"]))
        data = sample.astype(dtype).reshape(-1).tolist()
        return [{"name": input_spec["name"], "shape": [1, *sample.shape], "datatype": input_spec["datatype"], "data": data}]

    report: dict[str, Any] = {
        "endpoint_url": base,
        "model_name": model_name,
        "model_version": None if version is None else str(version),
        "samples": int(len(x)),
        "answered": 0,
        "agreement": 0.0,
        "p50_ms": None,
        "p95_ms": None,
        "passed": False,
        "problems": [],
    }
    problems: list[str] = report["problems"]

    def fail() -> SmokeTestFailed:
        report["passed"] = False
        return SmokeTestFailed(f"smoke test of {what} failed: " + "; ".join(problems), report)

    log.info("smoke test of %s: %d samples, one request each", what, len(x))
    with httpx.Client(base_url=base, headers=headers, timeout=timeout_s) as client:
        # Readiness first: without it, every sample would only repeat the same error.
        try:
            live = client.get(LIVE_PATH)
            if live.status_code != 200:
                problems.append(f"the server is not live (GET {LIVE_PATH} answered {live.status_code})")
                raise fail()
            ready = client.get(ready_path(model_name, version))
            if ready.status_code != 200:
                problems.append(
                    f"the model is not ready (GET {ready_path(model_name, version)} answered {ready.status_code}: "
                    f"{_error_text(ready)})"
                )
                raise fail()
            metadata = client.get(metadata_path)
        except httpx.HTTPError as exc:
            problems.append(f"the endpoint did not answer: {type(exc).__name__}: {exc}")
            raise fail() from None
        if metadata.status_code != 200:
            problems.append(
                f"model metadata (GET {metadata_path}) answered {metadata.status_code}: {_error_text(metadata)}"
            )
        else:
            problems.extend(_metadata_problems(metadata.json(), signature))

        latencies: list[float] = []
        matches = 0
        errors: list[str] = []
        for index, sample in enumerate(x):
            body = {"id": f"smoke-{index}", "inputs": inputs(sample), "outputs": [{"name": output_name}]}
            started = time.perf_counter()
            try:
                response = client.post(infer_path(model_name, version), json=body)
            except httpx.HTTPError as exc:
                errors.append(f"sample {index}: {type(exc).__name__}: {exc}")
                continue
            latencies.append((time.perf_counter() - started) * 1000.0)
            if response.status_code != 200:
                errors.append(f"sample {index}: HTTP {response.status_code}: {_error_text(response)}")
                continue
            try:
                outputs = {o["name"]: o for o in response.json()["outputs"]}
                answer = np.asarray(outputs[output_name]["data"], dtype=object if text else np.float64)
            except (ValueError, KeyError, TypeError) as exc:
                errors.append(f"sample {index}: no usable {output_name!r} output ({exc})")
                continue
            report["answered"] += 1
            if answer.size and agrees(answer, want[index]):
                matches += 1

    agreement = matches / len(x)
    report["agreement"] = agreement
    if latencies:
        report["p50_ms"] = float(np.percentile(latencies, 50))
        report["p95_ms"] = float(np.percentile(latencies, 95))
    if errors:
        quoted = "; ".join(errors[:_QUOTED_ERRORS])
        more = f" (and {len(errors) - _QUOTED_ERRORS} more)" if len(errors) > _QUOTED_ERRORS else ""
        problems.append(f"{len(errors)} of {len(x)} requests failed: {quoted}{more}")
    if agreement < min_agreement:
        problems.append(
            f"agreement {agreement:.4g} is below min_agreement {min_agreement:g} "
            f"({matches} of {len(x)} answers match the offline ONNX Runtime predictions of {output_name!r})"
        )
    p95 = report["p95_ms"]
    if p95 is not None and p95 > max_latency_ms:
        problems.append(f"p95 latency {p95:.1f} ms exceeds max_latency_ms {max_latency_ms:g}")
    if problems:
        log.error("smoke test of %s failed: %s", what, "; ".join(problems))
        raise fail()
    report["passed"] = True
    log.info(
        "smoke test of %s passed: agreement %.4g, p50 %.1f ms, p95 %.1f ms",
        what,
        agreement,
        report["p50_ms"],
        report["p95_ms"],
    )
    return report

"""Serving benchmark: `mlspec serve` against in-process onnxruntime (the limit).

    .venv/bin/python benchmarks/bench_serve.py            # `make bench-serve`; writes benchmarks/results/serve.json
    .venv/bin/python benchmarks/bench_serve.py --quick    # a short run (the test suite's smoke test uses it)
    .venv/bin/python benchmarks/bench_serve.py --load-test  # also 50 connections for 25 s, batch 1 and 32

Two models are built here with random weights (no download): "digits" (FP32 [-1, 64] -> [-1, 10],
a two-layer MLP) and "cifar" (a CIFAR-shape CNN, FP32 [-1, 32, 32, 3] -> [-1, 10]). Both are
published into a store under benchmarks/.work/serve and loaded through the repository API like a
deployment does. The server runs as `mlspec serve` pinned to CPU 0; the load generator (a closed-loop
asyncio HTTP/1.1 client with keep-alive connections, in this file) runs in its own process pinned to
CPU 1. Every case runs `--rounds` times, interleaved, and reports the medians. "Limit" is
`session.run` in this process on one thread (rows per second); "ratio" is mlspec's rows per second
divided by it.

Peers (KServe ModelServer, MLServer, Triton through pytriton) are not installed here: each needs its
own large virtual environment; their figures come from ../shared/PERFORMANCE.md, measured the same
way on the same kind of machine, and are copied into the results for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / ".work" / "serve"
RESULTS = REPO / "benchmarks" / "results" / "serve.json"

# (model, batch, concurrency, body): the cases of PERFORMANCE.md plus batch-1 binary.
CASES = [
    ("digits", 1, 8, "json"),
    ("digits", 1, 8, "binary"),
    ("digits", 64, 8, "json"),
    ("digits", 64, 8, "binary"),
    ("cifar", 1, 8, "json"),
    ("cifar", 16, 8, "json"),
    ("cifar", 16, 8, "binary"),
]
# PERFORMANCE.md (2026-11-30, this machine's kind, same method): req/s of each peer; None = not measured.
PEERS = {
    "digits b1 c8 json": {"kserve": 1430, "mlserver": 834, "triton": 1543, "mlspec_before": 3461},
    "digits b64 c8 json": {"kserve": 388, "mlserver": 409, "triton": 359, "mlspec_before": 599},
    "digits b64 c8 binary": {"kserve": 439, "mlserver": None, "triton": 457, "mlspec_before": 2945},
    "cifar b1 c8 json": {"kserve": 691, "mlserver": 586, "triton": 954, "mlspec_before": 941},
    "cifar b16 c8 json": {"kserve": 69, "mlserver": 93, "triton": 124, "mlspec_before": 73},
    "cifar b16 c8 binary": {"kserve": 52, "mlserver": None, "triton": 298, "mlspec_before": 435},
}
SHAPES = {"digits": (64,), "cifar": (32, 32, 3)}


# -- models ---------------------------------------------------------------------------------------
def digits_onnx(seed: int = 0) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = rng.normal(scale=0.1, size=(64, 64)).astype(np.float32)
    w2 = rng.normal(scale=0.1, size=(64, 10)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input", "W1"], ["h_raw"]),
            helper.make_node("Add", ["h_raw", "b1"], ["h_lin"]),
            helper.make_node("Relu", ["h_lin"], ["h"]),
            helper.make_node("MatMul", ["h", "W2"], ["logits_raw"]),
            helper.make_node("Add", ["logits_raw", "b2"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
        ],
        "digits",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])],
        initializer=[
            numpy_helper.from_array(w1, "W1"),
            numpy_helper.from_array(np.zeros(64, np.float32), "b1"),
            numpy_helper.from_array(w2, "W2"),
            numpy_helper.from_array(np.zeros(10, np.float32), "b2"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def cifar_onnx(seed: int = 0) -> bytes:
    """NHWC input like Keras exports: transpose, conv 32 3x3 + relu + maxpool, conv 64 3x3 + relu +
    maxpool, dense 128 + relu, dense 10 + softmax."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)

    def weights(*shape: int) -> np.ndarray:
        return rng.normal(scale=0.05, size=shape).astype(np.float32)

    nodes = [
        helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "C1", "c1b"], ["c1"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "C2", "c2b"], ["c2"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p2"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "D1", "d1b"], ["d1"]),
        helper.make_node("Relu", ["d1"], ["h"]),
        helper.make_node("Gemm", ["h", "D2", "d2b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    initializers = {
        "C1": weights(32, 3, 3, 3),
        "c1b": np.zeros(32, np.float32),
        "C2": weights(64, 32, 3, 3),
        "c2b": np.zeros(64, np.float32),
        "D1": weights(64 * 6 * 6, 128),
        "d1b": np.zeros(128, np.float32),
        "D2": weights(128, 10),
        "d2b": np.zeros(10, np.float32),
    }
    graph = helper.make_graph(
        nodes,
        "cifar",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 32, 32, 3])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])],
        initializer=[numpy_helper.from_array(v, k) for k, v in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def signature(model: str) -> dict:
    return {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, *SHAPES[model]]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}],
        "opset": 17,
    }


MODELS = {"digits": digits_onnx, "cifar": cifar_onnx}


# -- requests -------------------------------------------------------------------------------------
def request_bytes(model: str, batch: int, body: str, token: str | None = None) -> bytes:
    """One complete HTTP/1.1 request (keep-alive) as a v2 client sends it."""
    rng = np.random.default_rng(batch)
    x = rng.random((batch, *SHAPES[model]), dtype=np.float32)
    tensor = {"name": "input", "shape": list(x.shape), "datatype": "FP32"}
    extra = ""
    if body == "json":
        tensor["data"] = x.reshape(-1).tolist()  # what a client writes from numpy: flat, full precision
        payload = json.dumps({"inputs": [tensor], "outputs": [{"name": "probabilities"}]}).encode()
        content_type = "application/json"
    else:
        tensor["parameters"] = {"binary_data_size": x.nbytes}
        outputs = [{"name": "probabilities", "parameters": {"binary_data": True}}]
        header = json.dumps({"inputs": [tensor], "outputs": outputs}).encode()
        payload = header + x.tobytes()
        content_type = "application/octet-stream"
        extra = f"Inference-Header-Content-Length: {len(header)}\r\n"
    if token:
        extra += f"Authorization: Bearer {token}\r\n"
    head = (
        f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(payload)}\r\n{extra}\r\n"
    )
    return head.encode() + payload


# -- the load generator ---------------------------------------------------------------------------
class _Connection(asyncio.Protocol):
    def __init__(
        self, request: bytes, stats: dict, stop_at: float, record_from: float, done: asyncio.Future
    ) -> None:
        self.request = request
        self.stats = stats
        self.stop_at = stop_at
        self.record_from = record_from
        self.done = done
        self.buffer = bytearray()
        self.expected = -1
        self.status_ok = False
        self.sent_at = 0.0

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._send()

    def _send(self) -> None:
        self.sent_at = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.expected < 0:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(self.buffer[: end + 2]).lower()  # every header line ends with CRLF
                self.status_ok = head.startswith(b"http/1.1 200")
                start = head.find(b"\r\ncontent-length:")
                length = int(head[start + 17 : head.find(b"\r\n", start + 2)]) if start >= 0 else 0
                self.expected = end + 4 + length
            if len(self.buffer) < self.expected:
                return
            del self.buffer[: self.expected]
            self.expected = -1
            now = time.perf_counter()
            if self.sent_at >= self.record_from:
                self.stats["latencies"].append(now - self.sent_at)
                if not self.status_ok:
                    self.stats["errors"] += 1
            if now >= self.stop_at:
                self.transport.close()
                if not self.done.done():
                    self.done.set_result(None)
                return
            self._send()

    def connection_lost(self, exc) -> None:
        if not self.done.done():
            if exc is not None or time.perf_counter() < self.stop_at:
                self.stats["errors"] += 1
            self.done.set_result(None)


async def _generate(port: int, request: bytes, concurrency: int, duration_s: float, warmup_s: float) -> dict:
    loop = asyncio.get_running_loop()
    stats: dict = {"latencies": [], "errors": 0}
    started = time.perf_counter()
    record_from = started + warmup_s
    stop_at = record_from + duration_s
    waits = []
    for _ in range(concurrency):
        done = loop.create_future()
        await loop.create_connection(
            lambda d=done: _Connection(request, stats, stop_at, record_from, d), "127.0.0.1", port
        )
        waits.append(done)
    await asyncio.wait_for(asyncio.gather(*waits), timeout=warmup_s + duration_s + 60)
    latencies = sorted(stats["latencies"])
    count = len(latencies)
    return {
        "requests": count,
        "errors": stats["errors"],
        "seconds": duration_s,
        "req_s": count / duration_s,
        "p50_ms": 1000 * latencies[count // 2] if count else None,
        "p99_ms": 1000 * latencies[min(count - 1, int(count * 0.99))] if count else None,
    }


def client_main(args) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    request = Path(args.request_file).read_bytes()
    result = asyncio.run(_generate(args.port, request, args.concurrency, args.duration, args.warmup))
    print(json.dumps(result))


def _cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def _pin(cpu: int | None):
    """Pin the child to `cpu` and, where allowed, raise its priority: on a shared machine the other
    processes then wait, not the measurement."""
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return None

    def setup() -> None:
        os.sched_setaffinity(0, {cpu})
        try:
            os.nice(-10)
        except OSError:
            pass

    return setup


def run_client(
    port: int, request: bytes, concurrency: int, duration_s: float, warmup_s: float, cpu: int | None
) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".req", delete=False) as handle:
        handle.write(request)
    try:
        argv = [
            sys.executable,
            __file__,
            "client",
            "--port",
            str(port),
            "--request-file",
            handle.name,
            "--concurrency",
            str(concurrency),
            "--duration",
            str(duration_s),
            "--warmup",
            str(warmup_s),
        ]
        out = subprocess.run(
            argv, capture_output=True, text=True, preexec_fn=_pin(cpu), timeout=duration_s + warmup_s + 120
        )
        if out.returncode != 0:
            raise RuntimeError(f"the load generator failed: {out.stderr[-2000:]}")
        return json.loads(out.stdout)
    finally:
        os.unlink(handle.name)


# -- the server -----------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`mlspec serve` in its own process group, pinned to one CPU; stopped by PID."""

    def __init__(self, home: Path, cpu: int | None, token: str, pythonpath: str | None = None) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "MLSPEC_HOME": str(home), "MLSPEC_SERVER_TOKEN": token}
        env.pop("MLSPEC_SERVER_URL", None)
        name = "server"
        if pythonpath:  # another mlspec (a baseline checkout's plugins folder) first on the path
            env["PYTHONPATH"] = os.pathsep.join([pythonpath, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
            name = "baseline"
        self.log = (home / f"{name}.log").open("wb")
        argv = [
            sys.executable,
            "-m",
            "mlspec.cli",
            "serve",
            "--port",
            str(self.port),
            "--state-dir",
            str(home / name),
        ]
        self.process = subprocess.Popen(
            argv,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_pin(cpu),
        )
        import httpx

        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlspec serve exited: {(home / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("mlspec serve did not become ready")
            time.sleep(0.2)

    def rss_mib(self) -> float:
        import psutil

        return psutil.Process(self.process.pid).memory_info().rss / 2**20

    def cpu_s(self) -> float:
        import psutil

        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.log.close()


def publish_models(home: Path) -> dict[str, str]:
    os.environ["MLSPEC_HOME"] = str(home)
    from mlspec.storage import open_store

    store = open_store((home / "models").as_uri())
    uris = {}
    for name, build in MODELS.items():
        published = store.publish_version(
            name,
            {"model.onnx": build(), "signature.json": json.dumps(signature(name)).encode()},
            run_id=f"bench-{name}",
        )
        uris[name] = published.uri
    return uris


# -- the limit and the breakdown ------------------------------------------------------------------
def _timed(fn, min_s: float) -> float:
    """Seconds per call of fn (median of 5 batches of calls, each at least min_s / 5)."""
    fn()
    per = []
    for _ in range(5):
        calls, started = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - started
            if elapsed >= min_s / 5:
                break
        per.append(elapsed / calls)
    return statistics.median(per)


def limit_rows_s(model: str, batch: int, min_s: float) -> float:
    """In-process `session.run` on one thread: rows per second (the most any server can do)."""
    import onnxruntime

    from mlspec.server.repository import session_options

    session = onnxruntime.InferenceSession(
        MODELS[model](), sess_options=session_options(1), providers=["CPUExecutionProvider"]
    )
    x = np.random.default_rng(0).random((batch, *SHAPES[model]), dtype=np.float32)
    return batch / _timed(lambda: session.run(["probabilities"], {"input": x}), min_s)


def breakdown_us(model: str, batch: int, body: str, min_s: float) -> dict:
    """Where one request's server CPU goes outside HTTP: decode, run, encode (µs, in this process)."""
    import onnxruntime

    from mlspec.server.repository import session_options
    from mlspec.server.tensors import TensorSpec, conform_inputs, encode_response, parse_infer_request

    session = onnxruntime.InferenceSession(
        MODELS[model](), sess_options=session_options(1), providers=["CPUExecutionProvider"]
    )
    raw = request_bytes(model, batch, body)
    head, payload = raw.split(b"\r\n\r\n", 1)
    header_length = None
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"inference-header-content-length:"):
            header_length = line.split(b":", 1)[1].strip().decode()
    specs = [TensorSpec("input", "FP32", [-1, *SHAPES[model]])]
    parsed = parse_infer_request(payload, header_length)
    feeds = conform_inputs(parsed.inputs, specs, model)
    outputs = {"probabilities": session.run(["probabilities"], feeds)[0]}
    return {
        "decode": 1e6
        * _timed(
            lambda: conform_inputs(parse_infer_request(payload, header_length).inputs, specs, model), min_s
        ),
        "onnxruntime": 1e6 * _timed(lambda: session.run(["probabilities"], feeds), min_s),
        "encode": 1e6
        * _timed(
            lambda: encode_response(model_name=model, model_version="1", request=parsed, outputs=outputs),
            min_s,
        ),
    }


# -- the benchmark --------------------------------------------------------------------------------
def case_key(model: str, batch: int, concurrency: int, body: str) -> str:
    return f"{model} b{batch} c{concurrency} {body}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command")
    client = sub.add_parser("client")
    client.add_argument("--port", type=int, required=True)
    client.add_argument("--request-file", required=True)
    client.add_argument("--concurrency", type=int, default=8)
    client.add_argument("--duration", type=float, default=8)
    client.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--duration", type=float, default=8, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=1.5, help="seconds run before measuring")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved runs per case (median)")
    parser.add_argument(
        "--quick", action="store_true", help="a short run: 1 round of 0.5 s, batch cases only once"
    )
    parser.add_argument(
        "--load-test", action="store_true", help="also 50 connections for 25 s at batch 1 and 32"
    )
    parser.add_argument("--cases", help="comma-separated subset, e.g. 'cifar b16 c8 json'")
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--table", metavar="JSON", help="only print the Markdown table of a results file")
    parser.add_argument("--work", default=str(WORK), help="scratch folder (store, server state, logs)")
    parser.add_argument(
        "--baseline",
        help="the plugins folder of another mlspec checkout (e.g. `git archive <commit> plugins`): its server "
        "is measured too, interleaved on the same CPU, for a before/after ratio under the same conditions",
    )
    args = parser.parse_args(argv)
    if args.command == "client":
        client_main(args)
        return 0
    if args.table:
        print(table(json.loads(Path(args.table).read_text())))
        return 0
    if args.quick:
        args.duration, args.warmup, args.rounds = 0.5, 0.3, 1

    cpus = _cpus()
    server_cpu, client_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="home-", dir=work))
    token = secrets.token_urlsafe(24)
    uris = publish_models(home)
    cases = CASES
    if args.cases:
        wanted = {c.strip() for c in args.cases.split(",")}
        cases = [c for c in CASES if case_key(*c) in wanted]

    import onnxruntime

    limit_s = 0.2 if args.quick else 1.5
    limits = {}
    breakdown = {}
    for model, batch, _, body in cases:
        limits.setdefault((model, batch), limit_rows_s(model, batch, limit_s))
        breakdown[f"{model} b{batch} {body}"] = breakdown_us(model, batch, body, limit_s)

    server = Server(home, server_cpu, token)
    baseline = Server(home, server_cpu, token, args.baseline) if args.baseline else None
    results: dict = {
        "command": "make bench-serve (.venv/bin/python benchmarks/bench_serve.py)",
        "machine": {
            "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__,
            "server_cpu": server_cpu,
            "client_cpu": client_cpu,
        },
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "baseline": args.baseline,
        },
        "cases": [],
    }
    try:
        import httpx

        headers = {"Authorization": f"Bearer {token}"}
        for target in [server, baseline] if baseline else [server]:
            for name, uri in uris.items():
                response = httpx.post(
                    f"{target.url}/v2/repository/models/{name}/load",
                    json={"parameters": {"storage_uri": uri}},
                    headers=headers,
                    timeout=120,
                )
                response.raise_for_status()
        results["rss_mib_idle"] = round(server.rss_mib(), 1)
        runs: dict[str, list[dict]] = {case_key(*c): [] for c in cases}
        baseline_runs: dict[str, list[dict]] = {}
        for _ in range(args.rounds):
            for model, batch, concurrency, body in cases:
                request = request_bytes(model, batch, body)
                cpu_before = server.cpu_s()
                run = run_client(server.port, request, concurrency, args.duration, args.warmup, client_cpu)
                cpu = server.cpu_s() - cpu_before
                run["server_cpu_us_per_req"] = (
                    1e6 * cpu / max(1, run["requests"]) * args.duration / (args.duration + args.warmup)
                )
                runs[case_key(model, batch, concurrency, body)].append(run)
                if baseline is not None:
                    cpu_before = baseline.cpu_s()
                    old = run_client(
                        baseline.port, request, concurrency, args.duration, args.warmup, client_cpu
                    )
                    old["server_cpu_us_per_req"] = (
                        1e6 * (baseline.cpu_s() - cpu_before) / max(1, old["requests"]) * args.duration
                    ) / (args.duration + args.warmup)
                    baseline_runs.setdefault(case_key(model, batch, concurrency, body), []).append(old)
        for model, batch, concurrency, body in cases:
            key = case_key(model, batch, concurrency, body)
            measured = runs[key]
            req_s = statistics.median(r["req_s"] for r in measured)
            limit = limits[(model, batch)]
            peers = PEERS.get(key, {})
            best_peer = max((v for k, v in peers.items() if k != "mlspec_before" and v), default=None)
            results["cases"].append(
                {
                    "case": key,
                    "model": model,
                    "batch": batch,
                    "concurrency": concurrency,
                    "body": body,
                    "req_s": round(req_s, 1),
                    "p50_ms": round(statistics.median(r["p50_ms"] for r in measured), 2),
                    "p99_ms": round(statistics.median(r["p99_ms"] for r in measured), 2),
                    "errors": sum(r["errors"] for r in measured),
                    "rows_s": round(req_s * batch, 1),
                    "limit_rows_s": round(limit, 1),
                    "ratio_to_limit": round(req_s * batch / limit, 3),
                    "server_cpu_us_per_req": round(
                        statistics.median(r["server_cpu_us_per_req"] for r in measured), 1
                    ),
                    "peers_req_s_from_performance_md": peers or None,
                    "vs_best_peer": round(req_s / best_peer, 2) if best_peer else None,
                    "runs": measured,
                }
            )
            if key in baseline_runs:
                old_req_s = statistics.median(r["req_s"] for r in baseline_runs[key])
                entry = results["cases"][-1]
                entry["baseline_req_s"] = round(old_req_s, 1)
                old_cpu = statistics.median(r["server_cpu_us_per_req"] for r in baseline_runs[key])
                entry["baseline_server_cpu_us_per_req"] = round(old_cpu, 1)
                entry["baseline_runs"] = baseline_runs[key]
                # Server CPU per request now against the baseline's: the median over rounds of each round's
                # ratio (the two servers run back to back in a round, so load from other processes on the
                # machine mostly cancels); + is more CPU now.
                ratios = [
                    now["server_cpu_us_per_req"] / before["server_cpu_us_per_req"]
                    for now, before in zip(measured, baseline_runs[key], strict=True)
                ]
                entry["server_cpu_change_pct"] = round(100 * (statistics.median(ratios) - 1), 1)
                entry["vs_baseline"] = round(req_s / old_req_s, 2)
                before = peers.get("mlspec_before")
                if before and best_peer:
                    # PERFORMANCE.md measured the baseline and the peers side by side: scale by it.
                    entry["vs_best_peer_via_baseline"] = round(req_s / old_req_s * before / best_peer, 2)
        results["rss_mib_after"] = round(server.rss_mib(), 1)
        results["breakdown_us"] = {k: {n: round(v, 1) for n, v in d.items()} for k, d in breakdown.items()}
        if args.load_test:
            results["load_test"] = load_test(server, client_cpu, quick=args.quick)
    finally:
        server.stop()
        if baseline is not None:
            baseline.stop()

    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\nwrote {args.output}")
    return 0


def load_test(server: Server, client_cpu: int | None, *, quick: bool) -> dict:
    """50 connections for 25 s on digits JSON at batch 1 and batch 32: requests, errors, p50/p99, RSS."""
    duration = 1.0 if quick else 25.0
    report = {"connections": 50, "seconds": duration, "model": "digits", "body": "json", "runs": []}
    for batch in (1, 32):
        before = server.rss_mib()
        run = run_client(server.port, request_bytes("digits", batch, "json"), 50, duration, 0.0, client_cpu)
        report["runs"].append(
            {
                "batch": batch,
                "requests": run["requests"],
                "errors": run["errors"],
                "req_s": round(run["req_s"], 1),
                "p50_ms": round(run["p50_ms"], 2) if run["p50_ms"] is not None else None,
                "p99_ms": round(run["p99_ms"], 2) if run["p99_ms"] is not None else None,
                "rss_mib_before": round(before, 1),
                "rss_mib_after": round(server.rss_mib(), 1),
            }
        )
    return report


def table(results: dict) -> str:
    """The results as Markdown (README). CPU µs/req is the server's own CPU time per answered request:
    unlike req/s it barely moves when other processes share the machine; 1e6 / it is what one core
    would answer."""
    with_baseline = any("baseline_req_s" in case for case in results["cases"])
    head = (
        "| case | mlspec req/s | p50 / p99 ms | server CPU µs/req | rows/s ÷ limit | best peer req/s "
        "(PERFORMANCE.md) | vs best peer |"
    )
    rule = "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    if with_baseline:
        head += " before: req/s, CPU µs/req (same run) | CPU per request, now vs before |"
        rule += " ---: | ---: |"
    lines = [head, rule]
    for case in results["cases"]:
        peers = {
            k: v
            for k, v in (case["peers_req_s_from_performance_md"] or {}).items()
            if k != "mlspec_before" and v
        }
        best = max(peers.items(), key=lambda kv: kv[1]) if peers else None
        line = (
            f"| {case['case']} | {case['req_s']:,.0f} | {case['p50_ms']:.1f} / {case['p99_ms']:.1f} | "
            f"{case['server_cpu_us_per_req']:,.0f} | {case['ratio_to_limit']:.3f} | "
            + (f"{best[1]:,} ({best[0]}) | {case['vs_best_peer']:.2f}x |" if best else "n/a | |")
        )
        if with_baseline:
            old_cpu = case.get("baseline_server_cpu_us_per_req")
            change = case.get("server_cpu_change_pct")
            line += f" {case.get('baseline_req_s', 0):,.0f}, {old_cpu or 0:,.0f} | " + (
                f"{change:+.1f} % |" if change is not None else " |"
            )
        lines.append(line)
    if "load_test" in results:
        lines += [
            "",
            "| load test (50 connections) | requests | errors | req/s | p50 / p99 ms | RSS MiB before -> after |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for run in results["load_test"]["runs"]:
            lines.append(
                f"| digits JSON batch {run['batch']}, {results['load_test']['seconds']:g} s | {run['requests']:,} | "
                f"{run['errors']} | {run['req_s']:,.0f} | {run['p50_ms']} / {run['p99_ms']} | "
                f"{run['rss_mib_before']} -> {run['rss_mib_after']} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

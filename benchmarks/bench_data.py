"""Data benchmark: a raw table through mlspec's prepare_data path, a logistic regression fit and the ONNX export,
against the same work written by hand with pandas, a scikit-learn Pipeline and skl2onnx.

    .venv/bin/python benchmarks/bench_data.py             # `make bench-data`; writes benchmarks/results/data.json
    .venv/bin/python benchmarks/bench_data.py --rows 2000 --rounds 1 --sources csv   # a smoke run

The table (generated once per --rows and cached under benchmarks/.work/data): --rows rows (default 1,000,000) of
10 numbers with 5 % gaps (num_0..num_9), 10 categories of 10 to 1,000 distinct values (cat_0..cat_9, no gaps) and
a two-class text label, as CSV and as Parquet files, and as a table in a real PostgreSQL server started on loopback
as the tests start theirs (tests/fixtures/postgres.py).

Each (source, variant) runs in its own fresh Python process, which times its phases (wall clock and CPU) and
reports its peak RSS (VmHWM from /proc/self/status, read after each phase; the figure is the one right after the
export, before the check below). Each variant first runs once on a 500-row table, and the workers cache their
bytecode (worker_environment), so the figures are those of an installed environment:

* ``handwritten``  pandas reads the table (read_csv, read_parquet, read_sql over a SQLAlchemy engine), two
                   stratified train_test_split calls (test 0.2, validation 0.1), Pipeline(ColumnTransformer(
                   SimpleImputer(median) on the numbers, OneHotEncoder(handle_unknown="ignore") on the categories),
                   LogisticRegression) fitted on the training rows, skl2onnx with one input per column.
* ``mlspec``       what prepare_data and train do: ml.data.load_source with the column spec (numbers
                   `missing: median`, categories `encode: one_hot`) through the source's own reader (the file kind,
                   the sql:// kind's common.sql hook), ml.data.split, the npz prepare_data writes and train reads,
                   the framework adapter (ml.tabular's TabularAdapter over the scikit-learn adapter) build + fit
                   with `logistic_regression`, and its to_onnx.

Both fit LogisticRegression(max_iter=200) on the same split shares. After the peak is read, each checks its ONNX
model with onnxruntime on test rows against its own predictions (labels must agree) and reports test accuracy,
so a variant that skipped work would show. Rounds alternate the order of the variants (round 1 hand-written
first for CSV, mlspec first for Parquet, ...; the next round the other way round). The figure is the median
over rounds: rows per second = table rows / wall seconds of the whole work (imports included), CPU seconds, peak
RSS in MiB; ratios are mlspec / hand-written. Targets (issue 13 §4): time within 1.3x, memory within 1.5x, and a
1,000-row table's prepare_data (load_source, split, npz; in a fresh process, imports included) under 2 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WORKDIR = REPO / "benchmarks" / ".work" / "data"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "data.json"

NUMBERS = tuple(f"num_{i}" for i in range(10))
CATEGORIES = tuple(f"cat_{i}" for i in range(10))
CARDINALITIES = (10, 17, 28, 46, 77, 129, 215, 359, 599, 1000)  # geometric from 10 to 1,000
LABEL = "label"
GAP_SHARE = 0.05
CONNECTION_ID = "bench_data"
VALIDATION, TEST, SEED = 0.1, 0.2, 42
MAX_ITER = 200
OPSET = 17
CHECK_ROWS = 20_000  # test rows the ONNX check runs
SMALL_ROWS = 1_000
WARMUP_ROWS = 500  # the table each variant runs on once before it is measured
GENERATOR_VERSION = 1  # bump when the table changes, so cached files are written again

SOURCES = ("csv", "parquet", "postgres")
VARIANTS = ("handwritten", "mlspec")
# The targets from the issue.
TARGET_TIME_RATIO = 1.3
TARGET_MEMORY_RATIO = 1.5
TARGET_SMALL_PREPARE_S = 2.0

# The column spec mlspec reads (data.features): numbers filled with their median, categories one-hot encoded.
FEATURE_SPEC = {
    **{name: {"type": "number", "missing": "median"} for name in NUMBERS},
    **{name: {"type": "category", "encode": "one_hot"} for name in CATEGORIES},
}


# --------------------------------------------------------------------------- the table


def generate_table(rows: int, seed: int = SEED) -> Any:
    """The benchmark's table: numbers with gaps, skewed categories, and a label the features decide (with noise)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    logit = rng.normal(0.0, 1.0, rows)
    for index, name in enumerate(NUMBERS):
        values = rng.normal(index, 1.0 + index, rows).round(4)
        logit += (0.6 if index % 2 == 0 else -0.4) * (values - index) / (1.0 + index)
        values[rng.random(rows) < GAP_SHARE] = np.nan
        columns[name] = values
    for index, (name, count) in enumerate(zip(CATEGORIES, CARDINALITIES, strict=True)):
        weights = 1.0 / np.sqrt(np.arange(1, count + 1))
        codes = rng.choice(count, size=rows, p=weights / weights.sum())
        effects = rng.normal(0.0, 0.8 if index < 4 else 0.2, count)
        logit += effects[codes]
        vocabulary = np.array([f"c{index}_{code}" for code in range(count)], dtype=object)
        columns[name] = vocabulary[codes]
    columns[LABEL] = np.where(logit > 0, "yes", "no").astype(object)
    return pd.DataFrame(columns)


def table_files(workdir: Path, rows: int) -> dict[str, Path]:
    """The CSV and Parquet files of a --rows table, written once and reused (they depend only on rows)."""
    folder = workdir / f"table-{rows}-v{GENERATOR_VERSION}"
    files = {"csv": folder / "table.csv", "parquet": folder / "table.parquet"}
    if not all(path.is_file() for path in files.values()):
        folder.mkdir(parents=True, exist_ok=True)
        frame = generate_table(rows)
        for fmt, path in files.items():
            partial = path.with_suffix(".partial")
            if fmt == "csv":
                frame.to_csv(partial, index=False)
            else:
                frame.to_parquet(partial, index=False)
            partial.replace(path)
    return files


def load_postgres(server: Any, csv_path: Path, table: str) -> str:
    """The table in PostgreSQL (numbers as double precision, empty CSV fields are NULL; categories and label text);
    the query that reads it."""
    columns = ", ".join(
        [f"{name} double precision" for name in NUMBERS] + [f"{name} text NOT NULL" for name in (*CATEGORIES, LABEL)]
    )
    connection = server.connect()
    try:
        with connection, connection.cursor() as cursor, csv_path.open(encoding="utf-8") as rows:
            cursor.execute(f"CREATE TABLE {table} ({columns})")
            cursor.copy_expert(f"COPY {table} FROM STDIN WITH (FORMAT csv, HEADER true)", rows)
            cursor.execute(f"ANALYZE {table}")
    finally:
        connection.close()
    return f"SELECT * FROM {table}"


# --------------------------------------------------------------------------- measuring one variant (a worker)


class Phases:
    """Wall-clock and CPU seconds per phase, from the worker's start (imports included), and the peak RSS so far
    at the end of each (where the memory goes)."""

    def __init__(self) -> None:
        self.started = self.last = time.perf_counter()
        self.last_cpu = time.process_time()
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self.peak_rss_mib: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        self.seconds[name] = round(now - self.last, 4)
        self.cpu_seconds[name] = round(cpu - self.last_cpu, 4)
        self.peak_rss_mib[name] = peak_rss_mib()
        self.last, self.last_cpu = now, time.process_time()

    @property
    def total(self) -> float:
        return round(self.last - self.started, 4)


def peak_rss_mib() -> float:
    """This process's peak resident set size so far (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def handwritten(source: dict, phases: Phases) -> dict:
    """The same work as a data scientist writes it with pandas, a scikit-learn Pipeline and skl2onnx."""
    import numpy as np
    import pandas as pd
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    phases.lap("import")
    if source["kind"] == "csv":
        frame = pd.read_csv(source["path"])
    elif source["kind"] == "parquet":
        frame = pd.read_parquet(source["path"])
    else:
        import sqlalchemy

        engine = sqlalchemy.create_engine(source["sqlalchemy_url"])
        frame = pd.read_sql(source["query"], engine)
        engine.dispose()
    phases.lap("read")
    frame = frame.dropna(subset=[LABEL])
    y = frame.pop(LABEL).astype(str).to_numpy()
    x = frame[list(NUMBERS + CATEGORIES)]
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=TEST, stratify=y, random_state=SEED)
    x_train, _x_val, y_train, _y_val = train_test_split(
        x_rest, y_rest, test_size=VALIDATION / (1 - TEST), stratify=y_rest, random_state=SEED
    )
    del frame, x, x_rest, y_rest
    phases.lap("prepare")
    pipeline = Pipeline([
        ("columns", ColumnTransformer([
            ("numbers", SimpleImputer(strategy="median"), list(NUMBERS)),
            ("categories", OneHotEncoder(handle_unknown="ignore"), list(CATEGORIES)),
        ])),
        ("model", LogisticRegression(max_iter=MAX_ITER)),
    ])
    pipeline.fit(x_train, y_train)
    phases.lap("fit")
    inputs = [(name, FloatTensorType([None, 1])) for name in NUMBERS]
    inputs += [(name, StringTensorType([None, 1])) for name in CATEGORIES]
    model = convert_sklearn(
        pipeline, initial_types=inputs, options={LogisticRegression: {"zipmap": False}}, target_opset=OPSET
    ).SerializeToString()
    phases.lap("export")
    peak = peak_rss_mib()

    rows = x_test[:CHECK_ROWS]
    feeds = {name: rows[name].to_numpy(dtype=np.float32).reshape(-1, 1) for name in NUMBERS}
    feeds |= {name: rows[name].astype(str).to_numpy(dtype=object).reshape(-1, 1) for name in CATEGORIES}
    onnx_labels = _onnx_labels(model, feeds)
    return {
        "peak_rss_mib": peak,
        "model_bytes": len(model),
        "train_rows": len(x_train),
        "features_after_encoding": int(len(pipeline[-1].coef_[0])),
        "test_accuracy": round(float(np.mean(pipeline.predict(x_test) == y_test)), 4),
        "onnx_agrees": bool(np.array_equal(onnx_labels.astype(str), pipeline.predict(rows).astype(str))),
    }


def mlspec(source: dict, phases: Phases) -> dict:
    """prepare_data then train and export, as mlspec's operators run them, without Airflow's task around them."""
    sys.path.insert(0, str(REPO / "plugins"))
    import numpy as np

    from mlspec.ml import data as ml_data
    from mlspec.ml import tabular
    from mlspec.ml.frameworks import TrainingPlan, get_adapter
    from mlspec.sources import SourceRead, source_kind
    from mlspec.spec.model import DataLimits

    phases.lap("import")
    if source["kind"] == "postgres":
        os.environ[f"AIRFLOW_CONN_{CONNECTION_ID.upper()}"] = source["airflow_uri"]
        uri = f"sql://{CONNECTION_ID}"
    else:
        os.environ["MLSPEC_DATA_ROOTS"] = str(Path(source["path"]).parent)
        uri = Path(source["path"]).as_uri()
    kind = source_kind(uri)
    limits = DataLimits(max_bytes=2**34)
    read = SourceRead(connection=None, max_bytes=limits.max_bytes, specs_dir=None, query=source.get("query"))
    loaded = ml_data.load_source(
        uri, fmt=None, features=FEATURE_SPEC, label=LABEL, task="classification", limits=limits,
        read_bytes=lambda file_uri: kind.read_bytes(file_uri, read),
        read_table=lambda table_uri: kind.read_table(table_uri, read),
    )
    phases.lap("read+load_source")
    dataset = ml_data.split(
        *loaded.splittable, validation=VALIDATION, test=TEST, seed=SEED, stratify=True, task="classification",
        method="random",  # the hand-written variant's stratified train_test_split, so both fit the same rows
    )
    payload = dataset.to_npz_bytes()
    phases.lap("split+npz")
    del loaded, dataset
    dataset = ml_data.Dataset.from_npz_bytes(payload)
    del payload
    phases.lap("npz read (train)")
    adapter = tabular.wrap(get_adapter("sklearn"))
    plan = TrainingPlan(
        framework="sklearn", task="classification", preprocess=(), seed=SEED,
        estimator="logistic_regression", params={"max_iter": MAX_ITER},
    )
    model = adapter.build(plan, dataset)
    adapter.fit(model, plan, dataset)
    phases.lap("fit")
    onnx_model = adapter.to_onnx(model, task="classification", opset=OPSET, sample=dataset.x_train[:8])
    phases.lap("export")
    peak = peak_rss_mib()

    rows = dataset.x_test[:CHECK_ROWS]
    predicted = adapter.predict(model, dataset.x_test, "classification")["label"]
    onnx_labels = _onnx_labels(onnx_model, tabular.feeds(dataset.columns, rows, tabular.fill_values(model)))
    as_values = np.asarray(dataset.class_names, dtype=object)[np.asarray(predicted[:CHECK_ROWS])]
    return {
        "peak_rss_mib": peak,
        "model_bytes": len(onnx_model),
        "train_rows": len(dataset.x_train),
        "test_accuracy": round(float(np.mean(np.asarray(predicted) == np.asarray(dataset.y_test))), 4),
        "onnx_agrees": bool(np.array_equal(onnx_labels.astype(str), as_values.astype(str))),
    }


def small_prepare(source: dict, phases: Phases) -> dict:
    """A 1,000-row table's prepare_data in a fresh process: load_source with the column spec, split, npz."""
    sys.path.insert(0, str(REPO / "plugins"))
    from mlspec.ml import data as ml_data
    from mlspec.sources import SourceRead, source_kind
    from mlspec.spec.model import DataLimits

    phases.lap("import")
    os.environ["MLSPEC_DATA_ROOTS"] = str(Path(source["path"]).parent)
    uri = Path(source["path"]).as_uri()
    kind = source_kind(uri)
    read = SourceRead(connection=None, max_bytes=DataLimits().max_bytes, specs_dir=None)
    for lap in ("first", "second"):  # the second in the same process: what is left without imports and caches
        loaded = ml_data.load_source(
            uri, fmt=None, features=FEATURE_SPEC, label=LABEL, task="classification",
            read_bytes=lambda file_uri: kind.read_bytes(file_uri, read),
        )
        dataset = ml_data.split(
            *loaded.splittable, validation=VALIDATION, test=TEST, seed=SEED, stratify=True,
            task="classification", method="random",
        )
        dataset.to_npz_bytes()
        phases.lap(f"prepare_data ({lap})")
    return {"peak_rss_mib": peak_rss_mib(), "train_rows": len(dataset.x_train)}


def _onnx_labels(model: bytes, feeds: dict) -> Any:
    """The `label` output of an ONNX model for these inputs, flat."""
    import numpy as np
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["label"], feeds)[0]).ravel()


WORKERS = {"handwritten": handwritten, "mlspec": mlspec, "small_prepare": small_prepare}


def worker_main(variant: str, source_json: str) -> None:
    phases = Phases()
    import logging

    logging.basicConfig(level=logging.WARNING)
    result = WORKERS[variant](json.loads(source_json), phases)
    print(json.dumps({
        "variant": variant, "seconds": phases.total, "phases": phases.seconds, "phase_cpu_seconds": phases.cpu_seconds,
        "phase_peak_rss_mib": phases.peak_rss_mib,
        "cpu_seconds": round(sum(phases.cpu_seconds.values()), 2), **result,
    }))


# --------------------------------------------------------------------------- the driver


def worker_environment(workdir: Path) -> dict[str, str]:
    """The workers' environment: compiled bytecode cached under the workdir (PYTHONPYCACHEPREFIX), as every
    installed environment has it, even where PYTHONDONTWRITEBYTECODE is set: compiling pandas, scikit-learn and
    skl2onnx from source on every start would cost seconds that no deployment pays."""
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    environment["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    return environment


def run_worker(variant: str, source: dict, timeout: float, environment: dict[str, str]) -> dict:
    """One variant in a fresh interpreter; its JSON line."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--worker", variant, "--source", json.dumps(source)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=environment,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise SystemExit(f"{variant} on {source['kind']} ran past {timeout:.0f} s") from None
    if process.returncode != 0:
        raise SystemExit(f"{variant} on {source['kind']} failed ({process.returncode}):\n{stderr[-4000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["process_seconds"] = round(time.perf_counter() - started, 3)
    return result


def summarize(runs: list[dict], rows: int) -> dict:
    seconds = statistics.median(run["seconds"] for run in runs)
    phases = {name: round(statistics.median(run["phases"][name] for run in runs), 3) for name in runs[0]["phases"]}
    return {
        "seconds": round(seconds, 3),
        "rows_per_second": round(rows / seconds),
        "peak_rss_mib": round(statistics.median(run["peak_rss_mib"] for run in runs), 1),
        "cpu_seconds": round(statistics.median(run["cpu_seconds"] for run in runs), 2),
        "phases": phases,
        "test_accuracy": runs[0]["test_accuracy"],
        "onnx_agrees": all(run["onnx_agrees"] for run in runs),
        "raw": runs,
    }


def machine_info() -> dict:
    info: dict[str, Any] = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version()}
    try:
        info["memory_gib"] = round(int(Path("/proc/meminfo").read_text().split()[1]) / 2**20, 1)
        info["load_average"] = [round(value, 2) for value in os.getloadavg()]
    except (OSError, IndexError, ValueError):
        pass
    return info


def versions() -> dict:
    import onnxruntime
    import pandas
    import pyarrow
    import skl2onnx
    import sklearn

    return {
        "pandas": pandas.__version__, "pyarrow": pyarrow.__version__, "scikit-learn": sklearn.__version__,
        "skl2onnx": skl2onnx.__version__, "onnxruntime": onnxruntime.__version__,
    }


def git_commit() -> str | None:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    return done.stdout.strip() or None


def table(report: dict) -> str:
    """The results as Markdown (README)."""
    lines = [
        "| source | variant | rows/s | seconds | CPU seconds | peak RSS MiB | time ÷ hand-written "
        "| CPU ÷ hand-written | memory ÷ hand-written | test accuracy |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for kind, case in report["cases"].items():
        for variant in VARIANTS:
            figures = case[variant]
            ratio = case["ratios"] if variant == "mlspec" else {"time": 1.0, "cpu": 1.0, "memory": 1.0}
            lines.append(
                f"| {kind} | {variant} | {figures['rows_per_second']:,} | {figures['seconds']:.1f} | "
                f"{figures['cpu_seconds']:.1f} | {figures['peak_rss_mib']:,.0f} | {ratio['time']:.2f}x | "
                f"{ratio['cpu']:.2f}x | {ratio['memory']:.2f}x | {figures['test_accuracy']:.3f} |"
            )
    small = report.get("small_prepare")
    if small:
        lines.append("")
        lines.append(
            f"{SMALL_ROWS:,}-row table, prepare_data in a fresh process: {small['seconds']:.2f} s, CPU "
            f"{small['cpu_seconds']:.2f} s (imports {small['phases']['import']:.2f} s; a second time in the same process "
            f"{small['phases']['prepare_data (second)']:.3f} s)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the generated table (default 1,000,000)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per source, alternating the order (default 2)")
    parser.add_argument("--sources", default=",".join(SOURCES), help=f"comma-separated, of {', '.join(SOURCES)}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="where the generated tables are cached")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds one variant may run")
    parser.add_argument("--no-warmup", action="store_true", help="measure without a warm-up run of each variant first")
    parser.add_argument("--fail-on-miss", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker_main(args.worker, args.source)
        return 0

    sources = [name.strip() for name in args.sources.split(",") if name.strip()]
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        parser.error(f"unknown source {', '.join(unknown)}; use {', '.join(SOURCES)}")
    started = time.perf_counter()
    files = table_files(args.workdir, args.rows)
    print(f"table: {args.rows:,} rows, {files['csv'].stat().st_size / 2**20:.0f} MiB CSV, "
          f"{files['parquet'].stat().st_size / 2**20:.0f} MiB Parquet", flush=True)
    report: dict[str, Any] = {
        "benchmark": "data",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "rows": args.rows,
        "rounds": args.rounds,
        "columns": {"numbers": list(NUMBERS), "categories": dict(zip(CATEGORIES, CARDINALITIES, strict=True)),
                    "gap_share": GAP_SHARE, "label": LABEL},
        "model": f"LogisticRegression(max_iter={MAX_ITER}), split test {TEST} validation {VALIDATION}, opset {OPSET}",
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
        "cases": {},
    }
    environment = worker_environment(args.workdir)
    warmup_files = None if args.no_warmup else table_files(args.workdir, WARMUP_ROWS)
    with ExitStack() as stack:
        server = stack.enter_context(_postgres()) if "postgres" in sources else None
        for index, kind in enumerate(sources):
            source = _source(kind, files, server, "bench")
            # Each variant once on a small table first: bytecode compiled and cached, the files in the page cache.
            if not args.no_warmup:
                warmup = _source(kind, warmup_files, server, "bench_warmup")
                for variant in VARIANTS:
                    run_worker(variant, warmup, args.timeout, environment)
            runs: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
            for round_index in range(args.rounds):
                order = VARIANTS if (index + round_index) % 2 == 0 else tuple(reversed(VARIANTS))
                for variant in order:
                    result = run_worker(variant, source, args.timeout, environment)
                    runs[variant].append(result)
                    print(f"{kind} round {round_index + 1} {variant}: {result['seconds']:.1f} s, "
                          f"peak {result['peak_rss_mib']:.0f} MiB, {result['phases']}", flush=True)
            case = {variant: summarize(runs[variant], args.rows) for variant in VARIANTS}
            time_ratio = case["mlspec"]["seconds"] / case["handwritten"]["seconds"]
            cpu_ratio = case["mlspec"]["cpu_seconds"] / case["handwritten"]["cpu_seconds"]
            memory_ratio = case["mlspec"]["peak_rss_mib"] / case["handwritten"]["peak_rss_mib"]
            case["ratios"] = {"time": round(time_ratio, 3), "cpu": round(cpu_ratio, 3), "memory": round(memory_ratio, 3)}
            report["cases"][kind] = case
    with tempfile.TemporaryDirectory() as folder:
        small_csv = Path(folder) / "small.csv"
        generate_table(SMALL_ROWS).to_csv(small_csv, index=False)
        small_source = {"kind": "csv", "path": str(small_csv)}
        if not args.no_warmup:
            run_worker("small_prepare", small_source, args.timeout, environment)
        small = run_worker("small_prepare", small_source, args.timeout, environment)
    report["small_prepare"] = small
    targets: dict[str, Any] = {}
    for kind, case in report["cases"].items():
        targets[f"{kind}_time_within_{TARGET_TIME_RATIO}x"] = case["ratios"]["time"] <= TARGET_TIME_RATIO
        targets[f"{kind}_memory_within_{TARGET_MEMORY_RATIO}x"] = case["ratios"]["memory"] <= TARGET_MEMORY_RATIO
    targets[f"small_prepare_under_{TARGET_SMALL_PREPARE_S:g}s"] = small["seconds"] < TARGET_SMALL_PREPARE_S
    targets["all_met"] = all(targets.values())
    report["targets"] = targets
    report["versions"] = versions()
    report["machine"] = machine_info()
    report["git_commit"] = git_commit()
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print()
    print(table(report))
    print()
    for name, met in targets.items():
        print(f"- {name}: {'met' if met else 'MISSED'}")
    print(f"\nwrote {args.out}")
    return 1 if args.fail_on_miss and not targets["all_met"] else 0


def _source(kind: str, files: dict[str, Path], server: Any, table: str) -> dict[str, Any]:
    """What a worker reads: a file's path, or the PostgreSQL server (the table loaded from the CSV file) and query."""
    if kind != "postgres":
        return {"kind": kind, "path": str(files[kind])}
    return {
        "kind": kind,
        "query": load_postgres(server, files["csv"], table),
        "airflow_uri": server.airflow_uri,
        "sqlalchemy_url": (
            f"postgresql+psycopg2://{server.user}:{server.password}@{server.host}:{server.port}/{server.database}"
        ),
    }


def _postgres():
    """A PostgreSQL server as the tests start one (tests/fixtures/postgres.py), stopped when the run ends."""
    sys.path.insert(0, str(REPO))
    from tests.fixtures.postgres import postgres_bin, running_postgres

    bin_dir = postgres_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL is not installed (apt-get install postgresql, as .ci/run does); "
                         "or leave it out: --sources csv,parquet")
    return running_postgres(bin_dir)


if __name__ == "__main__":
    sys.exit(main())

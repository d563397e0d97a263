"""Parse-time benchmark: milliseconds per DAG for mlspec, a hand-written DAG file and dag-factory.

One run compiles N specs (default 200) three ways, each in its own fresh Python process:

* ``mlspec``       `mlspec.dagbag.compile_specs(folder)`, schema validation on, exactly as dags/ does.
* ``handwritten``  a Python DAG file that builds the same DAG (same 9 mlspec operators with the resolved
                   spec dict, same schedule, params, tags, doc_md, default_args) in a loop, N times.
* ``dagfactory``   dag-factory 1.1.x `load_yaml_dags` over N YAML files describing the same DAG.

Each process reports the one-time `import airflow` cost and the tool's own imports separately from the
compile passes; the per-DAG figure is the first ("cold") compile pass divided by N, the second pass
("warm") shows what in-process caches give. Rounds are interleaved in rotating order so background load
hits every tool alike. Results go to benchmarks/results/parse.json; a markdown table goes to stdout.

Run it with the project's interpreter (`.venv/bin/python benchmarks/bench_parse.py`); dag-factory is
loaded from its own --target install (benchmarks/.work/dagfactory-site), never from the project's .venv,
so the three measurements use the very same Airflow installation.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib.util
import json
import logging
import os
import platform
import pprint
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("bench_parse")

REPO = Path(__file__).resolve().parents[1]
TEMPLATE_SPEC = REPO / "specs" / "digits.yaml"
DEFAULT_WORKDIR = REPO / "benchmarks" / ".work" / "parse"
DEFAULT_DAGFACTORY_SITE = REPO / "benchmarks" / ".work" / "dagfactory-site"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "parse.json"
DAGFACTORY_REQUIREMENT = "dag-factory==1.1.*"
DAGFACTORY_DEPS = ("yaml", "packaging", "pathspec", "typer")  # installed with --no-deps: must come from .venv

# The targets from the issue, compared on the median cold per-DAG time.
TARGET_MLSPEC_OVER_HANDWRITTEN = 1.5  # at most
TARGET_DAGFACTORY_OVER_MLSPEC = 2.0  # at least

# A worker measuring a baseline (--baseline) imports mlspec from that plugins folder, not this checkout's.
PLUGINS_ENV = "MLSPEC_BENCH_PLUGINS"


# The operator class of every task, by task id, and its inputs (argument -> earlier task): the compiler's own table.
def _stages() -> tuple:
    sys.path.insert(0, os.environ.get(PLUGINS_ENV) or str(Path(__file__).resolve().parents[1] / "plugins"))
    from mlspec.compiler import STAGES

    return STAGES


STAGES = _stages()
OPERATOR_CLASSPATHS = {task_id: classpath for task_id, classpath, _ in STAGES}
STAGE_INPUTS = {task_id: inputs for task_id, _, inputs in STAGES}
OPERATOR_MODULES = sorted({path.rsplit(".", 1)[0] for path in OPERATOR_CLASSPATHS.values()})

# name -> (worker tool, variant, what it is). The first three are the measurements the targets use.
MEASUREMENTS = {
    "mlspec": (
        "mlspec",
        "production",
        "mlspec.dagbag.compile_specs(folder), spec cache off: YAML with positions, JSON Schema "
        "validation, semantic checks, defaults, ModelSpec, build_dag for every spec (the first parse after an edit)",
    ),
    "mlspec_cached": (
        "mlspec",
        "cached",
        "mlspec.dagbag.compile_specs(folder) on specs it validated before (mlspec.spec.cache: keyed by "
        "the spec text, schema and mlspec version): the steady state, as Airflow re-parses unchanged specs",
    ),
    "handwritten": (
        "handwritten",
        "mlspec-operators",
        "hand-written Python DAG file: the same DAG built in a "
        "loop with the 9 mlspec operators and the resolved spec dict as a Python literal",
    ),
    "dagfactory": (
        "dagfactory",
        "spec-in-default-args",
        "dag-factory load_yaml_dags over one YAML file per DAG: "
        "the same 9 mlspec operator classpaths, the resolved spec passed once through default_args",
    ),
}
# With --baseline: the same two measurements of another mlspec (e.g. the commit before a change), in the same
# run and rounds, so a before/after comparison shares the machine's load.
BASELINE_MEASUREMENTS = {
    "mlspec_baseline": ("mlspec", "production", "the --baseline mlspec, spec cache off"),
    "mlspec_baseline_cached": ("mlspec", "cached", "the --baseline mlspec on specs it validated before"),
}
DIAGNOSTICS = {
    "handwritten_empty_operator": (
        "handwritten",
        "empty-operators",
        "the hand-written file with EmptyOperator instead of the mlspec operators (no spec passed)",
    ),
    "dagfactory_spec_per_task": (
        "dagfactory",
        "spec-per-task",
        "dag-factory with the spec given to each task "
        "(a YAML anchor on the first task, aliases on the others)",
    ),
    "mlspec_libyaml_whatif": (
        "mlspec",
        "libyaml",
        "what-if, not production: mlspec with yaml.SafeLoader swapped "
        "for libyaml's CSafeLoader in this process only",
    ),
}


def dag_names(n: int) -> list[str]:
    width = max(3, len(str(n - 1)))
    return [f"bench-digits-{i:0{width}d}" for i in range(n)]


# --------------------------------------------------------------------------------------------------
# Inputs: N specs for mlspec, the equivalent hand-written DAG file and dag-factory YAML.
# --------------------------------------------------------------------------------------------------


def write_inputs(workdir: Path, n: int) -> dict[str, Path]:
    """Generate every input under workdir (its generated sub-folders are replaced, nothing else)."""
    from mlspec.compiler import RETRIES, START_DATE, TASK_ORDER, build_dag, dag_doc
    from mlspec.spec import load_spec_text

    names = dag_names(n)
    template = TEMPLATE_SPEC.read_text(encoding="utf-8")
    if "\n  name: digits\n" not in template:
        raise SystemExit(f"{TEMPLATE_SPEC} no longer has `  name: digits`; update bench_parse.write_inputs")

    paths = {
        "mlspec": workdir / "specs",
        "dagfactory": workdir / "dagfactory",
        "dagfactory-per-task": workdir / "dagfactory-per-task",
        "handwritten": workdir / "handwritten" / "handwritten_dags.py",
    }
    for folder in (
        paths["mlspec"],
        paths["dagfactory"],
        paths["dagfactory-per-task"],
        paths["handwritten"].parent,
    ):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)

    first_text = first_spec = None
    for name in names:
        text = template.replace("\n  name: digits\n", f"\n  name: {name}\n", 1)
        spec_path = paths["mlspec"] / f"{name}.yaml"
        spec_path.write_text(text, encoding="utf-8")
        if first_text is None:
            first_text, first_spec = text, load_spec_text(text, str(spec_path))
    assert first_spec is not None and first_text is not None
    resolved = first_spec.to_dict()

    # The hand-written file's doc is mlspec's doc of the first DAG with the name made a placeholder, so
    # both produce identical DAGs for that name (the shape check below compares them).
    doc_template = dag_doc(first_spec, first_text).replace(names[0], "__NAME__")
    extras = task_extras(build_dag(first_spec, spec_text=first_text), names[0])
    paths["handwritten"].write_text(
        handwritten_module_text(
            resolved, doc_template, first_spec, TASK_ORDER, RETRIES, START_DATE, extras, paths["mlspec"]
        ),
        encoding="utf-8",
    )

    # dag-factory appends the YAML of its config to doc_md itself, so it gets the doc's header only.
    header = (
        f"### {first_spec.metadata.description or first_spec.name}\n\n"
        f"Owner: {first_spec.metadata.owner}. Flow: {' → '.join(TASK_ORDER)}.\n\n"
        "Trigger with parameters to override `epochs` or `learning_rate` for one run.\n"
    )
    for name in names:
        spec = {**resolved, "metadata": {**resolved["metadata"], "name": name}}
        for variant, folder in (
            ("spec-in-default-args", paths["dagfactory"]),
            ("spec-per-task", paths["dagfactory-per-task"]),
        ):
            config = dagfactory_config(
                name, spec, header, first_spec, TASK_ORDER, RETRIES, START_DATE, variant, extras,
                paths["mlspec"],
            )
            (folder / f"{name}.yaml").write_text(dump_yaml(config), encoding="utf-8")
    log.info("wrote %d specs, %d+%d dag-factory files and %s", n, n, n, paths["handwritten"])
    return paths


def dump_yaml(data: dict) -> str:
    import yaml

    # safe_dump writes a shared object once with an anchor and aliases after it, as a person would.
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120)


def dagfactory_config(
    name, spec, header, model_spec, task_order, retries, start_date, variant, extras, specs_dir
) -> dict:
    """One dag-factory YAML document for one DAG (dag-factory 1.x: `__type__` builds Param and timedelta)."""
    from mlspec.run_form import ACCEPT_DRIFT  # every mlspec DAG's form has it

    default_args: dict[str, Any] = {
        "owner": model_spec.metadata.owner,
        "retries": 0,
        "retry_delay": {"__type__": "datetime.timedelta", "seconds": 15},
    }
    if variant == "spec-in-default-args":
        default_args["spec"] = spec  # Airflow hands default_args to every operator that takes the argument
    tasks = []
    previous = None
    for task_id in task_order:
        task: dict[str, Any] = {
            "task_id": task_id,
            "operator": OPERATOR_CLASSPATHS[task_id],
            "retries": retries.get(task_id, 0),
            "execution_timeout": {"__type__": "datetime.timedelta", "seconds": extras[task_id]["timeout_s"]},
            "spec_file": f"{specs_dir}/{name}.yaml",
        }
        if extras[task_id]["outlets"]:
            task["outlets"] = [
                {"__type__": "airflow.sdk.Asset", "name": uri, "uri": uri}
                for uri in (u.replace("__NAME__", name) for u in extras[task_id]["outlets"])
            ]
        if variant == "spec-per-task":
            task["spec"] = spec
        # dag-factory passes no XComArgs: each input is a template that pulls the earlier task's result.
        for argument, source in STAGE_INPUTS[task_id].items():
            task[argument] = f"{{{{ ti.xcom_pull(task_ids='{source}') }}}}"
        # mlspec's inputs are XComArgs, each an edge from the task it reads: dag-factory states them.
        upstream = {*STAGE_INPUTS[task_id].values(), *([previous] if previous else [])}
        if upstream:
            task["dependencies"] = sorted(upstream)
        tasks.append(task)
        previous = task_id
    return {
        "default": {"default_args": default_args},
        name: {
            "description": model_spec.metadata.description or None,
            "schedule": model_spec.schedule,
            "start_date": start_date.to_date_string(),
            "catchup": False,
            "max_active_runs": 1,
            "tags": ["mlspec", *model_spec.metadata.tags],
            "doc_md": header,
            "params": {
                "epochs": {
                    "__type__": "airflow.sdk.Param",
                    "__args__": [model_spec.training.epochs],
                    "type": "integer",
                    "minimum": 1,
                    "description": "Maximum epochs for this run",
                },
                "learning_rate": {
                    "__type__": "airflow.sdk.Param",
                    "__args__": [model_spec.training.optimizer.learning_rate],
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "description": "Learning rate for this run",
                },
                "accept_drift": {
                    "__type__": "airflow.sdk.Param",
                    "__args__": [False],
                    "type": "boolean",
                    "description": ACCEPT_DRIFT.description,
                },
            },
            "tasks": tasks,
        },
    }


def task_extras(dag, name: str) -> dict[str, dict]:
    """What mlspec's compiler sets on each task besides its spec, DAG, retries and inputs (a deadline,
    promote's outlet, the first task's check of the run's configuration, links): the hand-written file
    writes the same, so both build the same DAG (dag_shape compares these too). `__NAME__` stands for the
    DAG's name."""
    return {
        task.task_id: {
            "timeout_s": task.execution_timeout.total_seconds(),
            "outlets": [asset.uri.replace(name, "__NAME__") for asset in task.outlets],
            "checks_conf": task.task_id == dag.roots[0].task_id,
            "links": [
                f"{type(link).__module__}.{type(link).__qualname__}" for link in task.operator_extra_links
            ],
        }
        for task in dag.task_dict.values()
    }


def handwritten_module_text(
    resolved, doc_template, model_spec, task_order, retries, start_date, extras, specs_dir
) -> str:
    operators = "\n".join(
        f"from {path.rsplit('.', 1)[0]} import {path.rsplit('.', 1)[1]}"
        for path in OPERATOR_CLASSPATHS.values()
    )
    from mlspec.run_form import ACCEPT_DRIFT  # every mlspec DAG's form has it

    links = sorted({path for extra in extras.values() for path in extra["links"]})
    operators += "".join(f"\nfrom {path.rsplit('.', 1)[0]} import {path.rsplit('.', 1)[1]}" for path in links)
    tasks = "\n".join(
        f"    ({task_id!r}, {OPERATOR_CLASSPATHS[task_id].rsplit('.', 1)[1]}, {retries.get(task_id, 0)}, "
        f"{STAGE_INPUTS[task_id]!r}, timedelta(seconds={extras[task_id]['timeout_s']!r}), "
        f"{extras[task_id]['outlets']!r}, {extras[task_id]['checks_conf']!r}, "
        f"({''.join(path.rsplit('.', 1)[1] + '(), ' for path in extras[task_id]['links'])})),"
        for task_id in task_order
    )
    return f'''"""A hand-written DAG file of the same shape as an mlspec DAG (generated by bench_parse.py)."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset, Param

{operators}

SPEC = {pprint.pformat(resolved, width=110, sort_dicts=False)}

DOC_MD = {doc_template!r}

START_DATE = pendulum.datetime({start_date.year}, {start_date.month}, {start_date.day}, tz="UTC")
SPECS_DIR = {str(specs_dir)!r}
# task id, operator, retries, inputs (argument -> earlier task), deadline, outlets, checks conf, links
TASKS = [
{tasks}
]


def check_run_conf(context) -> None:
    """The first task's check of a run's configuration (mlspec's refuses keys that are not run parameters)."""


def build_dag(name: str, empty: bool = False) -> DAG:
    spec = {{**SPEC, "metadata": {{**SPEC["metadata"], "name": name}}}}
    dag = DAG(
        dag_id=name,
        description={model_spec.metadata.description!r},
        schedule={model_spec.schedule!r},
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags={["mlspec", *model_spec.metadata.tags]!r},
        doc_md=DOC_MD.replace("__NAME__", name),
        default_args={{
            "owner": {model_spec.metadata.owner!r}, "retries": 0, "retry_delay": timedelta(seconds=15)
        }},
        params={{
            "epochs": Param({model_spec.training.epochs!r}, type="integer", minimum=1,
                            description="Maximum epochs for this run"),
            "learning_rate": Param({model_spec.training.optimizer.learning_rate!r}, type="number",
                                   exclusiveMinimum=0, description="Learning rate for this run"),
            "accept_drift": Param(False, type="boolean", description={ACCEPT_DRIFT.description!r}),
        }},
    )
    previous = None
    tasks = {{}}
    for task_id, operator, retries, inputs, deadline, outlets, checks_conf, links in TASKS:
        if empty:
            task = EmptyOperator(task_id=task_id, dag=dag, retries=retries)
        else:
            handed = {{argument: tasks[source].output for argument, source in inputs.items()}}
            task = operator(
                task_id=task_id,
                spec=spec,
                dag=dag,
                retries=retries,
                execution_timeout=deadline,
                outlets=[Asset(name=uri, uri=uri) for uri in (u.replace("__NAME__", name) for u in outlets)],
                spec_file=f"{{SPECS_DIR}}/{{name}}.yaml",
                **({{"pre_execute": check_run_conf}} if checks_conf else {{}}),
                **handed,
            )
            task.operator_extra_links = links  # as mlspec's compiler leaves them (register's: per spec)
        tasks[task_id] = task
        if previous is not None:
            previous >> task
        previous = task
    return dag


def build_all(names: list[str], empty: bool = False) -> dict[str, DAG]:
    return {{name: build_dag(name, empty) for name in names}}
'''


# --------------------------------------------------------------------------------------------------
# Worker: runs in a fresh process, measures one tool, writes a JSON result.
# --------------------------------------------------------------------------------------------------


def _import_module_from(path: Path, name: str):
    module_spec = importlib.util.spec_from_file_location(name, path)
    assert module_spec and module_spec.loader
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module


def _prepare_tool(tool: str, variant: str, inputs: Path, names: list[str]):
    """Import the tool's own modules (timed apart) and return a callable compiling all N DAGs."""
    import importlib

    if tool == "mlspec":
        if variant == "libyaml":
            import yaml

            yaml.SafeLoader = yaml.CSafeLoader  # what-if only: both mlspec YAML reads go through libyaml
        import mlspec.compiler  # noqa: F401
        import mlspec.dagbag
        import mlspec.spec  # noqa: F401

        for module in OPERATOR_MODULES:
            importlib.import_module(module)
        if variant == "cached":
            mlspec.dagbag.compile_specs(inputs)  # validates every spec once and fills the cache (untimed)
        return lambda: mlspec.dagbag.compile_specs(inputs)
    if tool == "handwritten":
        module = _import_module_from(inputs, "handwritten_dags")
        empty = variant == "empty-operators"
        return lambda: module.build_all(names, empty)
    if tool == "dagfactory":
        import dagfactory

        for module in OPERATOR_MODULES:
            importlib.import_module(module)

        def build() -> dict:
            found: dict = {}
            dagfactory.load_yaml_dags(
                globals_dict=found, dags_folder=str(inputs), defaults_config_path=str(inputs)
            )
            return found

        return build
    raise SystemExit(f"unknown tool {tool!r}")


def dag_shape(dag) -> dict:
    """What makes two DAGs 'the same shape': compared field by field between the tools."""
    import hashlib

    def digest(value) -> str:
        return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]

    tasks = []
    for task in dag.task_dict.values():
        cls = type(task)
        tasks.append(
            {
                "task_id": task.task_id,
                "operator": f"{cls.__module__}.{cls.__qualname__}",
                "retries": task.retries,
                "downstream": sorted(task.downstream_task_ids),
                "spec_sha256": digest(task.spec) if hasattr(task, "spec") else None,
                "spec_file": Path(task.spec_file).name if getattr(task, "spec_file", None) else None,
                "execution_timeout": str(task.execution_timeout),
                "trigger_rule": str(task.trigger_rule),
                "outlets": [getattr(asset, "uri", str(asset)) for asset in task.outlets],
                "checks_conf": task._pre_execute_hook is not None,  # noqa: SLF001 - no public accessor
                "extra_links": sorted(type(link).__name__ for link in task.operator_extra_links),
                "on_failure_callback": bool(task.on_failure_callback),
            }
        )
    default_args = dict(dag.default_args or {})
    return {
        "dag_id": dag.dag_id,
        "description": dag.description,
        "schedule": str(dag.schedule),
        "start_date": dag.start_date.isoformat() if dag.start_date else None,
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "tags": sorted(dag.tags),
        "params": {key: dag.params.get_param(key).serialize() for key in dag.params},
        "default_args": {key: str(value) for key, value in sorted(default_args.items()) if key != "spec"},
        "default_args_has_spec": "spec" in default_args,
        "doc_md_chars": len(dag.doc_md or ""),
        "doc_md_sha256": digest(dag.doc_md or ""),
        "on_failure_callback": bool(dag.on_failure_callback),
        "tasks": tasks,
    }


def _profile_summary(profiler, n: int, total_s: float) -> dict:
    """Where the compile pass spends its time: own time by package, mlspec's functions cumulatively."""
    import pstats

    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    by_package: dict[str, float] = {}
    mlspec_functions = []
    top_own = []
    for (file, line, func), (_cc, ncalls, own, cumulative, _callers) in stats.items():
        normalized = file.replace("\\", "/")
        if "/site-packages/" in normalized:
            package = normalized.split("/site-packages/", 1)[1].split("/", 1)[0]
        elif "/plugins/mlspec/" in normalized:
            package = "mlspec"
        elif file.startswith("<") or file == "~":
            package = "builtins"
        else:
            package = "stdlib:" + Path(normalized).stem
        by_package[package] = by_package.get(package, 0.0) + own
        where = normalized.split("/plugins/")[-1] if "/plugins/" in normalized else Path(normalized).name
        label = f"{where}:{line}({func})"
        if package == "mlspec":
            mlspec_functions.append((cumulative, ncalls, label))
        top_own.append((own, ncalls, f"{package}:{label}"))
    profiled = sum(by_package.values()) or 1.0

    def row(seconds: float, ncalls: int, label: str) -> dict:
        return {
            "function": label,
            "calls": ncalls,
            "ms_per_dag": round(seconds * 1000 / n, 3),
            "share": round(seconds / profiled, 3),
        }

    return {
        "note": "cProfile slows Python code down unevenly; read shares, not absolute times",
        "profiled_pass_ms_per_dag": round(total_s * 1000 / n, 3),
        "own_time_by_package": [
            {
                "package": package,
                "ms_per_dag": round(seconds * 1000 / n, 3),
                "share": round(seconds / profiled, 3),
            }
            for package, seconds in sorted(by_package.items(), key=lambda item: -item[1])[:12]
        ],
        "mlspec_functions_cumulative": [row(*item) for item in sorted(mlspec_functions, reverse=True)[:15]],
        "top_own_time": [row(*item) for item in sorted(top_own, reverse=True)[:15]],
    }


def airflow_warm_up() -> None:
    """Airflow's one-time costs, paid before any tool runs: `import airflow`, the SDK, and the modules it
    imports lazily on the first DAG (timetables, croniter, Param validation). Counted as airflow_import_ms."""
    from datetime import timedelta

    import pendulum
    from airflow.sdk import DAG, BaseOperator, Param

    dag = DAG(
        dag_id="bench_parse_warm_up",
        schedule="@weekly",
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
        catchup=False,
        tags=["warm-up"],
        default_args={"owner": "bench", "retry_delay": timedelta(seconds=1)},
        params={"value": Param(1, type="integer", minimum=0)},
    )
    BaseOperator(task_id="first", dag=dag) >> BaseOperator(task_id="second", dag=dag)


def cpu_seconds() -> float:
    """CPU time of this process and of its children waited for (mlspec's forked spec checks): on a shared
    machine it varies far less with the load than the wall clock does."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def worker_main(args: argparse.Namespace) -> int:
    names = dag_names(args.n)
    started = time.perf_counter()
    import airflow

    airflow_warm_up()
    airflow_import_s = time.perf_counter() - started
    # Logging to a pipe is a benchmark artefact (the dag processor logs to a file); INFO is dag-factory's
    # chatter per file, mlspec logs only problems. Applied to all tools alike.
    logging.disable(logging.INFO)

    started = time.perf_counter()
    build = _prepare_tool(args.worker, args.variant, Path(args.inputs), names)
    tool_import_s = time.perf_counter() - started

    passes_s: list[float] = []
    cpu_s: list[float] = []
    counts: list[int] = []
    profile = None
    dags: dict = {}
    for index in range(args.passes):
        dags = {}  # the previous pass's DAGs must not inflate this pass's heap (and gc work)
        gc.collect()
        if args.profile and index == 0:
            import cProfile

            profiler = cProfile.Profile()
            started = time.perf_counter()
            profiler.enable()
            dags = build()
            profiler.disable()
            elapsed = time.perf_counter() - started
            profile = _profile_summary(profiler, len(dags) or 1, elapsed)
        else:
            cpu_before = cpu_seconds()
            started = time.perf_counter()
            dags = build()
            elapsed = time.perf_counter() - started
            cpu_s.append(cpu_seconds() - cpu_before)
        passes_s.append(elapsed)
        counts.append(len(dags))

    problems = [
        f"{dag_id}: {len(dag.task_dict)} tasks, tags {sorted(dag.tags)}"
        for dag_id, dag in dags.items()
        if len(dag.task_dict) != len(OPERATOR_CLASSPATHS) or "invalid-spec" in dag.tags
    ]
    missing = sorted(set(names) - set(dags))
    dagfactory_info = None
    if "dagfactory" in sys.modules:
        module = sys.modules["dagfactory"]
        dagfactory_info = {"version": module.__version__, "file": module.__file__}
    result = {
        "tool": args.worker,
        "variant": args.variant,
        "n": args.n,
        "airflow_version": airflow.__version__,
        "airflow_file": airflow.__file__,
        "mlspec_file": getattr(sys.modules.get("mlspec"), "__file__", None),
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "dagfactory": dagfactory_info,
        "airflow_import_s": airflow_import_s,
        "tool_import_s": tool_import_s,
        "passes_s": passes_s,
        "cpu_s": cpu_s,
        "dag_counts": counts,
        "missing_dag_ids": missing[:10],
        "bad_dags": problems[:10],
        "shape": dag_shape(dags[names[0]]) if names[0] in dags else None,
        "profile": profile,
    }
    Path(args.result).write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    return 0


# --------------------------------------------------------------------------------------------------
# Driver: generates inputs, runs the workers round by round, summarizes, writes parse.json.
# --------------------------------------------------------------------------------------------------


def worker_env(
    tool: str,
    inputs: Path,
    scratch: Path,
    dagfactory_site: Path,
    variant: str = "",
    plugins: Path | None = None,
) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("_AIRFLOW_PARSING_CONTEXT") and key != PLUGINS_ENV
    }
    if plugins is not None:
        env[PLUGINS_ENV] = str(plugins)
    env.update(
        {
            "AIRFLOW_HOME": str(scratch / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(inputs if inputs.is_dir() else inputs.parent),
            "MLSPEC_HOME": str(scratch / "mlspec-home"),
            "MLSPEC_SPECS_DIR": str(inputs) if tool == "mlspec" else "",
            # Cold figures validate every spec; the cached variant gets a cache of its own per worker.
            "MLSPEC_SPEC_CACHE": str(scratch / f"spec-cache-{os.getpid()}-{time.monotonic_ns()}")
            if variant == "cached"
            else "off",
            # dag-factory's usage telemetry: off (nothing may leave this machine).
            "AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY": "False",
            "DO_NOT_TRACK": "true",
            "SCARF_NO_ANALYTICS": "true",
        }
    )
    env.pop("PYTHONPATH", None)
    if tool == "dagfactory":
        env["PYTHONPATH"] = str(dagfactory_site)  # its own install, on top of the same Airflow
    return env


def run_worker(
    name: str,
    tool: str,
    variant: str,
    inputs: Path,
    args,
    scratch: Path,
    round_index: int,
    *,
    passes: int,
    profile: bool = False,
    plugins: Path | None = None,
) -> dict:
    results_dir = Path(args.workdir) / "results"
    logs_dir = Path(args.workdir) / "logs"
    results_dir.mkdir(parents=True, exist_ok=True)
    logs_dir.mkdir(parents=True, exist_ok=True)
    result_path = results_dir / f"{name}-r{round_index}.json"
    log_path = logs_dir / f"{name}-r{round_index}.log"
    result_path.unlink(missing_ok=True)
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        tool,
        "--variant",
        variant,
        "--inputs",
        str(inputs),
        "--n",
        str(args.n),
        "--passes",
        str(passes),
        "--result",
        str(result_path),
    ]
    if profile:
        command.append("--profile")
    started = time.perf_counter()
    with log_path.open("w", encoding="utf-8") as log_file:
        try:
            completed = subprocess.run(
                command,
                env=worker_env(tool, inputs, scratch, Path(args.dagfactory_site), variant, plugins),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                timeout=args.worker_timeout,
                cwd=scratch,
            )
        except subprocess.TimeoutExpired:
            raise SystemExit(
                f"{name} (round {round_index}) ran past {args.worker_timeout}s; see {log_path}"
            ) from None
    if completed.returncode != 0 or not result_path.is_file():
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise SystemExit(
            f"{name} (round {round_index}) failed with exit code {completed.returncode}:\n{tail}"
        )
    result = json.loads(result_path.read_text(encoding="utf-8"))
    result["wall_s"] = time.perf_counter() - started
    if plugins is not None and not str(result["mlspec_file"]).startswith(str(plugins)):
        raise SystemExit(f"{name} imported mlspec from {result['mlspec_file']}, not from {plugins}")
    if (
        result["missing_dag_ids"]
        or result["bad_dags"]
        or any(count != args.n for count in result["dag_counts"])
    ):
        raise SystemExit(
            f"{name} did not compile {args.n} valid DAGs: counts {result['dag_counts']}, missing "
            f"{result['missing_dag_ids']}, bad {result['bad_dags']}; see {log_path}"
        )
    cold = result["passes_s"][0] * 1000 / args.n
    log.info(
        "%-28s round %d: %7.3f ms/DAG cold, airflow import %5.0f ms, tool import %5.0f ms (%.1fs wall)",
        name,
        round_index,
        cold,
        result["airflow_import_s"] * 1000,
        result["tool_import_s"] * 1000,
        result["wall_s"],
    )
    return result


def _stats(values: list[float]) -> dict:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def summarize(name: str, description: str, variant: str, rounds: list[dict], n: int) -> dict:
    cold = [r["passes_s"][0] * 1000 / n for r in rounds]
    warm = [r["passes_s"][1] * 1000 / n for r in rounds if len(r["passes_s"]) > 1]
    airflow_ms = [r["airflow_import_s"] * 1000 for r in rounds]
    tool_ms = [r["tool_import_s"] * 1000 for r in rounds]
    cpu = [r["cpu_s"][0] * 1000 / n for r in rounds if r.get("cpu_s")]
    return {
        "description": description,
        "variant": variant,
        "rounds": len(rounds),
        "dags_per_pass": rounds[0]["dag_counts"][0],
        "per_dag_ms": {"cold": _stats(cold), **({"warm": _stats(warm)} if warm else {})},
        "cpu_per_dag_ms": {"cold": _stats(cpu)} if cpu else {},
        "pass_ms": {"cold": _stats([r["passes_s"][0] * 1000 for r in rounds])},
        "airflow_import_ms": _stats(airflow_ms),
        "tool_import_ms": _stats(tool_ms),
        "per_dag_ms_including_tool_import": _stats(
            [(r["passes_s"][0] + r["tool_import_s"]) * 1000 / n for r in rounds]
        ),
        "raw": [
            {
                "passes_ms": [round(s * 1000, 2) for s in r["passes_s"]],
                "dag_counts": r["dag_counts"],
                "airflow_import_ms": round(r["airflow_import_s"] * 1000, 1),
                "tool_import_ms": round(r["tool_import_s"] * 1000, 1),
            }
            for r in rounds
        ],
        "shape": rounds[0]["shape"],
    }


def shape_differences(reference: dict | None, other: dict | None) -> list[str]:
    if reference is None or other is None:
        return ["no shape recorded"]
    diffs = []
    for key in reference:
        if key in ("tasks",):
            continue
        if reference[key] != other.get(key):
            diffs.append(f"{key}: {reference[key]!r} != {other.get(key)!r}")
    ref_tasks, other_tasks = reference["tasks"], other["tasks"]
    if len(ref_tasks) != len(other_tasks):
        diffs.append(f"tasks: {len(ref_tasks)} != {len(other_tasks)}")
    for ref_task, other_task in zip(ref_tasks, other_tasks, strict=False):
        for key, value in ref_task.items():
            if value != other_task.get(key):
                diffs.append(f"task {ref_task['task_id']}.{key}: {value!r} != {other_task.get(key)!r}")
    return diffs


STRUCTURAL = (
    "task ",
    "tasks:",
    "dag_id:",
    "schedule:",
    "start_date:",
    "catchup:",
    "max_active_runs:",
    "params:",
)
# What dag-factory's YAML cannot give a task: a pre_execute callable (the check of a run's conf), links set
# after construction (register's depend on the spec).
NOT_STRUCTURAL = (".checks_conf: ", ".extra_links: ")


def mlspec_source_fingerprint() -> str:
    """sha256 (16 hex) of the mlspec package's Python sources and the schema, as they are on disk."""
    import hashlib

    import mlspec

    package = Path(mlspec.__file__).resolve().parent
    digest = hashlib.sha256()
    files = sorted(package.rglob("*.py"))
    schema = REPO / "schemas" / "model-spec.schema.json"
    for path in [*files, schema] if schema.is_file() else files:
        digest.update(str(path.relative_to(REPO) if path.is_relative_to(REPO) else path.name).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def mlspec_yaml_loader_kind() -> str:
    """'libyaml' when mlspec's spec loader parses with PyYAML's C loader, else 'pure-python'."""
    import yaml

    from mlspec.spec import yaml_loader

    loader = getattr(yaml_loader, "SafeLoader", None)
    c_loader = getattr(yaml, "CSafeLoader", None)
    return "libyaml" if c_loader is not None and loader is c_loader else "pure-python"


def machine_info() -> dict:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        meminfo = Path("/proc/meminfo").read_text().splitlines()[0].split()
        info["memory_gib"] = round(int(meminfo[1]) / 1024 / 1024, 1)
    except (OSError, IndexError, ValueError):
        pass
    return info


def load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def git_info() -> dict:
    def git(*argv: str) -> str:
        try:
            return subprocess.run(
                ["git", *argv], cwd=REPO, capture_output=True, text=True, timeout=20
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}


def package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def check_dagfactory_site(site: Path) -> str:
    """The dag-factory version installed under site, or exit with the command that installs it."""
    install = (
        f"{REPO / '.venv/bin/uv'} pip install --python {sys.executable} --no-deps "
        f"--target {site} '{DAGFACTORY_REQUIREMENT}'   (or: make bench-parse)"
    )
    dist = sorted(site.glob("dag_factory-*.dist-info")) if site.is_dir() else []
    if not dist or not (site / "dagfactory").is_dir():
        raise SystemExit(
            f"dag-factory is not installed in {site}; install it with:\n  {install}\n"
            "or pass --skip-dagfactory"
        )
    found = dist[-1].name.removeprefix("dag_factory-").removesuffix(".dist-info")
    if not found.startswith("1.1."):
        raise SystemExit(
            f"{site} holds dag-factory {found}, the benchmark compares 1.1.x; reinstall with:\n  {install}"
        )
    missing = [module for module in DAGFACTORY_DEPS if importlib.util.find_spec(module) is None]
    if missing:
        raise SystemExit(
            f"dag-factory was installed with --no-deps and needs {missing} from this interpreter"
        )
    return found


def markdown_table(report: dict) -> str:
    rows = [
        f"| measured (N = {report['n_specs']}, {report['rounds']} rounds) | ms/DAG median | ms/DAG min "
        "| CPU ms/DAG median | warm ms/DAG | import airflow ms | tool import ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    sections = [(k, v) for k, v in report["measurements"].items()] + [
        (f"{k} (diagnostic)", v)
        for k, v in report.get("diagnostics", {}).items()
        if isinstance(v, dict) and "per_dag_ms" in v
    ]
    for name, m in sections:
        warm = m["per_dag_ms"].get("warm", {}).get("median")
        cpu = m.get("cpu_per_dag_ms", {}).get("cold", {}).get("median")
        rows.append(
            f"| {name} | {m['per_dag_ms']['cold']['median']:.2f} | {m['per_dag_ms']['cold']['min']:.2f} | "
            f"{'' if cpu is None else f'{cpu:.2f}'} | "
            f"{'' if warm is None else f'{warm:.2f}'} | {m['airflow_import_ms']['median']:.0f} | "
            f"{m['tool_import_ms']['median']:.0f} |"
        )
    lines = ["\n".join(rows), ""]
    for target in report["targets"].values():
        if isinstance(target, dict):
            value = "not measured" if target["value"] is None else f"{target['value']:.2f}x"
            met = {True: "met", False: "MISSED", None: "not measured"}[target["met"]]
            lines.append(f"- {target['description']}: {value} ({met})")
    for name in BASELINE_MEASUREMENTS:
        ratio = report["ratios"].get(f"{name}_over_handwritten")
        if ratio is not None:
            lines.append(f"- {name} / hand-written (before, same rounds): {ratio:.2f}x")
    cpu = [
        f"{name.removesuffix('_over_handwritten_cpu')} {ratio:.2f}x"
        for name, ratio in report["ratios"].items()
        if name.endswith("_over_handwritten_cpu")
    ]
    if cpu:
        lines.append(f"- in CPU time, over hand-written: {', '.join(cpu)}")
    return "\n".join(lines)


def driver_main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    started = time.perf_counter()
    if args.n < 1 or args.rounds < 1:
        raise SystemExit("--n and --rounds must be at least 1")
    workdir = Path(args.workdir).resolve()
    args.workdir = str(workdir)
    dagfactory_version = (
        None if args.skip_dagfactory else check_dagfactory_site(Path(args.dagfactory_site).resolve())
    )
    args.dagfactory_site = str(Path(args.dagfactory_site).resolve())
    load_before = load_average()
    # Other people edit mlspec while benchmarks run: tie the figures to the exact source measured.
    source_before = mlspec_source_fingerprint()
    yaml_kind = mlspec_yaml_loader_kind()
    paths = write_inputs(workdir, args.n)
    inputs_for = {
        ("mlspec", "production"): paths["mlspec"],
        ("mlspec", "cached"): paths["mlspec"],
        ("mlspec", "libyaml"): paths["mlspec"],
        ("handwritten", "mlspec-operators"): paths["handwritten"],
        ("handwritten", "empty-operators"): paths["handwritten"],
        ("dagfactory", "spec-in-default-args"): paths["dagfactory"],
        ("dagfactory", "spec-per-task"): paths["dagfactory-per-task"],
    }
    selected = {k: v for k, v in MEASUREMENTS.items() if not (args.skip_dagfactory and v[0] == "dagfactory")}
    baseline = Path(args.baseline).resolve() if args.baseline else None
    if baseline is not None:
        if not (baseline / "mlspec" / "__init__.py").is_file():
            raise SystemExit(f"--baseline {baseline} is not a plugins folder holding mlspec/")
        selected.update(BASELINE_MEASUREMENTS)

    scratch = Path(tempfile.mkdtemp(prefix="mlspec-bench-parse-"))
    try:
        per_round: dict[str, list[dict]] = {name: [] for name in selected}
        order = list(selected)
        for round_index in range(args.rounds):
            rotated = order[round_index % len(order) :] + order[: round_index % len(order)]
            for name in rotated:
                tool, variant, _ = selected[name]
                plugins = baseline if name in BASELINE_MEASUREMENTS else None
                per_round[name].append(
                    run_worker(
                        name, tool, variant, inputs_for[(tool, variant)], args, scratch, round_index,
                        passes=2, plugins=plugins,
                    )
                )
        measurements = {
            name: summarize(name, selected[name][2], selected[name][1], per_round[name], args.n)
            for name in selected
        }

        # One Airflow for all: the same version from the same installation.
        airflow_versions = {
            (r["airflow_version"], r["airflow_file"]) for rs in per_round.values() for r in rs
        }
        if len(airflow_versions) != 1:
            raise SystemExit(
                f"the measurements used different Airflow installations: {sorted(airflow_versions)}"
            )
        ((airflow_version, airflow_file),) = airflow_versions
        if "dagfactory" in per_round:
            loaded = per_round["dagfactory"][0]["dagfactory"]
            if not loaded or not loaded["file"].startswith(args.dagfactory_site):
                raise SystemExit(f"dag-factory was not loaded from {args.dagfactory_site}: {loaded}")

        shapes = {
            "handwritten_vs_mlspec": shape_differences(
                measurements["mlspec"]["shape"], measurements["handwritten"]["shape"]
            ),
        }
        if shapes["handwritten_vs_mlspec"]:
            raise SystemExit(
                f"the hand-written DAG is not the same shape as mlspec's: {shapes['handwritten_vs_mlspec']}"
            )
        if "dagfactory" in measurements:
            diffs = shape_differences(measurements["mlspec"]["shape"], measurements["dagfactory"]["shape"])
            shapes["dagfactory_vs_mlspec"] = diffs
            structural = [
                d for d in diffs if d.startswith(STRUCTURAL) and not any(field in d for field in NOT_STRUCTURAL)
            ]
            if structural:
                raise SystemExit(f"the dag-factory DAG differs from mlspec's in structure: {structural}")

        def median(name: str) -> float | None:
            return measurements.get(name, {}).get("per_dag_ms", {}).get("cold", {}).get("median")

        def cpu_median(name: str) -> float | None:
            return measurements.get(name, {}).get("cpu_per_dag_ms", {}).get("cold", {}).get("median")

        hand_ms, df_ms = median("handwritten"), median("dagfactory")
        targets = {}
        # Both states are reported: every spec validated (first parse after an edit) and the steady state.
        for name, label in (("mlspec", "cache off"), ("mlspec_cached", "cached")):
            ratio_hand = round(median(name) / hand_ms, 3)
            ratio_df = round(df_ms / median(name), 3) if df_ms is not None else None
            suffix = "" if name == "mlspec" else "_cached"
            targets[f"mlspec_within_1_5x_of_handwritten{suffix}"] = {
                "description": f"mlspec ({label}) / hand-written <= {TARGET_MLSPEC_OVER_HANDWRITTEN}",
                "target": TARGET_MLSPEC_OVER_HANDWRITTEN,
                "value": ratio_hand,
                "met": ratio_hand <= TARGET_MLSPEC_OVER_HANDWRITTEN,
            }
            targets[f"mlspec_2x_faster_than_dagfactory{suffix}"] = {
                "description": f"dag-factory / mlspec ({label}) >= {TARGET_DAGFACTORY_OVER_MLSPEC}",
                "target": TARGET_DAGFACTORY_OVER_MLSPEC,
                "value": ratio_df,
                "met": None if ratio_df is None else ratio_df >= TARGET_DAGFACTORY_OVER_MLSPEC,
            }
        # The baseline's figures beside this checkout's, over the same hand-written figure (a comparison).
        before_after = {
            f"{name}_over_handwritten": round(median(name) / hand_ms, 3)
            for name in BASELINE_MEASUREMENTS
            if name in measurements
        }
        # The same ratios in CPU time (process and forked checks), the steadier figure on a busy machine.
        cpu_ratios = {
            f"{name}_over_handwritten_cpu": round(cpu_median(name) / cpu_median("handwritten"), 3)
            for name in ("mlspec", "mlspec_cached", *BASELINE_MEASUREMENTS)
            if cpu_median(name) and cpu_median("handwritten")
        }
        measured = [t["met"] for t in targets.values() if t["met"] is not None]
        all_met = all(measured) if len(measured) == len(targets) else None

        diagnostics: dict[str, Any] = {}
        if not args.no_diagnostics:
            for name, (tool, variant, description) in DIAGNOSTICS.items():
                if args.skip_dagfactory and tool == "dagfactory":
                    continue
                if variant == "libyaml" and yaml_kind == "libyaml":
                    diagnostics[name] = {"skipped": "mlspec already parses specs with libyaml"}
                    continue
                result = run_worker(
                    name, tool, variant, inputs_for[(tool, variant)], args, scratch, 0, passes=1
                )
                diagnostics[name] = summarize(name, description, variant, [result], args.n)
                diagnostics[name].pop("shape")
            if args.profile or (all_met is not True):
                # Why mlspec costs what it costs; the libyaml what-if shows what would come next.
                profiles = [("mlspec_profile", "production")]
                if yaml_kind != "libyaml":
                    profiles.append(("mlspec_libyaml_profile", "libyaml"))
                for name, variant in profiles:
                    result = run_worker(
                        name, "mlspec", variant, paths["mlspec"], args, scratch, 0, passes=1, profile=True
                    )
                    diagnostics[name] = result["profile"]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    report = {
        "benchmark": "parse",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "n_specs": args.n,
        "rounds": args.rounds,
        "method": {
            "per_dag": "first compile pass in a fresh process / N (cold); warm = second pass, same process",
            "excluded": "`import airflow` + airflow.sdk and one throwaway DAG that triggers Airflow's lazy "
            "imports "
            "(reported as airflow_import_ms), and the tool's own module imports (tool_import_ms), are "
            "timed apart from the compile passes",
            "ratios_basis": "median cold ms/DAG",
            "isolation": "each tool and round in its own fresh subprocess of the same interpreter; rounds "
            "interleaved "
            "in rotating order; gc.collect() before each pass; logging below WARNING disabled for all",
            "inputs": f"{args.n} copies of specs/digits.yaml differing in metadata.name",
        },
        "versions": {
            "python": platform.python_version(),
            "airflow": airflow_version,
            "airflow_location": str(Path(airflow_file).parent),
            "mlspec": package_version("mlspec"),
            "mlspec_source_sha256": source_before,
            "mlspec_baseline": None if baseline is None else str(baseline),
            "mlspec_yaml_loader": yaml_kind,
            "dag_factory": dagfactory_version,
            "dag_factory_location": None if args.skip_dagfactory else args.dagfactory_site,
            "jsonschema": package_version("jsonschema"),
            "pyyaml": package_version("PyYAML"),
            "pendulum": package_version("pendulum"),
        },
        "machine": {
            **machine_info(),
            "load_average_before": load_before,
            "load_average_after": load_average(),
        },
        "git": git_info(),
        "measurements": measurements,
        "ratios": {name: target["value"] for name, target in targets.items()} | before_after | cpu_ratios,
        "targets": {**targets, "all_met": all_met},
        "shape_check": shapes,
        "diagnostics": diagnostics,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    source_after = mlspec_source_fingerprint()
    if source_after != source_before:
        report["warning"] = (
            f"mlspec's sources changed during the run ({source_before} -> {source_after}); "
            "the figures mix two versions: run it again"
        )
        log.warning("%s", report["warning"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print()
    print(
        f"Parse time, Airflow {airflow_version}, Python {platform.python_version()}, "
        f"dag-factory {dagfactory_version or 'skipped'}, {report['machine'].get('cpu_count')} CPUs, "
        f"load {load_before} -> {report['machine']['load_average_after']}"
    )
    print(markdown_table(report))
    print(f"\nwrote {out} in {report['wall_s']}s")
    if args.fail_on_miss and all_met is False:
        return 1
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="number of specs / DAGs (default 200)")
    parser.add_argument("--rounds", type=int, default=3, help="fresh-process rounds per tool (default 3)")
    parser.add_argument(
        "--out", default=str(DEFAULT_OUT), help="result JSON (default benchmarks/results/parse.json)"
    )
    parser.add_argument("--workdir", default=str(DEFAULT_WORKDIR), help="generated inputs and worker logs")
    parser.add_argument(
        "--dagfactory-site",
        default=str(DEFAULT_DAGFACTORY_SITE),
        help="dag-factory's own --target install (default benchmarks/.work/dagfactory-site)",
    )
    parser.add_argument("--skip-dagfactory", action="store_true", help="measure mlspec and hand-written only")
    parser.add_argument(
        "--baseline",
        help="another mlspec's plugins folder (e.g. `git archive <commit> plugins schemas` unpacked; "
        "make bench-parse BASELINE=<commit> does it): measured in the same rounds as "
        "mlspec_baseline(_cached)",
    )
    parser.add_argument(
        "--no-diagnostics", action="store_true", help="skip the one-round diagnostic variants"
    )
    parser.add_argument("--profile", action="store_true", help="profile mlspec even when every target is met")
    parser.add_argument("--fail-on-miss", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--worker-timeout", type=int, default=300, help="seconds one measuring process may take"
    )
    # Worker mode (internal): measure one tool in this fresh process.
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--inputs", help=argparse.SUPPRESS)
    parser.add_argument("--passes", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return worker_main(args) if args.worker else driver_main(args)


if __name__ == "__main__":
    sys.exit(main())

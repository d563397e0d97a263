"""The `mlspec` command: lint | schema | render | run | serve | manifest | deploy | rollback | undeploy | status
| rollout | history."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from mlspec.approval import ApprovalRefused, RunStopped, answer, run_dag
from mlspec.dagbag import claimed_name, fallback_name, spec_files
from mlspec.drift_report import live_drift
from mlspec.errors import MlspecError
from mlspec.ml.frameworks import framework_of
from mlspec.ml.frameworks.sklearn_estimators import ESTIMATORS, estimator_params, sklearn_version
from mlspec.model_card import check_facts, lineage_facts
from mlspec.operations import run_action
from mlspec.registry.base import ACTION_WORDS, action_words
from mlspec.registry.reading import open_for_reading
from mlspec.release import Trigger
from mlspec.request_logs import parse_since
from mlspec.rollout_operations import (
    ABORT,
    APPROVAL_ANSWERS,
    APPROVE,
    ROLLOUT_CLI_ACTIONS,
    STATUS,
    rollout_status,
    send,
    status_lines,
)
from mlspec.run_form import RunParamError, check_conf, parse_cli_value
from mlspec.server.errors import ServerSetupError
from mlspec.serving import PLATFORMS, platform_of
from mlspec.spec import SpecError, SpecProblem, load_schema, load_spec, resolve_spec
from mlspec.spec.column_table import column_table
from mlspec.spec.lint import check, check_local_files
from mlspec.spec.reference import markdown
from mlspec.spec.yaml_loader import load_yaml, read_spec_file
from mlspec.tuning import tuned_run_params

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


def _spec_paths(paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(spec_files(path))
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(raw)
    return found


def lint_file(path: Path) -> tuple[str, list]:
    """(the dag_id the spec claims, its problems): errors, or else warnings and the checks of local files.

    The file is read only when it is a regular file within the spec size limit.
    """
    try:
        doc = load_yaml(read_spec_file(path), str(path))
    except SpecError as exc:
        return fallback_name(path), exc.problems
    try:
        spec = resolve_spec(doc)
    except SpecError as exc:
        return claimed_name(doc.data, path), exc.problems
    resolved = spec.to_dict()
    warnings = [p for p in check(doc, resolved) if p.severity == "warning"]
    return spec.name, warnings + check_local_files(doc, resolved)


def lint_paths(paths: list[Path]) -> list:
    """Every problem (errors and warnings) of every spec, plus dag_ids claimed twice."""
    problems = []
    names: dict[str, list[Path]] = {}
    for path in paths:
        name, found = lint_file(path)
        problems.extend(found)
        names.setdefault(name, []).append(path)
    for name, claimed in names.items():
        for path in claimed if len(claimed) > 1 else []:
            others = ", ".join(str(o) for o in claimed if o != path)
            problems.append(SpecProblem(str(path), 1, 1, "metadata.name", f"dag_id `{name}` is also claimed by {others}"))
    return problems


def cmd_lint(args) -> int:
    try:
        paths = _spec_paths(args.paths)
    except FileNotFoundError as exc:
        print(f"mlspec lint: no such file or directory: {exc}", file=sys.stderr)
        return EXIT_USAGE
    problems = lint_paths(paths)
    warnings = sum(p.severity == "warning" for p in problems)
    errors = len(problems) - warnings
    if args.format == "json":
        print(json.dumps({"files": len(paths), "problems": [p.to_dict() for p in problems]}, indent=2))
    else:
        for problem in problems:
            print(problem)
        print(f"{len(paths)} spec(s) checked, {errors} problem(s), {warnings} warning(s)", file=sys.stderr)
    # Warnings are worth reading, not worth failing a build over, unless asked (--strict).
    return EXIT_PROBLEMS if errors or (warnings and args.strict) else EXIT_OK


def cmd_schema(args) -> int:
    if args.estimators:
        print(estimator_table(), end="")
        return EXIT_OK
    if args.markdown:
        print(markdown(), end="")
        return EXIT_OK

    print(json.dumps(load_schema(), indent=2))
    return EXIT_OK


def estimator_table() -> str:
    """The scikit-learn estimators a spec may name (model.estimator), per task, with each parameter a
    spec may set in model.params: its type in words and scikit-learn's default."""
    lines = [f"scikit-learn estimators (model.framework: sklearn; table from scikit-learn {sklearn_version()})", ""]
    for task, names in ESTIMATORS.items():
        lines.append(f"task: {task}")
        for name, path in names.items():
            lines.append(f"  {name}  ({path})")
            for param, entry in estimator_params(task, name).items():
                default = json.dumps(entry["default"])
                if "refused" in entry:
                    lines.append(f"    {param:<26} not settable: {entry['refused']}")
                else:
                    lines.append(f"    {param:<26} {entry['allowed']}; default {default}")
        lines.append("")
    return "\n".join(lines)


def parse_params(spec, pairs: list[str]) -> dict:
    """`--param KEY=VALUE` pairs as a run's configuration, typed (JSON values: 3, 0.1, null, true,
    [64, 32]; anything else is text) and checked against the spec's run parameters (mlspec.run_form).
    ValueError with the message for the user."""
    conf: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param takes KEY=VALUE, got {pair!r}")
        conf[key.strip()] = parse_cli_value(value.strip())
    try:
        check_conf(spec, conf, how="--param")
    except RunParamError as exc:
        raise ValueError(str(exc)) from None
    return conf


def _load_or_report(path: str):
    try:
        return load_spec(path)
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return None


def cmd_render(args) -> int:
    # Airflow (about 2 s of imports) only for the commands that build a DAG: lint, schema and status stay quick.
    from mlspec.compiler import MAPPED, build_dag, task_order

    spec = _load_or_report(args.spec)
    if spec is None:
        return EXIT_PROBLEMS
    dag = build_dag(spec)
    print(f"DAG {dag.dag_id}  schedule={spec.schedule!r}  tags={list(dag.tags)}  spec_hash={spec.spec_hash[:12]}")
    print("tasks: " + " -> ".join(task_order(spec)))
    for task_id in task_order(spec):
        task = dag.get_task(task_id)
        mapped = ""
        if spec.tuning is not None and task_id in MAPPED:
            mapped = f"  mapped over {MAPPED[task_id][1]} ({spec.tuning.trials} trials, at most {spec.tuning.parallel} at once)"
        operator = getattr(task, "operator_class", type(task))
        print(f"  {task_id:<13} {getattr(operator, '__name__', str(operator)):<22} retries={task.retries}{mapped}")
    print("\n".join(column_table(load_yaml(read_spec_file(Path(args.spec)), args.spec), spec)))
    print("resolved settings:")
    import yaml

    print(yaml.safe_dump(spec.to_dict(), sort_keys=False).rstrip())
    return EXIT_OK


def _ensure_airflow_db() -> None:
    """`mlspec run` works on a fresh AIRFLOW_HOME: migrate the SQLite metadata DB once."""
    home = _default_airflow_home()
    marker = home / ".migrated"
    if not marker.exists():
        import subprocess

        home.mkdir(parents=True, exist_ok=True)
        print(f"initialising Airflow's metadata DB in {home} (once)...", file=sys.stderr)
        subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True, capture_output=True)
        marker.touch()


def _default_airflow_home() -> Path:
    """The Airflow home `mlspec run` uses (AIRFLOW_HOME, else ./.airflow): `mlspec rollout --approve` answers there."""
    return Path(os.environ.setdefault("AIRFLOW_HOME", str(Path.cwd() / ".airflow")))


def _point_airflow_at(spec_path: Path, dag_id: str) -> None:
    """dag.test() syncs the DAG from Airflow's dags folder, so that folder must compile this spec, and
    only this one: Airflow's parsing context names its DAG, so the other specs of the folder are not
    checked and their problems are not printed (`mlspec lint` reports them).

    Must run before Airflow is imported: Airflow reads its configuration once, at import.
    """
    os.environ["MLSPEC_SPECS_DIR"] = str(spec_path.resolve().parent)
    os.environ["_AIRFLOW_PARSING_CONTEXT_DAG_ID"] = dag_id  # what airflow.sdk.get_parsing_context() reads
    repo_dags = Path(__file__).resolve().parents[2] / "dags"
    if "AIRFLOW__CORE__DAGS_FOLDER" not in os.environ and repo_dags.is_dir():
        os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(repo_dags)
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


def cmd_run(args) -> int:
    spec = _load_or_report(args.spec)
    if spec is None:
        return EXIT_PROBLEMS

    overrides = [flag for flag, value in (("--epochs", args.epochs), ("--learning-rate", args.learning_rate)) if value is not None]
    offered = framework_of(spec).run_parameters(spec.resolved)
    if overrides and not {"epochs", "learning_rate"} <= set(offered):
        print(
            f"{args.spec}: {' and '.join(overrides)} override Keras training settings, but this spec uses "
            f"framework {spec.model.framework}; set its run parameters with --param KEY=VALUE "
            f"({', '.join(offered) or 'it has none'}), or change {framework_of(spec).settings} in the spec",
            file=sys.stderr,
        )
        return EXIT_USAGE
    refused = _tuning_overrides_refused(spec, args)
    if refused:
        print(f"{args.spec}: {refused}", file=sys.stderr)
        return EXIT_USAGE
    try:
        params = parse_params(spec, args.param or [])
    except ValueError as exc:
        print(f"{args.spec}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _point_airflow_at(Path(args.spec), spec.name)
    _ensure_airflow_db()
    # Airflow reads its configuration once, at import: only now that it points at this spec's home and folder.
    from mlspec.compiler import build_dag
    from mlspec.summary import format_failure, format_summary, read_summary

    dag = build_dag(spec, spec_text=Path(args.spec).read_text())
    conf = run_conf(args, params)
    print(f"running {dag.dag_id} through Airflow (dag.test) ...", file=sys.stderr)
    try:
        dag_run = run_dag(dag, conf or None)
    except RunStopped as stopped:
        print(f"mlspec run {spec.name}: stopped by {stopped}; the run is left unfinished in Airflow's metadata DB"
              + (f". A rollout it started stays as it is: `mlspec rollout {args.spec} --status` shows it, `--abort` "
                 "gives production all traffic back" if spec.rollout is not None else ""), file=sys.stderr)
        return 128 + stopped.signum
    if str(dag_run.state) != "success":
        print(format_failure(spec, dag_run), file=sys.stderr)
        return EXIT_PROBLEMS
    print(format_summary(read_summary(spec, dag_run.run_id), spec_file=args.spec))
    return EXIT_OK


def run_conf(args, params: dict) -> dict:
    """The run's configuration from `mlspec run`'s flags, as the trigger form would set it: --epochs,
    --learning-rate and --trials, the --param pairs, and --accept-drift (the form's accept_drift)."""
    conf = {
        k: v for k, v in (("epochs", args.epochs), ("learning_rate", args.learning_rate), ("trials", args.trials)) if v is not None
    }
    conf.update(params)
    if args.accept_drift:
        conf["accept_drift"] = True
    return conf


def _tuning_overrides_refused(spec, args) -> str:
    """Why `--trials` (or an override of a tuned setting) cannot apply to this spec; "" when it can."""
    if args.trials is not None and spec.tuning is None:
        return "--trials sets how many tuning trials run, but this spec has no tuning section"
    if args.trials is not None and args.trials < 1:
        return f"--trials must be at least 1, got {args.trials}"
    if spec.tuning is None:
        return ""

    tuned = tuned_run_params(spec.tuning.space)
    clashes = [flag for name, flag in (("epochs", "--epochs"), ("learning_rate", "--learning-rate")) if name in tuned and getattr(args, name) is not None]
    if clashes:
        return f"{' and '.join(clashes)} would override what tuning.space varies; change tuning.space instead"
    return ""


def cmd_serve(args) -> int:
    from mlspec.server.app import ServerConfig, max_inflight_bytes_from_env, run_server
    from mlspec.server.tensors import Limits

    try:
        max_inflight = (
            int(args.max_inflight_mb * 1024 * 1024) if args.max_inflight_mb else max_inflight_bytes_from_env()
        )
    except ServerSetupError as exc:
        print(f"mlspec serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    config = ServerConfig(
        auth=args.auth,
        allow_roots=tuple(args.allow_root or ()),
        limits=Limits(
            max_body_bytes=int(args.max_body_mb * 1024 * 1024),
            max_elements=args.max_elements,
            max_batch=args.max_batch,
        ),
        max_inflight_bytes=max_inflight,
        max_models=args.max_models,
        max_model_bytes=int(args.max_model_mb * 1024 * 1024),
        load_timeout_s=args.load_timeout,
        max_concurrent_loads=args.max_concurrent_loads,
        inference_threads=args.inference_threads,
        ort_threads=args.ort_threads,
    )
    try:
        run_server(
            host=args.host,
            port=args.port,
            state_dir=Path(args.state_dir) if args.state_dir else None,
            config=config,
            access_log=args.access_log,
            shutdown_timeout_s=args.shutdown_timeout,
        )
    except ServerSetupError as exc:  # a token too short, limits that contradict each other
        print(f"mlspec serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def cmd_manifest(args) -> int:
    spec = _load_or_report(args.spec)
    if spec is None:
        return EXIT_PROBLEMS
    platform = platform_of(spec)
    if platform.manifest is None:
        having = ", ".join(p.name for p in PLATFORMS.values() if p.manifest is not None)
        print(f"{args.spec}: serving.platform is {platform.name}; manifests are for {having}", file=sys.stderr)
        return EXIT_PROBLEMS
    import yaml

    print(yaml.safe_dump(platform.manifest(spec, version=args.version), sort_keys=False).rstrip())
    return EXIT_OK


def cmd_operation(args) -> int:
    """deploy | rollback | undeploy | status: the registry first, then serving, then a smoke test."""
    spec = _load_or_report(args.spec)
    if spec is None:
        return EXIT_PROBLEMS
    version = getattr(args, "version", None) or getattr(args, "to_version", None)
    try:
        result = run_action(spec, args.command, version)
    except MlspecError as exc:
        print(f"mlspec {args.command} {spec.name}: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(describe_operation(result))
    if result.get("warning"):
        print(f"mlspec {args.command} {spec.name}: warning: {result['warning']}", file=sys.stderr)
    if args.command == "status" and args.strict and result.get("problems"):
        # --strict: any disagreement between the registry and serving, or serving not answering, fails.
        for problem in result["problems"]:
            print(f"mlspec status --strict {spec.name}: {problem}", file=sys.stderr)
        return EXIT_PROBLEMS
    return EXIT_OK


def cmd_rollout(args) -> int:
    """The rollout under way: --status (default) reports it; --pause, --resume and --abort act on it (as
    cli:<os user>); a command that makes no sense now is refused (exit 1), nothing changed."""
    spec = _load_or_report(args.spec)
    if spec is None:
        return EXIT_PROBLEMS
    command = args.action or STATUS
    if command in (ABORT, *APPROVAL_ANSWERS):
        _default_airflow_home()  # the approval waits in the Airflow DB of `mlspec run`
    try:
        if command in APPROVAL_ANSWERS:
            return _answer_approval(spec, command, args)
        result = rollout_status(spec) if command == STATUS else send(spec, command, reason=args.reason or "")
    except MlspecError as exc:
        print(f"mlspec rollout --{command} {spec.name}: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    elif command == "status":
        print("\n".join(status_lines(result, spec.source_file or args.spec)))
    else:
        print(f"{spec.name}: {command} of the rollout of version {result['version']} recorded (by {result['actor']}); "
              f"{result['next']}")
    return EXIT_OK


def _answer_approval(spec, command: str, args) -> int:
    """--approve | --reject: answer the approval the rollout waits for, as cli:<os user>."""
    try:
        result = answer(spec, command == APPROVE, Trigger.from_cli().actor, reason=args.reason or "")
    except ApprovalRefused as exc:
        print(f"mlspec rollout --{command} {spec.name}: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        then = ("the last step runs, then promote" if command == APPROVE else "production takes all traffic back")
        print(f"{spec.name}: {result['answer']} of the rollout of version {result['version']} recorded in Airflow "
              f"(by {result['actor']}, run {result['run_id']}); the run goes on: {then}")
    return EXIT_OK


def cmd_history(args) -> int:
    """The audit trail of production: every change, oldest first, with time, actor, action and run."""
    spec = _load_or_report(args.spec)
    if spec is None:
        return EXIT_PROBLEMS
    try:  # a read: never creates the embedded registry
        changes = open_for_reading(spec.registry.backend, spec.registry.connection).production_changes(spec.name)
    except MlspecError as exc:
        print(f"mlspec history {spec.name}: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    if args.json:
        print(json.dumps([c.to_dict() for c in changes], indent=2))
        return EXIT_OK
    if not changes:
        print(f"{spec.name}: no change of production is recorded yet")
        return EXIT_OK

    def version(v: int | None) -> str:
        return "nothing" if v is None else f"v{v}"

    width = max(len(words) for words in ACTION_WORDS.values())  # the action codes stay in --json
    print(f"{spec.name}: {len(changes)} change(s) of production, oldest first")
    for c in changes:
        line = f"{c.at}  {action_words(c.action):<{width}} {version(c.from_version)} -> {version(c.to_version)}  by {c.actor}"
        print(line + (f"  run {c.run_url or c.run_id}" if (c.run_url or c.run_id) else ""))
        print(f"    {c.reason}")
    return EXIT_OK


def cmd_drift(args) -> int:
    """The logged requests of a version against its training profile: exit 0 no drift, 1 drift, 2 no rows or
    an error (with the next step)."""
    spec = _load_or_report(args.spec)
    if spec is None:
        return EXIT_USAGE
    try:
        since = parse_since(args.since)
        found = live_drift(
            spec, since, version=args.version, out=Path(args.out) if args.out else None, spec_file=args.spec
        )
    except (MlspecError, ValueError) as exc:
        print(f"mlspec drift {spec.name}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # exit 1 means drift: a crash (a registry's own error) must not read as one
        print(f"mlspec drift {spec.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print("\n".join(found.lines))
    return found.code


def describe_operation(result: dict) -> str:
    name = result["model"]
    if "drift" in result:
        lines = [
            f"{name}: registry production version {result['production']}, serving {result['serving']}",
            f"  history {result['history']}, latest registered version {result['latest']}",
        ]
        if not result["reachable"]:
            lines.append("  serving could not be asked; start it and ask again")
        else:
            lines.append(f"  DRIFT: {result['advice']}" if result["drift"] else "  serving follows the registry")
        if result.get("files_problem"):
            lines.append(f"  FILES: {result['files_problem']}")
        if result.get("rollout"):
            lines.append(f"  {result['rollout']}")
        return "\n".join(lines + lineage_lines(result))
    if result["action"] == "undeploy":
        return f"{name}: undeployed (was version {result['previous']}); nothing is production or serving"
    smoke = result["smoke_test"]
    served = (
        f"{name}: version {result['version']} is production and serving at {result['endpoint_url']} "
        f"(was {result['previous']}; smoke test {smoke['samples']} samples, agreement {smoke['agreement']:.3f})"
    )
    return served + (f"\n  NOTE: {result['endpoint_change']}" if result.get("endpoint_change") else "")


def lineage_lines(result: dict) -> list[str]:
    """The production version's data lineage in `mlspec status`: source, digest, rows, and the data checks
    (reference version, outcome, drifted columns), worded as the model card words them."""
    if result.get("production") is None or "lineage" not in result:
        return []
    lineage = result["lineage"]
    if not lineage:
        return [f"  data of version {result['production']}: no lineage recorded (registered before mlspec recorded it)"]
    lines = [f"  data of version {result['production']}:"]
    lines += [f"    {label}: {text}" for label, text in lineage_facts(lineage)]
    checks = check_facts(lineage, {})
    if checks:
        lines += [f"  data checks of version {result['production']}:"] + [f"    {label}: {text}" for label, text in checks]
    return lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlspec", description="Declarative YAML model specs -> Airflow ML pipelines")
    sub = parser.add_subparsers(dest="command", required=True)
    lint = sub.add_parser("lint", help="check specs; exit 0 clean (warnings print), 1 problems, 2 usage error")
    lint.add_argument("--format", choices=["text", "json"], default="text")
    lint.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    lint.add_argument("paths", nargs="+", help="spec files or folders")
    lint.set_defaults(func=cmd_lint)
    schema = sub.add_parser("schema", help="print the JSON Schema of a spec")
    schema.add_argument("--markdown", action="store_true", help="print the spec reference table (as in the README)")
    schema.add_argument(
        "--estimators", action="store_true",
        help="print the scikit-learn estimators (model.estimator) and their parameters (model.params) with types",
    )
    schema.set_defaults(func=cmd_schema)
    render = sub.add_parser("render", help="show the task graph and the resolved settings of a spec")
    render.add_argument("spec")
    render.set_defaults(func=cmd_render)
    run = sub.add_parser("run", help="run a spec's DAG locally through Airflow (dag.test)")
    run.add_argument("spec")
    run.add_argument("--epochs", type=int, help="override training.epochs for this run")
    run.add_argument("--learning-rate", type=float, help="override the learning rate for this run")
    run.add_argument("--trials", type=int, help="tuned specs: override tuning.trials for this run")
    run.add_argument(
        "--param", action="append", metavar="KEY=VALUE",
        help="set a run parameter, as the trigger form does (repeatable): a scikit-learn spec's model.params "
        "(e.g. n_estimators=3), epochs, learning_rate, trials; an unknown key lists the accepted ones (exit 2)",
    )
    run.add_argument(
        "--accept-drift", action="store_true",
        help="train even when validate_data finds drift or schema problems that the spec's validation says fail on; "
        "the version records that the drift was accepted (the trigger form's accept_drift)",
    )
    run.set_defaults(func=cmd_run)
    serve = sub.add_parser(
        "serve",
        help="run the local Open Inference Protocol model server",
        description="The repository API (load, unload, index) needs the bearer token in MLSPEC_SERVER_TOKEN, "
        "or the one generated at first start into the state folder's `token` file (mode 0600).",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8555)
    serve.add_argument("--state-dir", help="remember loaded models here and reload them at start; holds the token file")
    serve.add_argument(
        "--auth", choices=["admin", "token"], default="admin",
        help="admin: only the repository API needs the token (default); token: inference and metadata too",
    )
    serve.add_argument(
        "--allow-root", action="append", metavar="URI",
        help="also load from below this storage root (file://..., s3://bucket[/prefix]; s3:// alone: every "
        "bucket the server's credentials reach); repeatable. The store under MLSPEC_HOME is always allowed",
    )
    serve.add_argument("--max-body-mb", type=float, default=64, help="largest request body (413 beyond it)")
    serve.add_argument(
        "--max-inflight-mb", type=float, default=None,
        help="request body megabytes held at once across all requests (503 with Retry-After beyond it); "
        "default MLSPEC_SERVER_MAX_INFLIGHT_MB, else 256",
    )
    serve.add_argument("--max-elements", type=int, default=1 << 22, help="most values in one inference request")
    serve.add_argument("--max-batch", type=int, default=1024, help="largest first dimension of an input")
    serve.add_argument("--max-models", type=int, default=32, help="most models loaded at once")
    serve.add_argument("--max-model-mb", type=float, default=1024, help="largest model.onnx a load accepts")
    serve.add_argument("--load-timeout", type=float, default=120, help="seconds one load may take")
    serve.add_argument("--max-concurrent-loads", type=int, default=2, help="loads running at once")
    serve.add_argument("--inference-threads", type=int, default=0, help="inference worker threads (0: one per core)")
    serve.add_argument("--ort-threads", type=int, default=1, help="onnxruntime intra-op threads per session")
    serve.add_argument("--access-log", action="store_true", help="log every request (costs ~20%% throughput)")
    serve.add_argument("--shutdown-timeout", type=float, default=10, help="seconds SIGTERM waits for requests")
    serve.set_defaults(func=cmd_serve)
    manifest = sub.add_parser("manifest", help="print the KServe InferenceService deploy would apply")
    manifest.add_argument("spec")
    manifest.add_argument("--version", type=int, default=1)
    manifest.set_defaults(func=cmd_manifest)
    for name, help_text in (
        ("deploy", "make a registered version production and serve it (smoke-tested; restored on failure)"),
        ("rollback", "serve the version that was production before the current one (or --to-version N)"),
        ("undeploy", "stop serving the model; the registry records that nothing is production"),
        ("status", "the registry's production version, what serving answers with, and any drift"),
    ):
        op = sub.add_parser(name, help=help_text)
        op.add_argument("spec")
        if name == "deploy":
            op.add_argument("--version", type=int, required=True, help="the store version to serve")
        if name == "rollback":
            op.add_argument("--to-version", type=int, help="default: the previous production version")
        if name == "status":
            op.add_argument(
                "--strict", action="store_true",
                help="exit 1 on any disagreement: serving differs from the registry, serving does not answer, "
                "or production's files no longer match the sha256 the registry recorded",
            )
        op.add_argument("--json", action="store_true", help="print the result as JSON")
        op.set_defaults(func=cmd_operation)
    rollout = sub.add_parser(
        "rollout", help="the rollout under way (--status, default); --pause, --resume or --abort it (abort: production "
        "takes all traffic back now); --approve or --reject the approval it waits for",
    )
    rollout.add_argument("spec")
    actions = rollout.add_mutually_exclusive_group()
    for command, words in zip(ROLLOUT_CLI_ACTIONS, (
        "report the rollout: version, state, current step, traffic, each gate's last value (default)",
        "stop the current step at its next check; traffic stays as it is",
        "run the paused or held step again",
        "give production all traffic back now and mark the candidate rolled back",
        "answer the approval the rollout waits for (Airflow's Required Actions): the last step runs",
        "answer the approval the rollout waits for with Reject: the rollout rolls back",
    ), strict=True):
        actions.add_argument(f"--{command}", dest="action", action="store_const", const=command, help=words)
    rollout.add_argument("--reason", help="--abort, --reject, --approve: why (recorded with the answer or the rollback)")
    rollout.add_argument("--json", action="store_true", help="print the result as JSON")
    rollout.set_defaults(func=cmd_rollout)
    drift = sub.add_parser(
        "drift",
        help="a version's logged requests (serving.log_requests) against its training data",
        description="Exit 0: no drift; 1: drift (a drifted column or a schema problem); 2: no logged rows or "
        "an error.",
    )
    drift.add_argument("spec")
    drift.add_argument(
        "--since", default="24h", help="a duration back from now (30m, 24h, 7d) or an ISO time (default 24h)"
    )
    drift.add_argument("--version", type=int, help="the version to check (default: production)")
    drift.add_argument("--out", help="the folder for drift.json and drift.png (default: under MLSPEC_HOME)")
    drift.set_defaults(func=cmd_drift)
    history = sub.add_parser("history", help="the audit trail of production: who changed it, when, why, from which run")
    history.add_argument("spec")
    history.add_argument("--json", action="store_true", help="print the changes as JSON")
    history.set_defaults(func=cmd_history)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `mlspec render ... | head`: the reader left; not an error worth a traceback
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

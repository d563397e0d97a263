"""Compile a folder of specs into DAGs without ever letting one bad file take the others down.

* A valid spec becomes its DAG.
* An invalid spec becomes a placeholder DAG under the same dag_id (or `mlspec-invalid-<file>` when it
  has no usable name): paused on creation, never scheduled, its doc and its only task carry the
  `file:line:col` errors. The dag_id stays visible, so run history stays reachable after a bad edit.
* Two specs with the same metadata.name both get reported in one placeholder; neither silently wins.
* A worker that runs one task only compiles that DAG's spec (Airflow's parsing context).
* One spec can never make Airflow drop the others: a spec that is not in the validation cache is checked
  (parsed, validated, resolved) in a forked process under a time budget (MLSPEC_SPEC_TIME_BUDGET_S,
  default 5 s) and a memory budget (MLSPEC_SPEC_MEMORY_BUDGET_MB, default 512 MiB), and all of them
  together under the DAG file's budget (MLSPEC_SPECS_TIME_BUDGET_S, default half of Airflow's
  dagbag_import_timeout). A spec that runs over becomes a placeholder naming it; its text is remembered
  for a while so the next parses skip it instead of spending the budget again.
* Except a spec far below every limit of the YAML loader (at most IN_PROCESS_MAX_CHARS of text, and at most
  IN_PROCESS_MAX_VALUES values and IN_PROCESS_MAX_CHARS of text once its aliases are expanded): its check
  costs about a millisecond, less than the fork, and is done in this process, under a CPU-time limit
  (IN_PROCESS_CPU_S) past which it is handed to the forked check after all. A hostile spec (an alias bomb,
  a file near the size limit, thousands of tuning choices) is beyond those sizes and still forked.
  MLSPEC_SPEC_ISOLATION=always forks for every spec; =off checks every spec in this process without budgets.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import os
import re
import select
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlspec.deadlines import SPEC_ERROR_DEADLINE
from mlspec.env import env_number
from mlspec.spec import ModelSpec, SpecError, SpecProblem, resolve_spec
from mlspec.spec import cache as spec_cache
from mlspec.spec.errors import shorten
from mlspec.spec.yaml_loader import LoadedYaml, load_yaml, read_spec_file

log = logging.getLogger(__name__)

SPEC_SUFFIXES = (".yaml", ".yml")


def spec_files(specs_dir: Path) -> list[Path]:
    return sorted(p for p in specs_dir.iterdir() if p.suffix in SPEC_SUFFIXES and p.is_file()) if specs_dir.is_dir() else []


_DAG_ID = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def fallback_name(path: Path) -> str:
    """The dag_id of a spec that names no usable dag_id itself."""
    return "mlspec-invalid-" + re.sub(r"[^a-z0-9]+", "-", path.stem.lower())[:40].strip("-")


def claimed_name(data: object, path: Path) -> str:
    """The dag_id a (possibly invalid) spec claims, else one made from its file name."""
    name = data.get("metadata", {}).get("name") if isinstance(data, dict) and isinstance(data.get("metadata"), dict) else None
    return name if isinstance(name, str) and len(name) <= 63 and _DAG_ID.fullmatch(name) else fallback_name(path)


_FLOW_METADATA_NAME = re.compile(r"^metadata:[ \t]*\{[^}\n]*?\bname:[ \t]*[\"']?([-a-z0-9]+)", re.M)


def glimpsed_name(path: Path, text: str) -> str:
    """The dag_id a spec appears to claim, read line by line without parsing it (for a spec whose check never
    finished): `name:` in a top-level block `metadata:` mapping, or in a flow one; else the fallback name."""
    lines = iter(text.splitlines())
    for line in lines:
        if line.rstrip() == "metadata:":
            for inner in lines:
                if inner.strip() and not inner[:1].isspace():
                    break
                key, _, value = inner.strip().partition(":")
                if key == "name":
                    return claimed_name({"metadata": {"name": value.split("#")[0].strip().strip("'\"")}}, path)
    match = _FLOW_METADATA_NAME.search(text)
    return claimed_name({"metadata": {"name": match.group(1)}}, path) if match else fallback_name(path)


def declared_name(path: Path, text: str) -> str:
    """The dag_id a spec claims, read leniently (the spec may be invalid)."""
    try:
        return claimed_name(load_yaml(text, str(path)).data, path)
    except SpecError:
        return fallback_name(path)


MAX_SHOWN_PROBLEMS = 50  # a placeholder's docs list this many problems, then a count


def _problems_text(problems: list[SpecProblem]) -> str:
    shown = "\n".join(str(p) for p in problems[:MAX_SHOWN_PROBLEMS])
    more = len(problems) - MAX_SHOWN_PROBLEMS
    return shown + (f"\n... and {more} more (mlspec lint shows them all)" if more > 0 else "")


def build_error_dag(dag_id: str, problems: list[SpecProblem]):
    """A runnable-looking but failing DAG that shows a spec's errors where users look in the UI."""
    # Airflow only where a DAG is made: `mlspec lint` reads spec files through this module (2.5 s less).
    from airflow.sdk import DAG

    from mlspec.compiler import START_DATE
    from mlspec.operators.spec_error import SpecErrorOperator

    text = _problems_text(problems)
    dag = DAG(
        dag_id=dag_id,
        description=f"INVALID SPEC: {problems[0]}"[:500],
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        is_paused_upon_creation=True,
        tags=["mlspec", "invalid-spec"],
        doc_md=f"### This spec does not compile\n\nFix these problems (`mlspec lint` shows the same):\n\n```\n{text}\n```\n",
    )
    SpecErrorOperator(
        task_id="spec_error", errors=text, dag=dag, doc_md=f"```\n{text}\n```",
        execution_timeout=SPEC_ERROR_DEADLINE,
    )
    return dag


def _parsing_dag_id() -> str | None:
    from airflow.sdk import get_parsing_context

    return get_parsing_context().dag_id


# --------------------------------------------------------------------------- budgets

DEFAULT_TIME_BUDGET_S = 5.0
DEFAULT_MEMORY_BUDGET_MB = 512
OVERRUN_REMEMBERED_S = 600.0  # a spec that ran over is skipped (a placeholder) this long, unless edited


def _file_budget_s() -> float:
    """Seconds all uncached specs may take together: MLSPEC_SPECS_TIME_BUDGET_S, else half of Airflow's
    dagbag_import_timeout (30 s by default), so the DAG file itself never times out."""
    if os.environ.get("MLSPEC_SPECS_TIME_BUDGET_S", "").strip():
        return env_number("MLSPEC_SPECS_TIME_BUDGET_S", 15.0)
    try:
        from airflow.configuration import conf

        timeout = conf.getfloat("core", "dagbag_import_timeout", fallback=30.0)
    except Exception:  # noqa: BLE001 - no Airflow configuration: use Airflow's default
        timeout = 30.0
    return timeout / 2 if timeout > 0 else math.inf


@dataclass
class _Job:
    index: int
    path: Path
    text: str
    outcome: dict = field(default_factory=dict)  # name and one of: resolved | problems | crash | overrun | skipped


def _check_spec(job: _Job, only: str | None, on_name=None, *, small_only: bool = False) -> dict | None:
    """Parse, validate and resolve one spec: its outcome, the ModelSpec under "spec". With small_only, None
    for a spec too big once its aliases are expanded to be checked in this process (the forked check does)."""
    try:
        doc = load_yaml(job.text, str(job.path))
    except SpecError as exc:
        return {"name": fallback_name(job.path), "problems": [p.to_dict() for p in exc.problems]}
    if small_only and not _is_small(doc, job.text):
        return None
    name = claimed_name(doc.data, job.path)
    if on_name is not None:
        on_name(name)
    if only is not None and name != only:
        return {"name": name, "skipped": True}
    try:
        return {"name": name, "spec": resolve_spec(doc)}
    except SpecError as exc:
        return {"name": name, "problems": [p.to_dict() for p in exc.problems]}


# ----------------------------------------------------------------------------- small specs, in this process

# Far below the YAML loader's limits (MAX_SPEC_BYTES, MAX_EXPANDED_BYTES, MAX_NODES): the example specs are
# 1 to 3 KB and 70 to 170 values and keys; the 24 KB tuned spec that took a minute to check holds 4,800.
IN_PROCESS_MAX_CHARS = 64 * 1024
IN_PROCESS_MAX_VALUES = 2_000
IN_PROCESS_CPU_S = 1.0  # a check here that takes more CPU than this is handed to the forked check


def _is_small(doc: LoadedYaml, text: str) -> bool:
    """Whether a loaded spec (text: at most IN_PROCESS_MAX_CHARS) holds at most IN_PROCESS_MAX_VALUES values
    and keys (the loader keeps a position for each), and IN_PROCESS_MAX_CHARS characters of text, once its
    aliases are expanded (only an alias, `*name`, makes the expanded text longer than the spec's own)."""
    if len(doc.positions) > IN_PROCESS_MAX_VALUES:
        return False
    if "*" not in text:
        return True
    chars = 0
    pending = [doc.data]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value)
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str):
            chars += len(value)
            if chars > IN_PROCESS_MAX_CHARS:
                return False
    return True


class _CpuSpent(BaseException):
    """The in-process check ran past IN_PROCESS_CPU_S (a BaseException: no `except Exception` in a check
    swallows it)."""


def _raise_cpu_spent(signum, frame) -> None:
    raise _CpuSpent


def _can_time_cpu_here() -> bool:
    """The CPU-time limit is a SIGPROF timer: only the main thread receives it, and nobody else may use it."""
    return (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGPROF) in (signal.SIG_DFL, signal.SIG_IGN)
        and signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)
    )


def _check_small_here(jobs: list[_Job], only: str | None) -> list[_Job]:
    """Check the small specs among jobs in this process, each under IN_PROCESS_CPU_S of CPU time (filling
    job.outcome); the jobs left for the forked check."""
    if not _can_time_cpu_here():
        return jobs
    left = []
    previous = signal.signal(signal.SIGPROF, _raise_cpu_spent)
    # A check makes thousands of short-lived objects and no garbage cycle worth collecting, and each collection
    # they set off walks every object Airflow holds: 0.5 ms per spec here. Collections wait until the end.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for job in jobs:
            if len(job.text) > IN_PROCESS_MAX_CHARS:
                left.append(job)
                continue
            try:
                signal.setitimer(signal.ITIMER_PROF, IN_PROCESS_CPU_S)
                try:
                    outcome = _check_spec(job, only, small_only=True)
                except Exception as exc:  # noqa: BLE001 - reported in the placeholder, as from the forked check
                    outcome = {"name": fallback_name(job.path), "crash": shorten(f"{type(exc).__name__}: {exc}")}
                signal.setitimer(signal.ITIMER_PROF, 0)
            except _CpuSpent:
                outcome = None
            if outcome is None:
                left.append(job)
            else:
                job.outcome = outcome
    finally:
        if collecting:
            gc.enable()
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)
    return left


def _vm_size() -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _child(jobs: list[_Job], only: str | None, write_fd: int, memory_mb: float, alarm_s: float) -> None:
    """The forked check: each job's outcome as one JSON line (its name first, once known)."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):
        signal.signal(signum, signal.SIG_DFL)
    signal.alarm(max(1, math.ceil(alarm_s)))  # never outlives its parent's patience
    vm = _vm_size()
    if vm is not None:
        import resource

        limit = vm + int(memory_mb * 2**20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    with os.fdopen(write_fd, "wb") as out:

        def emit(message: dict) -> None:
            out.write(json.dumps(message).encode() + b"\n")
            out.flush()

        for job in jobs:
            try:
                outcome = _check_spec(job, only, on_name=lambda name, i=job.index: emit({"i": i, "name": name}))
                if "spec" in outcome:
                    outcome["resolved"] = outcome.pop("spec").to_dict()
            except MemoryError:
                outcome = {"overrun": "memory"}
            except Exception as exc:  # noqa: BLE001 - reported in the placeholder
                outcome = {"crash": shorten(f"{type(exc).__name__}: {exc}")}
            emit({"i": job.index, "done": True, **outcome})


class _Lines:
    """JSON lines from the forked check, with a deadline per read."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""
        self.eof = False

    def next(self, deadline: float) -> dict | str:
        """The next message, or "timeout" / "eof"."""
        while b"\n" not in self.buffer:
            if self.eof:
                return "eof"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout"
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if not ready:
                return "timeout"
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                self.eof = True
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)


def _stop(pid: int) -> int:
    """Kill the forked check if it still runs; its wait status."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _, status = os.waitpid(pid, 0)
    return status


def _died(status: int) -> dict:
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        return {"overrun": "died", "how": f"was killed by {name}"}
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
    return {"overrun": "died", "how": f"exited with status {code}"}


def check_texts(items: list[tuple[Path, str]]) -> list[dict]:
    """The bounded check of compile_specs for specs given as (path, text): one outcome each, in order
    ({"name", and one of "resolved" | "problems" | "crash" | "overrun"}). Forks: call it from one thread."""
    jobs = [_Job(index, path, text) for index, (path, text) in enumerate(items)]
    _check_isolated(jobs, None, time.monotonic() + _file_budget_s())
    outcomes = [job.outcome for job in jobs]
    for outcome in outcomes:  # checked here when no process could be forked
        if "spec" in outcome:
            outcome["resolved"] = outcome.pop("spec").to_dict()
    return outcomes


def _check_isolated(jobs: list[_Job], only: str | None, file_deadline: float) -> None:
    """Check every job in forked processes under the budgets (all of them by file_deadline, a
    time.monotonic()), filling job.outcome."""
    per_spec = env_number("MLSPEC_SPEC_TIME_BUDGET_S", DEFAULT_TIME_BUDGET_S)
    memory_mb = env_number("MLSPEC_SPEC_MEMORY_BUDGET_MB", DEFAULT_MEMORY_BUDGET_MB)
    pending = list(jobs)
    while pending:
        if time.monotonic() >= file_deadline:
            for job in pending:
                job.outcome = {"name": job.outcome.get("name"), "overrun": "file"}
            return
        alarm_s = min(per_spec * len(pending), max(file_deadline - time.monotonic(), 0)) + 5
        read_fd, write_fd = os.pipe()
        try:
            pid = os.fork()
        except OSError as exc:  # no process to spare: check here, without budgets, rather than not at all
            os.close(read_fd)
            os.close(write_fd)
            log.warning("cannot fork to check %d spec(s) under budgets (%s); checking them in this process", len(pending), exc)
            _check_here(pending, only)
            return
        if pid == 0:  # the forked check never returns into the caller's code
            code = 1
            try:
                os.close(read_fd)
                _child(pending, only, write_fd, memory_mb, alarm_s)
                code = 0
            finally:
                os._exit(code)
        os.close(write_fd)
        lines = _Lines(read_fd)
        status: int | None = None
        try:
            while pending:
                job = pending[0]
                started = time.monotonic()
                deadline = min(started + per_spec, file_deadline)
                message = lines.next(deadline)
                while isinstance(message, dict) and not message.get("done"):
                    job.outcome["name"] = message.get("name")  # known before the spec is validated
                    message = lines.next(deadline)
                if message == "timeout":
                    job.outcome["overrun"] = "time" if deadline < file_deadline else "file_spent"
                    job.outcome["seconds"] = per_spec
                    pending.pop(0)
                    break
                if message == "eof":
                    status = _stop(pid)
                    job.outcome.update(_died(status))
                    pending.pop(0)
                    break
                message.pop("done")
                message.pop("i", None)
                job.outcome.update(message)
                pending.pop(0)
        finally:
            os.close(read_fd)
            if status is None:
                _stop(pid)


def _check_here(jobs: list[_Job], only: str | None) -> None:
    for job in jobs:
        try:
            job.outcome = _check_spec(job, only)
        except Exception as exc:  # noqa: BLE001 - reported in the placeholder
            job.outcome = {"name": fallback_name(job.path), "crash": shorten(f"{type(exc).__name__}: {exc}")}


def overrun_problem(path: Path, outcome: dict, memory_mb: float) -> SpecProblem:
    """What a spec whose check ran over its budget (`outcome["overrun"]`) says at its first line."""
    kind = outcome["overrun"]
    if kind == "time":
        what = f"checking this spec took more than {outcome.get('seconds', DEFAULT_TIME_BUDGET_S):g} s (its time budget)"
    elif kind == "memory":
        what = f"checking this spec needed more than {memory_mb:g} MiB (its memory budget)"
    elif kind == "died":
        what = f"checking this spec stopped: the check {outcome.get('how', 'died')} (its memory budget: {memory_mb:g} MiB)"
    elif kind == "file_spent":
        what = "checking this spec ran past the time budget of the whole DAG file (shared by every spec that is not cached)"
    else:  # "file"
        return SpecProblem(
            str(path), 1, 1, "",
            "this spec was not checked in this parse: specs before it spent the time budget of the whole DAG file "
            "(their DAGs name them); it is checked again on the next parse",
        )
    return SpecProblem(str(path), 1, 1, "", f"{what}; it is left out until it is edited (`mlspec lint {path}` checks it on its own)")


# --------------------------------------------------------------------------- compile


def _read(path: Path) -> tuple[str | None, SpecError | None]:
    try:
        return read_spec_file(path).decode("utf-8", errors="replace"), None
    except SpecError as exc:
        return None, exc


def compile_specs(specs_dir: Path | str | None = None) -> dict:
    """dag_id -> DAG for every spec file in MLSPEC_SPECS_DIR when set, else specs_dir (default ./specs)."""
    from mlspec import compiler  # Airflow, as in build_error_dag: only where DAGs are built

    file_deadline = time.monotonic() + _file_budget_s()  # the checks below share the DAG file's budget
    specs_dir = Path(os.environ.get("MLSPEC_SPECS_DIR") or specs_dir or "specs")
    only = _parsing_dag_id()
    memory_mb = env_number("MLSPEC_SPEC_MEMORY_BUDGET_MB", DEFAULT_MEMORY_BUDGET_MB)
    # Each file is read once (a regular file within 1 MiB) and checked once: from the cache, or else by a job.
    jobs: list[_Job] = []
    for index, path in enumerate(spec_files(specs_dir)):
        text, error = _read(path)
        job = _Job(index, path, text or "")
        jobs.append(job)
        if error is not None:
            job.outcome = {"name": fallback_name(path), "problems": [p.to_dict() for p in error.problems]}
            continue
        resolved = spec_cache.get(text)
        if resolved is not None:  # validated before: unchanged text, schema and mlspec version
            job.outcome = {"name": resolved["metadata"]["name"], "resolved": resolved, "cached": True}
            continue
        overrun = spec_cache.get_overrun(text, OVERRUN_REMEMBERED_S)
        if overrun is not None:  # ran over its budget recently: do not spend the budget on it again
            job.outcome = overrun
    unchecked = [job for job in jobs if not job.outcome]
    isolation = os.environ.get("MLSPEC_SPEC_ISOLATION", "").strip().lower()
    if isolation == "off" or not hasattr(os, "fork"):
        _check_here(unchecked, only)
    else:
        if isolation != "always":
            unchecked = _check_small_here(unchecked, only)
        _check_isolated(unchecked, only, file_deadline)

    claimed: dict[str, list[_Job]] = {}
    for job in jobs:
        outcome = job.outcome
        name = outcome.get("name") or (glimpsed_name(job.path, job.text) if "overrun" in outcome else fallback_name(job.path))
        if outcome.get("skipped") or (only is not None and name != only):
            continue  # a worker running one task compiles that DAG's spec only
        if outcome.get("overrun") in ("time", "memory", "died") and not outcome.get("remembered"):
            spec_cache.put_overrun(job.text, {**outcome, "remembered": True})
        claimed.setdefault(name, []).append(job)

    dags: dict = {}
    for name, claimants in claimed.items():
        if len(claimants) > 1:
            paths = [job.path for job in claimants]
            problems = [
                SpecProblem(str(p), 1, 1, "metadata.name", f"dag_id `{name}` is also claimed by {', '.join(str(o) for o in paths if o != p)}")
                for p in paths
            ]
            log.error("duplicate dag_id %s:\n%s", name, _problems_text(problems))
            dags[name] = build_error_dag(name, problems)
            continue
        (job,) = claimants
        outcome = job.outcome
        try:
            if "overrun" in outcome:
                raise SpecError([overrun_problem(job.path, job.outcome, memory_mb)])
            if "crash" in outcome:
                raise SpecError([SpecProblem(str(job.path), 1, 1, "", f"could not compile: {outcome['crash']}")])
            if "problems" in outcome:
                raise SpecError([SpecProblem(**p) for p in outcome["problems"]])
            spec = outcome.get("spec") or ModelSpec.from_dict(outcome["resolved"], source_file=str(job.path))
            if not outcome.get("cached") and spec_cache.cache_dir() is not None:
                spec_cache.put(job.text, outcome.get("resolved") or spec.to_dict())
            dags[name] = compiler.build_dag(spec, spec_text=job.text)
        except SpecError as exc:
            log.error("invalid spec %s; its DAG %s shows the errors:\n%s", job.path, name, _problems_text(exc.problems))
            dags[name] = build_error_dag(name, exc.problems)
        except Exception as exc:  # noqa: BLE001 - one broken spec must never take the other DAGs down
            log.exception("could not compile %s", job.path)
            problem = SpecProblem(str(job.path), 1, 1, "", f"could not compile: {shorten(f'{type(exc).__name__}: {exc}')}")
            dags[name] = build_error_dag(name, [problem])
    return dags

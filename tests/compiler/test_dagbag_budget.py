"""One spec can never make Airflow drop the others (issue 9, broken 5): compile_specs checks each uncached
spec within a time and a memory budget, and a spec that runs over becomes a placeholder DAG naming it.

Before the fix a spec that took 154 s to check made Airflow's parse of dags/mlspec_dags.py time out (every
mlspec DAG disappeared), and one that took 8.9 GB took the dag-processor with it.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from tests.fixtures.paths import SPECS

import mlspec.dagbag as dagbag
from mlspec.compiler import TASK_ORDER

EXAMPLES = sorted(p.stem for p in SPECS.glob("*.yaml"))


@pytest.fixture
def specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the example specs; the validation cache off, so every spec is checked. These tests make an
    ordinary spec's check misbehave, and such a small spec is otherwise checked in this process
    (test_dagbag_in_process.py): MLSPEC_SPEC_ISOLATION=always forks for every spec."""
    folder = tmp_path / "specs"
    folder.mkdir()
    for path in SPECS.glob("*.yaml"):
        shutil.copy(path, folder)
    monkeypatch.setenv("MLSPEC_SPEC_CACHE", "off")
    monkeypatch.setenv("MLSPEC_SPEC_ISOLATION", "always")
    monkeypatch.delenv("MLSPEC_SPECS_DIR", raising=False)
    return folder


def misbehave_on(monkeypatch: pytest.MonkeyPatch, file_name: str, action) -> None:
    """resolve_spec runs `action` for one spec file (the forked check inherits the patch)."""
    real = dagbag.resolve_spec

    def resolve(doc):
        if doc.file.endswith(file_name):
            action()
        return real(doc)

    monkeypatch.setattr(dagbag, "resolve_spec", resolve)


def assert_others_compiled(dags: dict, *, but: tuple[str, ...] = ()) -> None:
    """Every example spec but those named compiled to its full DAG."""
    for name in EXAMPLES:
        if name not in but:
            assert "invalid-spec" not in dags[name].tags, (name, dags[name].description)
            assert set(TASK_ORDER) <= {t.task_id for t in dags[name].tasks}, name


def placeholder_text(dag) -> str:
    assert [t.task_id for t in dag.tasks] == ["spec_error"]
    assert "invalid-spec" in dag.tags
    return dag.description + dag.doc_md


def test_a_spec_over_its_time_budget_becomes_a_placeholder(specs, monkeypatch):
    monkeypatch.setenv("MLSPEC_SPEC_TIME_BUDGET_S", "2")
    misbehave_on(monkeypatch, "iris.yaml", lambda: time.sleep(120))
    started = time.monotonic()
    dags = dagbag.compile_specs(specs)
    assert time.monotonic() - started < 30
    assert_others_compiled(dags, but=("iris",))
    text = placeholder_text(dags["iris"])  # the name the spec claims: its run history stays reachable
    assert f"{specs / 'iris.yaml'}:1:1: " in text and "more than 2 s" in text


def test_a_spec_over_its_memory_budget_becomes_a_placeholder(specs, monkeypatch):
    monkeypatch.setenv("MLSPEC_SPEC_MEMORY_BUDGET_MB", "256")
    hoard: list[bytearray] = []
    misbehave_on(monkeypatch, "digits.yaml", lambda: hoard.extend(bytearray(64 * 2**20) for _ in range(32)))
    dags = dagbag.compile_specs(specs)
    assert hoard == []  # the 2 GiB were asked for in the forked check, never here
    assert_others_compiled(dags, but=("digits",))
    text = placeholder_text(dags["digits"])
    assert f"{specs / 'digits.yaml'}:1:1: " in text and "256 MiB" in text


def test_a_check_that_dies_becomes_a_placeholder_and_the_next_specs_still_compile(specs, monkeypatch):
    first = sorted(specs.glob("*.yaml"))[0]
    misbehave_on(monkeypatch, first.name, lambda: os.kill(os.getpid(), signal.SIGSEGV))
    dags = dagbag.compile_specs(specs)
    assert_others_compiled(dags, but=(first.stem,))
    assert "SIGSEGV" in placeholder_text(dags[first.stem])


def test_a_real_alias_fan_out_spec_is_reported_and_the_others_compile(specs):
    """The 90 KB spec with a 50 KB tag aliased 10,000 times: 8.9 GB in the DagBag."""
    text = (SPECS / "iris.yaml").read_text().replace("name: iris", "name: fanout")
    (specs / "fanout.yaml").write_text(text + "x_unknown: [&t " + "t" * 50_000 + ", *t" * 10_000 + "]\n")
    started = time.monotonic()
    dags = dagbag.compile_specs(specs)
    assert time.monotonic() - started < 30
    assert_others_compiled(dags)
    text = placeholder_text(dags["mlspec-invalid-fanout"])  # its YAML could not be built: no name to go by
    assert "alias" in text and len(text) < 3000


def test_the_file_budget_is_shared_and_a_slow_spec_is_not_retried_on_every_parse(specs, monkeypatch, tmp_path):
    """All specs together stay well inside Airflow's parse timeout: once the DAG file's budget is spent the
    specs left become placeholders saying so; the next parse skips the specs that ran over (remembered by
    their text) and compiles the rest."""
    monkeypatch.setenv("MLSPEC_SPEC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MLSPEC_SPEC_TIME_BUDGET_S", "2")
    monkeypatch.setenv("MLSPEC_SPECS_TIME_BUDGET_S", "3")
    names = sorted(specs.glob("*.yaml"))
    slow = {path.name for path in names[:2]}
    real = dagbag.resolve_spec

    def resolve(doc):
        if Path(doc.file).name in slow:
            time.sleep(120)
        return real(doc)

    monkeypatch.setattr(dagbag, "resolve_spec", resolve)
    started = time.monotonic()
    dags = dagbag.compile_specs(specs)
    assert time.monotonic() - started < 15
    assert "more than 2 s" in placeholder_text(dags[names[0].stem])
    for path in names[1:]:
        assert "budget" in placeholder_text(dags[path.stem]), path.name

    started = time.monotonic()
    dags = dagbag.compile_specs(specs)
    assert time.monotonic() - started < 10
    assert "more than 2 s" in placeholder_text(dags[names[0].stem])
    assert "budget" in placeholder_text(dags[names[1].stem])
    assert_others_compiled(dags, but=(names[0].stem, names[1].stem))


def test_a_worker_running_one_task_checks_only_its_spec(specs, monkeypatch):
    seen = specs.parent / "seen.txt"
    real = dagbag.resolve_spec

    def resolve(doc):
        with open(seen, "a") as handle:  # the check runs in a forked process: record on disk
            handle.write(Path(doc.file).name + "\n")
        return real(doc)

    monkeypatch.setattr(dagbag, "resolve_spec", resolve)
    monkeypatch.setattr(dagbag, "_parsing_dag_id", lambda: "digits")
    dags = dagbag.compile_specs(specs)
    assert list(dags) == ["digits"]
    assert seen.read_text().split() == ["digits.yaml"]


def test_isolation_can_be_switched_off(specs, monkeypatch):
    monkeypatch.setenv("MLSPEC_SPEC_ISOLATION", "off")
    calls: list[str] = []
    real = dagbag.resolve_spec
    monkeypatch.setattr(dagbag, "resolve_spec", lambda doc: calls.append(doc.file) or real(doc))
    dags = dagbag.compile_specs(specs)
    assert_others_compiled(dags)
    assert len(calls) == len(EXAMPLES)  # checked in this process


@pytest.mark.parametrize(
    "text, expected",
    [
        ("apiVersion: mlspec/v1\nmetadata:\n  owner: x\n  name: digits   # the DAG id\n", "digits"),
        ("metadata:\n  name: 'iris'\ndata: {}\n", "iris"),
        ("metadata: {owner: x, name: \"mnist\"}\n", "mnist"),
        ("metadata:\n  owner: x\nname: top-level\n", "mlspec-invalid-spec"),
        ("metadata:\n  name: Not_A_Label\n", "mlspec-invalid-spec"),
        ("x: [&a " + "a" * 1000 + ", *a]\n", "mlspec-invalid-spec"),
    ],
)
def test_the_name_of_a_spec_that_was_never_checked_is_glimpsed_without_parsing(text, expected):
    assert dagbag.glimpsed_name(Path("spec.yaml"), text) == expected


def test_when_no_process_can_be_forked_the_specs_are_checked_here(specs, monkeypatch):
    def no_fork():
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(dagbag.os, "fork", no_fork)
    assert_others_compiled(dagbag.compile_specs(specs))

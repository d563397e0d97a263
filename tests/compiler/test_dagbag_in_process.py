"""Small specs are checked in the DAG processor's own process, hostile ones still in a forked one (issue 15,
parse speed): a fork per parse cost more than the check of a 1 KB spec, but a spec that could blow the
parse's time or memory (an alias bomb, a file near the size limit, a spec whose check takes minutes) must
stay where a budget bounds it (issue 9)."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from tests.compiler.test_dagbag_budget import EXAMPLES, assert_others_compiled, placeholder_text
from tests.fixtures.paths import SPECS
from tests.ui.app.ui_app_testkit import slow_spec

import mlspec.dagbag as dagbag


@pytest.fixture
def specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the example specs, the validation cache off, the default isolation."""
    folder = tmp_path / "specs"
    folder.mkdir()
    for path in SPECS.glob("*.yaml"):
        shutil.copy(path, folder)
    monkeypatch.setenv("MLSPEC_SPEC_CACHE", "off")
    monkeypatch.delenv("MLSPEC_SPECS_DIR", raising=False)
    monkeypatch.delenv("MLSPEC_SPEC_ISOLATION", raising=False)
    return folder


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every fork compile_specs makes (the forked check still runs)."""
    made: list[int] = []
    real = os.fork

    def fork() -> int:
        pid = real()
        if pid:
            made.append(pid)
        return pid

    monkeypatch.setattr(dagbag.os, "fork", fork)
    return made


def test_the_example_specs_are_checked_here_without_a_fork(specs, forks):
    dags = dagbag.compile_specs(specs)
    assert_others_compiled(dags)
    assert sorted(dags) == EXAMPLES
    assert forks == []


def test_an_invalid_small_spec_reads_the_same_here_as_in_the_forked_check(specs, forks, monkeypatch):
    (specs / "iris.yaml").write_text((specs / "iris.yaml").read_text().replace("epochs:", "epochz:"))
    here = placeholder_text(dagbag.compile_specs(specs)["iris"])
    assert forks == []
    monkeypatch.setenv("MLSPEC_SPEC_ISOLATION", "always")
    assert placeholder_text(dagbag.compile_specs(specs)["iris"]) == here
    assert len(forks) == 1 and "epochz" in here and "did you mean `epochs`" in here


def test_an_alias_bomb_is_checked_in_the_fork(specs, forks):
    """20 KB of text whose aliases expand to 1 MB, within the loader's limits but not small: forked."""
    text = (SPECS / "iris.yaml").read_text().replace("name: iris", "name: bomb")
    (specs / "bomb.yaml").write_text(text + "x_unknown: [&t " + "t" * 20_000 + ", *t" * 50 + "]\n")
    dags = dagbag.compile_specs(specs)
    assert len(forks) == 1
    assert_others_compiled(dags, but=("bomb",))
    assert "x_unknown" in placeholder_text(dags["bomb"])


def test_a_spec_over_the_loaders_limits_is_refused_and_the_others_compile(specs, forks):
    """A 90 KB spec whose aliases would take 8.9 GB, and a file over 1 MiB: neither is built in this process."""
    text = (SPECS / "iris.yaml").read_text().replace("name: iris", "name: fanout")
    (specs / "fanout.yaml").write_text(text + "x_unknown: [&t " + "t" * 50_000 + ", *t" * 10_000 + "]\n")
    (specs / "huge.yaml").write_text(text.replace("name: fanout", "name: huge") + "#" * (1024 * 1024) + "\n")
    started = time.monotonic()
    dags = dagbag.compile_specs(specs)
    assert time.monotonic() - started < 30
    assert_others_compiled(dags)
    assert len(forks) == 1  # the fan-out; the huge file is refused before it is read
    assert "alias" in placeholder_text(dags["mlspec-invalid-fanout"])
    assert "1 MiB" in placeholder_text(dags["mlspec-invalid-huge"])


def test_a_spec_whose_check_takes_minutes_is_checked_in_the_fork_under_its_budget(specs, forks, monkeypatch):
    """The 24 KB tuned spec that took 73 s to lint holds thousands of values: forked, and over its budget."""
    monkeypatch.setenv("MLSPEC_SPEC_TIME_BUDGET_S", "2")
    (specs / "slow.yaml").write_text(slow_spec("slow-tuned"))
    started = time.monotonic()
    dags = dagbag.compile_specs(specs)
    assert time.monotonic() - started < 20
    assert len(forks) == 1
    assert_others_compiled(dags)
    assert "more than 2 s (its time budget)" in placeholder_text(dags["slow-tuned"])


def test_a_small_spec_whose_check_spins_is_handed_to_the_fork(specs, forks, monkeypatch):
    """A check that burns CPU here is stopped after IN_PROCESS_CPU_S and checked again under the budgets."""
    monkeypatch.setattr(dagbag, "IN_PROCESS_CPU_S", 0.3)
    monkeypatch.setenv("MLSPEC_SPEC_TIME_BUDGET_S", "2")
    real = dagbag.resolve_spec

    def resolve(doc):
        if doc.file.endswith("iris.yaml"):
            while True:
                pass
        return real(doc)

    monkeypatch.setattr(dagbag, "resolve_spec", resolve)
    started = time.monotonic()
    dags = dagbag.compile_specs(specs)
    assert time.monotonic() - started < 15
    assert len(forks) == 1
    assert_others_compiled(dags, but=("iris",))
    assert "more than 2 s (its time budget)" in placeholder_text(dags["iris"])


def test_the_cpu_timer_is_left_as_it_was(specs):
    dagbag.compile_specs(specs)
    assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGPROF) == signal.SIG_DFL

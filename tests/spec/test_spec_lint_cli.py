"""`mlspec lint` on the shapes issue 9 found: warnings print but exit 0 (1 with --strict), local data sources are
checked, hostile specs are refused fast, and a spec that is not a regular file is never read."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.fixtures.paths import REPO, SPECS

MLSPEC = str(Path(sys.executable).parent / "mlspec")
IRIS = (SPECS / "iris.yaml").read_text()


def mlspec(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MLSPEC, *args], capture_output=True, text=True, cwd=REPO, env={**os.environ, **(env or {})}, timeout=timeout
    )


def every_minute(tmp_path: Path) -> Path:
    spec = tmp_path / "iris.yaml"
    spec.write_text(IRIS.replace("schedule: null", "schedule: '* * * * *'"))
    return spec


def test_a_warning_prints_and_lint_still_exits_0(tmp_path):
    spec = every_minute(tmp_path)
    result = mlspec("lint", str(spec))
    assert result.returncode == 0, result.stdout + result.stderr
    (line,) = result.stdout.splitlines()
    assert line.startswith(f"{spec}:10:11: warning: schedule: '* * * * *' starts a run up to 60 times an hour")
    assert "1 spec(s) checked, 0 problem(s), 1 warning(s)" in result.stderr


def test_strict_makes_a_warning_fail(tmp_path):
    spec = every_minute(tmp_path)
    assert mlspec("lint", "--strict", str(spec)).returncode == 1
    home = tmp_path / "home"  # the examples' data in place, as the README has the user copy it
    (home / "data").mkdir(parents=True)
    shutil.copy(REPO / "data" / "penguins.csv", home / "data" / "penguins.csv")
    assert mlspec("lint", "--strict", "specs/", env={"MLSPEC_HOME": str(home)}).returncode == 0  # no warning


def test_json_output_carries_the_severity(tmp_path):
    spec = every_minute(tmp_path)
    result = mlspec("lint", "--format", "json", str(spec))
    assert result.returncode == 0
    (problem,) = json.loads(result.stdout)["problems"]
    assert problem["severity"] == "warning" and problem["path"] == "schedule"


def test_lint_refuses_a_device_as_data_source(tmp_path):
    """`file:///dev/zero` passed lint (and prepare_data then read it until 1.85 GB)."""
    spec = tmp_path / "iris.yaml"
    spec.write_text(IRIS.replace("source: builtin:iris", "source: file:///dev/zero\n  format: csv"))
    result = mlspec("lint", str(spec))
    assert result.returncode == 1
    assert "data.source: 'file:///dev/zero' (/dev/zero) is in the system folder /dev" in result.stdout


def test_lint_refuses_a_source_over_the_cap(tmp_path):
    data = tmp_path / "home" / "data" / "iris.csv"
    data.parent.mkdir(parents=True)
    data.write_bytes(b"a,label\n" + b"1,0\n" * 510)  # 2048 bytes of a table lint's sample check accepts
    spec = tmp_path / "iris.yaml"
    spec.write_text(IRIS.replace("source: builtin:iris", "source: file://data/iris.csv"))
    env = {"MLSPEC_HOME": str(data.parent.parent), "MLSPEC_MAX_SOURCE_BYTES": "1024"}
    result = mlspec("lint", str(spec), env=env)
    assert result.returncode == 1 and "is 2048 bytes; data sources are limited to 1024 bytes" in result.stdout
    assert mlspec("lint", str(spec), env={**env, "MLSPEC_MAX_SOURCE_BYTES": "4096"}).returncode == 0


def test_lint_refuses_an_alias_bomb_in_seconds(tmp_path):
    """A 976 KB spec (a 900 KB string referenced 19,000 times through aliases) took 154 s to lint."""
    spec = tmp_path / "bomb.yaml"
    spec.write_text(IRIS + "x_unknown: [&b " + "a" * 900_000 + ", *b" * 19_000 + "]\n")
    started = time.monotonic()
    result = mlspec("lint", str(spec), timeout=60)
    assert time.monotonic() - started < 20
    assert result.returncode == 1
    assert "alias" in result.stdout and len(result.stdout) < 2000


def test_lint_never_opens_a_fifo_or_reads_a_huge_file(tmp_path):
    specs = tmp_path / "specs"
    specs.mkdir()
    os.mkfifo(specs / "pipe.yaml")  # skipped in a folder, refused by name: neither blocks
    with open(specs / "huge.yaml", "wb") as handle:
        handle.truncate(8 * 1024**3)  # sparse 8 GiB
    result = mlspec("lint", str(specs), timeout=60)
    assert result.returncode == 1
    assert f"{specs / 'huge.yaml'}:1:1: the spec is {8 * 1024**3} bytes; the limit is 1048576 (1 MiB)" in result.stdout
    assert mlspec("lint", str(specs / "pipe.yaml"), timeout=60).returncode == 2

"""Lint's view of local files agrees with the workers and the model server (issue 17 review items 11 and 14).

A file:// store outside MLSPEC_HOME/models passed lint, then the model server (which by default loads only
from there) answered 403 at deploy. Lint refused a plain CSV over 1 GiB even when data.limits.max_bytes
allowed it, and read `my%20file.csv` as a literal `%20`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.fixtures.paths import SPECS

from mlspec.cli import lint_file
from mlspec.storage import source_limits

IRIS = (SPECS / "iris.yaml").read_text()


def lint(tmp_path: Path, text: str) -> list:
    spec = tmp_path / "project" / "specs" / "iris.yaml"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(text)
    return lint_file(spec)[1]


def test_a_local_serving_spec_with_a_store_the_server_does_not_allow_gets_a_warning(
    tmp_path: Path, mlspec_home: Path
) -> None:
    store = (tmp_path / "team-store").as_uri()
    (problem,) = lint(tmp_path, IRIS + f"storage: {{uri: '{store}'}}\n")
    assert problem.severity == "warning" and problem.path == "storage.uri"
    assert "--allow-root" in problem.message and str(mlspec_home / "models") in problem.message
    assert lint(tmp_path, IRIS + "storage: {uri: 'file://models'}\n") == []
    assert lint(tmp_path, IRIS + f"storage: {{uri: '{(mlspec_home / 'models' / 'team').as_uri()}'}}\n") == []


def test_lint_decodes_a_data_source_uri_as_the_workers_do(tmp_path: Path, mlspec_home: Path) -> None:
    import os

    fifo = tmp_path / "my data" / "pipe.csv"  # named as file:///.../my%20data/pipe.csv
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    source = fifo.as_uri()
    assert "%20" in source
    messages = [
        p.message
        for p in lint(tmp_path, IRIS.replace("source: builtin:iris", f"source: '{source}'\n  format: csv"))
    ]
    assert any("FIFO" in m for m in messages), messages
    dotdot = (tmp_path / "x").as_uri() + "/%2e%2e/mlspec-home/server/token"
    messages = [
        p.message
        for p in lint(tmp_path, IRIS.replace("source: builtin:iris", f"source: '{dotdot}'\n  format: csv"))
    ]
    assert any("'..'" in m for m in messages), messages


def test_lint_takes_the_specs_max_bytes_as_the_raw_file_cap(
    tmp_path: Path, mlspec_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(source_limits, "DEFAULT_MAX_SOURCE_BYTES", 100)  # stands for 1 GiB
    data = tmp_path / "rows.csv"
    data.write_text("a,label\n" + "1,0\n" * 100)
    text = IRIS.replace(
        "source: builtin:iris", f"source: '{data.as_uri()}'\n  format: csv\n  limits: {{max_bytes: MAXB}}"
    )
    assert lint(tmp_path, text.replace("MAXB", "100000")) == []
    (problem,) = lint(tmp_path, text.replace("MAXB", "200"))
    assert "data.limits.max_bytes" in problem.message and "MLSPEC_MAX_SOURCE_BYTES" in problem.message

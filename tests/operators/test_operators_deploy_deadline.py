"""A deploy's deadline outlasts its readiness wait (issue 17, review item 9): `timeouts.default` never makes the
deploy task's deadline shorter than serving.timeout + 10m, and an explicit `timeouts.deploy` under that is a
lint error (not longer than serving.timeout) or warning (less than 10m after it), naming the field."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.fixtures.paths import SPECS


def _text(extra: str, serving_timeout: int | None = None) -> str:
    text = (SPECS / "iris-forest.yaml").read_text()
    if serving_timeout is not None:
        assert "\nserving:" not in text
        text += f"serving: {{timeout: {serving_timeout}}}\n"
    return text + extra


def _spec(extra: str, serving_timeout: int | None = None):
    from mlspec.spec import load_spec_text

    spec = load_spec_text(_text(extra, serving_timeout), "iris-forest.yaml")
    if serving_timeout is not None:
        assert spec.serving.timeout == serving_timeout
    return spec


@pytest.mark.parametrize(("default", "serving_timeout", "deploy"), [
    ("10m", None, timedelta(seconds=600 + 600)),  # serving.timeout's default: 600 s
    ("45m", 7200, timedelta(hours=2, minutes=10)),
    ("3h", 600, timedelta(hours=3)),  # a longer default stays as written
])
def test_a_default_deadline_never_cuts_a_deploy_short(default, serving_timeout, deploy):
    from mlspec.compiler import build_dag
    from mlspec.deadlines import task_deadline

    spec = _spec(f"timeouts: {{default: {default}}}\n", serving_timeout)
    assert task_deadline(spec.to_dict(), "deploy") == deploy
    deadlines = {task.task_id: task.execution_timeout for task in build_dag(spec).tasks}
    assert deadlines["deploy"] == deploy
    assert deadlines["evaluate"] == deadlines["smoke_test"] == task_deadline(spec.to_dict(), "evaluate")
    assert deadlines["evaluate"] != deploy or default == "3h"


def _lint(tmp_path, extra: str, serving_timeout: int | None = None) -> list:
    from mlspec.cli import lint_file

    path = tmp_path / "iris-forest.yaml"
    path.write_text(_text(extra, serving_timeout))
    _, problems = lint_file(path)
    return [p for p in problems if p.path == "timeouts.deploy"]


def test_an_explicit_deploy_deadline_within_the_readiness_wait_fails_lint(tmp_path):
    from mlspec.spec import SpecError

    with pytest.raises(SpecError, match=r"timeouts\.deploy.*not longer than serving\.timeout \(900s\).*at least 25m"):
        _spec("timeouts: {deploy: 15m}\n", 900)
    (problem,) = _lint(tmp_path, "timeouts: {deploy: 10m}\n")
    assert problem.severity == "error" and "at least 20m" in problem.message


def test_an_explicit_deploy_deadline_with_no_room_to_roll_back_warns_and_is_kept(tmp_path):
    from mlspec.deadlines import task_deadline

    (problem,) = _lint(tmp_path, "timeouts: {deploy: 15m}\n")
    assert problem.severity == "warning" and "less than 10m after serving.timeout (600s)" in problem.message
    assert task_deadline(_spec("timeouts: {deploy: 15m}\n").to_dict(), "deploy") == timedelta(minutes=15)
    assert _lint(tmp_path, "timeouts: {deploy: 20m, default: 5m}\n") == []

"""The `mlspec` command as a user runs it: exit codes, text and JSON output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.fixtures.paths import REPO, SPECS

MLSPEC = str(Path(sys.executable).parent / "mlspec")


def mlspec(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([MLSPEC, *args], capture_output=True, text=True, cwd=cwd, env=os.environ.copy())


def test_lint_clean_specs_exit_0():
    result = mlspec("lint", "specs/")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(list(SPECS.glob('*.yaml')))} spec(s) checked, 0 problem(s)" in result.stderr


def test_lint_problems_exit_1_with_locations(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((SPECS / "iris.yaml").read_text().replace("epochs: 60", "epochs: -1").replace("batch_size: 16", "batchsize: 16"))
    result = mlspec("lint", str(bad))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{bad}:22:11: training.epochs: -1 is less than the minimum of 1",
        f"{bad}:23:3: training.batchsize: unknown key `batchsize`; did you mean `batch_size`?",
    ]


def test_lint_json_output(tmp_path):
    shutil.copy(SPECS / "digits.yaml", tmp_path / "a.yaml")
    shutil.copy(SPECS / "digits.yaml", tmp_path / "b.yaml")
    (tmp_path / "c.yaml").write_text("apiVersion: mlspec/v1\n")
    result = mlspec("lint", "--format", "json", str(tmp_path))
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["files"] == 3
    for problem in report["problems"]:
        assert set(problem) == {"file", "line", "column", "path", "message", "severity"}
        assert problem["line"] >= 1 and problem["column"] >= 1 and problem["severity"] == "error"
    duplicate = [p for p in report["problems"] if "also claimed by" in p["message"]]
    assert {Path(p["file"]).name for p in duplicate} == {"a.yaml", "b.yaml"}
    assert any(p["path"] == "kind" and "required key" in p["message"] for p in report["problems"])


@pytest.mark.parametrize("args", [["lint"], ["lint", "/no/such/spec.yaml"], ["lint", "--format", "xml", "specs/"], ["frobnicate"]])
def test_usage_errors_exit_2(args):
    assert mlspec(*args).returncode == 2


def test_schema_and_markdown():
    schema = json.loads(mlspec("schema").stdout)
    assert schema["$id"].endswith("v1.json")
    assert "| `training.epochs` | integer | `10` |" in mlspec("schema", "--markdown").stdout


def test_render_shows_graph_and_resolved_settings():
    result = mlspec("render", "specs/iris.yaml")
    assert result.returncode == 0, result.stderr
    assert "prepare_data -> train -> evaluate -> export_onnx -> store -> register -> deploy -> smoke_test -> promote" in result.stdout
    assert "opset: 17" in result.stdout  # a default the spec does not set


def test_render_and_run_refuse_a_bad_spec_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: mlspec/v2\n")
    for command in ("render", "run"):
        result = mlspec(command, str(bad))
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert f"{bad}:1:13: apiVersion: 'mlspec/v2' is not supported" in result.stderr


def test_manifest_for_kserve_spec():
    import yaml

    result = mlspec("manifest", "specs/cifar10.yaml", "--version", "7")
    assert result.returncode == 0, result.stderr
    isvc = yaml.safe_load(result.stdout)
    assert isvc["kind"] == "InferenceService" and isvc["metadata"]["labels"]["mlspec/version"] == "7"
    assert mlspec("manifest", "specs/digits.yaml").returncode == 1


def test_run_refuses_keras_overrides_for_a_sklearn_spec():
    result = mlspec("run", "specs/iris-forest.yaml", "--epochs", "3")
    assert result.returncode == 2
    assert "--epochs override Keras training settings, but this spec uses framework sklearn" in result.stderr
    assert "model.params" in result.stderr

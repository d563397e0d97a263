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
    assert "prepare_data -> validate_data -> train -> evaluate -> export_onnx -> store -> register -> deploy -> smoke_test -> promote" in result.stdout
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


def test_run_param_with_an_unknown_key_lists_the_accepted_keys():
    result = mlspec("run", "specs/iris-forest.yaml", "--param", "n_estimatorz=1")
    assert result.returncode == 2, result.stderr
    assert "`n_estimatorz` (did you mean `n_estimators`?)" in result.stderr
    assert "Accepted keys: n_estimators, max_depth, random_state" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("param", "words"),
    [
        ("n_estimators=0", "`n_estimators` must be an integer >= 1, got 0"),
        ("n_estimators=2.5", "`n_estimators` must be an integer >= 1, got 2.5"),
        ("max_depth=deep", "`max_depth` must be an integer >= 1 or null, got 'deep'"),
        ("n_estimators", "--param takes KEY=VALUE"),
    ],
)
def test_run_param_values_are_typed_from_the_estimator_table(param, words):
    result = mlspec("run", "specs/iris-forest.yaml", "--param", param)
    assert result.returncode == 2, result.stderr
    assert words in result.stderr


def test_run_param_for_keras_and_tuned_specs():
    result = mlspec("run", "specs/digits.yaml", "--param", "n_estimators=3")
    assert result.returncode == 2 and "Accepted keys: epochs, learning_rate" in result.stderr
    result = mlspec("run", "specs/iris-tuned.yaml", "--param", "learning_rate=0.1")
    assert result.returncode == 2 and "Accepted keys: epochs, trials" in result.stderr


def test_run_param_parsing():
    from mlspec.cli import parse_params
    from mlspec.spec import load_spec

    spec = load_spec(SPECS / "iris-forest.yaml")
    assert parse_params(spec, ["n_estimators=3", "max_depth=null", "random_state=7"]) == {
        "n_estimators": 3, "max_depth": None, "random_state": 7,
    }
    gb = load_spec(SPECS / "diabetes.yaml")
    assert parse_params(gb, ["learning_rate=1e-2"]) == {"learning_rate": 0.01}


def test_schema_estimators_lists_the_estimator_table():
    result = mlspec("schema", "--estimators")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "classification" in out and "regression" in out
    assert "random_forest" in out and "sklearn.ensemble.RandomForestClassifier" in out
    assert "n_estimators" in out and "an integer >= 1" in out and "default 100" in out
    # The help that points at the flag is now true.
    assert "mlspec schema --estimators" in json.dumps(json.loads(mlspec("schema").stdout))


def test_run_reports_only_the_spec_it_runs(tmp_path, airflow_db, monkeypatch):
    """Other specs of the folder (one invalid, two claiming one dag_id) are `mlspec lint`'s business: `run`
    neither compiles nor prints them. The spec's data file is missing, so the run stops at prepare_data."""
    specs = tmp_path / "specs"
    specs.mkdir()
    lonely = (SPECS / "iris-forest.yaml").read_text().replace("name: iris-forest", "name: lonely-forest")
    lonely = lonely.replace("source: builtin:iris", f"source: {(tmp_path / 'missing.csv').as_uri()}\n  label: species")
    (specs / "lonely.yaml").write_text(lonely)
    (specs / "broken.yaml").write_text("apiVersion: mlspec/v1\nkind: ModelSpec\nmetadata: {name: brokenone}\n")
    twin = (SPECS / "iris.yaml").read_text().replace("name: iris\n", "name: twin\n")
    (specs / "twin-a.yaml").write_text(twin)
    (specs / "twin-b.yaml").write_text(twin)
    (airflow_db / ".migrated").touch()
    monkeypatch.setenv("MLSPEC_HOME", str(tmp_path / "home"))
    result = mlspec("run", str(specs / "lonely.yaml"), "--param", "n_estimators=2")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert "first failed task: prepare_data" in result.stderr
    for other in ("broken.yaml", "brokenone", "twin"):
        assert other not in output, other

"""Compiling specs into DAGs: shape of the DAG, light parsing, isolation of bad specs, determinism."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tests.fixtures.paths import REPO, SPECS

from mlspec.compiler import TASK_ORDER, build_dag
from mlspec.dagbag import compile_specs
from mlspec.spec import load_spec

HEAVY = ["tensorflow", "tf2onnx", "onnxruntime", "mlflow", "boto3", "kubernetes", "keras", "sklearn"]


def test_digits_dag_shape():
    spec = load_spec(SPECS / "digits.yaml")
    dag = build_dag(spec)
    assert dag.dag_id == "digits"
    assert dag.schedule == "@weekly" if hasattr(dag, "schedule") else True
    assert set(dag.tags) == {"mlspec", "vision", "demo"}
    assert "```yaml" in dag.doc_md and "builtin:digits" in dag.doc_md
    # The docs end with a call to the served model, with an input of the right size (64 pixels).
    last = dag.doc_md.rstrip().rsplit("```", 2)[-2]
    assert last.strip().startswith("curl -s -X POST") and '"shape":[1,64]' in last and "/v2/models/digits/infer" in last
    order = [t.task_id for t in dag.topological_sort()] if hasattr(dag, "topological_sort") else list(dag.task_dict)
    assert order == list(TASK_ORDER)
    for upstream, downstream in zip(TASK_ORDER, TASK_ORDER[1:], strict=False):
        assert downstream in dag.get_task(upstream).downstream_task_ids
    # Each stage gets its inputs from the stages that made them, never by looking up a task id.
    from mlspec.compiler import STAGES

    for task_id, _, inputs in STAGES:
        task = dag.get_task(task_id)
        for argument, source in inputs.items():
            assert getattr(task, argument).operator.task_id == source, (task_id, argument)
        assert set(inputs.values()) <= task.upstream_task_ids
    assert dag.params["epochs"] == 10
    assert dag.get_task("evaluate").retries == 0 and dag.get_task("store").retries == 2
    # Every task knows its spec's file: hints name it (`mlspec deploy specs/digits.yaml --version 2`, not
    # `<spec>`), and prepare_data checks a file:// source against its project folder, as `mlspec lint` does.
    assert spec.source_file
    for task_id in TASK_ORDER:
        assert dag.get_task(task_id).model_spec.source_file == spec.source_file, task_id


def test_asset_schedule_becomes_airflow_assets(tmp_path):
    text = (SPECS / "iris.yaml").read_text().replace("schedule: null", "schedule: {assets: ['s3://data/iris.csv']}")
    (tmp_path / "iris.yaml").write_text(text)
    dag = compile_specs(tmp_path)["iris"]
    assert type(dag.timetable).__name__ == "AssetTriggeredTimetable"
    assert "s3://data/iris.csv" in str(dag.timetable.asset_condition)


def test_parsing_dags_folder_is_light_and_compiles_every_spec():
    """Parsing dags/ must not import any heavy library (Airflow re-parses every few seconds)."""
    code = textwrap.dedent(
        f"""
        import runpy, sys, json
        g = runpy.run_path({str(REPO / 'dags' / 'mlspec_dags.py')!r})
        dags = sorted(k for k, v in g.items() if type(v).__name__ == "DAG")
        print(json.dumps({{"dags": dags, "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy(), check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    assert result["dags"] == sorted([*(p.stem for p in SPECS.glob("*.yaml")), "mlspec_operations"])


def test_one_bad_spec_does_not_take_the_others_down(tmp_path):
    for path in SPECS.glob("*.yaml"):
        shutil.copy(path, tmp_path)
    (tmp_path / "iris.yaml").write_text((SPECS / "iris.yaml").read_text().replace("epochs: 60", "epochs: -5"))
    (tmp_path / "garbage.yaml").write_text("metadata: [unclosed\n")
    dags = compile_specs(tmp_path)
    assert {"digits", "mnist", "cifar10"} <= set(dags)
    assert [t.task_id for t in dags["digits"].tasks] == list(TASK_ORDER)
    broken = dags["iris"]  # keeps its dag_id so its run history stays reachable
    assert [t.task_id for t in broken.tasks] == ["spec_error"]
    assert "invalid-spec" in broken.tags
    assert f"{tmp_path / 'iris.yaml'}:" in broken.doc_md and "training.epochs: -5 is less than the minimum of 1" in broken.doc_md
    assert "training.epochs" in broken.get_task("spec_error").errors
    assert "mlspec-invalid-garbage" in dags


def test_duplicate_names_are_both_reported(tmp_path):
    shutil.copy(SPECS / "digits.yaml", tmp_path / "a.yaml")
    shutil.copy(SPECS / "digits.yaml", tmp_path / "b.yaml")
    dags = compile_specs(tmp_path)
    assert list(dags) == ["digits"]
    doc = dags["digits"].doc_md
    assert str(tmp_path / "a.yaml") in doc and str(tmp_path / "b.yaml") in doc


def test_placeholder_task_fails_with_the_errors(tmp_path):
    (tmp_path / "iris.yaml").write_text((SPECS / "iris.yaml").read_text().replace("epochs: 60", "epochs: -5"))
    task = compile_specs(tmp_path)["iris"].get_task("spec_error")
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="training.epochs"):
        task.execute({})


def _serialized_dags(specs_dir: Path) -> str:
    code = textwrap.dedent(
        f"""
        import json
        from airflow.serialization.serialized_objects import DagSerialization
        from mlspec.dagbag import compile_specs
        dags = compile_specs({str(specs_dir)!r})
        print(json.dumps({{k: DagSerialization.to_dict(v) for k, v in sorted(dags.items())}}, sort_keys=True, default=str))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy(), check=True)
    return out.stdout.strip().splitlines()[-1]


def test_compilation_is_deterministic_across_processes():
    first, second = _serialized_dags(SPECS), _serialized_dags(SPECS)
    assert first == second
    assert '"dag_id": "digits"' in first


def test_a_worker_compiles_only_its_dags_spec(tmp_path, monkeypatch):
    """Airflow's parsing context names the DAG a worker runs; other specs are not even validated."""
    shutil.copy(SPECS / "digits.yaml", tmp_path)
    (tmp_path / "iris.yaml").write_text((SPECS / "iris.yaml").read_text().replace("epochs: 60", "epochs: -5"))
    import mlspec.dagbag as dagbag

    log = tmp_path / "validated.txt"  # specs are checked in a forked process: count them on disk
    real = dagbag.resolve_spec

    def resolve(doc):
        with open(log, "a") as handle:
            handle.write(doc.file + "\n")
        return real(doc)

    monkeypatch.setattr(dagbag, "resolve_spec", resolve)
    monkeypatch.setenv("MLSPEC_SPEC_CACHE", "off")  # count real validations
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "digits")
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID", "train")
    dags = compile_specs(tmp_path)
    assert list(dags) == ["digits"]
    assert log.read_text().splitlines() == [str(tmp_path / "digits.yaml")]

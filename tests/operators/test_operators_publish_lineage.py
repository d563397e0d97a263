"""Lineage (issue 14 §4): store publishes the run's splits, profile, drift table and plot and lineage.json beside
the model, all in the manifest; register records the lineage as registry tags that every VersionRecord reads back,
puts the data set (an MLflow dataset input with the digest) and the drift scores on the training run; `mlspec
status` shows production's lineage. Real parts in this process: a file store and the embedded MLflow under
MLSPEC_HOME, the mlspec model server."""

from __future__ import annotations

import hashlib
import io
import json

import pytest
from tests.fixtures.server_testkit import classifier_onnx, classifier_signature
from tests.operators.operations_testkit import spec_for, spec_text, unique

DIGEST = "sha256:" + "c0ffee" * 10 + "abcd"
LINEAGE = {
    "source": "file:///data/cars_stream.csv",
    "query": None,
    "files": [{"uri": "file:///data/cars_stream.csv", "sha256": "ab" * 32, "etag": None, "version_id": None}],
    "digest": DIGEST,
    "rows": {"read": 412, "dropped": {"no label": 6}, "train": 280, "validation": 41, "test": 85},
    "split": {"method": "hash", "key": ["Name", "Year"], "validation": 0.1, "test": 0.2, "seed": 42},
    "holdout": None,
}
DRIFT = {
    "reference": {"version": 1, "rows": 300}, "current": {"rows": 280, "new_rows": 20},
    "settings": {"schema": "warn", "threshold": None, "share": 0.5, "on_drift": "warn"},
    "rows": [
        {"column": "Weight_in_lbs", "check": "drift", "test": "ks", "score": 0.0001, "threshold": 0.05, "drifted": True, "detail": ""},
        {"column": "Weight_in_lbs", "check": "drift (new rows)", "test": "ks", "score": 0.0002, "threshold": 0.05, "drifted": True, "detail": ""},
        {"column": "Horsepower", "check": "drift", "test": "ks", "score": 0.61, "threshold": 0.05, "drifted": False, "detail": ""},
        {"column": "Origin", "check": "new categories", "test": "", "score": None, "threshold": None, "drifted": False, "detail": ""},
    ],
    "drifted_columns": ["Weight_in_lbs"], "drift_share": 0.33, "dataset_drift": False,
    "schema_problems": ["column Origin: categories the reference never had: Mars (12% of rows)"],
    "outcome": "warned", "accepted_by": None,
}
VALIDATION = {"outcome": "warned", "reference_version": 1, "drifted_columns": ["Weight_in_lbs"],
              "schema_problems": DRIFT["schema_problems"], "accepted_by": None}


def splits_parquet() -> bytes:
    import pandas as pd

    buffer = io.BytesIO()
    pd.DataFrame({"row_id": pd.Series([1, 2, 3], dtype="uint64"), "split": ["train", "validation", "test"]}).to_parquet(buffer)
    return buffer.getvalue()


def run_outputs(spec, run_id: str, *, data_files: bool = True) -> dict:
    """What prepare_data, validate_data, export_onnx and evaluate hand to store, their files under the run prefix."""
    from mlspec.storage import open_store

    store = open_store(spec.storage.uri, spec.storage.connection)
    prefix = store.run_prefix(spec.name, run_id)

    def write(path: str, payload: bytes) -> str:
        return store.write_bytes(f"{prefix}/{path}", payload)

    features = [{"name": f"f{i}", "dtype": "FP32", "min": 0.0, "max": 1.0, "mean": 0.5, "std": 0.1, "missing": 0} for i in range(4)]
    exported = {
        "onnx_uri": write("export/model.onnx", classifier_onnx(1, features=4, classes=3)),
        "signature_uri": write("export/signature.json", json.dumps(classifier_signature(4, 3)).encode()),
        "input_schema_uri": write("export/input_schema.json", json.dumps(
            {"name": "input", "datatype": "FP32", "shape": [-1, 4], "features": features}).encode()),
        "output_schema_uri": write("export/output_schema.json", json.dumps(
            {"outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}],
             "class_names": ["setosa", "versicolor", "virginica"]}).encode()),
    }
    evaluation = {"metrics": {"accuracy": 0.95}, "metrics_uri": write("evaluate/metrics.json", b'{"accuracy": 0.95}'),
                  "plots": {}, "champion": {"decision": "no_champion", "classes_added": ["virginica"], "classes_removed": []}}
    data = {"source": LINEAGE["source"], "data_sha256": DIGEST.removeprefix("sha256:"), "lineage": LINEAGE}
    validation = dict(VALIDATION)
    if data_files:
        data["splits_uri"] = write("data/splits.parquet", splits_parquet())
        validation.update(
            profile_uri=write("validate/profile.json", b'{"columns": []}'),
            drift_uri=write("validate/drift.json", json.dumps(DRIFT).encode()),
            plot_uri=write("validate/drift.png", b"\x89PNG\r\n\x1a\n drift"),
        )
    return {"exported": exported, "evaluation": evaluation, "data": data, "validation": validation}


def store_task(spec, outputs: dict, **overrides):
    from mlspec.operators.publish import StoreModelOperator

    arguments = {**outputs, **overrides}
    return StoreModelOperator(task_id="store", spec=spec.to_dict(), **arguments)


def published_folder(spec, version: int):
    from mlspec.storage import open_store, resolve_file_uri

    return resolve_file_uri(open_store(spec.storage.uri).uri_for(f"{spec.name}/{version}"))


def test_store_publishes_splits_profile_drift_and_lineage_beside_the_model_in_the_manifest(ops_home, request):
    spec = spec_for(unique(request))
    stored = store_task(spec, run_outputs(spec, "manual__1")).run({"run_id": "manual__1", "params": {}})
    folder = published_folder(spec, stored["version"])
    manifest = json.loads((folder / "manifest.json").read_text())["files"]
    for name in ("splits.parquet", "profile.json", "drift.json", "drift.png", "lineage.json", "model.onnx"):
        assert manifest[name] == hashlib.sha256((folder / name).read_bytes()).hexdigest() == stored["files"][name]
    lineage = json.loads((folder / "lineage.json").read_text())
    assert lineage == {**LINEAGE, "reference_version": 1, "validation": {
        "outcome": "warned", "drifted_columns": ["Weight_in_lbs"], "schema_problems": DRIFT["schema_problems"], "accepted_by": None}}
    assert json.loads((folder / "drift.json").read_text()) == DRIFT
    card = (folder / "model_card.md").read_text()
    assert DIGEST in card and "Weight_in_lbs" in card  # the card's Data and Data checks sections
    assert json.loads((folder / "manifest.json").read_text())["data_source"] == LINEAGE["source"]  # as rendered


def test_store_publishes_nothing_when_a_data_file_cannot_be_read(ops_home, request):
    from mlspec.storage import open_store

    spec = spec_for(unique(request))
    outputs = run_outputs(spec, "manual__1")
    outputs["validation"]["drift_uri"] = outputs["validation"]["drift_uri"].replace("drift.json", "gone.json")
    with pytest.raises(Exception, match="gone.json"):
        store_task(spec, outputs).run({"run_id": "manual__1", "params": {}})
    assert open_store(spec.storage.uri).list_versions(spec.name) == []


def test_store_without_the_data_stages_publishes_what_exists(ops_home, request):
    """A hand-written DAG without prepare_data's or validate_data's result; a run without splits or a profile."""
    spec = spec_for(unique(request))
    outputs = run_outputs(spec, "manual__1", data_files=False)
    bare = store_task(spec, outputs, data=None, validation=None).run({"run_id": "manual__1", "params": {}})
    assert not {"splits.parquet", "profile.json", "drift.json", "lineage.json"} & set(bare["files"])
    outputs = run_outputs(spec, "manual__2", data_files=False)
    plain = store_task(spec, outputs).run({"run_id": "manual__2", "params": {}})
    assert {"lineage.json"} <= set(plain["files"]) and not {"splits.parquet", "drift.json"} & set(plain["files"])


def registered_version(spec, run_id: str = "manual__1") -> tuple[dict, str]:
    """store then register, as the DAG runs them, after a training run tracked for the same DAG run."""
    from mlspec.operators.publish import RegisterModelOperator
    from mlspec.tracking import open_tracker

    outputs = run_outputs(spec, run_id)
    task = store_task(spec, outputs)
    context = {"run_id": run_id, "params": {}}
    with open_tracker(spec, run_name=run_id, tags={"dag_id": task.dag_id, "airflow_run_id": run_id}) as tracker:
        tracker.log_metrics({"loss": 0.1})
    stored = task.run(context)
    register = RegisterModelOperator(task_id="register", spec=spec.to_dict(), stored=stored,
                                     evaluation=outputs["evaluation"], model={"tracking_run_id": tracker.run_id})
    register.run(context)
    return stored, tracker.run_id


def recorded_lineage() -> dict:
    """What the registry tags keep of LINEAGE and validate_data's outcome."""
    kept = {key: value for key, value in LINEAGE.items() if key in ("source", "files", "digest", "rows")}
    return {**kept, "reference_version": 1, "validation": {"outcome": "warned", "drifted_columns": ["Weight_in_lbs"]}}


def test_register_records_the_lineage_as_tags_that_the_version_record_reads_back(ops_home, request):
    from mlspec.registry import open_registry

    spec = spec_for(unique(request))
    stored, _ = registered_version(spec)
    registry = open_registry(spec.registry.backend, spec.registry.connection)
    record = registry.version_record(spec.name, stored["version"])
    assert record.lineage == recorded_lineage()
    assert record.data_source == LINEAGE["source"]  # as rendered for the run, not the spec's template
    assert record.champion["classes_added"] == "virginica" and record.champion["classes_removed"] == ""
    assert registry.list_versions(spec.name)[0].lineage == recorded_lineage()
    mv = registry.client.get_model_version(spec.name, record.registry_version)
    assert mv.tags["mlspec.data.digest"] == DIGEST and json.loads(mv.tags["mlspec.data.rows"]) == LINEAGE["rows"]
    assert mv.tags["mlspec.validation.drifted"] == "Weight_in_lbs" and mv.tags["mlspec.validation.reference_version"] == "1"


def test_the_training_run_gets_the_data_set_its_drift_scores_and_drift_json(ops_home, request, tmp_path):
    from mlflow import MlflowClient

    from mlspec.registry.mlflow_connection import resolve_connection
    from mlspec.tracking import tracking_connection

    spec = spec_for(unique(request))
    _, run_id = registered_version(spec)
    uri = resolve_connection(tracking_connection(spec)).tracking_uri
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    (given,) = run.inputs.dataset_inputs
    assert given.dataset.name == spec.name and DIGEST.startswith(given.dataset.digest) and len(given.dataset.digest) == 36
    assert json.loads(given.dataset.profile)["digest"] == DIGEST
    assert json.loads(given.dataset.source) == {"uri": LINEAGE["source"]} and given.dataset.source_type == "local"
    assert {tag.key: tag.value for tag in given.tags} == {"mlflow.data.context": "training", "mlspec.data.digest": DIGEST}
    metrics = run.data.metrics
    assert metrics["drift.Weight_in_lbs"] == 0.0001 and metrics["drift.Horsepower"] == 0.61
    assert metrics["drift.Weight_in_lbs.new_rows"] == 0.0002 and not any("Origin" in key for key in metrics)
    path = client.download_artifacts(run_id, "drift.json", str(tmp_path))
    assert json.loads(open(path).read()) == DRIFT


def test_a_tracking_failure_never_fails_register(ops_home, request, monkeypatch, caplog):
    import mlspec.tracking as tracking

    def broken(*args, **kwargs):
        raise OSError("the MLflow server went away")

    monkeypatch.setattr(tracking, "training_dataset", broken)
    spec = spec_for(unique(request))
    stored, _ = registered_version(spec)
    assert stored["version"] == 1
    assert "could not record the data set and its drift on tracking run" in caplog.text


def test_status_shows_the_production_versions_lineage(ops_home, ops_server, request, capsys):
    from mlspec.cli import main
    from mlspec.operations import deploy_version

    name = unique(request)
    spec = spec_for(name)
    registered_version(spec)
    deploy_version(spec, 1)
    path = ops_home / f"{name}.yaml"
    path.write_text(spec_text(name))
    assert main(["status", str(path)]) == 0
    out = capsys.readouterr().out
    assert "data of version 1:" in out and LINEAGE["source"] in out and DIGEST in out
    assert "412 read, 6 dropped (no label: 6); train 280, validation 41, test 85" in out
    assert "production version 1" in out and "warned" in out and "drifted columns: Weight_in_lbs" in out
    assert main(["status", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["lineage"] == recorded_lineage()

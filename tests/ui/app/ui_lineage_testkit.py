"""Two published versions of one model for the Models page's data lineage (issue 14), built without running a
DAG: version 1 as published before issue 14 (no lineage.json), version 2 with the lineage.json, drift.json and
drift.png store publishes beside the model and the champion tags register records (classes added)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from tests.registry.mlflow.mlflow_testkit import tiny_onnx_model
from tests.ui.app.ui_app_testkit import forest_spec

NAME = "ui-lineage"
DIGEST = "sha256:" + "3f" * 32
HOSTILE_CATEGORY = "<img src=x onerror=alert(1)>"
LINEAGE = {
    "source": "file:///data/penguins_stream.csv",
    "query": None,
    "files": [{"uri": "file:///data/penguins_stream.csv", "sha256": "ab" * 32, "etag": None, "version_id": None}],
    "digest": DIGEST,
    "rows": {"read": 344, "dropped": {"no label": 2}, "train": 240, "validation": 34, "test": 68},
    "split": {"method": "hash", "key": ["island", "bill_length_mm"], "validation": 0.1, "test": 0.2, "seed": 42},
    "holdout": None,
    "reference_version": 1,
    "validation": {"outcome": "warned", "drifted_columns": ["body_mass_g"], "schema_problems": [], "accepted_by": None},
}
DRIFT = {
    "reference": {"version": 1, "rows": 270},
    "current": {"rows": 240, "new_rows": 68},
    "settings": {"schema": "warn", "threshold": None, "share": 0.5, "on_drift": "warn"},
    "rows": [
        {"column": "body_mass_g", "check": "drift", "test": "ks", "score": 0.00012, "threshold": 0.05, "drifted": True, "detail": ""},
        {"column": "flipper_length_mm", "check": "drift", "test": "ks", "score": 0.43, "threshold": 0.05, "drifted": False, "detail": ""},
        {"column": "island", "check": "new categories", "test": "", "score": 0.2, "threshold": None, "drifted": True, "detail": ""},
    ],
    "drifted_columns": ["body_mass_g"],
    "drift_share": 0.25,
    "dataset_drift": False,
    "schema_problems": [f"column island: categories the reference never had: {HOSTILE_CATEGORY} (20% of rows)"],
    "outcome": "warned",
    "accepted_by": None,
}
CHAMPION = {
    1: {"decision": "no_champion"},
    2: {"decision": "challenger_wins", "metric": "accuracy", "challenger": "0.9767", "champion": "0.8023", "champion_version": "1",
        "min_delta": "0.0", "classes_added": "Chinstrap", "classes_removed": "", "scored_on": "this run's test split"},
}
# A 1x1 PNG: the page shows drift.png as an image served by the app.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def publish_versions(specs: Path) -> Any:
    """Write the spec into `specs`, publish versions 1 and 2 to its store and register them in the embedded
    MLflow registry under MLSPEC_HOME (version 2 in production); returns the spec."""
    from mlspec.registry import RegistrationRequest
    from mlspec.registry.mlflow_registry import MlflowRegistry
    from mlspec.spec import load_spec
    from mlspec.storage import open_store

    (specs / f"{NAME}.yaml").write_text(forest_spec(NAME))
    spec = load_spec(specs / f"{NAME}.yaml")
    store = open_store(spec.storage.uri)
    registry = MlflowRegistry(None)
    schema = {"name": "input", "datatype": "FP32", "shape": [-1, 4],
              "features": [{"name": f"f{i}", "min": 0, "max": 1, "mean": 0.5, "std": 0.1, "missing": 0} for i in range(4)]}
    for number in (1, 2):
        metrics = {"accuracy": {1: 0.8023, 2: 0.9767}[number]}
        files = {"model.onnx": tiny_onnx_model(float(number)), "metrics.json": json.dumps(metrics).encode(),
                 "input_schema.json": json.dumps(schema).encode()}
        if number == 2:
            files.update({"lineage.json": json.dumps(LINEAGE).encode(), "drift.json": json.dumps(DRIFT).encode(), "drift.png": PNG})
        run_id = f"manual__2026-12-0{number}T00:00:00+00:00"
        published = store.publish_version(NAME, files, run_id=f"{NAME}/{run_id}",
                                          metadata={"spec_hash": spec.spec_hash, "dag_id": NAME, "data_source": spec.data.source})
        assert published.version == number
        registry.register(RegistrationRequest(
            model_name=NAME, version=number, source_uri=published.uri, model_uri=f"{published.uri}/model.onnx",
            metrics=metrics, data_source=spec.data.source, spec_hash=spec.spec_hash, dag_id=NAME, run_id=run_id,
            onnx_opset=17, framework="sklearn", task="classification", input_schema=schema, files=dict(published.files),
            lineage=LINEAGE if number == 2 else {},
        ))
        registry.set_state(NAME, number, "candidate", {f"champion.{k}": v for k, v in CHAMPION[number].items()})
        registry.set_production(NAME, number, reason="beat production")
    return spec

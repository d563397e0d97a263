"""A model with a rollout under way for the Models page (issue 16), built without running a DAG: versions 1-3
published to a file store and registered in the embedded MLflow registry (version 2 production), version 2
with the record of its finished rollout and version 3 with a held one, written through the registry's
record_rollout. The record carries user text (an actor, a message) that must reach the page as text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.registry.mlflow.mlflow_testkit import tiny_onnx_model
from tests.ui.app.ui_app_testkit import forest_spec

NAME = "ui-rollout"
HOSTILE_ACTOR = "<img src=x onerror=alert(1)>"
HOSTILE_MESSAGE = "<script>alert(2)</script> resumed after a look at the dashboards"


def check(gate: str, value: float | None, limit: float, passed: bool) -> dict[str, Any]:
    return {"gate": gate, "value": value, "limit": limit, "passed": passed}


PASSED_CHECKS = [check("min_requests", 240, 200, True), check("p95_ms", 3.1, 250, True),
                 check("error_rate", 0.0, 0.01, True), check("agreement", 0.991, 0.95, True)]
HELD = {
    "version": 3, "production": 2, "state": "held", "started": "2026-12-07T14:00:00Z", "updated": "2026-12-07T14:00:09Z",
    "on_fail": "hold",
    "steps": [
        {"kind": "shadow", "percent": 100, "traffic": {"2": 100, "3": 0}, "shadow": 100, "started": "2026-12-07T14:00:00Z",
         "ended": "2026-12-07T14:00:02Z", "outcome": "passed", "requests": 240, "checks": PASSED_CHECKS},
        {"kind": "canary", "percent": 10, "traffic": {"2": 90, "3": 10}, "shadow": 100, "started": "2026-12-07T14:00:02Z",
         "ended": "2026-12-07T14:00:03Z", "outcome": "paused", "requests": 31, "checks": [], "by": "cli:alice"},
        {"kind": "command", "started": "2026-12-07T14:00:05Z", "ended": "2026-12-07T14:00:05Z", "outcome": "resumed",
         "by": HOSTILE_ACTOR, "message": HOSTILE_MESSAGE},
        {"kind": "canary", "percent": 10, "traffic": {"2": 90, "3": 10}, "shadow": 100, "started": "2026-12-07T14:00:05Z",
         "ended": "2026-12-07T14:00:09Z", "outcome": "failed", "requests": 212,
         "checks": [check("min_requests", 212, 200, True), check("agreement", 0.62, 0.95, False)],
         "message": "agreement 0.62 >= 0.95: FAILED; held: production keeps 90 %"},
    ],
}
COMPLETED = {
    "version": 2, "production": 1, "state": "completed", "started": "2026-12-06T10:00:00Z",
    "updated": "2026-12-06T10:00:20Z", "on_fail": "rollback",
    "steps": [{"kind": "canary", "percent": 100, "traffic": {"2": 100}, "shadow": 100, "started": "2026-12-06T10:00:10Z",
               "ended": "2026-12-06T10:00:20Z", "outcome": "passed", "requests": 400, "checks": PASSED_CHECKS}],
}


def publish_versions(specs: Path) -> Any:
    """Write the spec into `specs`, publish and register versions 1-3 under MLSPEC_HOME (2 production) and
    record the rollouts of versions 2 (completed) and 3 (held); returns the spec."""
    return publish_model(specs, NAME, 3, production=2, rollouts={2: COMPLETED, 3: HELD})


# A rollout left behind on version 1 (its task killed while held) under version 2, whose own rollout ended.
LEFT_BEHIND = {**HELD, "version": 1, "production": None}
ENDED = {**COMPLETED, "version": 2, "production": None, "state": "rolled_back"}


def publish_model(specs: Path, name: str, versions: int, *, production: int | None, rollouts: dict[int, dict]) -> Any:
    """Write the spec `name` into `specs`, publish and register versions 1..`versions` under MLSPEC_HOME, make
    `production` production and record each version's rollout of `rollouts`; returns the spec."""
    from mlspec.registry import RegistrationRequest
    from mlspec.registry.mlflow_registry import MlflowRegistry
    from mlspec.spec import load_spec
    from mlspec.storage import open_store

    (specs / f"{name}.yaml").write_text(forest_spec(name))
    spec = load_spec(specs / f"{name}.yaml")
    store = open_store(spec.storage.uri)
    registry = MlflowRegistry(None)
    for number in range(1, versions + 1):
        metrics = {"accuracy": 0.9}
        files = {"model.onnx": tiny_onnx_model(float(number)), "metrics.json": json.dumps(metrics).encode()}
        published = store.publish_version(name, files, run_id=f"{name}/run-{number}",
                                          metadata={"spec_hash": spec.spec_hash, "dag_id": name, "data_source": spec.data.source})
        registry.register(RegistrationRequest(
            model_name=name, version=number, source_uri=published.uri, model_uri=f"{published.uri}/model.onnx",
            metrics=metrics, data_source=spec.data.source, spec_hash=spec.spec_hash, dag_id=name, run_id=f"run-{number}",
            onnx_opset=17, framework="sklearn", task="classification", files=dict(published.files),
        ))
    if production is not None:
        registry.set_production(name, production, reason="its rollout completed")
    for number, record in rollouts.items():
        registry.record_rollout(name, number, record)
    return spec

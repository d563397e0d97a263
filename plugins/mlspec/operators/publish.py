"""store and register: publish the version's files, then index it in the model registry."""

from __future__ import annotations

import logging
from typing import Any

from mlspec.links import RegistryLink
from mlspec.operators.base import MlspecOperator

log = logging.getLogger(__name__)

# Published beside model.onnx: file name -> the key of export_onnx's result that holds its URI.
EXPORTED_FILES = {
    "model.onnx": "onnx_uri",
    "signature.json": "signature_uri",
    "input_schema.json": "input_schema_uri",
    "output_schema.json": "output_schema_uri",
}


CHAMPION_DETAILS = ("decision", "metric", "challenger", "champion", "champion_version", "min_delta")


def publish_run_id(dag_id: str, run_id: str) -> str:
    """Identifies the publishing run in the store's claim file, so a retry finds its version."""
    return f"{dag_id}/{run_id}"


class StoreModelOperator(MlspecOperator):
    """Inputs: `exported` (export_onnx's result) and `evaluation` (evaluate's). Output: the version."""

    stage = "store"
    ui_color = "#e8eaed"
    next_step = "check storage.uri and its connection, then clear this task: a retry reuses the same version"
    template_fields = ("exported", "evaluation")

    def __init__(self, *, exported: Any, evaluation: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.exported = exported
        self.evaluation = evaluation

    def run(self, context) -> dict:
        spec = self.model_spec
        exported = self.handed_over("exported")
        files = {name: self.store.read_uri(exported[key]) for name, key in EXPORTED_FILES.items()}
        files["metrics.json"] = self.store.read_uri(self.handed_over("evaluation")["metrics_uri"])
        from mlspec.registry import open_registry

        # The registry's numbers count too: a store that lost its folders must not hand out a
        # version number the registry already holds for another model.
        known = open_registry(spec.registry.backend, spec.registry.connection).latest_version(spec.name)
        published = self.store.publish_version(
            spec.name,
            files,
            run_id=publish_run_id(self.dag_id, context["run_id"]),
            metadata={"spec_hash": spec.spec_hash, "data_source": spec.data.source, "dag_id": self.dag_id},
            min_version=(known or 0) + 1,
        )
        return {"version": published.version, "uri": published.uri, "files": published.files, "reused": published.reused}


class RegisterModelOperator(MlspecOperator):
    """Inputs: `stored` (store's result) and `evaluation` (evaluate's). Output: the registry entry."""

    stage = "register"
    operator_extra_links = (RegistryLink(),)
    ui_color = "#e8eaed"
    next_step = "check the registry connection, then clear this task: a retry finds the version it registered"
    template_fields = ("stored", "evaluation")

    def __init__(self, *, stored: Any, evaluation: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stored = stored
        self.evaluation = evaluation

    def run(self, context) -> dict:
        import json

        from mlspec.registry import RegistrationRequest, open_registry

        spec = self.model_spec
        stored = self.handed_over("stored")
        registry = open_registry(spec.registry.backend, spec.registry.connection)
        entry = registry.register(
            RegistrationRequest(
                model_name=spec.name,
                version=stored["version"],
                source_uri=stored["uri"],
                model_uri=f"{stored['uri']}/model.onnx",
                metrics=self.handed_over("evaluation")["metrics"],
                data_source=spec.data.source,
                spec_hash=spec.spec_hash,
                dag_id=self.dag_id,
                run_id=context["run_id"],
                onnx_opset=spec.export.opset,
                framework=spec.model.framework,
                task=spec.model.task,
                input_schema=json.loads(self.store.read_uri(f"{stored['uri']}/input_schema.json")),
                output_schema=json.loads(self.store.read_uri(f"{stored['uri']}/output_schema.json")),
                description=spec.metadata.description,
                owner=spec.metadata.owner,
                storage_connection=spec.storage.connection,
                files=stored["files"],
            )
        )
        log.info(
            "%s %s version %d in %s (registry version %s)",
            "registered" if entry.created else "found already registered", spec.name, entry.version, entry.backend, entry.registry_version,
        )
        if entry.created:
            # Every new version starts as a candidate; promote makes it production. Both scores of
            # the champion comparison stay on the version, whichever way it went.
            verdict = self.handed_over("evaluation").get("champion") or {}
            details = {f"champion.{key}": str(verdict[key]) for key in CHAMPION_DETAILS if key in verdict}
            registry.set_state(spec.name, entry.version, "candidate", details)
        return entry.to_xcom()

"""store and register: publish the version's files, then index it in the model registry."""

from __future__ import annotations

import logging

from mlspec.links import RegistryLink
from mlspec.operators.base import MlspecOperator

log = logging.getLogger(__name__)


def publish_run_id(dag_id: str, run_id: str) -> str:
    """Identifies the publishing run in the store's claim file, so a retry finds its version."""
    return f"{dag_id}/{run_id}"


class StoreModelOperator(MlspecOperator):
    stage = "store"
    ui_color = "#e8eaed"
    next_step = "check storage.uri and its connection, then clear this task: a retry reuses the same version"

    def run(self, context) -> dict:
        spec = self.model_spec
        exported = self.upstream(context, "export_onnx")
        evaluated = self.upstream(context, "evaluate")
        files = {
            "model.onnx": self.store.read_uri(exported["onnx_uri"]),
            "signature.json": self.store.read_uri(exported["signature_uri"]),
            "metrics.json": self.store.read_uri(evaluated["metrics_uri"]),
        }
        published = self.store.publish_version(
            spec.name,
            files,
            run_id=publish_run_id(self.dag_id, context["run_id"]),
            metadata={"spec_hash": spec.spec_hash, "data_source": spec.data.source, "dag_id": self.dag_id},
        )
        return {"version": published.version, "uri": published.uri, "files": published.files, "reused": published.reused}


class RegisterModelOperator(MlspecOperator):
    stage = "register"
    operator_extra_links = (RegistryLink(),)
    ui_color = "#e8eaed"
    next_step = "check the registry connection, then clear this task: a retry finds the version it registered"

    def run(self, context) -> dict:
        from mlspec.registry import RegistrationRequest, open_registry

        spec = self.model_spec
        stored = self.upstream(context, "store")
        evaluated = self.upstream(context, "evaluate")
        registry = open_registry(spec.registry.backend, spec.registry.connection)
        entry = registry.register(
            RegistrationRequest(
                model_name=spec.name,
                version=stored["version"],
                source_uri=stored["uri"],
                model_uri=f"{stored['uri']}/model.onnx",
                metrics=evaluated["metrics"],
                data_source=spec.data.source,
                spec_hash=spec.spec_hash,
                dag_id=self.dag_id,
                run_id=context["run_id"],
                onnx_opset=spec.export.opset,
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
        return entry.to_xcom()

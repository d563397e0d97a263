"""store and register: publish the version's files, then index it in the model registry."""

from __future__ import annotations

import logging
import re
from typing import Any

from mlspec.links import RegistryLink
from mlspec.model_card import CARD_FILE, expected_version, render_model_card
from mlspec.operators.base import MlspecOperator
from mlspec.registry import RegistrationRequest, open_registry
from mlspec.registry.backends import backend_of

log = logging.getLogger(__name__)

# Published beside model.onnx: file name -> the key of export_onnx's result that holds its URI.
EXPORTED_FILES = {
    "model.onnx": "onnx_uri",
    "signature.json": "signature_uri",
    "input_schema.json": "input_schema_uri",
    "output_schema.json": "output_schema_uri",
}


# evaluate's plots (mlspec.ml.plots) are published flat beside model.onnx under their own names.
PLOT_FILE = re.compile(r"[a-z][a-z0-9_]*\.png")

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
        evaluation = self.handed_over("evaluation")
        files = {name: self.store.read_uri(exported[key]) for name, key in EXPORTED_FILES.items()}
        files["metrics.json"] = self.store.read_uri(evaluation["metrics_uri"])
        files.update(self.plot_files(evaluation))

        # The registry's numbers count too: a store that lost its folders must not hand out a
        # version number the registry already holds for another model.
        known = open_registry(spec.registry.backend, spec.registry.connection).latest_version(spec.name)
        run_id = publish_run_id(self.dag_id, context["run_id"])
        # The card names its version, so it is rendered for the number publish_version will give (the one a
        # retry finds claimed, else the next); a concurrent run taking that number first is logged below.
        expected = expected_version(self.store, spec.name, run_id, (known or 0) + 1)
        files[CARD_FILE] = self.model_card(context, files, evaluation, expected)
        published = self.store.publish_version(
            spec.name,
            files,
            run_id=run_id,
            metadata={"spec_hash": spec.spec_hash, "data_source": spec.data.source, "dag_id": self.dag_id},
            min_version=(known or 0) + 1,
        )
        if published.version != expected:
            log.warning("%s version %d was published with a model card naming version %d (a concurrent run took "
                        "that number first)", spec.name, published.version, expected)
        return {"version": published.version, "uri": published.uri, "files": published.files, "reused": published.reused}

    def plot_files(self, evaluation: dict) -> dict[str, bytes]:
        """evaluate's plots (file name -> URI under the run's prefix), read to be published beside the model."""
        plots = evaluation.get("plots") or {}
        return {name: self.store.read_uri(uri) for name, uri in sorted(plots.items()) if PLOT_FILE.fullmatch(name)}

    def model_card(self, context, files: dict[str, bytes], evaluation: dict, version: int) -> bytes:
        """model_card.md (mlspec.model_card) for the version about to be published."""
        import json

        return render_model_card(
            self.model_spec,
            version=version,
            evaluation=evaluation,
            input_schema=json.loads(files["input_schema.json"]),
            output_schema=json.loads(files["output_schema.json"]),
            dag_id=self.dag_id,
            run_id=context["run_id"],
            plots=[name for name in files if name.endswith(".png")],
            stored_uri=self.store.uri_for(f"{self.model_spec.name}/{version}"),
            run_params=context.get("params") or {},  # what this run's trigger form set is what it trained with
        ).encode()


class RegisterModelOperator(MlspecOperator):
    """Inputs: `stored` (store's result), `evaluation` (evaluate's) and optionally `model` (train's or
    select_best's result: a tuned run's best trial and its parameters go onto the version). Output: the
    registry entry."""

    stage = "register"
    operator_extra_links = (RegistryLink(),)
    ui_color = "#e8eaed"
    template_fields = ("stored", "evaluation", "model")

    @property
    def next_step(self) -> str:
        return f"{backend_of(self.model_spec).next_step}; then clear this task: a retry finds the version it registered"

    def __init__(self, *, stored: Any, evaluation: Any, model: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stored = stored
        self.evaluation = evaluation
        self.model = model

    def run(self, context) -> dict:
        import json

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
                **_best_trial(self.model),
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


def _best_trial(model: Any) -> dict:
    """RegistrationRequest fields of a tuned run (select_best's result); none for an untuned one."""
    if not isinstance(model, dict) or model.get("best_trial") is None:
        return {}
    return {"best_trial": int(model["best_trial"]), "trial_params": dict(model.get("params") or {})}

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
from mlspec.tracking import record_data_on_run
from mlspec.vocabulary import DRIFT_FILE, DRIFT_PLOT, LINEAGE_FILE, PROFILE_FILE, SPLITS_FILE

log = logging.getLogger(__name__)

# Published beside model.onnx: file name -> the key of export_onnx's result that holds its URI.
EXPORTED_FILES = {
    "model.onnx": "onnx_uri",
    "signature.json": "signature_uri",
    "input_schema.json": "input_schema_uri",
    "output_schema.json": "output_schema_uri",
}


# The run's data files, published beside model.onnx when the run wrote them: file name -> (the store task's
# input, the key of that stage's result holding the file's URI). prepare_data splits; validate_data profiles
# the training split and, against a reference, writes the drift table and its plot.
DATA_FILES = {
    SPLITS_FILE: ("data", "splits_uri"),
    PROFILE_FILE: ("validation", "profile_uri"),
    DRIFT_FILE: ("validation", "drift_uri"),
    DRIFT_PLOT: ("validation", "plot_uri"),
}
# LINEAGE_FILE is prepare_data's lineage (which data trained the version) plus these facts of validate_data's
# result (how that data was checked).
VALIDATION_FACTS = ("outcome", "drifted_columns", "schema_problems", "accepted_by")

# evaluate's plots (mlspec.ml.plots) are published flat beside model.onnx under their own names.
PLOT_FILE = re.compile(r"[a-z][a-z0-9_]*\.png")

CHAMPION_DETAILS = (
    "decision", "metric", "challenger", "champion", "champion_version", "min_delta", "classes_added", "classes_removed", "scored_on",
    "left_out",
)


def publish_run_id(dag_id: str, run_id: str) -> str:
    """Identifies the publishing run in the store's claim file, so a retry finds its version."""
    return f"{dag_id}/{run_id}"


def lineage_of(data: dict, validation: dict) -> dict:
    """lineage.json: prepare_data's lineage, the reference version drift was measured against and validate_data's
    outcome ({} when neither stage handed any over, e.g. a hand-written DAG without them)."""
    lineage = dict(data.get("lineage") or {})
    if validation:
        lineage["reference_version"] = validation.get("reference_version")
        lineage["validation"] = {key: validation.get(key) for key in VALIDATION_FACTS}
    return lineage


class StoreModelOperator(MlspecOperator):
    """Inputs: `exported` (export_onnx's result), `evaluation` (evaluate's) and, where the flow has them, `data`
    (prepare_data's) and `validation` (validate_data's), whose files and lineage go beside the model.
    Output: the version."""

    stage = "store"
    ui_color = "#e8eaed"
    next_step = "check storage.uri and its connection, then clear this task: a retry reuses the same version"
    template_fields = ("exported", "evaluation", "data", "validation")

    def __init__(self, *, exported: Any, evaluation: Any, data: Any = None, validation: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.exported = exported
        self.evaluation = evaluation
        self.data = data
        self.validation = validation

    def run(self, context) -> dict:
        import json

        spec = self.model_spec
        exported = self.handed_over("exported")
        evaluation = self.handed_over("evaluation")
        inputs = {"data": self.optional_input("data"), "validation": self.optional_input("validation")}
        # Every file is read before publish_version: one that cannot be read fails the task with nothing published.
        files = {name: self.store.read_uri(exported[key]) for name, key in EXPORTED_FILES.items()}
        files["metrics.json"] = self.store.read_uri(evaluation["metrics_uri"])
        files.update(self.plot_files(evaluation))
        files.update(self.data_files(inputs))
        lineage = lineage_of(inputs["data"], inputs["validation"])
        if lineage:
            files[LINEAGE_FILE] = json.dumps(lineage, indent=2, sort_keys=True, default=str).encode()

        # The registry's numbers count too: a store that lost its folders must not hand out a
        # version number the registry already holds for another model.
        known = open_registry(spec.registry.backend, spec.registry.connection).latest_version(spec.name)
        run_id = publish_run_id(self.dag_id, context["run_id"])
        # The card names its version, so it is rendered for the number publish_version will give (the one a
        # retry finds claimed, else the next); a concurrent run taking that number first is logged below.
        expected = expected_version(self.store, spec.name, run_id, (known or 0) + 1)
        files[CARD_FILE] = self.model_card(context, files, evaluation, expected, lineage)
        published = self.store.publish_version(
            spec.name,
            files,
            run_id=run_id,
            # data.source as rendered for this run (prepare_data's), else as the spec writes it
            metadata={"spec_hash": spec.spec_hash, "data_source": inputs["data"].get("source") or spec.data.source,
                      "dag_id": self.dag_id},
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

    def optional_input(self, name: str) -> dict:
        """An input the flow may not have (a hand-written DAG, a stage that has not run): {} when absent."""
        value = getattr(self, name)
        return value if isinstance(value, dict) else {}

    def data_files(self, inputs: dict[str, dict]) -> dict[str, bytes]:
        """The run's splits, profile and drift files (DATA_FILES) that its stages wrote, read to be published."""
        return {
            name: self.store.read_uri(inputs[source][key])
            for name, (source, key) in DATA_FILES.items()
            if inputs[source].get(key)
        }

    def model_card(self, context, files: dict[str, bytes], evaluation: dict, version: int, lineage: dict) -> bytes:
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
            lineage=lineage,
            drift=json.loads(files[DRIFT_FILE]) if DRIFT_FILE in files else None,
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
        lineage = self.published_json(stored, LINEAGE_FILE)
        registry = open_registry(spec.registry.backend, spec.registry.connection)
        entry = registry.register(
            RegistrationRequest(
                model_name=spec.name,
                version=stored["version"],
                source_uri=stored["uri"],
                model_uri=f"{stored['uri']}/model.onnx",
                metrics=self.handed_over("evaluation")["metrics"],
                data_source=lineage.get("source") or spec.data.source,  # as rendered for the run that trained it
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
                lineage=lineage,
                **_best_trial(self.model),
            )
        )
        log.info(
            "%s %s version %d in %s (registry version %s)",
            "registered" if entry.created else "found already registered", spec.name, entry.version, entry.backend, entry.registry_version,
        )
        # Once registered (a retry while the registry is down logs nothing twice): the training run gets the data
        # it was trained on; tracking is a record, never a gate.
        record_data_on_run(spec, self.tracking_run_id(), lineage, self.published_json(stored, DRIFT_FILE))
        if entry.created:
            # Every new version starts as a candidate; promote makes it production. Both scores of
            # the champion comparison stay on the version, whichever way it went.
            verdict = self.handed_over("evaluation").get("champion") or {}
            details = {f"champion.{key}": _detail(verdict[key]) for key in CHAMPION_DETAILS if key in verdict}
            registry.set_state(spec.name, entry.version, "candidate", details)
        return entry.to_xcom()

    def published_json(self, stored: dict, name: str) -> dict:
        """A JSON file published with the version ({} when the version has none)."""
        import json

        if name not in (stored.get("files") or {}):
            return {}
        return json.loads(self.store.read_uri(f"{stored['uri']}/{name}"))

    def tracking_run_id(self) -> str:
        """The training run (train's or select_best's result), "" when none was tracked or handed over."""
        return str(self.model.get("tracking_run_id") or "") if isinstance(self.model, dict) else ""


def _detail(value: Any) -> str:
    """A champion detail as a registry tag: a list of class names as a comma list."""
    return ",".join(str(item) for item in value) if isinstance(value, list | tuple) else str(value)


def _best_trial(model: Any) -> dict:
    """RegistrationRequest fields of a tuned run (select_best's result); none for an untuned one."""
    if not isinstance(model, dict) or model.get("best_trial") is None:
        return {}
    return {"best_trial": int(model["best_trial"]), "trial_params": dict(model.get("params") or {})}

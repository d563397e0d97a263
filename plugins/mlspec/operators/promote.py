"""promote: mark the smoke-tested version as the one in production and write the run's summary."""

from __future__ import annotations

import json
import logging
from typing import Any

from mlspec import inference_protocol
from mlspec.errors import MlspecError
from mlspec.locks import model_lock
from mlspec.operators.base import GateFailed, MlspecOperator
from mlspec.release import CandidateRefused, Release, Trigger
from mlspec.rollout.plan import first_version_note
from mlspec.rollout.record import RolloutRecord, load_record
from mlspec.serving import Deployment

log = logging.getLogger(__name__)

# Airflow leaves URIs of x- schemes as they are; any other scheme is normalized through every installed
# provider's URI handlers, which imports boto3 and friends while DAGs are parsed.
ASSET_SCHEME = "x-mlspec"


def model_asset_uri(name: str) -> str:
    """``x-mlspec://<name>``: the Airflow Asset a model's new production versions are events of."""
    return f"{ASSET_SCHEME}://{name}"


def model_asset(name: str):
    """The Asset promote declares as its outlet (the compiler) and whose event it fills in (promote)."""
    from airflow.sdk import Asset

    return Asset(name=model_asset_uri(name), uri=model_asset_uri(name))


def asset_extra(summary: dict) -> dict:
    """What a downstream DAG learns from the asset event: the version, where it is, how good, where it serves."""
    registry = summary.get("registry") or {}
    return {
        "model": summary["model"],
        "version": summary["version"],
        "stored_uri": summary["stored_uri"],
        "metrics": summary["metrics"],
        "endpoint_url": summary["endpoint_url"],
        "infer_url": summary["infer_url"],
        "registry_version": registry.get("registry_version", ""),
        "registry_url": registry.get("url", ""),
        "dag_id": summary["dag_id"],
        "run_id": summary["run_id"],
    }


class PromoteOperator(MlspecOperator):
    """Marks the smoke-tested version as the one in production and writes the run's summary.

    Inputs: the results of prepare_data (`data`), evaluate (`evaluation`), store (`stored`),
    register (`registration`), deploy (`deployment`) and smoke_test (`smoke_test`). Its outlet (set by
    the compiler) is the model's Asset, ``x-mlspec://<name>``: each promoted version is an asset event whose
    extra is :func:`asset_extra`; a run where the champion holds skips promote and emits none.
    """

    stage = "promote"
    ui_color = "#ceead6"
    template_fields = ("data", "evaluation", "stored", "registration", "deployment", "smoke_test")

    def __init__(
        self, *, data: Any, evaluation: Any, stored: Any, registration: Any, deployment: Any, smoke_test: Any, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.data = data
        self.evaluation = evaluation
        self.stored = stored
        self.registration = registration
        self.deployment = deployment
        self.smoke_test = smoke_test

    def run(self, context) -> dict:
        spec = self.model_spec
        deployment = Deployment.from_xcom(self.handed_over("deployment"))
        self.record_promotion(context, deployment)
        dataset = self.load_dataset()
        stored = self.handed_over("stored")
        infer_url = inference_protocol.infer_url(deployment.endpoint_url, deployment.served_model_name)
        summary = {
            "model": spec.name,
            "version": deployment.version,
            "dag_id": self.dag_id,
            "run_id": context["run_id"],
            "metrics": self.handed_over("evaluation")["metrics"],
            "stored_uri": stored["uri"],
            "registry": self.handed_over("registration"),
            "endpoint_url": deployment.endpoint_url,
            "infer_url": infer_url,
            "smoke_test": self.handed_over("smoke_test"),
            "example": self.example(dataset, stored["uri"]),
        }
        release = Release.open(spec, self.store)
        endpoint_change = release.endpoint_change(deployment.previous_version, deployment.version)
        if endpoint_change:
            summary["endpoint_change"] = endpoint_change
        if spec.rollout is not None:
            try:
                record = load_record(release.registry, spec.name, deployment.version)
            except MlspecError as exc:  # the summary is a report: the promotion stands
                log.warning("could not read the rollout record of %s version %d: %s", spec.name, deployment.version, exc)
                record = None
            if record is not None:
                summary["rollout"] = rollout_summary(record)
        self.store.write_json(f"{self.run_prefix(context)}/summary.json", summary)
        log.info("%s version %d is in production at %s", spec.name, deployment.version, infer_url)
        example = summary["example"]
        request = example.get("request") or inference_protocol.infer_request(example["input"], example["shape"])
        log.info("try it: %s", inference_protocol.curl(infer_url, request))
        self.fill_asset_event(context, summary)
        return summary

    def example(self, dataset, stored_uri: str) -> dict:
        """The run summary's example and what the offline ONNX model answers for its first row: a table
        model's published example rows (input_schema.json, their first is the first test row) as a v2
        request, else the first test sample as one input."""
        # numpy: tasks only, not at DAG parse (tests/compiler/test_parse_stays_light.py::test_parsing_imports_no_numpy_pandas_pyarrow_or_heavy_library)
        from mlspec.ml import model_io
        from mlspec.ml.onnx_export import onnx_predict

        onnx_bytes = self.store.read_uri(f"{stored_uri}/model.onnx")
        task = self.model_spec.model.task
        if dataset.columns:
            schema = json.loads(self.store.read_uri(f"{stored_uri}/input_schema.json"))
            rows = schema["example"]
            offline = onnx_predict(onnx_bytes, model_io.rows_inputs(rows, schema))
            return {"request": inference_protocol.rows_request(rows, schema["columns"]), **example_answers(task, dataset, offline)}
        example_x = dataset.x_test[:1]
        return {
            "input": [float(f"{v:.7g}") for v in example_x.reshape(-1)],  # float32 values, printed short
            "shape": list(example_x.shape),
            **example_answers(task, dataset, onnx_predict(onnx_bytes, example_x)),
        }

    def record_promotion(self, context, deployment: Deployment) -> None:
        """The release service's promote: production moves to the smoke-tested version (set explicitly), the
        deployment is recorded on it and the change lands on the audit trail: who triggered the run, from which
        version, why, and the run's link. Under the model's lock, serving must still answer with that version
        (an operation may have run since the smoke test); otherwise GateFailed and nothing changes. A retried
        promote finds its own entry and does not record it twice."""
        spec = self.model_spec
        trigger = Trigger.from_context(context)
        release = Release.open(spec, self.store)
        with model_lock(spec.name, f"promote version {deployment.version} (run {trigger.run_id})"):
            rollout = rollout_steps(spec) if deployment.previous_version is not None else ""  # a first: no steps
            reason = promotion_reason(self.evaluation, self.smoke_test, release.production(), rollout)
            try:
                note = release.promote_candidate(deployment, trigger, reason)
            except CandidateRefused as refused:
                raise GateFailed(str(refused), next_step=refused.next_step) from None
        if note:
            log.warning(note.strip())

    def fill_asset_event(self, context, summary: dict) -> None:
        """The extra of the asset event Airflow emits for this task's outlet when it succeeds."""
        outlet_events = context.get("outlet_events")
        asset_uri = model_asset_uri(self.model_spec.name)
        outlets = [o for o in self.outlets or [] if getattr(o, "name", None) == asset_uri]
        if outlet_events is None or not outlets:
            return  # a hand-written DAG without the outlet
        outlet_events[outlets[0]].extra = asset_extra(summary)
        log.info("asset event %s: version %s", asset_uri, summary["version"])


def rollout_steps(spec) -> str:
    """A rollout's steps in words ("shadow 100%, canary 10%, 50%, 100%"); "" without a rollout."""
    if spec.rollout is None:
        return ""
    shadow = f"shadow {spec.rollout.shadow.percent}%, " if spec.rollout.shadow is not None else ""
    return shadow + "canary " + ", ".join(f"{p}%" for p in spec.rollout.canary.steps)


def rollout_summary(record: RolloutRecord) -> dict:
    """The run summary's rollout: its final state, the production it began from, and each step (kind, share,
    requests, outcome, who), from the candidate's rollout record; a first version's has no steps and says why."""
    steps = [{k: step[k] for k in ("kind", "percent", "requests", "outcome", "by") if step.get(k) is not None}
             for step in record.steps]
    summary = {"state": record.state, "production": record.production, "steps": steps}
    if record.production is None:
        summary["note"] = first_version_note(record.version)
    return summary


def promotion_reason(evaluation: Any, smoke_test: Any, before: int | None, rollout: str = "") -> str:
    """Why the pipeline promoted: the champion gate's scores (when it compared), the smoke test and the
    rollout's steps (when it had one: promote runs only once they passed)."""
    verdict = (evaluation or {}).get("champion") if isinstance(evaluation, dict) else None
    verdict = verdict if isinstance(verdict, dict) else {}
    parts = []
    if verdict.get("decision") == "challenger_wins" and {"metric", "challenger", "champion"} <= verdict.keys():
        parts.append(
            f"beat production v{verdict.get('champion_version', before)} on {verdict['metric']} "
            f"({float(verdict['challenger']):.4f} vs {float(verdict['champion']):.4f}, "
            f"min_delta {float(verdict.get('min_delta', 0)):g})"
        )
    elif verdict.get("decision") == "no_champion" or (before is None and not verdict):
        parts.append("nothing was in production to compare with")  # a first version, or one after an undeploy
    elif verdict.get("decision") == "gate_off":
        parts.append("champion gate off")
    smoke = smoke_test if isinstance(smoke_test, dict) else {}
    if "agreement" in smoke:
        parts.append(f"smoke test passed (agreement {float(smoke['agreement']):.3f} on {smoke.get('samples', '?')} samples)")
    else:
        parts.append("smoke test passed")
    if rollout:
        parts.append(f"rollout passed ({rollout})")
    return "; ".join(parts)


def example_answers(task: str, dataset, offline: dict) -> dict:
    """What the first test sample is, and what the served model says it is (its label is the class
    itself where the data set's label_datatype says so)."""
    from mlspec.ml import model_io  # numpy: tasks only

    if task == "regression":
        return {"target": float(dataset.y_test[0]), "predicted": float(offline["prediction"].reshape(-1)[0])}
    truth = dataset.y_test[0] if dataset.y_test.ndim == 1 else dataset.y_test[0].argmax()
    predicted = model_io.label_name(offline["label"].reshape(-1)[0], dataset.class_names, dataset.label_datatype)
    return {"label": dataset.class_names[int(truth)], "predicted": predicted}

"""ModelSpec -> Airflow DAG. Deterministic: the same spec always compiles to the same DAG.

Nothing here reads the clock, the environment or random state, and no heavy library is imported:
Airflow re-parses dags/ every few seconds.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pendulum
import yaml

from mlspec.spec import ModelSpec

log = logging.getLogger(__name__)

# Fixed, not "now": a start date from the clock would change the DAG on every parse.
START_DATE = pendulum.datetime(2024, 1, 1, tz="UTC")
TASK_ORDER = ("prepare_data", "train", "evaluate", "export_onnx", "store", "register", "deploy", "smoke_test", "promote")
# Steps that talk to external services may hit a blip; retrying them is safe because each finds what
# its earlier try did. Gates (evaluate, export parity, smoke test) never retry: they fail the same way.
RETRIES = {"prepare_data": 1, "store": 2, "register": 2, "deploy": 1}
TRIGGER_NOTE = "Trigger with parameters to override `epochs` or `learning_rate` for one run.\n\n"


def dag_doc(spec: ModelSpec, spec_text: str | None) -> str:
    body = spec_text if spec_text is not None else yaml.safe_dump(spec.to_dict(), sort_keys=False)
    description = spec.metadata.description or spec.name
    return (
        f"### {description}\n\n"
        f"Compiled by mlspec from `{spec.source_file or 'a ModelSpec'}` (spec hash `{spec.spec_hash[:12]}`).\n\n"
        f"Owner: {spec.metadata.owner}. Flow: {' → '.join(TASK_ORDER)}.\n\n"
        + (TRIGGER_NOTE if spec.model.framework == "tensorflow" else "")
        + f"```yaml\n{body.rstrip()}\n```\n"
    )


def dag_schedule(spec: ModelSpec):
    schedule = spec.schedule
    if schedule is None or isinstance(schedule, str):
        return schedule
    from airflow.sdk import Asset

    return [Asset(uri) for uri in schedule["assets"]]


def run_params(spec: ModelSpec) -> dict:
    """The trigger form's fields: Keras settings a run may override (scikit-learn models have none)."""
    from airflow.sdk import Param

    if spec.model.framework != "tensorflow":
        return {}
    return {
        "epochs": Param(spec.training.epochs, type="integer", minimum=1, description="Maximum epochs for this run"),
        "learning_rate": Param(
            spec.training.optimizer.learning_rate, type="number", exclusiveMinimum=0, description="Learning rate for this run"
        ),
    }


def build_dag(spec: ModelSpec, *, spec_text: str | None = None):
    """One DAG for one spec: dag_id = metadata.name, tasks in TASK_ORDER, each stage handed the
    results it needs from the earlier ones (XComArgs)."""
    from airflow.sdk import DAG, chain

    from mlspec.operators.data import PrepareDataOperator
    from mlspec.operators.deploy import DeployModelOperator
    from mlspec.operators.evaluate import EvaluateOperator
    from mlspec.operators.export import OnnxExportOperator
    from mlspec.operators.promote import PromoteOperator
    from mlspec.operators.publish import RegisterModelOperator, StoreModelOperator
    from mlspec.operators.smoke_test import SmokeTestOperator
    from mlspec.operators.train import TrainOperator

    resolved = spec.to_dict()
    dag = DAG(
        dag_id=spec.name,
        description=spec.metadata.description or None,
        schedule=dag_schedule(spec),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=["mlspec", *spec.metadata.tags],
        doc_md=dag_doc(spec, spec_text),
        default_args={"owner": spec.metadata.owner, "retries": 0, "retry_delay": timedelta(seconds=15)},
        params=run_params(spec),
    )

    def stage(operator, task_id: str, **inputs):
        return operator(task_id=task_id, spec=resolved, dag=dag, retries=RETRIES.get(task_id, 0), **inputs)

    data = stage(PrepareDataOperator, "prepare_data")
    model = stage(TrainOperator, "train", data=data.output)
    evaluation = stage(EvaluateOperator, "evaluate", data=data.output, model=model.output)
    exported = stage(OnnxExportOperator, "export_onnx", data=data.output, model=model.output)
    stored = stage(StoreModelOperator, "store", exported=exported.output, evaluation=evaluation.output)
    registration = stage(RegisterModelOperator, "register", stored=stored.output, evaluation=evaluation.output)
    deployment = stage(DeployModelOperator, "deploy", stored=stored.output)
    smoke_test = stage(SmokeTestOperator, "smoke_test", data=data.output, stored=stored.output, deployment=deployment.output)
    promote = stage(
        PromoteOperator, "promote", data=data.output, evaluation=evaluation.output, stored=stored.output,
        registration=registration.output, deployment=deployment.output, smoke_test=smoke_test.output,
    )
    # The inputs already order most stages; the chain states the whole flow (gates before publishing).
    chain(data, model, evaluation, exported, stored, registration, deployment, smoke_test, promote)
    return dag

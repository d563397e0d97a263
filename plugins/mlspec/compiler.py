"""ModelSpec -> Airflow DAG. Deterministic: the same spec always compiles to the same DAG.

Nothing here reads the clock, the environment or random state, and no heavy library is imported:
Airflow re-parses dags/ every few seconds.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from importlib import import_module

import pendulum
import yaml

from mlspec.deadlines import task_deadline
from mlspec.inference_protocol import curl, infer_request, infer_url
from mlspec.links import registry_links
from mlspec.notify import failure_callback
from mlspec.operators.promote import model_asset
from mlspec.run_form import RunParamError, check_conf, form_schema, run_parameters
from mlspec.serving import platform_of
from mlspec.spec import ModelSpec
from mlspec.vocabulary import DATA_SOURCES

log = logging.getLogger(__name__)

# Fixed, not "now": a start date from the clock would change the DAG on every parse.
START_DATE = pendulum.datetime(2024, 1, 1, tz="UTC")
# The flow, in order: task id, operator, and which earlier task's result each of its inputs is.
STAGES = (
    ("prepare_data", "mlspec.operators.data.PrepareDataOperator", {}),
    # Checks the data against what production trained on; train still reads prepare_data's result, the chain
    # runs validate_data first (a failed check stops the run before training).
    ("validate_data", "mlspec.operators.validate.ValidateDataOperator", {"data": "prepare_data"}),
    ("train", "mlspec.operators.train.TrainOperator", {"data": "prepare_data"}),
    ("evaluate", "mlspec.operators.evaluate.EvaluateOperator", {"data": "prepare_data", "model": "train"}),
    ("export_onnx", "mlspec.operators.export.OnnxExportOperator", {"data": "prepare_data", "model": "train"}),
    (
        "store",
        "mlspec.operators.publish.StoreModelOperator",
        {"exported": "export_onnx", "evaluation": "evaluate", "data": "prepare_data", "validation": "validate_data"},
    ),
    (
        "register",
        "mlspec.operators.publish.RegisterModelOperator",
        {"stored": "store", "evaluation": "evaluate", "model": "train"},
    ),
    ("deploy", "mlspec.operators.deploy.DeployModelOperator", {"stored": "store", "evaluation": "evaluate"}),
    (
        "smoke_test",
        "mlspec.operators.smoke_test.SmokeTestOperator",
        {"data": "prepare_data", "stored": "store", "deployment": "deploy"},
    ),
    (
        "promote",
        "mlspec.operators.promote.PromoteOperator",
        {
            "data": "prepare_data", "evaluation": "evaluate", "stored": "store",
            "registration": "register", "deployment": "deploy", "smoke_test": "smoke_test",
        },
    ),
)
TASK_ORDER = tuple(task_id for task_id, _, _ in STAGES)
# A spec with `tuning`: plan_trials lists the trials, train runs once per trial (a mapped task: argument
# `trial` expanded over plan_trials' result, at most tuning.parallel at once), and select_best hands the
# best trial's result on wherever a later stage reads train's.
PLAN_TRIALS = ("plan_trials", "mlspec.operators.tuning.PlanTrialsOperator", {})
SELECT_BEST = ("select_best", "mlspec.operators.tuning.SelectBestOperator", {"trials": "train", "planned": "plan_trials"})
MAPPED = {"train": ("trial", "plan_trials")}  # task id -> (argument it is expanded over, task whose result lists the values)
# select_best runs once every trial is done and picks among those that succeeded (a failed trial does not sink the run).
TRIGGER_RULES = {"select_best": "all_done_min_one_success"}


def _tuned(stages: tuple) -> tuple:
    tuned = []
    for task_id, classpath, inputs in stages:
        if task_id == "train":
            tuned += [PLAN_TRIALS, (task_id, classpath, inputs), SELECT_BEST]
        else:
            tuned.append((task_id, classpath, {arg: "select_best" if source == "train" else source for arg, source in inputs.items()}))
    return tuple(tuned)


TUNED_STAGES = _tuned(STAGES)
TUNED_TASK_ORDER = tuple(task_id for task_id, _, _ in TUNED_STAGES)
# A spec with `rollout`: deploy loads the candidate beside production, the smoke test checks it, then the
# rollout's steps give it live traffic step by step (mlspec.operators.rollout); with an approval, a person
# approves before the last step. promote runs once the candidate answers every request.
ROLLOUT = ("rollout", "mlspec.operators.rollout.RolloutOperator", {"deployment": "deploy", "smoke_test": "smoke_test"})
APPROVE_ROLLOUT = ("approve_rollout", "mlspec.operators.rollout.ApproveRolloutOperator",
                   {"deployment": "deploy", "rollout": "rollout"})
COMPLETE_ROLLOUT = ("complete_rollout", "mlspec.operators.rollout.CompleteRolloutOperator",
                    {"deployment": "deploy", "approval": "approve_rollout"})


def _rolled_out(stages: tuple, approval: bool) -> tuple:
    """`stages` with the rollout's stages before promote."""
    rollout = (ROLLOUT, APPROVE_ROLLOUT, COMPLETE_ROLLOUT) if approval else (ROLLOUT,)
    at = next(i for i, (task_id, _, _) in enumerate(stages) if task_id == "promote")
    return (*stages[:at], *rollout, *stages[at:])
# Steps that talk to external services may hit a blip; retrying them is safe because each finds what
# its earlier try did. Gates (evaluate, export parity, smoke test) never retry: they fail the same way.
RETRIES = {"prepare_data": 1, "validate_data": 1, "store": 2, "register": 2, "deploy": 1}
TRIGGER_NOTE = "Trigger with parameters to override {fields} for one run (any other key fails the run at once).\n\n"
TUNING_NOTE = (
    "Tuned: {trials} trials ({strategy}, at most {parallel} at once), the best by {metric} goes on. Trigger with "
    "parameters to override {fields} for one run.\n\n"
)


def stages_for(spec: ModelSpec) -> tuple:
    """The spec's flow: STAGES, or TUNED_STAGES for a spec with a tuning section; with a rollout section,
    the rollout's stages before promote."""
    stages = TUNED_STAGES if spec.tuning is not None else STAGES
    if spec.rollout is None:
        return stages
    return _rolled_out(stages, spec.rollout.approval.required)


def task_order(spec: ModelSpec) -> tuple[str, ...]:
    return tuple(task_id for task_id, _, _ in stages_for(spec))


def dag_doc(spec: ModelSpec, spec_text: str | None) -> str:
    body = spec_text if spec_text is not None else yaml.safe_dump(spec.to_dict(), sort_keys=False)
    description = spec.metadata.description or spec.name
    return (
        f"### {description}\n\n"
        f"Compiled by mlspec from `{spec.source_file or 'a ModelSpec'}` (spec hash `{spec.spec_hash[:12]}`).\n\n"
        f"Owner: {spec.metadata.owner}. Flow: {' → '.join(task_order(spec))}.\n\n"
        + (_trigger_note(spec) if spec.tuning is None else "")
        + (_tuning_note(spec) if spec.tuning is not None else "")
        + f"```yaml\n{body.rstrip()}\n```\n"
        + _example_curl(spec)
    )


def _example_curl(spec: ModelSpec) -> str:
    """How to call the served model, for the end of the DAG docs (promote logs one with real data)."""
    import math

    known = DATA_SOURCES.get(spec.data.source)
    shell_endpoint = platform_of(spec).shell_endpoint  # None: the URL is known only once deployed
    if shell_endpoint is None or known is None:
        return (
            "\nThe served model takes raw features as in the data source: a CSV, Parquet or SQL table one input per "
            "column, named as the column (the version's input_schema.json lists them with example rows), any other "
            "source `input` (FP32) of shape [batch, ...].\n"
        )
    request = infer_request([0.0] * math.prod(known.shape), [1, *known.shape])
    url = infer_url(shell_endpoint(spec), spec.name)
    return (
        "\nTry the production model (a row of zeros; `promote`'s log has a real test sample):\n\n"
        f"```\n{curl(url, request)}\n```\n"
    )


def _form_fields(spec: ModelSpec) -> list[str]:
    return [f"`{name}`" for name in run_parameters(spec)]


def _trigger_note(spec: ModelSpec) -> str:
    fields = _form_fields(spec)
    return TRIGGER_NOTE.format(fields=" or ".join(fields)) if fields else ""


def _tuning_note(spec: ModelSpec) -> str:
    tuning = spec.tuning
    fields = _form_fields(spec)
    return TUNING_NOTE.format(
        trials=tuning.trials, strategy=tuning.strategy, parallel=tuning.parallel, metric=tuning.metric,
        fields=" or ".join(fields),
    )


def dag_schedule(spec: ModelSpec):
    schedule = spec.schedule
    if schedule is None or isinstance(schedule, str):
        return schedule
    from airflow.sdk import Asset

    return [Asset(uri) for uri in schedule["assets"]]


def run_params(spec: ModelSpec) -> dict:
    """The trigger form's fields (mlspec.run_form): what the spec's framework offers (Keras `epochs` and
    `learning_rate`; the model.params a spec sets, typed from its parameter table, the spec's values as
    defaults); for a tuned spec `trials` (settings the tuning space varies are left out)."""
    from airflow.sdk import Param

    return {
        name: Param(param.default, description=param.description, **form_schema(param))
        for name, param in run_parameters(spec).items()
    }


def _conf_check(spec: ModelSpec):
    """The first task's pre_execute hook: a run whose configuration holds a key that is not a run
    parameter (or a value of the wrong type) fails at once, naming the accepted keys. Airflow accepts
    any key when a run is triggered, and would hand it to no one."""

    def check_run_conf(context) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        dag_run = context.get("dag_run")
        try:
            check_conf(spec, getattr(dag_run, "conf", None) or {}, how="the run's configuration (conf)")
        except RunParamError as exc:
            where = spec.source_file or "the spec"
            message = (
                f"run of {spec.name} refused: {exc}\nNext step: trigger a new run with only those keys "
                f"(the trigger form shows them; `mlspec run {where} --param KEY=VALUE` takes the same)"
            )
            log.error("%s", message)
            raise AirflowFailException(message) from None

    return check_run_conf


def operator_class(classpath: str):
    module, _, name = classpath.rpartition(".")
    return getattr(import_module(module), name)


def build_dag(spec: ModelSpec, *, spec_text: str | None = None):
    """One DAG for one spec: dag_id = metadata.name, one task per STAGES entry (TUNED_STAGES for a tuned
    spec, with train mapped over the trials), each handed the results it needs from the earlier ones
    (XComArgs), chained in order."""
    from airflow.sdk import DAG, chain

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
        on_failure_callback=_failure_callback(spec),
    )
    tasks = {}
    for task_id, classpath, inputs in stages_for(spec):
        operator = operator_class(classpath)
        arguments = {
            "task_id": task_id,
            "spec": resolved,
            "dag": dag,
            "retries": RETRIES.get(task_id, 0),
            "execution_timeout": task_deadline(resolved, task_id),  # spec `timeouts`, else mlspec.deadlines
            **({"trigger_rule": TRIGGER_RULES[task_id]} if task_id in TRIGGER_RULES else {}),
            **({"outlets": [_model_asset(spec)]} if task_id == "promote" else {}),
            "spec_file": spec.source_file,  # for hints naming the spec, and the allowed data roots as in lint
            **({"pre_execute": _conf_check(spec)} if not tasks else {}),  # the first task checks the run's conf
            **{argument: tasks[source].output for argument, source in inputs.items()},
        }
        if spec.tuning is not None and task_id in MAPPED:
            argument, source = MAPPED[task_id]
            mapped = operator.partial(max_active_tis_per_dagrun=spec.tuning.parallel, **arguments)
            tasks[task_id] = mapped.expand(**{argument: tasks[source].output})
        else:
            tasks[task_id] = operator(**arguments)
    if "register" in tasks:
        tasks["register"].operator_extra_links = registry_links(spec)
    # The inputs already order most stages; the chain states the whole flow (gates before publishing).
    chain(*tasks.values())
    return dag


def _model_asset(spec: ModelSpec):
    """promote's outlet, x-mlspec://<name>: each promoted version is an asset event to schedule on."""
    return model_asset(spec.name)


def _failure_callback(spec: ModelSpec):
    """`notify` with `failure`: a message for every failed run (a notifier, not called at parse time)."""
    return failure_callback(spec)

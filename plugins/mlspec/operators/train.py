"""train: fit the spec's model with its framework's adapter and track the run (params, curves)."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from mlspec import tuning
from mlspec.errors import MlspecError
from mlspec.ml.frameworks import TrainingPlan, framework_of
from mlspec.operators.base import MlspecOperator
from mlspec.tracking import open_tracker

log = logging.getLogger(__name__)


def json_number(value: Any) -> float | None:
    """A metric as XCom's JSON can carry it: 6 decimals, or None for NaN/inf (JSON has no such number)."""
    value = float(value)
    return round(value, 6) if math.isfinite(value) else None


class TrainOperator(MlspecOperator):
    """Inputs: `data` (prepare_data's result) and, in a tuned DAG, `trial` (one of plan_trials' trials:
    the task is mapped over them). Output: the fitted model's URI and its fit report; for a trial also
    the trial, its validation metrics and its objective value."""

    stage = "train"
    ui_color = "#e6f4ea"
    template_fields = ("data",)

    def __init__(self, *, data: Any, trial: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data = data
        self.trial = trial

    @property
    def next_step(self) -> str:
        return f"check {framework_of(self.model_spec).settings} in the spec, then clear this task"

    def run(self, context) -> dict:
        if self.trial is not None:
            return self.run_trial(context)

        spec = self.model_spec
        dataset = self.load_dataset()
        run_params = context.get("params") or {}
        plan = TrainingPlan.from_spec(self.spec, run_params=run_params)
        self.log_run_overrides(run_params)
        log.info("training %s (%s) on %d samples", spec.name, framework_of(spec).describe(self.spec, run_params), len(dataset.x_train))
        model = self.adapter.build(plan, dataset)
        tags = {"dag_id": self.dag_id, "airflow_run_id": context["run_id"], "spec_hash": spec.spec_hash}
        with open_tracker(spec, run_name=context["run_id"], tags=tags) as tracker:
            tracker.log_params({**plan.log_params(), "data_source": spec.data.source, "train_samples": len(dataset.x_train)})
            report = self.adapter.fit(model, plan, dataset, on_progress=tracker.log_epoch)
            tracking_run_id = tracker.run_id
        uri = self.store.write_bytes(f"{self.run_prefix(context)}/train/{self.adapter.artifact_name}", self.adapter.save(model))
        return self._result(plan, report, uri, tracking_run_id)

    def log_run_overrides(self, run_params: dict) -> None:
        """Say which settings this run's parameters (the trigger form, `mlspec run --param`) changed."""
        offered = framework_of(self.model_spec).run_parameters(self.spec)
        changed = [
            f"{name}={run_params[name]!r} (the spec says {param.default!r})"
            for name, param in offered.items()
            if name in run_params and run_params[name] != param.default
        ]
        if changed:
            log.info("this run's parameters override the spec: %s", ", ".join(changed))

    def _result(self, plan, report, uri: str, tracking_run_id: str) -> dict:
        final = {name: json_number(values[-1]) for name, values in report.history.items() if values}
        undefined = sorted(name for name, value in final.items() if value is None)
        if undefined:  # r2 on one validation row, a loss that blew up: say so instead of failing the XCom push
            log.warning("%s ended undefined (not a number; too few validation rows?): recorded as null", ", ".join(undefined))
        log.info(
            "trained %d %s%s; wrote %s", report.steps_run, framework_of(self.model_spec).steps,
            " (stopped early)" if report.stopped_early else "", uri,
        )
        return {
            "model_uri": uri,
            "framework": plan.framework,
            "tracking_run_id": tracking_run_id,
            "steps_run": report.steps_run,
            "stopped_early": report.stopped_early,
            "final_metrics": final,
            "history": {name: [json_number(v) for v in values] for name, values in report.history.items()},
        }

    # -- tuning --------------------------------------------------------------------------------
    def run_trial(self, context) -> dict:
        """One trial: its parameters set in the spec (for optuna asked from the shared study first),
        fitted, scored on the validation split, tracked as its own run tagged mlspec.trial=<index>."""
        spec = self.model_spec
        if spec.tuning is None:
            raise MlspecError(f"train got a trial ({self.trial!r}) but the spec of {spec.name} has no tuning section")
        trial = dict(self.trial)
        index = int(trial["index"])
        space = dict(self.spec["tuning"]["space"])
        metric = spec.tuning.metric
        direction = tuning.objective_direction(metric, spec.tuning.direction)
        asked = None
        if trial.get("optuna"):
            asked = tuning.OptunaTrial.ask(trial["optuna"], space, index)
            params = asked.params
        else:
            params = dict(trial.get("params") or {})
        log.info("trial %d (%s): %s", index, spec.tuning.strategy, ", ".join(f"{k}={v!r}" for k, v in params.items()) or "no changes")
        try:
            result = self._fit_trial(context, index, params, metric, direction)
        except BaseException:
            if asked is not None:
                asked.fail()
            raise
        if asked is not None:
            asked.tell(result["objective"]["value"])
            result["trial"]["optuna_trial"] = asked.number
        return result

    def _fit_trial(self, context, index: int, params: dict, metric: str, direction: str) -> dict:
        spec = self.model_spec
        try:
            trial_spec = tuning.apply_overrides(self.spec, params)
        except tuning.TuningError as exc:
            raise MlspecError(str(exc)) from None
        dataset = self.load_dataset()
        run_params = tuning.run_params_for_trial(context.get("params") or {}, params)
        plan = TrainingPlan.from_spec(trial_spec, run_params=run_params)
        log.info(
            "training %s trial %d (%s) on %d samples", spec.name, index, framework_of(spec).describe(trial_spec, run_params),
            len(dataset.x_train),
        )
        model = self.adapter.build(plan, dataset)
        tags = {
            "dag_id": self.dag_id, "airflow_run_id": context["run_id"], "spec_hash": spec.spec_hash,
            tuning.TRIAL_TAG: index, "mlspec.tuning.strategy": spec.tuning.strategy, "mlspec.tuning.objective": metric,
        }
        run_name = f"{context['run_id']} trial {index}"
        with open_tracker(spec, run_name=run_name, tags=tags) as tracker:
            tracker.log_params({**plan.log_params(), "data_source": spec.data.source, "train_samples": len(dataset.x_train)})
            tracker.log_params({f"trial.{tuning.param_key(path)}": value for path, value in params.items()})
            report = self.adapter.fit(model, plan, dataset, on_progress=tracker.log_epoch)
            validation = self.adapter.validation_metrics(model, plan, dataset, report)
            if metric not in validation:
                raise MlspecError(
                    f"trial {index} reported no {metric} (it has {', '.join(validation) or 'no validation metrics'}); "
                    "check tuning.objective.metric and data.split.validation"
                )
            # The kept model's validation metrics, as the last point of their curves (after every epoch's,
            # so they are what MLflow shows as the run's value of e.g. val_accuracy).
            time.sleep(0.002)
            tracker.log_epoch(max(report.steps_run, 1), validation)
            tracking_run_id = tracker.run_id
        value = validation[metric]
        log.info("trial %d: %s = %.6f (%s); %s", index, metric, value, direction,
                 " ".join(f"{k}={v:.4f}" for k, v in sorted(validation.items())))
        uri = self.store.write_bytes(
            f"{self.run_prefix(context)}/train/trial-{index}/{self.adapter.artifact_name}", self.adapter.save(model)
        )
        result = self._result(plan, report, uri, tracking_run_id)
        result.update(
            {
                "trial": {"index": index, "params": params, "strategy": spec.tuning.strategy},
                "validation_metrics": {k: round(float(v), 6) for k, v in sorted(validation.items())},
                "objective": {"metric": metric, "direction": direction, "value": float(value)},
            }
        )
        return result

"""plan_trials and select_best: the two ends of a tuned DAG's mapped train task.

    prepare_data -> plan_trials -> train[0..n-1] (mapped, at most tuning.parallel at once) -> select_best -> evaluate ...

plan_trials returns the list train is expanded over (for optuna it creates the run's study and
returns placeholders: each trial asks the study for its parameters when it starts); select_best
hands the best trial's train result on, in the shape of an untuned train result.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from mlspec import tuning
from mlspec.errors import MlspecError
from mlspec.operators.base import MlspecOperator

log = logging.getLogger(__name__)


class PlanTrialsOperator(MlspecOperator):
    """No inputs. Output: the trials, [{"index": i, "params": {path: value}, ...}], one per mapped train.

    The trigger form's `trials` overrides tuning.trials for one run."""

    stage = "plan_trials"
    ui_color = "#fef7e0"
    next_step = "check the tuning section of the spec (and for optuna its database connection), then clear this task"

    def run(self, context) -> list[dict]:
        spec = self.model_spec
        settings = self.spec.get("tuning")
        if not settings:
            raise MlspecError(f"plan_trials needs a tuning section; the spec of {spec.name} has none")
        requested = (context.get("params") or {}).get("trials")
        trials = int(requested) if requested else int(settings["trials"])
        if trials < 1:
            raise MlspecError(f"trials must be at least 1, got {trials}")
        study = None
        if settings["strategy"] == "optuna":
            study = tuning.create_study(
                name=tuning.study_name(self.dag_id, context["run_id"]),
                connection=settings.get("connection"),
                metric=settings["objective"]["metric"],
                direction=settings["objective"].get("direction"),
                seed=settings["seed"],
                trials=trials,
                attributes={"dag_id": self.dag_id, "airflow_run_id": context["run_id"], "spec_hash": spec.spec_hash},
            )
        planned = tuning.plan_trials(settings, trials=trials, study=study)
        log.info(
            "%d trials (%s, at most %d at once), objective %s (%s)", len(planned), settings["strategy"],
            settings["parallel"], settings["objective"]["metric"],
            tuning.objective_direction(settings["objective"]["metric"], settings["objective"].get("direction")),
        )
        for trial in planned:
            params = trial["params"]
            log.info("  trial %d: %s", trial["index"], "asks the optuna study when it starts" if params is None else params)
        return planned


class SelectBestOperator(MlspecOperator):
    """Inputs: `trials` (the mapped train task's results) and optionally `planned` (plan_trials' result,
    to name trials that produced nothing). Output: the best trial's train result, plus `best_trial`,
    `params`, `objective` and `trials` (every trial: index, params, objective value, tracking run)."""

    stage = "select_best"
    ui_color = "#fef7e0"
    next_step = "look at the failed train trials above, fix the spec's tuning space or training, then clear the run"
    template_fields = ("trials", "planned")

    def __init__(self, *, trials: Any, planned: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.trials = trials
        self.planned = planned

    def run(self, context) -> dict:
        spec = self.model_spec
        if spec.tuning is None:
            raise MlspecError(f"select_best needs a tuning section; the spec of {spec.name} has none")
        results = [dict(r) for r in (self.trials or []) if isinstance(r, dict) and r.get("trial")]
        metric = spec.tuning.metric
        direction = tuning.objective_direction(metric, spec.tuning.direction)
        if not results:
            raise MlspecError("no trial finished (every train task instance failed); their logs say why")
        try:
            best = tuning.select_best(results, metric, direction)
        except tuning.TuningError as exc:
            raise MlspecError(f"{exc} ({len(results)} trials finished)") from None
        table = trial_table(results, self.planned)
        for row in table:
            value = row["value"]
            shown = "no result" if value is None else f"{metric}={value:.6f}"
            log.info("%s trial %d: %s %s", "*" if row["index"] == best["trial"]["index"] else " ", row["index"], shown, row["params"])
        index = int(best["trial"]["index"])
        log.info("best: trial %d, %s = %.6f (%s of %d trials)", index, metric, best["objective"]["value"], direction, len(table))
        return {**best, "best_trial": index, "params": dict(best["trial"]["params"]), "trials": table}


def trial_table(results: list[dict], planned: Any = None) -> list[dict]:
    """One row per trial, in index order; planned trials without a result (their task failed) included."""
    rows: dict[int, dict] = {}
    for trial in planned or []:
        if isinstance(trial, dict) and "index" in trial:
            rows[int(trial["index"])] = {"index": int(trial["index"]), "params": trial.get("params"), "value": None, "state": "failed"}
    for result in results:
        index = int(result["trial"]["index"])
        value = result.get("objective", {}).get("value")
        finite = isinstance(value, int | float) and math.isfinite(value)
        rows[index] = {
            "index": index,
            "params": result["trial"].get("params"),
            "value": float(value) if finite else None,
            "state": "success" if finite else "no_value",
            "tracking_run_id": result.get("tracking_run_id", ""),
            "steps_run": result.get("steps_run"),
            **({"optuna_trial": result["trial"]["optuna_trial"]} if "optuna_trial" in result["trial"] else {}),
        }
    return [rows[i] for i in sorted(rows)]

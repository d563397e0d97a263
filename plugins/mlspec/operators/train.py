"""train: fit the spec's model with its framework's adapter and track the run (params, curves)."""

from __future__ import annotations

import logging
from typing import Any

from mlspec.operators.base import MlspecOperator

log = logging.getLogger(__name__)


class TrainOperator(MlspecOperator):
    """Inputs: `data` (prepare_data's result). Output: the fitted model's URI and its fit report."""

    stage = "train"
    ui_color = "#e6f4ea"
    template_fields = ("data",)

    def __init__(self, *, data: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data = data

    @property
    def next_step(self) -> str:
        where = "model.estimator and model.params" if self.model_spec.model.framework == "sklearn" else "model.layers and training"
        return f"check {where} in the spec, then clear this task"

    def run(self, context) -> dict:
        from mlspec.ml.frameworks import TrainingPlan
        from mlspec.tracking import open_tracker

        spec = self.model_spec
        dataset = self.load_dataset()
        plan = TrainingPlan.from_spec(self.spec, run_params=context.get("params") or {})
        log.info(
            "training %s (%s, %s) on %d samples", spec.name, plan.framework,
            plan.estimator or f"{len(plan.layers)} layers", len(dataset.x_train),
        )
        model = self.adapter.build(plan, dataset)
        tags = {"dag_id": self.dag_id, "airflow_run_id": context["run_id"], "spec_hash": spec.spec_hash}
        with open_tracker(spec, run_name=context["run_id"], tags=tags) as tracker:
            tracker.log_params({**plan.log_params(), "data_source": spec.data.source, "train_samples": len(dataset.x_train)})
            report = self.adapter.fit(model, plan, dataset, on_progress=tracker.log_epoch)
            tracking_run_id = tracker.run_id
        uri = self.store.write_bytes(f"{self.run_prefix(context)}/train/{self.adapter.artifact_name}", self.adapter.save(model))
        final = {name: round(float(values[-1]), 6) for name, values in report.history.items() if values}
        log.info(
            "trained %d %s%s; wrote %s", report.steps_run, "epochs" if plan.framework == "tensorflow" else "steps",
            " (stopped early)" if report.stopped_early else "", uri,
        )
        return {
            "model_uri": uri,
            "framework": plan.framework,
            "tracking_run_id": tracking_run_id,
            "steps_run": report.steps_run,
            "stopped_early": report.stopped_early,
            "final_metrics": final,
            "history": {name: [round(float(v), 6) for v in values] for name, values in report.history.items()},
        }

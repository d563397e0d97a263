"""evaluate: test metrics and the spec's gates. A gate that does not hold stops the run before anything is published."""

from __future__ import annotations

import json
import logging

from mlspec.champion import compare_with_champion, evaluated_on
from mlspec.ml.frameworks import framework_of
from mlspec.operators.base import GateFailed, TrainedModelStage
from mlspec.tracking import log_to_finished_run

log = logging.getLogger(__name__)


class EvaluateOperator(TrainedModelStage):
    """Inputs: `data` (prepare_data's result) and `model` (train's). Output: the test metrics, the
    champion gate's verdict (mlspec.champion) and the evaluation plots (mlspec.ml.plots: file name -> URI
    under the run's prefix, `evaluate/plots/<name>.png`), which store publishes with the version."""

    stage = "evaluate"
    ui_color = "#fce8e6"

    def run(self, context) -> dict:
        from mlspec.ml import metrics as ml_metrics  # numpy: not at DAG parse time

        spec = self.model_spec
        dataset = self.load_dataset()
        outputs = self.adapter.predict(self.load_model(), dataset.x_test, spec.model.task)
        results = ml_metrics.compute_metrics(
            spec.model.task, dataset.y_test, outputs, metrics=list(spec.evaluation.metrics), class_names=list(dataset.class_names)
        )
        metrics_uri = self.store.write_bytes(f"{self.run_prefix(context)}/evaluate/metrics.json", json.dumps(results, indent=2).encode())
        summary = {name: round(float(results[name]), 6) for name in spec.evaluation.metrics}
        plots = self.write_plots(context, dataset, outputs, results)
        test_rows = evaluated_on(spec)  # the holdout or the test split: what the thresholds and the champion score
        log.info(
            "challenger (this run's model): test metrics on %s (%d samples): %s",
            test_rows, len(dataset.x_test), ", ".join(f"{k}={v:.4f}" for k, v in summary.items()),
        )
        thresholds = {
            name: {bound: value for bound, value in (("min", t.min), ("max", t.max)) if value is not None}
            for name, t in spec.evaluation.thresholds.items()
        }
        failures = ml_metrics.check_thresholds(results, thresholds)
        if failures:
            raise GateFailed(
                f"the model did not pass its gates on {test_rows}: " + "; ".join(failures),
                next_step=(
                    "nothing was stored, registered or deployed. Improve the model or the data, or change "
                    f"evaluation.thresholds in {spec.source_file or 'the spec'}, then trigger a new run"
                ),
            )
        log.info("every threshold holds on %s (%s)", test_rows, ", ".join(thresholds) or "no thresholds set")
        verdict = compare_with_champion(spec, self.store, dataset, summary, outputs)
        # Test metrics keep apart from the training curves (Keras logs `accuracy` per epoch).
        scores = {f"test_{k}": v for k, v in summary.items()}
        scores.update({f"champion_test_{k}": v for k, v in verdict.get("champion_metrics", {}).items()})
        log_to_finished_run(
            spec, self.handed_over("model").get("tracking_run_id", ""), scores,
            {"mlspec.champion_decision": verdict["decision"], "mlspec.champion_version": verdict.get("champion_version", "")},
        )
        return {
            "metrics": summary, "metrics_uri": metrics_uri, "test_samples": int(len(dataset.x_test)), "champion": verdict,
            "plots": plots,
        }

    def write_plots(self, context, dataset, outputs, results) -> dict[str, str]:
        """The confusion matrix or residuals and train's curves as PNGs under the run's prefix: name -> URI.
        A plot that cannot be drawn is logged and left out; it never fails the run."""
        from mlspec.ml.plots import evaluation_plots  # numpy: not at DAG parse time

        spec = self.model_spec
        history = self.model.get("history") if isinstance(self.model, dict) else None
        try:
            pngs = evaluation_plots(
                spec.model.task, dataset.y_test, outputs, results, class_names=list(dataset.class_names),
                history=history or {}, step_name=framework_of(spec).step,
            )
        except Exception as exc:  # noqa: BLE001 - plots are for people; the metrics and gates decide
            log.warning("could not draw the evaluation plots (%s: %s); the version is published without them", type(exc).__name__, exc)
            return {}
        uris = {name: self.store.write_bytes(f"{self.run_prefix(context)}/evaluate/plots/{name}", data) for name, data in pngs.items()}
        log.info("evaluation plots: %s", ", ".join(uris.values()))
        return uris

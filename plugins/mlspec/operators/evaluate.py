"""evaluate: test metrics and the spec's gates. A gate that does not hold stops the run before anything is published."""

from __future__ import annotations

import json
import logging

from mlspec.operators.base import GateFailed, MlspecOperator

log = logging.getLogger(__name__)


class EvaluateOperator(MlspecOperator):
    stage = "evaluate"
    ui_color = "#fce8e6"

    def run(self, context) -> dict:
        import numpy as np

        from mlspec.ml import metrics as ml_metrics

        spec = self.model_spec
        dataset = self.dataset(context)
        model = self.trained_model(context)
        probabilities = model.predict(dataset.x_test, verbose=0)
        y_true = dataset.y_test if dataset.y_test.ndim == 1 else np.argmax(dataset.y_test, axis=1)
        results = ml_metrics.classification_metrics(
            y_true, np.argmax(probabilities, axis=1), class_names=list(dataset.class_names), metrics=list(spec.evaluation.metrics)
        )
        metrics_uri = self.store.write_bytes(f"{self.run_prefix(context)}/evaluate/metrics.json", json.dumps(results, indent=2).encode())
        summary = {name: round(float(results[name]), 6) for name in spec.evaluation.metrics}
        log.info("test metrics on %d samples: %s", len(y_true), ", ".join(f"{k}={v:.4f}" for k, v in summary.items()))
        thresholds = {
            name: {bound: value for bound, value in (("min", t.min), ("max", t.max)) if value is not None}
            for name, t in spec.evaluation.thresholds.items()
        }
        failures = ml_metrics.check_thresholds(results, thresholds)
        if failures:
            raise GateFailed(
                "the model did not pass its gates: " + "; ".join(failures),
                next_step=(
                    "nothing was stored, registered or deployed. Improve the model or the data, or change "
                    f"evaluation.thresholds in {spec.source_file or 'the spec'}, then trigger a new run"
                ),
            )
        log.info("every threshold holds (%s)", ", ".join(thresholds) or "no thresholds set")
        return {"metrics": summary, "metrics_uri": metrics_uri, "test_samples": int(len(y_true))}

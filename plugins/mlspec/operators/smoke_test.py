"""smoke_test: prove the endpoint answers like the offline ONNX model; when it does not, the release
service puts serving back on the registry's production version, which keeps serving."""

from __future__ import annotations

import json
import logging
from typing import Any

from mlspec.errors import ServingError
from mlspec.locks import model_lock
from mlspec.operators.base import GateFailed, MlspecOperator
from mlspec.release import Release, Trigger
from mlspec.serving import Deployment
from mlspec.serving.smoke_test import SmokeTestFailed

log = logging.getLogger(__name__)


class SmokeTestOperator(MlspecOperator):
    """Inputs: `data` (prepare_data's result), `stored` (store's) and `deployment` (deploy's).
    Output: the smoke test report (agreement, latencies)."""

    stage = "smoke_test"
    ui_color = "#d2e3fc"
    template_fields = ("data", "stored", "deployment")

    def __init__(self, *, data: Any, stored: Any, deployment: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data = data
        self.stored = stored
        self.deployment = deployment

    def run(self, context) -> dict:
        spec = self.model_spec
        deployment = Deployment.from_xcom(self.handed_over("deployment"))
        stored = self.handed_over("stored")
        x = self.load_dataset().x_test[: spec.smoke_test.samples]
        onnx_bytes = self.store.read_uri(f"{stored['uri']}/model.onnx")
        signature = json.loads(self.store.read_uri(f"{stored['uri']}/signature.json"))
        release = Release.open(spec, self.store)
        try:
            report = release.smoke_test(deployment, x, onnx_bytes, signature)
        except SmokeTestFailed as exc:
            self.roll_back_to_production(context, release, deployment, exc)
        log.info(
            "smoke test passed: %d samples, agreement %.3f, p95 %.1f ms", report["samples"], report["agreement"], report["p95_ms"]
        )
        return report

    def roll_back_to_production(self, context, release: Release, deployment: Deployment, failure: Exception) -> None:
        """Serve the registry's production version again, read under the model's lock (an operation may have
        changed production since deploy), record it, and fail the task."""
        spec, version = self.model_spec, deployment.version
        message = f"version {version} failed its smoke test: {failure}"
        with model_lock(spec.name, f"roll back version {version} after its failed smoke test"):
            production = release.production()
            if production != deployment.previous_version:
                log.warning("production of %s moved from %s to %s since version %d was deployed (an operation "
                            "ran); serving goes back to %s", spec.name, deployment.previous_version, production,
                            version, production)
            if production == version:  # an operation made the candidate production on purpose since
                message += f"; an operation has made version {version} production since: serving left as is"
                step = f"run `mlspec status {spec.source_file or '<spec>'}`"
                raise GateFailed(message, next_step=step) from None
            log.error("smoke test failed for %s version %d; rolling back to %s", spec.name, version, production)
            try:
                restored = release.restore_serving(version, deployment.served_model_name)
            except ServingError as rollback_exc:
                message += f"; the rollback failed too ({rollback_exc}), so the failed version may still serve"
                message += release.record_outcome(version, {**deployment.to_xcom(), "message": message}, "failed")
                raise GateFailed(
                    message, next_step=f"restore version {production} by hand, then fix and trigger a new run"
                ) from None
            message += f"; {restored}"
            message += release.record_outcome(version, {**deployment.to_xcom(), "message": str(failure)}, "rolled_back")
            message += release.record_serving_went_back(Trigger.from_context(context), version, message)
        raise GateFailed(
            message,
            next_step="read the problems above; the endpoint was rolled back, so fix the model or serving "
            "settings and trigger a new run",
        ) from None

"""smoke_test: prove the endpoint answers like the offline ONNX model; roll back when it does not,
so the version that served before keeps serving."""

from __future__ import annotations

import logging
from typing import Any

from mlspec.operators.base import GateFailed, MlspecOperator
from mlspec.registry import record_outcome
from mlspec.serving import open_serving

log = logging.getLogger(__name__)


def record_automatic_rollback(spec, context, failed: int, restored: int | None, reason: str) -> str:
    """Serving went from the failed version back to `restored` (the registry's production version, which
    never moved): an "auto_rollback" on the audit trail. Returns a note when it could not be recorded."""
    from mlspec.operations import Trigger, record_change
    from mlspec.registry import open_registry

    change = Trigger.from_context(context).change("auto_rollback", failed, restored, reason[:1200])
    try:
        registry = open_registry(spec.registry.backend, spec.registry.connection)
    except Exception as exc:  # noqa: BLE001 - the run's story is the failed smoke test, not this
        log.warning("could not open the registry to record the automatic rollback: %s", exc)
        return f" The automatic rollback could not be recorded on the audit trail: {exc}"
    return record_change(registry, spec.name, change)


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
        import json

        from mlspec.errors import ServingError
        from mlspec.ml import onnx_export
        from mlspec.serving import Deployment
        from mlspec.serving.smoke_test import SmokeTestFailed, run_smoke_test, spec_settings

        spec = self.model_spec
        deployment = Deployment.from_xcom(self.handed_over("deployment"))
        stored = self.handed_over("stored")
        x = self.load_dataset().x_test[: spec.smoke_test.samples]
        expected = onnx_export.onnx_predict(self.store.read_uri(f"{stored['uri']}/model.onnx"), x)
        signature = json.loads(self.store.read_uri(f"{stored['uri']}/signature.json"))
        try:
            report = run_smoke_test(
                endpoint_url=deployment.endpoint_url,
                model_name=deployment.served_model_name,
                version=deployment.version if deployment.platform == "local" else None,
                x=x,
                expected=expected,
                signature=signature,
                **spec_settings(spec),
            )
        except SmokeTestFailed as exc:
            log.error("smoke test failed for %s version %d; rolling back to %s", spec.name, deployment.version, deployment.previous_version)
            message = f"version {deployment.version} failed its smoke test: {exc}"
            try:
                open_serving(spec, self.store).rollback(deployment)
            except ServingError as rollback_exc:
                message += f"; the rollback failed too ({rollback_exc}), so the failed version may still be serving"
                message += record_outcome(spec, deployment.version, {**deployment.to_xcom(), "message": message}, "failed")
                raise GateFailed(
                    message, next_step=f"restore version {deployment.previous_version} by hand, then fix and trigger a new run"
                ) from None
            restored = f"version {deployment.previous_version} is serving again" if deployment.previous_version else "the new version was removed"
            message += f"; {restored}"
            message += record_outcome(spec, deployment.version, {**deployment.to_xcom(), "message": str(exc)}, "rolled_back")
            message += record_automatic_rollback(spec, context, deployment.version, deployment.previous_version, message)
            raise GateFailed(
                message,
                next_step="read the problems above; the endpoint was rolled back, so fix the model or serving settings and trigger a new run",
            ) from None
        log.info(
            "smoke test passed: %d samples, agreement %.3f, p95 %.1f ms", report["samples"], report["agreement"], report["p95_ms"]
        )
        return report

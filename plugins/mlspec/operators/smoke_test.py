"""smoke_test: prove the endpoint answers like the offline ONNX model; roll back when it does not,
so the version that served before keeps serving."""

from __future__ import annotations

import logging
from typing import Any

from mlspec.operators.base import GateFailed, MlspecOperator
from mlspec.registry import record_outcome
from mlspec.serving import open_serving

log = logging.getLogger(__name__)


def record_automatic_rollback(spec, context, failed: int, reason: str, registry=None) -> str:
    """Serving went from the failed candidate `failed` back to the registry's production version, which
    never moved: an "auto_rollback" on the audit trail from production to production (v2 -> v2; the reason
    names the candidate), so no one reads it as a change of production. Nothing is recorded when nothing is
    production (no production change happened, none was restored). Call it under the model's lock. Returns
    a note when it could not be recorded."""
    from mlspec.errors import MlspecError
    from mlspec.operations import Trigger, record_change
    from mlspec.registry import open_registry

    try:
        registry = registry or open_registry(spec.registry.backend, spec.registry.connection)
        production = registry.production_version(spec.name)
    except MlspecError as exc:  # the run's story is the failed candidate, not this
        log.warning("could not open the registry to record the automatic rollback: %s", exc)
        return f" The automatic rollback could not be recorded on the audit trail: {exc}"
    if production is None or production == failed:
        return ""
    why = (f"{reason}; serving went back to production version {production}; the candidate version "
           f"{failed} never became production (the registry did not move)")
    change = Trigger.from_context(context).change("auto_rollback", production, production, why[:1200])
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
            self.roll_back_to_production(context, deployment, exc)
        log.info(
            "smoke test passed: %d samples, agreement %.3f, p95 %.1f ms", report["samples"], report["agreement"], report["p95_ms"]
        )
        return report

    def roll_back_to_production(self, context, deployment, failure: Exception) -> None:
        """Serve the registry's production version again, read under the model's lock (an operation may have
        changed production since deploy), record it, and fail the task."""
        from dataclasses import replace

        from mlspec.errors import ServingError
        from mlspec.operations import model_lock
        from mlspec.registry import open_registry

        spec, version = self.model_spec, deployment.version
        message = f"version {version} failed its smoke test: {failure}"
        registry = open_registry(spec.registry.backend, spec.registry.connection)
        with model_lock(spec.name, f"roll back version {version} after its failed smoke test"):
            production = registry.production_version(spec.name)
            if production != deployment.previous_version:
                log.warning("production of %s moved from %s to %s since version %d was deployed (an operation "
                            "ran); serving goes back to %s", spec.name, deployment.previous_version, production,
                            version, production)
            if production == version:  # an operation made the candidate production on purpose since
                message += f"; an operation has made version {version} production since: serving left as is"
                step = f"run `mlspec status {spec.source_file or '<spec>'}`"
                raise GateFailed(message, next_step=step) from None
            log.error("smoke test failed for %s version %d; rolling back to %s", spec.name, version, production)
            record = registry.version_record(spec.name, production) if production is not None else None
            target = replace(deployment, previous_version=production,
                             previous_state={"storage_uri": record.source_uri} if record is not None else None)
            try:
                open_serving(spec, self.store).rollback(target)
            except ServingError as rollback_exc:
                message += f"; the rollback failed too ({rollback_exc}), so the failed version may still serve"
                failed = {**deployment.to_xcom(), "message": message}
                message += record_outcome(spec, version, failed, "failed")
                raise GateFailed(
                    message, next_step=f"restore version {production} by hand, then fix and trigger a new run"
                ) from None
            restored = (f"version {production} is serving again" if production is not None
                        else "the new version was removed")
            message += f"; {restored}"
            rolled_back = {**deployment.to_xcom(), "message": str(failure)}
            message += record_outcome(spec, version, rolled_back, "rolled_back")
            message += record_automatic_rollback(spec, context, version, message, registry)
        raise GateFailed(
            message,
            next_step="read the problems above; the endpoint was rolled back, so fix the model or serving "
            "settings and trigger a new run",
        ) from None

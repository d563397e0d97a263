"""deploy, smoke_test and promote: put the version behind an endpoint, prove it answers, then make it official.

A failed smoke test rolls back to the version that served before, so users never keep a bad model.
"""

from __future__ import annotations

import logging

from mlspec.links import EndpointLink
from mlspec.operators.base import GateFailed, MlspecOperator

log = logging.getLogger(__name__)


def serving_backend(spec, store):
    """The spec's serving backend: the local model server or KServe (the published versions' store root)."""
    if spec.serving.platform == "kserve":
        from mlspec.serving.kserve import KServeServing
        from mlspec.serving.kserve_manifest import kserve_config

        return KServeServing(kserve_config(spec), store.root_uri)
    from mlspec.serving import open_local_serving

    return open_local_serving(spec.serving.url)


def record_outcome(spec, version: int, deployment: dict, outcome: str) -> str:
    """Record a deployment's fate in the registry; returns a note to append when that failed.

    The fate is already decided: a registry problem must not replace that story, nor turn the task
    into a retry that deploys the failed version again.
    """
    from mlspec.errors import MlspecError
    from mlspec.registry import open_registry

    try:
        open_registry(spec.registry.backend, spec.registry.connection).record_deployment(spec.name, version, deployment, outcome)
    except MlspecError as exc:
        log.warning("could not record outcome %r for %s version %d: %s", outcome, spec.name, version, exc)
        return f" The outcome ({outcome}) could not be recorded in the registry: {exc}"
    return ""


class DeployModelOperator(MlspecOperator):
    stage = "deploy"
    operator_extra_links = (EndpointLink(),)
    ui_color = "#d2e3fc"
    local_next_step = (
        "start the model server (`make serve` or `mlspec serve`) or fix the serving settings, "
        "then clear this task"
    )
    kserve_next_step = (
        "check the Kubernetes connection, the namespace and that KServe is installed "
        "(`kubectl get inferenceservices -n <namespace>`), then clear this task"
    )

    @property
    def next_step(self) -> str:
        # The local server's advice is no help to someone deploying to a cluster.
        return self.kserve_next_step if self.model_spec.serving.platform == "kserve" else self.local_next_step

    def run(self, context) -> dict:
        spec = self.model_spec
        stored = self.upstream(context, "store")
        if spec.serving.platform == "kserve":
            return self.deploy_kserve(context, stored)
        deployment = serving_backend(spec, self.store).deploy(spec.name, stored["version"], stored["uri"])
        log.info("%s version %d is served at %s (previous: %s)", spec.name, deployment.version, deployment.endpoint_url, deployment.previous_version)
        return deployment.to_xcom()

    def deploy_kserve(self, context, stored: dict) -> None:
        from mlspec.triggers.kserve import KServeReadinessTrigger

        backend = serving_backend(self.model_spec, self.store)
        config = backend.config
        state = backend.apply(self.model_spec.name, stored["version"], stored["uri"])
        log.info("applied InferenceService %s/%s (generation %s); waiting for it to become ready", config.namespace, self.model_spec.name, state["generation"])
        # The wait runs in the triggerer: no worker slot is held while KServe pulls and loads the model.
        self.defer(
            trigger=KServeReadinessTrigger(
                name=state["name"],
                namespace=state["namespace"],
                generation=state["generation"],
                connection=config.connection,
                timeout_s=config.timeout_s,
                poll_interval_s=5,
            ),
            method_name="execute_complete",
            kwargs={"state": state, "version": stored["version"]},
        )

    def execute_complete(self, context, event: dict, state: dict, version: int) -> dict:
        """Back from the triggerer: the InferenceService is ready, failed or timed out (then it was rolled back)."""
        return self.run_guarded(lambda: self.finish_kserve(event, state, version))

    def finish_kserve(self, event: dict, state: dict, version: int) -> dict:
        from mlspec.errors import ServingError
        from mlspec.serving.kserve import RollbackFailed, deployment_from_event

        # Outside the try: a ServingError from a bad config means nothing was rolled back.
        backend = serving_backend(self.model_spec, self.store)
        try:
            deployment = deployment_from_event(event, state, backend=backend)
        except ServingError as exc:
            message = str(exc)
            # Only a rollback that worked may be recorded as one: otherwise the registry would claim
            # the old version is serving while the cluster still holds the failed one.
            outcome = "failed" if isinstance(exc, RollbackFailed) else "rolled_back"
            deployment = {
                "platform": "kserve",
                "served_model_name": state.get("served_model_name"),
                "previous_state": state,
            }
            message += record_outcome(self.model_spec, version, {**deployment, "message": message}, outcome)
            advice = "read the InferenceService events and predictor logs, fix, and trigger a new run"
            raise GateFailed(message, next_step=advice) from None
        log.info("%s version %d is ready at %s", self.model_spec.name, version, deployment.endpoint_url)
        return deployment.to_xcom()


class SmokeTestOperator(MlspecOperator):
    stage = "smoke_test"
    ui_color = "#d2e3fc"

    def bearer_token(self) -> str | None:
        """With `auth: token` the endpoint wants the token kept in the Kubernetes connection."""
        if self.model_spec.serving.auth != "token":
            return None
        from mlspec.connections import connection_token

        return connection_token(self.model_spec.serving.connection or "kubernetes_default")

    def run(self, context) -> dict:
        import json

        import numpy as np

        from mlspec.errors import ServingError
        from mlspec.ml import onnx_export
        from mlspec.serving import Deployment
        from mlspec.serving.smoke_test import SmokeTestFailed, run_smoke_test

        spec = self.model_spec
        deployment = Deployment.from_xcom(self.upstream(context, "deploy"))
        stored = self.upstream(context, "store")
        dataset = self.dataset(context)
        x = dataset.x_test[: spec.smoke_test.samples]
        onnx_bytes = self.store.read_uri(f"{stored['uri']}/model.onnx")
        expected = np.argmax(onnx_export.onnx_predict(onnx_bytes, x), axis=1)
        signature = json.loads(self.store.read_uri(f"{stored['uri']}/signature.json"))
        try:
            report = run_smoke_test(
                endpoint_url=deployment.endpoint_url,
                model_name=deployment.served_model_name,
                version=deployment.version if deployment.platform == "local" else None,
                x=x,
                expected=expected,
                signature=signature,
                min_agreement=spec.smoke_test.min_agreement,
                max_latency_ms=spec.smoke_test.max_latency_ms,
                token=self.bearer_token(),
            )
        except SmokeTestFailed as exc:
            log.error("smoke test failed for %s version %d; rolling back to %s", spec.name, deployment.version, deployment.previous_version)
            message = f"version {deployment.version} failed its smoke test: {exc}"
            try:
                serving_backend(spec, self.store).rollback(deployment)
            except ServingError as rollback_exc:
                message += f"; the rollback failed too ({rollback_exc}), so the failed version may still be serving"
                message += record_outcome(spec, deployment.version, {**deployment.to_xcom(), "message": message}, "failed")
                raise GateFailed(
                    message, next_step=f"restore version {deployment.previous_version} by hand, then fix and trigger a new run"
                ) from None
            restored = f"version {deployment.previous_version} is serving again" if deployment.previous_version else "the new version was removed"
            message += f"; {restored}"
            message += record_outcome(spec, deployment.version, {**deployment.to_xcom(), "message": str(exc)}, "rolled_back")
            raise GateFailed(
                message,
                next_step="read the problems above; the endpoint was rolled back, so fix the model or serving settings and trigger a new run",
            ) from None
        log.info(
            "smoke test passed: %d samples, agreement %.3f, p95 %.1f ms", report["samples"], report["agreement"], report["p95_ms"]
        )
        return report


class PromoteOperator(MlspecOperator):
    """Marks the smoke-tested version as the one in production and writes the run's summary."""

    stage = "promote"
    ui_color = "#ceead6"

    def run(self, context) -> dict:
        from mlspec.registry import open_registry
        from mlspec.serving import Deployment

        spec = self.model_spec
        deployment = Deployment.from_xcom(self.upstream(context, "deploy"))
        registry = open_registry(spec.registry.backend, spec.registry.connection)
        registry.record_deployment(spec.name, deployment.version, deployment.to_xcom(), "smoke_test_passed")
        dataset = self.dataset(context)
        example_x = dataset.x_test[:1]
        from mlspec.ml.onnx_export import onnx_predict

        stored = self.upstream(context, "store")
        offline = onnx_predict(self.store.read_uri(f"{stored['uri']}/model.onnx"), example_x)
        summary = {
            "model": spec.name,
            "version": deployment.version,
            "dag_id": self.dag_id,
            "run_id": context["run_id"],
            "metrics": self.upstream(context, "evaluate")["metrics"],
            "stored_uri": stored["uri"],
            "registry": self.upstream(context, "register"),
            "endpoint_url": deployment.endpoint_url,
            "infer_url": f"{deployment.endpoint_url}/v2/models/{deployment.served_model_name}/infer",
            "smoke_test": self.upstream(context, "smoke_test"),
            "example": {
                "input": example_x.reshape(-1).tolist(),
                "shape": list(example_x.shape),
                "label": dataset.class_names[int(dataset.y_test[0] if dataset.y_test.ndim == 1 else dataset.y_test[0].argmax())],
                "predicted": dataset.class_names[int(offline[0].argmax())],
            },
        }
        self.store.write_json(f"{self.run_prefix(context)}/summary.json", summary)
        log.info("%s version %d is in production at %s", spec.name, deployment.version, summary["infer_url"])
        return summary

"""deploy: put the stored version behind an endpoint (the local model server, or KServe with a
deferrable wait for readiness that rolls back on failure)."""

from __future__ import annotations

import logging
from typing import Any

from mlspec.links import EndpointLink
from mlspec.operators.base import GateFailed, MlspecOperator
from mlspec.registry import record_outcome
from mlspec.serving import open_serving

log = logging.getLogger(__name__)


class DeployModelOperator(MlspecOperator):
    """Input: `stored` (store's result). Output: the deployment (endpoint, served and previous version)."""

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

    template_fields = ("stored",)

    def __init__(self, *, stored: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stored = stored

    def run(self, context) -> dict:
        spec = self.model_spec
        stored = self.handed_over("stored")
        if spec.serving.platform == "kserve":
            return self.deploy_kserve(context, stored)
        deployment = open_serving(spec, self.store).deploy(spec.name, stored["version"], stored["uri"])
        log.info("%s version %d is served at %s (previous: %s)", spec.name, deployment.version, deployment.endpoint_url, deployment.previous_version)
        return deployment.to_xcom()

    def deploy_kserve(self, context, stored: dict) -> None:
        from mlspec.triggers.kserve import KServeReadinessTrigger

        backend = open_serving(self.model_spec, self.store)
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
        backend = open_serving(self.model_spec, self.store)
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

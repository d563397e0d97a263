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


def deploy_following_the_registry(spec, serving, version: int, version_uri: str, store):
    """Deploy `version`, with the registry's production version as the one to roll back to.

    What the server served before may differ from the registry (a crash after a load, a hand-made
    change): that is drift, reported here and corrected by the rollback, never taken as truth.
    """
    from dataclasses import replace

    from mlspec.operations import model_lock
    from mlspec.registry import open_registry

    registry = open_registry(spec.registry.backend, spec.registry.connection)
    with model_lock(spec.name, f"pipeline deploy of version {version}"):
        production = registry.production_version(spec.name)
        record = registry.version_record(spec.name, version)
        if record is None:
            raise GateFailed(
                f"{spec.name} version {version} is not in the registry, so its files cannot be checked "
                "against the sha256 it recorded; nothing was deployed",
                next_step="clear the register task, then this one",
            )
        verify_before_deploy(store, record)
        deployment = serving.deploy(spec.name, version, version_uri)
    if deployment.previous_version != production:
        log.warning(
            "drift: serving had %s version %s while the registry's production version is %s; a rollback "
            "restores the registry's", spec.name, deployment.previous_version, production,
        )
    record = registry.version_record(spec.name, production) if production is not None else None
    deployment = replace(
        deployment,
        previous_version=production,
        previous_state={"storage_uri": record.source_uri} if record is not None else None,
    )
    log.info("%s version %d is served at %s (production until it passes: %s)", spec.name, version, deployment.endpoint_url, production)
    return deployment


def verify_before_deploy(store, record) -> None:
    """Every file the registry recorded a sha256 for (model.onnx, signature.json, the schemas) must still
    match, or GateFailed before anything is deployed."""
    from mlspec.operations import OperationFailed, verify_recorded_files

    try:
        verify_recorded_files(store, record)
    except OperationFailed as exc:
        raise GateFailed(str(exc), next_step="publish a new version: trigger a new run") from None


class DeployModelOperator(MlspecOperator):
    """Inputs: `stored` (store's result) and `evaluation` (evaluate's, with the champion gate's
    verdict). Output: the deployment (endpoint, the version now served, and the registry's
    production version to roll back to). When the champion holds, the task is skipped (and with
    it smoke_test and promote): the run is green and production is untouched."""

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

    template_fields = ("stored", "evaluation")

    def __init__(self, *, stored: Any, evaluation: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stored = stored
        self.evaluation = evaluation

    def run(self, context) -> dict:
        spec = self.model_spec
        stored = self.handed_over("stored")
        self.skip_when_the_champion_holds(context, stored)
        if spec.serving.platform == "kserve":
            return self.deploy_kserve(context, stored)
        deployment = deploy_following_the_registry(
            spec, open_serving(spec, self.store), stored["version"], stored["uri"], self.store
        )
        return deployment.to_xcom()

    def skip_when_the_champion_holds(self, context, stored: dict) -> None:
        from airflow.sdk.exceptions import AirflowSkipException

        from mlspec.champion import DECISIONS, verdict_line

        evaluation = self.evaluation if isinstance(self.evaluation, dict) else {}
        verdict = evaluation.get("champion") or {"decision": "gate_off"}
        if DECISIONS.get(verdict["decision"], True):
            return
        line = verdict_line(self.model_spec.name, verdict)
        summary = {
            "model": self.model_spec.name,
            "outcome": "champion_holds",
            "version": stored["version"],
            "stored_uri": stored["uri"],
            "dag_id": self.dag_id,
            "run_id": context["run_id"],
            "metrics": evaluation.get("metrics", {}),
            "champion": verdict,
            "message": line,
        }
        self.store.write_json(f"{self.run_prefix(context)}/summary.json", summary)
        log.info("%s; version %d is registered as a candidate (`mlspec deploy %s --version %d` serves it on purpose)",
                 line, stored["version"], self.model_spec.source_file or "<spec>", stored["version"])
        if self.model_spec.serving.platform != "kserve":
            self.reconcile_serving()
        from mlspec.notify import notify_champion_holds

        notify_champion_holds(self.model_spec, summary, context)
        raise AirflowSkipException(line)

    def reconcile_serving(self) -> None:
        """The champion keeps serving: make sure it does (a restarted server serves what its own state says,
        e.g. a version whose deploy crashed). A serving problem here is logged; the run stays green."""
        from mlspec.errors import MlspecError
        from mlspec.operations import reconcile

        try:
            done = reconcile(self.model_spec)
        except MlspecError as exc:
            log.warning("could not check that serving follows the registry: %s; run `mlspec status --strict %s`",
                        exc, self.model_spec.source_file or "<spec>")
            return
        if done:
            log.warning("%s", done)

    def deploy_kserve(self, context, stored: dict) -> None:
        """Under the model's lock: check the version's recorded files, then apply the InferenceService (the
        wait for readiness runs in the triggerer, without the lock)."""
        from mlspec.operations import model_lock
        from mlspec.registry import open_registry
        from mlspec.triggers.kserve import KServeReadinessTrigger

        spec, version = self.model_spec, stored["version"]
        backend = open_serving(spec, self.store)
        config = backend.config
        registry = open_registry(spec.registry.backend, spec.registry.connection)
        with model_lock(spec.name, f"pipeline deploy of version {version} to KServe"):
            record = registry.version_record(spec.name, version)
            if record is not None:
                verify_before_deploy(self.store, record)
            else:
                log.warning("%s version %d is not in the registry; its files cannot be checked against a "
                            "recorded sha256 before it is applied", spec.name, version)
            state = backend.apply(spec.name, version, stored["uri"])
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
        return self.run_guarded(lambda: self.finish_kserve(event, state, version, context))

    def finish_kserve(self, event: dict, state: dict, version: int, context=None) -> dict:
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
            if outcome == "rolled_back" and context is not None:
                from mlspec.operations import model_lock
                from mlspec.operators.smoke_test import record_automatic_rollback

                with model_lock(self.model_spec.name, f"record the rollback of version {version} on KServe"):
                    message += record_automatic_rollback(self.model_spec, context, version, message)
            elif outcome == "failed":
                # Serving did not go back: the audit trail (changes of production) gets no entry, since the
                # registry never moved; the version is recorded "failed" and the task says what to restore.
                log.warning("the rollback of %s version %d on KServe failed; no automatic rollback is recorded "
                            "on the audit trail (production did not change)", self.model_spec.name, version)
            advice = "read the InferenceService events and predictor logs, fix, and trigger a new run"
            raise GateFailed(message, next_step=advice) from None
        log.info("%s version %d is ready at %s", self.model_spec.name, version, deployment.endpoint_url)
        return deployment.to_xcom()

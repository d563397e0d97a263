"""deploy: put the stored version behind an endpoint through the release service (mlspec.release): the
registry's record checked first, then the serving backend's apply and its wait for readiness (KServe's in
the triggerer, deferred)."""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk.exceptions import AirflowSkipException

from mlspec.champion import DECISIONS, verdict_line
from mlspec.errors import MlspecError, ServingError
from mlspec.links import EndpointLink
from mlspec.locks import model_lock
from mlspec.notify import notify_champion_holds
from mlspec.operators.base import GateFailed, MlspecOperator
from mlspec.release import OperationFailed, Release, Trigger
from mlspec.serving import platform_of

log = logging.getLogger(__name__)


class DeployModelOperator(MlspecOperator):
    """Inputs: `stored` (store's result) and `evaluation` (evaluate's, with the champion gate's
    verdict). Output: the deployment (endpoint, the version now served, and the registry's
    production version to roll back to). When the champion holds, the task is skipped (and with
    it smoke_test and promote): the run is green and production is untouched."""

    stage = "deploy"
    operator_extra_links = (EndpointLink(),)
    ui_color = "#d2e3fc"

    @property
    def next_step(self) -> str:
        # The local server's advice is no help to someone deploying to a cluster.
        return platform_of(self.model_spec).deploy_next_step

    template_fields = ("stored", "evaluation")

    def __init__(self, *, stored: Any, evaluation: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stored = stored
        self.evaluation = evaluation

    def run(self, context) -> dict:
        spec = self.model_spec
        stored = self.handed_over("stored")
        self.skip_when_the_champion_holds(context, stored)
        release = Release.open(spec, self.store)
        version = stored["version"]
        with model_lock(spec.name, f"pipeline deploy of version {version}"):
            try:
                release.check(version)
            except OperationFailed as exc:
                raise GateFailed(str(exc), next_step="a version the register task did not record: clear register, "
                                 "then this one; files changed since publishing: trigger a new run") from None
            # With a rollout, the candidate is loaded beside production and answers no live request until
            # the rollout's steps give it traffic; never beside a split an abandoned rollout left.
            if spec.rollout is not None:
                release.roll_back_abandoned(version)
            state = release.apply(version, stored["uri"], serve=spec.rollout is None)
        trigger = release.serving.readiness_trigger(state)
        if trigger is not None:
            # The wait runs in the triggerer: no worker slot is held while the platform loads the model.
            log.info("applied %s version %d; waiting in the triggerer for it to become ready", spec.name, version)
            self.defer(trigger=trigger, method_name="execute_complete", kwargs={"state": state, "version": version})
        return self.finish(release, state, version, None, context)

    def skip_when_the_champion_holds(self, context, stored: dict) -> None:
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
        self.reconcile_serving()
        notify_champion_holds(self.model_spec, summary, context)
        raise AirflowSkipException(line)

    def reconcile_serving(self) -> None:
        """The champion keeps serving: make sure it does (a restarted server serves what its own state says,
        e.g. a version whose deploy crashed). A serving problem here is logged; the run stays green."""
        try:
            with model_lock(self.model_spec.name, "reconcile serving with the registry"):
                done = Release.open(self.model_spec, self.store).reconcile()
        except MlspecError as exc:
            log.warning("could not check that serving follows the registry: %s; run `mlspec status --strict %s`",
                        exc, self.model_spec.source_file or "<spec>")
            return
        if done:
            log.warning("%s", done)

    def execute_complete(self, context, event: dict, state: dict, version: int) -> dict:
        """Back from the triggerer: the version is ready, failed or timed out (then it was taken back)."""
        return self.run_guarded(
            lambda: self.finish(Release.open(self.model_spec, self.store), state, version, event, context)
        )

    def finish(self, release: Release, state: dict, version: int, event: dict | None, context) -> dict:
        """The applied version answers: its deployment, to be smoke-tested. One that did not become ready was
        taken back and serving follows the registry's production version again: recorded, and the task fails."""
        spec = self.model_spec
        # Under the lock: a failure reads the registry's production version and may serve it again.
        with model_lock(spec.name, f"finish the deploy of version {version}"):
            try:
                deployment = release.await_ready(state, event)
            except ServingError as exc:
                raise GateFailed(release.candidate_not_ready(state, exc, Trigger.from_context(context)),
                                 next_step="read the serving platform's events and logs, fix, and trigger a new run") from None
        if spec.rollout is None:
            log.info("%s version %d is served at %s (production until it passes: %s)", spec.name, version,
                     deployment.endpoint_url, deployment.previous_version)
        else:
            log.info("%s version %d is loaded at %s beside production version %s, which answers every request "
                     "until the rollout's steps", spec.name, version, deployment.endpoint_url, deployment.previous_version)
        return deployment.to_xcom()

"""The serving interface: the local Open Inference Protocol server and KServe implement it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any

from mlspec.errors import ServingError


@dataclass(frozen=True)
class Deployment:
    platform: str  # the serving platform's name (spec serving.platform)
    model_name: str  # the spec's metadata.name
    version: int  # store version now being served
    endpoint_url: str  # base URL of the Open Inference Protocol endpoint, e.g. http://127.0.0.1:8555
    served_model_name: str  # the name to use in /v2/models/{name}
    previous_version: int | None = None  # what to roll back to (the release service: the registry's production)
    previous_state: dict | None = None  # backend-specific state needed to restore it (a storage_uri, an apply's state)

    def to_xcom(self) -> dict:
        return asdict(self)

    @classmethod
    def from_xcom(cls, payload: dict) -> Deployment:
        return cls(**payload)


class RollbackFailed(ServingError):
    """A deployment failed and putting back what served before failed too: nothing was rolled back."""


class ServingBackend(ABC):
    """Deploying a version is two steps, so that Airflow can wait without holding a worker slot:
    `apply` starts serving it and returns a JSON state (it travels through XCom); `await_ready` waits
    until it answers, in the worker, or takes the verdict of `readiness_trigger`'s wait in the triggerer."""

    platform: str

    @abstractmethod
    def apply(self, model_name: str, version: int, version_uri: str, *, serve: bool = True) -> dict:
        """Start serving `version` (published at version_uri); the previous one serves until it is ready.
        `serve=False` (a rollout's candidate): load it and make it ready, answering no live traffic; what
        serves and the traffic do not change. Returns the state `await_ready` needs; safe to retry."""

    @abstractmethod
    def await_ready(self, state: dict, event: dict | None = None) -> Deployment:
        """The applied version answers: its Deployment. `event` is the verdict of `readiness_trigger`'s wait
        ({"status": "ready"|"failed"|"timeout", "url", "message"}); without one, wait here. A version that
        does not become ready is taken back (ServingError; RollbackFailed when taking it back failed too)."""

    def readiness_trigger(self, state: dict) -> Any | None:
        """An Airflow trigger that waits for readiness in the triggerer, or None: `await_ready` waits in the
        worker (a wait of seconds is not worth a deferral)."""
        return None

    def deploy(self, model_name: str, version: int, version_uri: str) -> Deployment:
        """Apply `version` and wait until it answers."""
        return self.await_ready(self.apply(model_name, version, version_uri))

    @abstractmethod
    def rollback(self, deployment: Deployment) -> None:
        """Serve deployment.previous_version again (previous_state says where it is), or remove the model when
        it is None; the failed deployment.version stops serving."""

    @abstractmethod
    def served_version(self, model_name: str) -> int | None:
        """The store version serving answers with now (None: the model is not served)."""

    @abstractmethod
    def undeploy(self, model_name: str) -> None:
        """Stop serving the model (every version); a model that is not served is fine."""

    # -- a rollout: traffic shared between the served version and a candidate ------------------------
    def set_traffic(self, model_name: str, traffic: dict) -> None:
        """Route live requests as `traffic` says (mlspec.rollout.plan.traffic_for's dict: {"weights":
        {version: percent}, "shadow": {...} | None}; mlspec.rollout.plan.NO_SPLIT clears the split)."""
        raise ServingError(f"the {self.platform} serving platform cannot split traffic between versions")

    def traffic(self, model_name: str) -> dict:
        """What the backend routes now: {"weights": {version: percent}, "shadow": {...} | None}."""
        raise ServingError(f"the {self.platform} serving platform cannot split traffic between versions")

    def metrics_url(self, deployment: Deployment) -> str | None:
        """Where the deployment's per-version metrics (Prometheus text format) are read, or None."""
        return None

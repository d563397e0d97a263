"""The serving interface: the local Open Inference Protocol server and KServe implement it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Deployment:
    platform: str  # "local" | "kserve"
    model_name: str  # the spec's metadata.name
    version: int  # store version now being served
    endpoint_url: str  # base URL of the Open Inference Protocol endpoint, e.g. http://127.0.0.1:8555
    served_model_name: str  # the name to use in /v2/models/{name}
    previous_version: int | None = None  # what served before, for rollback
    previous_state: dict | None = None  # backend-specific state needed to restore it (e.g. the old ISVC spec)

    def to_xcom(self) -> dict:
        return asdict(self)

    @classmethod
    def from_xcom(cls, payload: dict) -> Deployment:
        return cls(**payload)


class ServingBackend(ABC):
    platform: str

    @abstractmethod
    def deploy(self, model_name: str, version: int, version_uri: str) -> Deployment:
        """Make `version` (published at version_uri) the one served, keeping the previous one until it is ready."""

    @abstractmethod
    def rollback(self, deployment: Deployment) -> None:
        """Serve deployment.previous_* again (or remove the new model when there was none)."""

    @abstractmethod
    def served_version(self, model_name: str) -> int | None:
        """The store version serving answers with now (None: the model is not served)."""

    @abstractmethod
    def undeploy(self, model_name: str) -> None:
        """Stop serving the model (every version); a model that is not served is fine."""

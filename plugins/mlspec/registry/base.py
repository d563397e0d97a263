"""The model-registry interface: MLflow (embedded or server) and Kubeflow Model Registry implement it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RegistrationRequest:
    """Everything a registry records about one published model version."""

    model_name: str  # the spec's metadata.name
    version: int  # the store's version number (the folder under <storage.uri>/<name>/)
    source_uri: str  # the published version folder
    model_uri: str  # <source_uri>/model.onnx
    metrics: dict[str, float]  # test metrics
    data_source: str
    spec_hash: str
    dag_id: str
    run_id: str
    onnx_opset: int
    framework: str = "tensorflow"
    task: str = "classification"
    input_schema: dict = field(default_factory=dict)  # input_schema.json: features with statistics
    output_schema: dict = field(default_factory=dict)  # output_schema.json: outputs and class names
    description: str = ""
    owner: str = ""
    storage_connection: str | None = None  # Airflow connection id of the store, for storageKey
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256

    def mlflow_signature(self) -> dict[str, str]:
        """The model's signature in MLflow's own format (ModelSignature.to_dict()), built from the
        schemas without importing MLflow: {"inputs": json, "outputs": json} of tensor specs."""
        import json

        def tensors(items: list[dict]) -> str:
            return json.dumps(
                [
                    {"type": "tensor", "name": t["name"], "tensor-spec": {"dtype": _NUMPY_DTYPES.get(t["datatype"], "float32"), "shape": t["shape"]}}
                    for t in items
                ]
            )

        if not self.input_schema or not self.output_schema:
            return {}
        return {"inputs": tensors([self.input_schema]), "outputs": tensors(self.output_schema.get("outputs", []))}

    def input_example(self) -> list[float]:
        """One row a client can send: each feature's training mean (no training sample leaks out)."""
        return [feature["mean"] for feature in self.input_schema.get("features", [])]


_NUMPY_DTYPES = {"FP32": "float32", "FP64": "float64", "INT64": "int64", "INT32": "int32", "BOOL": "bool"}


@dataclass(frozen=True)
class RegistryEntry:
    backend: str  # "mlflow" | "kubeflow"
    model_name: str
    version: int  # the store's version number
    registry_version: str  # the registry's own id/number for that version
    url: str = ""  # where a human can look at it
    created: bool = True  # False when an earlier try had already registered it

    def to_xcom(self) -> dict:
        return {
            "backend": self.backend,
            "model_name": self.model_name,
            "version": self.version,
            "registry_version": self.registry_version,
            "url": self.url,
            "created": self.created,
        }


class ModelRegistry(ABC):
    backend: str

    @abstractmethod
    def register(self, request: RegistrationRequest) -> RegistryEntry:
        """Register the version; when this run already registered it, return that entry (created=False)."""

    @abstractmethod
    def find(self, model_name: str, version: int) -> RegistryEntry | None:
        """The entry for a store version, or None."""

    @abstractmethod
    def record_deployment(self, model_name: str, version: int, deployment: dict, outcome: str) -> None:
        """Record where the version was deployed and what happened.

        `outcome` is one of "deployed", "smoke_test_passed", "rolled_back", "failed";
        `deployment` holds at least platform, endpoint_url, served_model_name and an optional message.
        """

"""Links on task instances in the Airflow UI: the served endpoint and the registry entry."""

from __future__ import annotations

from airflow.sdk import BaseOperatorLink

from mlspec.inference_protocol import model_url


def _returned(ti_key) -> dict:
    from airflow.sdk.execution_time.xcom import XCom

    value = XCom.get_value(ti_key=ti_key, key="return_value")
    return value if isinstance(value, dict) else {}


class EndpointLink(BaseOperatorLink):
    name = "Model endpoint"

    def get_link(self, operator, *, ti_key) -> str:
        deployed = _returned(ti_key)
        if not deployed.get("endpoint_url"):
            return ""
        return model_url(deployed["endpoint_url"], deployed["served_model_name"])


class RegistryLink(BaseOperatorLink):
    """The registry's page of the registered version (the MLflow UI's model version page)."""

    name = "Registry entry"

    def get_link(self, operator, *, ti_key) -> str:
        url = _returned(ti_key).get("url", "")
        return url if url.startswith(("http://", "https://")) else ""


def registry_links(spec) -> tuple[BaseOperatorLink, ...]:
    """The register task's links: the registry entry when the registry is a server named by a connection
    (MLflow's UI is the server's URL, or the connection's extra ``ui_url``; Kubeflow's API), none for the
    embedded MLflow, which has no UI: Airflow shows an "Extra Links" heading for every link a task
    declares, even one without a URL."""
    return (RegistryLink(),) if spec.registry.connection else ()

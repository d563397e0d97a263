"""Registers mlspec with Airflow: the operator links shown on deploy and register task instances."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from mlspec.links import EndpointLink, RegistryLink


class MlspecPlugin(AirflowPlugin):
    name = "mlspec"
    operator_extra_links = [EndpointLink(), RegistryLink()]

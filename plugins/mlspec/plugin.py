"""Registers mlspec with Airflow: the operator links shown on deploy and register task instances, and the
Models page (mlspec.ui): an app the api-server serves under /mlspec, a "Models" entry in the navigation and
a "Model" tab on each DAG's page."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from mlspec.links import EndpointLink, RegistryLink
from mlspec.ui import EXTERNAL_VIEWS, FASTAPI_APPS


class MlspecPlugin(AirflowPlugin):
    name = "mlspec"
    operator_extra_links = [EndpointLink(), RegistryLink()]
    fastapi_apps = FASTAPI_APPS
    external_views = EXTERNAL_VIEWS

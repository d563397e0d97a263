"""The Models page inside Airflow's UI: an app the api-server serves under /mlspec (mlspec.ui.app), a
"Models" entry in the navigation and a "Model" tab on each DAG's page (the plugin's external_views).

Importing this package is cheap: the plugin is loaded by every Airflow process, and only the api-server
ever calls the app, which imports FastAPI and the page code on its first request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlspec.ui.mount import URL_PREFIX

# Airflow 3 external views: `href` is loaded in an iframe under Airflow's navigation; a "dag" view's
# {DAG_ID} is filled in with the DAG whose page shows the tab.
EXTERNAL_VIEWS = [
    {
        "name": "Models",
        "href": f"{URL_PREFIX}/",
        "icon": f"{URL_PREFIX}/icon.svg",
        "destination": "nav",
        "url_route": "models",
        "nav_top_level": True,
    },
    {
        "name": "Model",
        "href": f"{URL_PREFIX}/dag/{{DAG_ID}}",
        "destination": "dag",
        "url_route": "model",
    },
]


class LazyApp:
    """An ASGI app built by `factory` on its first request (so FastAPI is imported by the api-server only)."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._app: Any = None

    async def __call__(self, scope, receive, send) -> None:
        if self._app is None:
            self._app = self._factory()
        await self._app(scope, receive, send)


def _airflow_app() -> Any:
    from mlspec.ui.app import airflow_app

    return airflow_app()


models_app = LazyApp(_airflow_app)
FASTAPI_APPS = [{"app": models_app, "url_prefix": URL_PREFIX, "name": "mlspec models"}]

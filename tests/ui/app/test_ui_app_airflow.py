"""The Models page as Airflow's api-server serves it: the plugin's app mounted under /mlspec, the Airflow login
required, the navigation entry and the DAG tab valid for Airflow's UI."""

from __future__ import annotations

import pytest


def test_the_plugin_declares_a_nav_entry_a_dag_tab_and_the_app():
    from airflow.api_fastapi.app import RESERVED_URL_PREFIXES
    from airflow.api_fastapi.core_api.datamodels.plugins import ExternalViewResponse

    from mlspec.plugin import MlspecPlugin
    from mlspec.ui import LazyApp

    views = {view["destination"]: ExternalViewResponse.model_validate(view) for view in MlspecPlugin.external_views}
    assert views["nav"].name == "Models" and views["nav"].href == "/mlspec/" and views["nav"].nav_top_level
    assert views["dag"].name == "Model" and views["dag"].href == "/mlspec/dag/{DAG_ID}"
    assert views["nav"].url_route != views["dag"].url_route
    (app,) = MlspecPlugin.fastapi_apps
    assert app["url_prefix"] == "/mlspec" and not app["url_prefix"].startswith(tuple(RESERVED_URL_PREFIXES))
    assert isinstance(app["app"], LazyApp)


def test_importing_the_plugin_does_not_import_fastapi_or_the_pages():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import mlspec.plugin\n"
        "loaded = [m for m in ('fastapi', 'mlspec.ui.app', 'mlspec.ui.pages', 'mlflow', 'matplotlib') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def airflow_api(airflow_db, tmp_path_factory):
    """Airflow's own api-server app (as `airflow api-server` builds it), with the plugins of plugins/."""
    from fastapi.testclient import TestClient

    specs = tmp_path_factory.mktemp("airflow-api-specs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLSPEC_SPECS_DIR", str(specs))
        patch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "mlspec-ui-test-secret-" + "0123456789abcdef" * 4)
        from airflow.api_fastapi.app import create_app, get_auth_manager

        with TestClient(create_app()) as client:
            yield client, get_auth_manager(), specs


def test_airflow_serves_the_page_to_a_logged_in_user_only(airflow_api):
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    client, manager, specs = airflow_api
    refused = client.get("/mlspec/")
    assert refused.status_code == 401 and "Log in to Airflow" in refused.text
    assert client.get("/mlspec/icon.svg").headers["content-type"].startswith("image/svg+xml")

    token = manager.generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    (specs / "broken.yaml").write_text("apiVersion: mlspec/v1\nkind: ModelSpec\nmetadata: {name: ui-airflow-broken}\n")
    for headers, cookies in (({"Authorization": f"Bearer {token}"}, {}), ({}, {"_token": token})):
        client.cookies.clear()
        client.cookies.update(cookies)
        page = client.get("/mlspec/", headers=headers)
        assert page.status_code == 200, page.text[-2000:]
        assert "<h1>Models</h1>" in page.text and "ui-airflow-broken" in page.text
        # Links stay under the mount point, where Airflow's iframe loads them.
        assert 'href="/mlspec/' in page.text or "ui-airflow-broken" in page.text
        tab = client.get("/mlspec/dag/ui-airflow-broken", headers=headers)
        assert tab.status_code == 200 and "does not compile" in tab.text
    client.cookies.clear()
    viewer = manager.generate_jwt(SimpleAuthManagerUser(username="nobody", role=None))
    hidden = client.get("/mlspec/", headers={"Authorization": f"Bearer {viewer}"})
    assert hidden.status_code == 200 and "ui-airflow-broken" not in hidden.text  # no DAG read access, no model

"""The first screen after login, in a real browser against a real local Airflow (started as `make up` does).

A user lands on the home page: no import error may be shown there (the duplicate plugin registration
showed "1 Plugin Import Error"), and the DAG list has a DAG for every spec.
"""

from __future__ import annotations

import time

import pytest
from tests.fixtures.airflow_stack import running_stack
from tests.fixtures.browser import (
    chromium_driver,
    login,
    open_ui,
    page_text,
    wait_for_requests,
    wait_for_text,
)
from tests.fixtures.paths import SPECS

from mlspec.dagbag import declared_name, spec_files

pytestmark = [pytest.mark.browser, pytest.mark.airflow_stack]

# The requests the home page answers "Plugin Import Error" / "Dag Import Error" badges from.
IMPORT_ERROR_REQUESTS = ("/api/v2/plugins/importErrors", "/api/v2/importErrors")


def _home_page_text(driver, stack) -> str:
    """The home page's text once its stats, health and import-error answers have been rendered."""
    open_ui(driver, stack, "/")
    wait_for_text(driver, "Active Dags")
    wait_for_text(driver, "Dag Processor")
    wait_for_requests(driver, *IMPORT_ERROR_REQUESTS)
    time.sleep(1.5)  # the answers are in; give React a moment to render them
    return page_text(driver)


def test_home_page_shows_no_import_error(ui_driver, airflow_stack):
    text = _home_page_text(ui_driver, airflow_stack)
    assert "Plugin Import Error" not in text
    assert "Import Error" not in text, text
    # What the page is built from says the same.
    assert airflow_stack.api("GET", "/api/v2/plugins/importErrors")["total_entries"] == 0
    assert airflow_stack.api("GET", "/api/v2/importErrors")["total_entries"] == 0
    mlspec = [p for p in airflow_stack.api("GET", "/api/v2/plugins")["plugins"] if p["name"] == "mlspec"]
    assert len(mlspec) == 1 and "mlspec.plugin:MlspecPlugin" in mlspec[0]["source"]


def test_dag_list_has_a_dag_for_every_spec(ui_driver, airflow_stack):
    expected = {declared_name(path, path.read_text()) for path in spec_files(airflow_stack.specs_dir)}
    assert expected, f"no specs in {airflow_stack.specs_dir}"
    assert expected <= set(airflow_stack.dag_ids())
    open_ui(ui_driver, airflow_stack, "/dags?tags=mlspec")
    wait_for_text(ui_driver, " Dags")
    for dag_id in sorted(expected):
        wait_for_text(ui_driver, dag_id, timeout_s=30)
    listed = set(page_text(ui_driver).splitlines())
    assert expected <= listed, f"not in the DAG list: {sorted(expected - listed)}"


def test_a_duplicate_registration_would_show_on_the_home_page(chromium, tmp_path):
    """The check above can fail: with mlspec found twice (the old setup) the home page shows the error."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    # What scanning plugins/ did: a module in the plugins folder that holds the entry point's plugin class.
    (plugins / "mlspec_again.py").write_text("from mlspec.plugin import MlspecPlugin  # noqa: F401\n")
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "iris.yaml").write_text((SPECS / "iris.yaml").read_text())  # `up` waits for a DAG to be listed
    with running_stack(
        tmp_path / "stack", specs, {"AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins)}, with_server=False
    ) as stack:
        with chromium_driver(chromium, tmp_path / "chromium") as driver:
            login(driver, stack)
            assert "Plugin Import Error" in _home_page_text(driver, stack)

"""The Models page in a real browser against a real local Airflow (started as `make up` does): after two runs
of iris-forest a user opens Models from the navigation, the model, and a model card, and sees the registry's
numbers; the DAG's "Model" tab shows the same model."""

from __future__ import annotations

import time

import pytest
from tests.fixtures.browser import open_ui, page_text, wait_for_text

pytestmark = [pytest.mark.browser, pytest.mark.airflow_stack]

MODEL = "iris-forest"


@pytest.fixture(scope="module")
def two_runs(ui_driver, airflow_stack):
    """Two manual runs of iris-forest through the stack's scheduler; the registry of the stack afterwards."""
    started = time.monotonic()
    runs = [airflow_stack.trigger(MODEL) for _ in range(2)]
    for run_id in runs:
        state = airflow_stack.wait_for_run(MODEL, run_id, timeout_s=900)
        assert state == "success", airflow_stack.task_states(MODEL, run_id)
    print(f"two runs of {MODEL} through the scheduler took {time.monotonic() - started:.0f} s")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLSPEC_HOME", str(airflow_stack.mlspec_home))  # the stack's embedded MLflow
        from mlspec.registry.mlflow_registry import MlflowRegistry

        registry = MlflowRegistry(None)
        production = registry.production_version(MODEL)
        latest = registry.latest_version(MODEL)
        records = {n: registry.version_record(MODEL, n) for n in range(1, latest + 1)}
    assert production is not None and latest >= 2
    return production, records


def in_frame(driver, timeout_s: float = 60):
    """Switch into the plugin's iframe once it is there."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout_s
    while not driver.find_elements(By.TAG_NAME, "iframe"):
        if time.monotonic() > deadline:
            pytest.fail(f"no iframe on {driver.current_url}:\n{page_text(driver)[:2000]}")
        time.sleep(0.3)
    driver.switch_to.frame(driver.find_element(By.TAG_NAME, "iframe"))


def metric_cells(driver, css: str) -> dict[str, float]:
    from selenium.webdriver.common.by import By

    return {
        cell.get_attribute("data-metric"): float(cell.get_attribute("data-value"))
        for cell in driver.find_elements(By.CSS_SELECTOR, f"{css} td[data-metric]")
    }


def test_models_page_from_the_navigation_to_a_model_card(ui_driver, airflow_stack, two_runs):
    from selenium.webdriver.common.by import By

    production, records = two_runs
    driver = ui_driver
    open_ui(driver, airflow_stack, "/")
    wait_for_text(driver, "Active Dags")
    nav = driver.find_elements(By.CSS_SELECTOR, "a[href$='/plugin/models']")
    assert nav, f"no Models entry in the navigation:\n{page_text(driver)[:2000]}"
    assert "Models" in nav[0].text
    nav[0].click()
    in_frame(driver)
    try:
        wait_for_text(driver, "Production is what the registry says")
        row = driver.find_element(By.CSS_SELECTOR, f"tr[data-model='{MODEL}']")
        assert f"version {production}" in row.find_element(By.CSS_SELECTOR, "[data-field=production]").text
        assert f"version {production}" in row.find_element(By.CSS_SELECTOR, "[data-field=serving]").text
        row.find_element(By.LINK_TEXT, MODEL).click()

        wait_for_text(driver, "over versions")
        assert "in sync" in driver.find_element(By.ID, "status").text
        for number, record in records.items():
            shown = metric_cells(driver, f"#versions tr[data-version='{number}']")
            assert shown == record.metrics, number
            state = driver.find_element(By.CSS_SELECTOR, f"#versions tr[data-version='{number}'] [data-state]")
            assert state.get_attribute("data-state") == record.state
        points = driver.find_elements(By.CSS_SELECTOR, "#metric-chart g.point")
        assert len(points) == len(records)
        driver.find_element(By.LINK_TEXT, f"version {production}").click()

        wait_for_text(driver, "Lineage")
        record = records[production]
        assert metric_cells(driver, "#metrics") == record.metrics
        assert record.run_id in driver.find_element(By.ID, "lineage").text
        assert "curl" in driver.find_element(By.ID, "curl").text
        # How it reached production (the audit trail), and what it was trained with (its tracking run).
        story = driver.find_element(By.ID, "production-story").text
        assert story.startswith("Promoted by the pipeline run "), story
        promotions = driver.find_elements(By.CSS_SELECTOR, f"#audit-trail tr[data-action='promote'][data-to='{production}']")
        assert promotions and record.run_id in promotions[0].find_element(By.CSS_SELECTOR, "[data-field=run]").text
        run_link = promotions[0].find_element(By.CSS_SELECTOR, "[data-field=run] a")
        assert f"/dags/{MODEL}/runs/" in run_link.get_attribute("href") and run_link.get_attribute("target") == "_top"
        settings = {c.get_attribute("data-setting"): c.text for c in driver.find_elements(By.CSS_SELECTOR, "#settings [data-setting]")}
        assert settings.get("estimator") == "random_forest" and settings.get("params.n_estimators") == "100", settings
        images = driver.find_elements(By.CSS_SELECTOR, "#plots img")
        assert {img.get_attribute("data-file") for img in images} == {"confusion_matrix.png", "training_curves.png"}
        deadline = time.monotonic() + 30
        while not all(driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", i) for i in images):
            assert time.monotonic() < deadline, "the plots did not load"
            time.sleep(0.3)
    finally:
        driver.switch_to.default_content()
    # Airflow's address follows the page inside it, so a model card can be bookmarked and shared.
    assert driver.current_url.endswith(f"/plugin/models/mlspec/models/{MODEL}/versions/{production}")


def test_the_dag_page_has_a_model_tab(ui_driver, airflow_stack, two_runs):
    from selenium.webdriver.common.by import By

    production, records = two_runs
    driver = ui_driver
    open_ui(driver, airflow_stack, f"/dags/{MODEL}")
    wait_for_text(driver, "Model")
    tabs = [a for a in driver.find_elements(By.CSS_SELECTOR, "a[href$='/plugin/model']") if a.text.strip() == "Model"]
    assert tabs, f"no Model tab on the DAG page:\n{page_text(driver)[:2000]}"
    tabs[0].click()
    in_frame(driver)
    try:
        wait_for_text(driver, "over versions")
        assert f"version {production}" in driver.find_element(By.ID, "status").text
        assert metric_cells(driver, f"#versions tr[data-version='{production}']") == records[production].metrics
    finally:
        driver.switch_to.default_content()

"""A version's data lineage, data checks and changed classes (issue 14) in a real browser: headless Chromium on
the Models app (uvicorn in this process) over a real store and embedded MLflow registry, no Airflow. The first
screen of the version's page shows the digest, a drifted column's row and "classes added", and no error."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.fixtures.browser import page_text, wait_for_text
from tests.fixtures.server_testkit import RunningServer
from tests.ui.app.ui_lineage_testkit import DIGEST, NAME, publish_versions

from mlspec.ui import data

pytestmark = [pytest.mark.browser]


@pytest.fixture(scope="module")
def models_app(browser, tmp_path_factory) -> Iterator[str]:
    """The Models app's URL, serving `ui-lineage` (ui_lineage_testkit); `browser` first, so it skips early."""
    from mlspec.ui.app import create_app

    home = tmp_path_factory.mktemp("ui-lineage-browser-home")
    specs = tmp_path_factory.mktemp("ui-lineage-browser-specs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLSPEC_HOME", str(home))
        patch.setenv("MLSPEC_SPECS_DIR", str(specs))
        patch.setenv("MLSPEC_SPEC_CACHE", str(home / "spec-cache"))
        patch.setattr(data, "_served_version", lambda spec, timeout_s: 2)
        publish_versions(specs)
        server = RunningServer(create_app(timeout_s=20))
        try:
            yield server.url
        finally:
            server.stop()


def test_the_version_page_shows_its_data_lineage_drift_and_classes_added(browser, models_app):
    from selenium.webdriver.common.by import By

    browser.get(f"{models_app}/models/{NAME}/versions/2")
    wait_for_text(browser, "Data checks", timeout_s=30)
    assert not browser.find_elements(By.ID, "backend-problems"), page_text(browser)[:2000]
    text = page_text(browser)
    assert "Traceback" not in text and "Internal Server Error" not in text
    digest = browser.find_element(By.CSS_SELECTOR, "#data-lineage [data-field=digest]")
    assert digest.text == DIGEST and digest.is_displayed()
    drifted = browser.find_element(By.CSS_SELECTOR, "#drift tr.drifted[data-column=body_mass_g]")
    assert drifted.is_displayed() and drifted.text.split() == ["body_mass_g", "drift", "ks", "0.00012", "0.05", "yes"]
    assert "classes added: Chinstrap" in browser.find_element(By.ID, "class-changes").text
    plot = browser.find_element(By.ID, "drift-plot")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", plot) == 1  # served and decoded

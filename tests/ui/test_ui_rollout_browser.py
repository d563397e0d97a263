"""A rollout's timeline (issue 16) in a real browser: headless Chromium on the Models app (uvicorn in this process)
over a real store and the embedded MLflow registry, the rollout record written through the registry. The model's
page marks the version under rollout; its card shows the state and each step's gates; the record's user text
runs nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.fixtures.browser import page_text, wait_for_text
from tests.fixtures.server_testkit import RunningServer
from tests.ui.app.ui_rollout_testkit import HOSTILE_ACTOR, NAME, publish_versions

from mlspec.ui import data

pytestmark = [pytest.mark.browser]


@pytest.fixture(scope="module")
def models_app(browser, tmp_path_factory) -> Iterator[str]:
    """The Models app's URL, serving `ui-rollout` (ui_rollout_testkit); `browser` first, so it skips early."""
    from mlspec.ui.app import create_app

    home = tmp_path_factory.mktemp("ui-rollout-browser-home")
    specs = tmp_path_factory.mktemp("ui-rollout-browser-specs")
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


def test_the_model_page_marks_the_rollout_and_the_card_shows_its_timeline(browser, models_app):
    from selenium.webdriver.common.by import By

    browser.get(f"{models_app}/models/{NAME}")
    wait_for_text(browser, "Versions (3)", timeout_s=30)
    mark = browser.find_element(By.CSS_SELECTOR, "#versions tr[data-version='3'] [data-rollout-state=held]")
    assert mark.is_displayed() and mark.text == "rollout: held"
    browser.find_element(By.CSS_SELECTOR, "[data-field=rollout-timeline]").click()
    wait_for_text(browser, "Rollout", timeout_s=30)
    assert not browser.find_elements(By.ID, "backend-problems"), page_text(browser)[:2000]
    timeline = browser.find_element(By.ID, "rollout-timeline")
    assert timeline.is_displayed()
    rows = timeline.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert [r.get_attribute("data-outcome") for r in rows] == ["passed", "paused", "resumed", "failed"]
    failed = rows[-1].find_element(By.CSS_SELECTOR, "li[data-gate=agreement]")
    assert failed.get_attribute("data-passed") == "false" and " ".join(failed.text.split()) == "agreement 0.62 ≥ 0.95 failed"
    assert rows[2].find_element(By.CSS_SELECTOR, "[data-field=by]").text == HOSTILE_ACTOR  # shown, not run
    assert not browser.find_elements(By.CSS_SELECTOR, "img[src=x]")
    assert browser.execute_script("return document.scripts.length") == 0

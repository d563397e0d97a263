"""The Models page on a fresh MLSPEC_HOME, before any run, opened by many people at once: it reads the
registry and never creates it, so no page shows "registry unavailable" (issue 17)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.ui.app.ui_app_testkit import Page, forest_spec

MODELS = 8  # the overview checks up to 8 models at once
LOADS = 16


@pytest.fixture
def fresh_specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, closed_port: int) -> Path:
    monkeypatch.setenv("MLSPEC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLSPEC_SERVER_URL", f"http://127.0.0.1:{closed_port}")  # no model server yet
    specs = tmp_path / "specs"
    specs.mkdir()
    for i in range(1, MODELS + 1):
        (specs / f"fresh-{i}.yaml").write_text(forest_spec(f"fresh-{i}"))
    monkeypatch.setenv("MLSPEC_SPECS_DIR", str(specs))
    return tmp_path / "home"


def test_sixteen_concurrent_models_page_loads_on_a_fresh_home(fresh_specs: Path) -> None:
    from fastapi.testclient import TestClient

    from mlspec.ui.app import create_app

    with TestClient(create_app(timeout_s=60)) as client:
        with ThreadPoolExecutor(max_workers=LOADS) as pool:
            responses = list(pool.map(lambda _: client.get("/"), range(LOADS)))
        model_page = client.get("/models/fresh-1")

    assert [r.status_code for r in responses] == [200] * LOADS
    for response in responses:
        page = Page(response.text)
        assert len(page.find(data_field="production")) == MODELS, response.text[-2000:]
        assert "registry unavailable" not in page.text(), page.text()[:3000]
    assert model_page.status_code == 200
    text = Page(model_page.text).text()
    assert "registry unavailable" not in text and "No version yet" in text, text[:3000]
    # Reading created nothing: the first run's task creates the database, under its lock.
    assert not (fresh_specs / "mlflow" / "mlflow.db").exists()

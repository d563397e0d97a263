"""The Models app and the specs folder (issue 17): a spec that takes long to check never ties a page up
(adversarial finding 4), a spec is checked once per text, failures included, and bad paths answer a 404 page.

No backend is needed: the folders here hold no spec that compiles, or only ones whose backends are absent."""

from __future__ import annotations

import time

import pytest
from tests.ui.app.ui_app_testkit import Page, forest_spec, slow_spec

from mlspec.ui import data


@pytest.fixture
def specs(tmp_path, monkeypatch):
    folder = tmp_path / "specs"
    folder.mkdir()
    monkeypatch.setenv("MLSPEC_SPECS_DIR", str(folder))
    monkeypatch.setenv("MLSPEC_SPEC_CACHE", str(tmp_path / "spec-cache"))
    return folder


@pytest.fixture
def client(specs):
    from fastapi.testclient import TestClient

    from mlspec.ui.app import create_app

    with TestClient(create_app(timeout_s=5)) as test_client:
        yield test_client


def load(client, path: str = "/", status: int = 200) -> tuple[Page, float]:
    started = time.monotonic()
    response = client.get(path)
    elapsed = time.monotonic() - started
    assert response.status_code == status, response.text[-3000:]
    assert response.headers["content-type"].startswith("text/html")
    return Page(response.text), elapsed


def problems_of(page: Page, dag_id: str) -> list[str]:
    """The problems the "Specs with errors" panel lists for one DAG."""
    import re

    (entry,) = re.findall(rf'<div class="broken-spec"[^>]*data-dag-id="{re.escape(dag_id)}">.*?</div>', page.html, flags=re.S)
    return [li["text"] for li in Page(entry).find() if li["tag"] == "li"]


def test_a_spec_that_takes_minutes_to_check_ties_up_no_page_and_is_checked_once(specs, client, monkeypatch):
    """Adversarial finding 4: a 24 KB tuned spec took 73 s to lint and 90 s per page load, on every load."""
    from mlspec.spec import SpecError, load_spec
    from mlspec.spec import cache as spec_cache

    monkeypatch.setenv("MLSPEC_SPEC_TIME_BUDGET_S", "2")
    slow = slow_spec("slow-tuned")
    assert 20_000 < len(slow.encode()) < 30_000
    (specs / "slow.yaml").write_text(slow)
    (specs / "typo.yaml").write_text(forest_spec("typo").replace("n_estimators: 100", "n_estimatorz: 100"))
    before = getattr(data, "check_runs", 0)

    page, elapsed = load(client)
    assert elapsed < 20, f"the first load took {elapsed:.1f} s"
    assert "checking this spec took more than 2 s (its time budget)" in " ".join(problems_of(page, "slow-tuned"))
    with pytest.raises(SpecError) as raised:
        load_spec(specs / "typo.yaml")
    assert problems_of(page, "typo") == [str(p) for p in raised.value.problems]  # what `mlspec lint` says
    assert data.check_runs == before + 1  # both in one bounded check
    # The DAG processor skips it too (the same record compile_specs keeps of specs that ran over).
    assert spec_cache.get_overrun(slow, 600) is not None

    for path in ("/dag/slow-tuned", "/dag/typo", "/models/typo", "/"):  # nothing is checked again, failures neither
        again, elapsed = load(client, path, 404 if path.startswith("/models/") else 200)
        assert elapsed < 5, (path, elapsed)
    assert data.check_runs == before + 1
    assert problems_of(again, "typo") == problems_of(page, "typo")

    # An edit is a new text: checked again, once.
    (specs / "typo.yaml").write_text(forest_spec("typo").replace("n_estimators: 100", "n_estimatorzz: 100"))
    page, _ = load(client)
    assert "n_estimatorzz" in " ".join(problems_of(page, "typo"))
    assert data.check_runs == before + 2
    load(client)
    assert data.check_runs == before + 2


def test_concurrent_first_loads_share_one_check(specs, client):
    from concurrent.futures import ThreadPoolExecutor

    (specs / "typo.yaml").write_text(forest_spec("typo2").replace("n_estimators: 100", "n_estimatorz: 100"))
    before = getattr(data, "check_runs", 0)
    with ThreadPoolExecutor(8) as pool:
        pages = list(pool.map(lambda _: load(client)[0], range(8)))
    assert data.check_runs == before + 1
    assert all(problems_of(page, "typo2") == problems_of(pages[0], "typo2") for page in pages)

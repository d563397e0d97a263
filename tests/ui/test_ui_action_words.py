"""People read words, not action codes (issue 17, review item 15): every audit action has words in one place
(mlspec.registry.base.ACTION_WORDS), and the Models list, the audit timeline and a version's story show them,
while data-action attributes (and `mlspec history --json`) keep the raw code."""

from __future__ import annotations

import pytest
from tests.fixtures.paths import SPECS
from tests.ui.app.ui_app_testkit import Page

from mlspec.registry.base import ACTION_WORDS, AUDIT_ACTIONS, ProductionChange


def test_every_audit_action_has_words():
    assert set(ACTION_WORDS) == set(AUDIT_ACTIONS)
    assert all(words and "_" not in words for words in ACTION_WORDS.values()), ACTION_WORDS


def _status(changes: list[ProductionChange], production: int | None):
    from mlspec.spec import load_spec
    from mlspec.ui import data

    spec = load_spec(SPECS / "iris-forest.yaml")
    versions = [data.VersionInfo(n, registered=True, in_store=True, state="", spec_hash=spec.spec_hash) for n in (1, 2, 3)]
    return data.ModelStatus(spec, production=production, versions=versions, changes=changes, changes_ok=True,
                            registry_ok=True, store_ok=True)


def _change(action: str, before: int | None, after: int | None, hour: int) -> ProductionChange:
    return ProductionChange(at=f"2026-12-08T{hour:02d}:00:00Z", actor="alice", action=action, from_version=before,
                            to_version=after, reason="because", run_id="manual__1")


@pytest.mark.parametrize("action", AUDIT_ACTIONS)
def test_the_timeline_and_the_models_list_show_words_and_keep_the_code_in_data_action(action):
    from mlspec.ui import pages

    status = _status([_change(action, 1, 2, 9)], production=2)
    trail = Page(pages.audit_timeline("/mlspec", status))
    (row,) = [el for el in trail.find() if el["tag"] == "tr" and "data-action" in el["attrs"]]
    assert row["attrs"]["data-action"] == action
    (cell,) = trail.find(data_field="action")
    assert cell["text"] == ACTION_WORDS[action]
    last = Page("<p>" + pages._last_change(status) + "</p>").text()
    assert f"{ACTION_WORDS[action]} by alice" in last
    if "_" in action:
        assert action not in trail.text() and action not in last


def test_a_versions_story_says_in_words_how_it_stopped_being_production():
    from mlspec.ui import pages

    status = _status([_change("promote", None, 2, 8), _change("auto_rollback", 2, 1, 9)], production=1)
    story = Page("<p>" + pages.production_story("/mlspec", status, status.version(2), 2) + "</p>").text()
    assert "It stopped being production on 2026-12-08 09:00 UTC: restored automatically to v1 by alice" in story
    assert "auto_rollback" not in story

    status = _status([_change("promote", None, 2, 8), _change("undeploy", 2, None, 9)], production=None)
    story = Page("<p>" + pages.production_story("/mlspec", status, status.version(2), 2) + "</p>").text()
    assert "It stopped being production on 2026-12-08 09:00 UTC: undeployed by alice" in story

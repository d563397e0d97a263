"""The Models page shows a rollout (issue 16) from the candidate's registry record: the versions table marks
the version under rollout, the model's facts name its state and step, and the version card shows the
timeline, one row per step with its traffic, times, requests, each gate's value against its limit, outcome and
who. The record holds user text: it reaches the page as text. A real store and embedded MLflow registry."""

from __future__ import annotations

import re
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from tests.ui.app.ui_app_testkit import get_page
from tests.ui.app.ui_rollout_testkit import (
    COMPLETED,
    ENDED,
    HOSTILE_ACTOR,
    HOSTILE_MESSAGE,
    LEFT_BEHIND,
    NAME,
    publish_model,
    publish_versions,
)

from mlspec.rollout_operations import rollout_status
from mlspec.ui import data
from mlspec.ui.pages import model_section, rollout_section


def tagged(page, tag: str) -> list[dict]:
    return [el for el in page.elements if el["tag"] == tag]


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator[object]:
    from fastapi.testclient import TestClient

    from mlspec.ui.app import create_app

    home = tmp_path_factory.mktemp("ui-rollout-home")
    specs = tmp_path_factory.mktemp("ui-rollout-specs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLSPEC_HOME", str(home))
        patch.setenv("MLSPEC_SPECS_DIR", str(specs))
        patch.setenv("MLSPEC_SPEC_CACHE", str(home / "spec-cache"))
        patch.setattr(data, "_served_version", lambda spec, timeout_s: 2)
        publish_versions(specs)
        with TestClient(create_app(timeout_s=20)) as test_client:
            yield test_client


def test_the_versions_table_marks_the_version_under_rollout(client):
    page = get_page(client, f"/models/{NAME}")
    rows = page.within("versions")
    assert [el["text"] for el in rows.find(data_rollout_state="held")] == ["rollout: held"]
    assert not rows.find(data_rollout_state="completed")  # a finished rollout is no mark
    fact = page.within("status").text()
    assert "rollout: held version 3 against production version 2, now canary 10 %" in fact
    assert page.find(data_field="rollout-timeline")[0]["attrs"]["href"].endswith(f"/models/{NAME}/versions/3#rollout")


def test_the_models_list_marks_a_rollout_under_way(client):
    page = get_page(client, "/")
    (serving,) = page.find(data_field="serving")
    assert " ".join(serving["text"].split()) == "version 2 rollout: held of version 3"


def test_the_card_shows_each_step_with_its_gates(client):
    page = get_page(client, f"/models/{NAME}/versions/3")
    state = page.by_id("rollout-state")
    assert state["attrs"]["data-state"] == "held"
    assert "rollout: held against production version 2" in state["text"] and "a failed gate: hold" in state["text"]
    assert "mlspec rollout" in state["text"] and "--abort" in state["text"]
    timeline = page.within("rollout-timeline")
    rows = tagged(timeline, "tr")
    assert [(r["attrs"].get("data-kind"), r["attrs"].get("data-outcome")) for r in rows[1:]] == [
        ("shadow", "passed"), ("canary", "paused"), ("command", "resumed"), ("canary", "failed")]
    assert [c["text"] for c in timeline.find(data_field="step")][:2] == ["shadow copy of 100 %", "canary 10 %"]
    assert [c["text"] for c in timeline.find(data_field="traffic")][:2] == ["v2 100 % · v3 0 %shadow copy 100 %",
                                                                           "v2 90 % · v3 10 %shadow copy 100 %"]
    requests = [(c["attrs"].get("data-value"), c["text"]) for c in timeline.find(data_field="requests")]
    assert requests == [("240.0", "240"), ("31.0", "31"), (None, "—"), ("212.0", "212")]
    assert timeline.find(data_field="started")[0]["text"] == "2026-12-07 14:00:00 UTC"
    gates = tagged(timeline, "li")
    assert [(g["attrs"]["data-gate"], g["attrs"]["data-passed"]) for g in gates] == [
        ("min_requests", "true"), ("p95_ms", "true"), ("error_rate", "true"), ("agreement", "true"),
        ("min_requests", "true"), ("agreement", "false")]
    assert " ".join(gates[1]["text"].split()) == "p95_ms 3.1 ≤ 250 passed"
    assert " ".join(gates[-1]["text"].split()) == "agreement 0.62 ≥ 0.95 failed"
    assert [c["text"] for c in timeline.find(data_field="by")][1] == "cli:alice"


def test_user_text_in_the_record_reaches_the_page_as_text(client):
    page = get_page(client, f"/models/{NAME}/versions/3")
    timeline = page.within("rollout-timeline")
    assert [c["text"] for c in timeline.find(data_field="by")][2] == HOSTILE_ACTOR
    assert timeline.find(data_field="message")[0]["text"] == HOSTILE_MESSAGE
    assert not tagged(page, "script") and not tagged(page, "img")
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.html


def test_a_finished_rollout_keeps_its_timeline_without_the_commands(client):
    page = get_page(client, f"/models/{NAME}/versions/2")
    state = page.by_id("rollout-state")
    assert state["attrs"]["data-state"] == "completed" and "mlspec rollout" not in state["text"]
    assert [r["attrs"].get("data-outcome") for r in tagged(page.within("rollout-timeline"), "tr")[1:]] == ["passed"]
    assert not page.find(id="rollout-steps-cut")
    assert not get_page(client, f"/models/{NAME}/versions/1").find(id="rollout")  # no rollout: no section


def test_steps_the_registry_cut_to_fit_are_counted():
    html = rollout_section("/mlspec", SimpleNamespace(source_file="x.yaml"), {**COMPLETED, "steps_cut": 3})
    assert '<p class="muted" id="rollout-steps-cut">3 older steps not kept on the record.</p>' in html


def test_the_page_and_mlspec_rollout_status_name_the_same_rollout(client, tmp_path):
    """One definition of a rollout under way (mlspec.rollout.record.active_rollout) for the page and the CLI, on
    a rollout left behind on version 1 under version 2, whose own rollout ended."""
    spec = publish_model(tmp_path, "ui-rollout-left", 2, production=None, rollouts={1: LEFT_BEHIND, 2: ENDED})
    said = rollout_status(spec)
    under_way = said["rollout"]["version"] if said["active"] else None
    status = data.model_status(spec, timeout_s=20)
    assert status.registry_ok and (status.rollout.version if status.rollout else None) == under_way
    html = model_section("/mlspec", status, None)
    marked = [int(v) for v, row in re.findall(r'<tr data-version="(\d+)">(.*?)</tr>', html) if "data-rollout-state" in row]
    assert marked == ([] if under_way is None else [under_way])

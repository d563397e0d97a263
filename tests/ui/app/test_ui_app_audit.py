"""The Models page and the model card against a real embedded MLflow registry and store, built without running
a DAG (issue 17): the production audit trail as a timeline, how a version reached production, the training
settings (tracked runs, a tuned run), links into Airflow, a curl only for what serves, 404 pages, one short line
per model whose backends do not answer here, and everything escaped.

Serving is the one backend replaced: `data._served_version` answers with the version a test names."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.fixtures.paths import SPECS
from tests.registry.mlflow.mlflow_testkit import tiny_onnx_model
from tests.ui.app.ui_app_testkit import Page, forest_spec, get_page

from mlspec.ui import data

NAME = "ui-audit"
RUNS = {1: "manual__2026-12-07T03:00:00+00:00", 2: "manual__2026-12-07T04:00:00+00:00", 3: "scheduled__2026-12-08T00:00:00+00:00"}
SETTINGS = {  # what each run's training logged (version 2 lost with a one-split tree)
    1: {"estimator": "random_forest", "params.n_estimators": 100, "params.max_depth": 6},
    2: {"estimator": "decision_tree", "params.max_depth": 1},
    3: {"estimator": "random_forest", "params.n_estimators": 200, "params.max_depth": 6},
}
SCHEMA = {"name": "input", "datatype": "FP32", "shape": [-1, 4],
          "features": [{"name": f"f{i}", "dtype": "FP32", "min": 0, "max": 1, "mean": 0.5, "std": 0.1, "missing": 0} for i in range(4)]}
CHAMPION = {
    1: {"decision": "no_champion"},
    2: {"decision": "champion_holds", "metric": "accuracy", "challenger": "0.6", "champion": "0.97", "champion_version": "1", "min_delta": "0.0"},
    3: {"decision": "challenger_wins", "metric": "accuracy", "challenger": "0.9868", "champion": "0.9737", "champion_version": "1", "min_delta": "0.0"},
}


@dataclass
class Built:
    specs: Path
    spec: object
    changes: list


def _change(action, before, after, **fields):
    from mlspec.registry.base import ProductionChange

    return ProductionChange(at=fields.pop("at"), actor=fields.pop("actor"), action=action, from_version=before,
                            to_version=after, reason=fields.pop("reason"), **fields)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Iterator[Built]:
    """Versions 1 (promoted by the pipeline), 2 (lost the gate, never production) and 3 (deployed by alice via
    mlspec_operations, then rolled back to 1 by bob from the CLI) of `ui-audit`, each with a tracking run."""
    from mlspec.registry import RegistrationRequest
    from mlspec.registry.mlflow_registry import MlflowRegistry
    from mlspec.spec import load_spec
    from mlspec.storage import open_store
    from mlspec.tracking import open_tracker

    home = tmp_path_factory.mktemp("ui-audit-home")
    specs = tmp_path_factory.mktemp("ui-audit-specs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLSPEC_HOME", str(home))
        patch.setenv("MLSPEC_SPECS_DIR", str(specs))
        patch.setenv("MLSPEC_SPEC_CACHE", str(home / "spec-cache"))
        patch.setenv("MLSPEC_SERVER_URL", "http://127.0.0.1:9")
        (specs / f"{NAME}.yaml").write_text(forest_spec(NAME))
        spec = load_spec(specs / f"{NAME}.yaml")
        store = open_store(spec.storage.uri)
        registry = MlflowRegistry(None)
        for number, run_id in RUNS.items():
            with open_tracker(spec, run_name=run_id, tags={"dag_id": NAME, "airflow_run_id": run_id}) as tracker:
                tracker.log_params({"framework": "sklearn", "task": "classification", "seed": 0, **SETTINGS[number]})
            metrics = {"accuracy": {1: 0.9737, 2: 0.6, 3: 0.9868}[number]}
            published = store.publish_version(NAME, {
                "model.onnx": tiny_onnx_model(float(number)),
                "metrics.json": json.dumps(metrics).encode(),
                "input_schema.json": json.dumps(SCHEMA).encode(),
            }, run_id=f"{NAME}/{run_id}", metadata={"spec_hash": spec.spec_hash, "dag_id": NAME, "data_source": spec.data.source})
            assert published.version == number
            registry.register(RegistrationRequest(
                model_name=NAME, version=number, source_uri=published.uri, model_uri=f"{published.uri}/model.onnx",
                metrics=metrics, data_source=spec.data.source, spec_hash=spec.spec_hash, dag_id=NAME, run_id=run_id,
                onnx_opset=17, framework="sklearn", task="classification", input_schema=SCHEMA, files=dict(published.files),
            ))
            registry.set_state(NAME, number, "candidate", {f"champion.{k}": v for k, v in CHAMPION[number].items()})
        changes = [
            _change("promote", None, 1, at="2026-12-07T03:05:00Z", actor="admin", run_id=RUNS[1],
                    run_url=f"http://localhost:8080/dags/{NAME}/runs/{RUNS[1]}",
                    reason="beat nothing: no production version; smoke test passed"),
            _change("deploy", 1, 3, at="2026-12-08T09:00:00Z", actor="alice", run_id="manual__ops-1",
                    run_url="http://localhost:8080/dags/mlspec_operations/runs/manual__ops-1", reason="deploy version 3"),
            _change("rollback", 3, 1, at="2026-12-08T10:00:00Z", actor="cli:bob", reason="<b>3 answers slowly</b>"),
        ]
        for item in changes:
            registry.set_production(NAME, item.to_version, reason=item.reason)
            registry.record_production_change(NAME, item)
        yield Built(specs, spec, changes)


@pytest.fixture
def client(built, monkeypatch):
    from fastapi.testclient import TestClient

    from mlspec.ui.app import create_app

    monkeypatch.setattr(data, "_served_version", lambda spec, timeout_s: 1)
    with TestClient(create_app(timeout_s=20)) as test_client:
        yield test_client


def test_the_model_page_shows_the_audit_trail_newest_first(client, built):
    page = get_page(client, f"/models/{NAME}")
    trail = page.within("audit-trail")
    rows = [el for el in trail.find() if el["tag"] == "tr" and "data-action" in el["attrs"]]
    assert [(r["attrs"]["data-action"], r["attrs"]["data-from"], r["attrs"]["data-to"]) for r in rows] == [
        ("rollback", "3", "1"), ("deploy", "1", "3"), ("promote", "", "1")]
    assert [c["text"] for c in trail.find(data_field="actor")] == ["cli:bob", "alice", "admin"]
    assert [c["text"] for c in trail.find(data_field="at")] == ["2026-12-08 10:00 UTC", "2026-12-08 09:00 UTC", "2026-12-07 03:05 UTC"]
    assert trail.find(data_field="moved")[0]["text"] == "v3 → v1"
    assert "<b>3 answers slowly</b>" in trail.find(data_field="reason")[0]["text"]  # shown as text, escaped
    assert "<b>3 answers" not in page.html
    links = [a["attrs"]["href"] for a in trail.find(data_field="change-run")]
    assert links == ["/dags/mlspec_operations/runs/manual__ops-1",
                     f"/dags/{NAME}/runs/manual__2026-12-07T03%3A00%3A00%2B00%3A00"]
    assert all(a["attrs"]["target"] == "_top" for a in trail.find(data_field="change-run"))
    assert "v1 → v3 → v1" in page.within("status").text()
    # The overview: one line with the latest change.
    (cell,) = get_page(client, "/").find(data_field="last-change")
    assert "v3 → v1" in cell["text"] and "rolled back by cli:bob" in cell["text"]


def test_each_card_says_how_the_version_reached_production(client, built):
    one = get_page(client, f"/models/{NAME}/versions/1").by_id("production-story")["text"]
    assert one.startswith("Made production again by a rollback (by cli:bob, via the mlspec CLI) on 2026-12-08 10:00 UTC, replacing v3")
    assert "2026-12-08 10:00 UTC" in one and "production 2 times" in one
    three = get_page(client, f"/models/{NAME}/versions/3")
    story = three.by_id("production-story")["text"]
    assert story.startswith("Deployed by alice via mlspec_operations run manual__ops-1 on 2026-12-08 09:00 UTC, replacing v1")
    assert "It stopped being production on 2026-12-08 10:00 UTC: rolled back to v1 by cli:bob" in story
    marked = [r["attrs"]["data-action"] for r in three.within("audit-trail").find() if r["attrs"].get("class") == "this-version"]
    assert marked == ["rollback", "deploy"]
    two = get_page(client, f"/models/{NAME}/versions/2").by_id("production-story")["text"]
    assert two.startswith("Never production: the champion gate kept it as a candidate (lost to production (accuracy 0.6 vs v1 0.97))")


def test_a_promoted_version_says_which_run_promoted_it_and_what_it_beat(built, monkeypatch):
    """The promote wording, on a status built from the registry's own records (no second fixture needed)."""
    from mlspec.ui import pages

    status = data.model_status(built.spec, 20)
    status.changes = [built.changes[0]]
    info = status.version(1)
    info.champion = dict(CHAMPION[3], champion_version="7")
    text = Page("<p>" + pages.production_story("/mlspec", status, info, 1) + "</p>").text()
    assert text.startswith(f"promoted by the pipeline run {RUNS[1]} on 2026-12-07 03:05 UTC (triggered by admin) "
                           "after beating v7 on accuracy (0.9868 vs 0.9737)")


def test_the_card_shows_the_training_settings_beside_production(client, built):
    page = get_page(client, f"/models/{NAME}/versions/2")
    settings = page.within("settings")
    mine = {c["attrs"]["data-setting"]: c["text"] for c in settings.find() if "data-setting" in c["attrs"]}
    theirs = {c["attrs"]["data-production-setting"]: c["text"] for c in settings.find() if "data-production-setting" in c["attrs"]}
    assert mine["estimator"] == "decision_tree" and mine["params.max_depth"] == "1" and mine["params.n_estimators"] == "—"
    assert theirs["estimator"] == "random_forest" and theirs["params.n_estimators"] == "100"
    differs = {c["attrs"]["data-production-setting"] for c in settings.find() if "differs" in c["attrs"].get("class", "")}
    assert differs == {"estimator", "params.max_depth", "params.n_estimators"}
    assert "logged by its training run" in page.text() and "production (version 1)" in settings.text()
    assert [c["attrs"]["data-setting"] for c in settings.find() if "data-setting" in c["attrs"]][0] == "estimator"


def test_a_tuned_version_shows_the_winning_trial(built, monkeypatch):
    from mlspec.spec import load_spec
    from mlspec.ui import pages

    spec = load_spec(SPECS / "iris-tuned.yaml")
    info = data.VersionInfo(1, registered=True, in_store=True, state="production", spec_hash=spec.spec_hash, best_trial="2",
                            best_params={"training.optimizer.learning_rate": 0.0123, "model.layers[0].dense.units": 32})
    status = data.ModelStatus(spec, production=1, versions=[info], registry_ok=True, changes_ok=True)
    card = data.VersionCard(status, 1, info)
    card.settings = data.training_settings(spec, info, "", 5, card.problems)
    page = Page(pages.card_page("", card, None, None))
    settings = {c["attrs"]["data-setting"]: c["text"] for c in page.within("settings").find() if "data-setting" in c["attrs"]}
    assert settings["epochs"] == "40" and settings["batch_size"] == "16" and settings["optimizer.learning_rate"] == "0.01"
    assert settings["trial.training.optimizer.learning_rate"] == "0.0123"
    assert "trial 2 won" in page.by_id("tuned")["text"] and "model.layers[0].dense.units = 32" in page.by_id("tuned")["text"]


def test_links_into_airflow(client, built):
    page = get_page(client, f"/models/{NAME}/versions/2")
    (run,) = [a for a in page.within("lineage").find() if a["tag"] == "a" and a["attrs"].get("data-field") == "run-link"]
    assert run["attrs"]["href"] == f"/dags/{NAME}/runs/manual__2026-12-07T04%3A00%3A00%2B00%3A00" and run["text"] == RUNS[2]
    assert run["attrs"]["target"] == "_top"
    assert page.within("lineage").find(data_field="trigger")[0]["attrs"]["href"] == f"/dags/{NAME}"
    assert page.within("lineage").find(data_field="operations")[0]["attrs"]["href"] == "/dags/mlspec_operations"
    model = get_page(client, f"/models/{NAME}")
    status = model.within("status")
    assert status.find(data_field="trigger")[0]["attrs"]["href"] == f"/dags/{NAME}"
    assert status.find(data_field="operations")[0]["attrs"]["href"] == "/dags/mlspec_operations"
    versions = model.within("versions")
    assert {a["attrs"]["href"] for a in versions.find(data_field="run-link")} == {
        f"/dags/{NAME}/runs/{r.replace(':', '%3A').replace('+', '%2B')}" for r in RUNS.values()}
    assert get_page(client, "/").find(data_field="operations")[0]["attrs"]["href"] == "/dags/mlspec_operations"


def test_links_follow_airflow_under_a_sub_path(built, monkeypatch):
    from fastapi.testclient import TestClient

    from mlspec.ui.app import create_app

    monkeypatch.setattr(data, "_served_version", lambda spec, timeout_s: 1)
    client = TestClient(create_app(timeout_s=20), root_path="/airflow/mlspec")
    page = get_page(client, f"/models/{NAME}")
    assert page.within("status").find(data_field="trigger")[0]["attrs"]["href"] == f"/airflow/dags/{NAME}"


def test_a_curl_only_for_what_serves_and_how_to_deploy_the_others(client, built):
    served = get_page(client, f"/models/{NAME}/versions/1")
    command = shlex.split(served.by_id("curl")["text"])
    assert command[command.index("-X") + 2] == f"http://127.0.0.1:9/v2/models/{NAME}/infer"
    for number in (2, 3):
        page = get_page(client, f"/models/{NAME}/versions/{number}")
        assert not page.find(id="curl"), number
        hint = page.by_id("deploy-hint")["text"]
        assert f"version {number} is not served: serving answers with version 1" in hint.lower()
        assert f"mlspec deploy {built.specs / (NAME + '.yaml')} --version {number}" in hint
        assert f"model {NAME}, action deploy, version {number}" in hint
    model = get_page(client, f"/models/{NAME}")
    assert "/versions/" not in model.by_id("curl")["text"] and "Serving answers with version 1" in model.text()


def test_the_curl_follows_serving_not_the_registry(built, monkeypatch):
    """Production is v1 but serving answers with v3 (drift): the example request is v3's, at the plain endpoint."""
    from fastapi.testclient import TestClient

    from mlspec.ui.app import create_app

    monkeypatch.setattr(data, "_served_version", lambda spec, timeout_s: 3)
    client = TestClient(create_app(timeout_s=20))
    assert get_page(client, f"/models/{NAME}/versions/3").find(id="curl")
    assert not get_page(client, f"/models/{NAME}/versions/1").find(id="curl")
    monkeypatch.setattr(data, "_served_version", lambda spec, timeout_s: None)
    assert not get_page(client, f"/models/{NAME}").find(id="curl")
    assert "nothing is" in get_page(client, f"/models/{NAME}/versions/1").by_id("deploy-hint")["text"]


@pytest.mark.parametrize(("path", "status", "says"), [
    (f"/models/{NAME}/versions/abc", 404, "'abc' is not a version of"),
    (f"/models/{NAME}/versions/0", 404, "whole numbers from 1"),
    (f"/models/{NAME}/versions/99999999999999999999", 404, "is not a version of"),
    (f"/models/{NAME}/versions/abc/files/model.onnx", 404, "'abc' is not a version of"),
    (f"/models/{NAME}/versions/9", 404, "has no version 9"),
    ("/models/Nobody", 404, "there is no model"),
    ("/nowhere/at/all", 404, "There is no page at /nowhere/at/all"),
    (f"/models/{NAME}/versions/1/extra/bits", 404, "There is no page at"),
])
def test_bad_paths_answer_a_page_that_says_why(client, path, status, says):
    response = client.get(path)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html"), response.text[:300]
    assert says in Page(response.text).text()
    assert '"detail"' not in response.text


def test_a_post_is_answered_with_a_page_too(client):
    response = client.post(f"/models/{NAME}")
    assert response.status_code == 405 and response.headers["content-type"].startswith("text/html")
    assert "read with GET" in Page(response.text).text()


def test_a_model_whose_backends_are_not_here_takes_one_short_line(built, client):
    """specs/digits-s3.yaml (MinIO, the MLflow server) and specs/cifar10.yaml (AWS, Kubeflow, KServe) under a
    plain local setup: about 15 lines of errors each before; one line now, the details behind it."""
    for name in ("digits-s3", "cifar10"):
        (built.specs / f"{name}.yaml").write_text((SPECS / f"{name}.yaml").read_text())
    try:
        page = get_page(client, "/")
        for name in ("digits-s3", "cifar10"):
            (row,) = page.find(data_model=name)
            fragment = Page(page.html[page.html.index(f'data-model="{name}"'):].split("</tr>", 1)[0])
            (notes,) = fragment.find(data_field="notes")
            (summary,) = [el for el in fragment.find() if el["tag"] == "summary"]
            needs = {"digits-s3": "needs-compose-stack", "cifar10": "needs-internet"}[name]  # what its tags say
            assert summary["text"].startswith(f"{needs}: "), summary["text"]
            assert len(summary["text"]) <= len(needs) + 2 + pages_note_limit() + 12, summary["text"]
            assert "\n" not in summary["text"] and "not set up on this machine" in summary["text"]
            # Not an error of ours or of theirs: their connections are not defined here, so nothing was asked.
            details = [li["text"] for li in fragment.find() if li["tag"] == "li"]
            assert details and not any("unavailable" in d for d in details), details
            connection = {"digits-s3": "'mlflow_server'", "cifar10": "'model_registry'"}[name]
            assert any(d.startswith("registry not set up") and connection in d for d in details), details
            assert "not set up here" in fragment.text() and "registry unavailable" not in fragment.text()
    finally:
        for name in ("digits-s3", "cifar10"):
            (built.specs / f"{name}.yaml").unlink()


def pages_note_limit() -> int:
    from mlspec.ui import pages

    return pages.NOTE_CHARS

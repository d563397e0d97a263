"""The registry governs production: a weaker retrain is kept as a candidate while production keeps
serving, a stronger one replaces it, and the two failure stories from the adversarial test end with
the registry's production version serving."""

from __future__ import annotations

import shutil

import httpx
import pytest
from tests.e2e.e2e_testkit import task_states, xcom
from tests.fixtures.paths import SPECS

pytestmark = pytest.mark.e2e

STRONG = "estimator: random_forest\n  params: {n_estimators: 60, max_depth: 6, random_state: 0}"
WEAK = "estimator: decision_tree\n  params: {max_depth: 1, random_state: 0}"


def forest_spec(name: str, model: str = STRONG, extra: str = "") -> str:
    text = (SPECS / "iris-forest.yaml").read_text().replace("name: iris-forest", f"name: {name}")
    text = text.replace("estimator: random_forest\n  params: {n_estimators: 100, max_depth: 6, random_state: 0}", model)
    # A one-split tree scores about 0.6: the thresholds must let it through so the champion gate decides.
    text = text.replace("accuracy: {min: 0.85}", "accuracy: {min: 0.3}").replace("f1: {min: 0.85}", "f1: {min: 0.1}")
    return text + extra


def registry():
    from mlspec.registry.mlflow_registry import MlflowRegistry

    return MlflowRegistry(None)


def served_version(server_url: str, model: str) -> str | None:
    response = httpx.get(f"{server_url}/v2/models/{model}")
    return response.json()["parameters"]["served_version"] if response.status_code == 200 else None


def test_a_weaker_challenger_is_a_candidate_and_production_keeps_serving(run_spec, model_server):
    _, first = run_spec(forest_spec("champ-weak"), "champ-weak")
    assert str(first.state) == "success", task_states(first)
    assert xcom(first, "evaluate")["champion"]["decision"] == "no_champion"

    spec, second = run_spec(forest_spec("champ-weak", WEAK), "champ-weak")
    states = task_states(second)
    assert str(second.state) == "success", states  # green, not failed
    assert states["store"] == states["register"] == "success"
    assert states["deploy"] == states["smoke_test"] == states["promote"] == "skipped"
    verdict = xcom(second, "evaluate")["champion"]
    assert verdict["decision"] == "champion_holds" and verdict["champion_version"] == 1
    assert verdict["challenger"] < verdict["champion"]

    assert served_version(model_server, "champ-weak") == "1"
    assert registry().production_version("champ-weak") == 1
    record = registry().version_record("champ-weak", 2)
    assert record.state == "candidate"
    tags = registry().client.get_model_version("champ-weak", "2").tags
    assert tags["champion.decision"] == "champion_holds" and tags["champion.champion_version"] == "1"
    assert float(tags["champion.champion"]) == pytest.approx(verdict["champion"])

    # The tracking run of the challenger holds both scores.
    from mlspec.tracking import tracking_connection

    client = registry().client
    run = client.get_run(xcom(second, "train")["tracking_run_id"])
    assert run.data.metrics["test_accuracy"] == pytest.approx(verdict["challenger"], abs=1e-6)
    assert run.data.metrics["champion_test_accuracy"] == pytest.approx(verdict["champion"], abs=1e-6)
    assert tracking_connection(spec) is None

    # `mlspec run` shows both scores (the summary the deploy task wrote).
    from mlspec.summary import format_summary, read_summary

    printed = format_summary(read_summary(spec, second.run_id))
    assert "did not beat production" in printed and "production version 1" in printed


def test_an_identical_retrain_is_a_tie_and_production_keeps_serving(run_spec, model_server):
    """min_delta 0, the same data and settings: the same score, so the champion holds (no redeploy)."""
    spec, first = run_spec(forest_spec("champ-tie"), "champ-tie")
    assert str(first.state) == "success", task_states(first)
    assert spec.evaluation.champion.min_delta == 0
    _, second = run_spec(forest_spec("champ-tie"), "champ-tie")
    states = task_states(second)
    assert str(second.state) == "success", states
    assert states["deploy"] == states["smoke_test"] == states["promote"] == "skipped"
    verdict = xcom(second, "evaluate")["champion"]
    assert verdict["decision"] == "tie" and verdict["challenger"] == verdict["champion"]
    assert served_version(model_server, "champ-tie") == "1"
    assert registry().production_version("champ-tie") == 1
    assert registry().version_record("champ-tie", 2).state == "candidate"
    assert registry().client.get_model_version("champ-tie", "2").tags["champion.decision"] == "tie"
    from mlspec.summary import format_summary, read_summary

    assert "tie: the champion holds" in format_summary(read_summary(spec, second.run_id))


def test_a_stronger_challenger_replaces_production(run_spec, model_server):
    _, first = run_spec(forest_spec("champ-strong", WEAK), "champ-strong")
    assert str(first.state) == "success", task_states(first)
    _, second = run_spec(forest_spec("champ-strong", STRONG), "champ-strong")
    assert str(second.state) == "success", task_states(second)
    assert xcom(second, "evaluate")["champion"]["decision"] == "challenger_wins"
    assert served_version(model_server, "champ-strong") == "2"
    assert registry().production_version("champ-strong") == 2
    assert registry().production_history("champ-strong") == [1, 2]
    assert registry().version_record("champ-strong", 1).state == "archived"


IMPOSSIBLE_SMOKE_TEST = "smoke_test: {max_latency_ms: 0.001}\n"


def no_gate(text: str) -> str:
    """The same model again, past the champion gate (a tie keeps the champion): these stories are about deploy."""
    return text.replace("evaluation:\n", "evaluation:\n  champion: null\n")


def test_a_server_that_restarted_on_a_failed_version_is_rolled_back_to_the_registrys(run_spec, model_server):
    # Story 1: the server was killed right after loading a new version and came back serving it,
    # although the registry recorded that version as failed.
    from mlspec.serving.local import LocalServing

    spec, first = run_spec(forest_spec("story-one"), "story-one")
    assert str(first.state) == "success", task_states(first)
    _, failed = run_spec(no_gate(forest_spec("story-one", extra=IMPOSSIBLE_SMOKE_TEST)), "story-one")
    assert task_states(failed)["smoke_test"] == "failed"
    assert served_version(model_server, "story-one") == "1"
    assert registry().version_record("story-one", 2).state == "rolled_back"
    stored = xcom(failed, "store")
    LocalServing(model_server).deploy("story-one", stored["version"], stored["uri"])  # what the restart left
    assert served_version(model_server, "story-one") == "2"

    # The next run's smoke test fails too: the rollback must go to the registry's production
    # version (1), never to whatever the server served (2).
    _, third = run_spec(no_gate(forest_spec("story-one", extra=IMPOSSIBLE_SMOKE_TEST)), "story-one")
    assert task_states(third)["smoke_test"] == "failed"
    assert xcom(third, "deploy")["previous_version"] == 1
    assert served_version(model_server, "story-one") == "1"
    assert registry().production_version("story-one") == 1


def test_a_store_that_lost_its_folders_never_reuses_a_registered_version_number(run_spec, model_server):
    # Story 2: the store lost its version folders; the next model must not become "version 1 again".
    from mlspec.storage import resolve_file_uri

    spec, first = run_spec(forest_spec("story-two"), "story-two")
    assert str(first.state) == "success", task_states(first)
    shutil.rmtree(resolve_file_uri(spec.storage.uri) / "story-two" / "1")

    _, second = run_spec(no_gate(forest_spec("story-two", extra=IMPOSSIBLE_SMOKE_TEST)), "story-two")
    states = task_states(second)
    assert xcom(second, "store")["version"] == 2 and xcom(second, "register")["created"] is True
    assert states["smoke_test"] == "failed"
    # Rolled back to the registry's production version, which the server still holds in memory.
    assert served_version(model_server, "story-two") == "1"
    assert registry().production_version("story-two") == 1
    assert registry().version_record("story-two", 2).state == "rolled_back"

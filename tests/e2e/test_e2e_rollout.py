"""Rollouts through real Airflow runs (dag.test) against the session's `mlspec serve`, with live traffic from a
load generator while each run goes: an agreeing candidate goes 10 -> 50 -> 100 and becomes production, a
weaker one is caught by the shadow agreement gate while production answers every request, and an approval
rejected in Airflow's human-in-the-loop, or left unanswered past its timeout, rolls back.

The tests share one model: version 1 is production (a run without a rollout); the failing scenarios leave it
production, and the one that promotes runs last."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from tests.e2e.e2e_testkit import served_version, task_states, xcom
from tests.fixtures.load_generator import LoadGenerator, tensor_bodies
from tests.fixtures.paths import SPECS

pytestmark = pytest.mark.e2e

NAME = "rollout-iris"
STRONG = "estimator: random_forest\n  params: {n_estimators: 100, max_depth: 6, random_state: 0}"
WEAK = "estimator: decision_tree\n  params: {max_depth: 1, random_state: 0}"
GATES = "  gates: {p95_ms: 500, error_rate: 0.01, agreement: 0.95, min_requests: 15}\n"
# Iris rows as a client sends them: four features, one request each.
BODIES = tensor_bodies(np.random.default_rng(0).uniform(0, 8, size=(150, 4)).astype(np.float32), "input")


def spec_text(model: str = STRONG, rollout: str = "") -> str:
    """iris-forest as NAME; the champion gate off (the same model would tie and keep production)."""
    text = (SPECS / "iris-forest.yaml").read_text().replace("name: iris-forest", f"name: {NAME}")
    text = text.replace(STRONG, model).replace("evaluation:\n", "evaluation:\n  champion: null\n")
    # A one-split tree scores about 0.6: the thresholds must let it through so the rollout decides.
    text = text.replace("accuracy: {min: 0.85}", "accuracy: {min: 0.3}").replace("f1: {min: 0.85}", "f1: {min: 0.1}")
    return text + rollout


def registry():
    from mlspec.registry.mlflow_registry import MlflowRegistry

    return MlflowRegistry(None)


@pytest.fixture(scope="module")
def production_v1(airflow_db, model_server, tmp_path_factory):
    """Version 1 of NAME, production and serving, from a run without a rollout; a specs folder for the runs."""
    from mlspec.compiler import build_dag
    from mlspec.spec import load_spec

    specs = tmp_path_factory.mktemp("rollout-specs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLSPEC_SPECS_DIR", str(specs))

        def run(text: str):
            (specs / f"{NAME}.yaml").write_text(text)
            spec = load_spec(specs / f"{NAME}.yaml")
            return spec, build_dag(spec, spec_text=text).test()

        if registry().production_version(NAME) is None:
            _, first = run(spec_text())
            assert str(first.state) == "success", task_states(first)
        assert served_version(model_server, NAME) == "1"
        yield run


def under_load(model_server: str, work):
    """Run `work` while a load generator sends live requests to the routed endpoint; (its result, the load
    summary with production "1")."""
    with LoadGenerator(model_server, NAME, BODIES, rate=60, workers=2) as load:
        result = work()
    return result, load.summary(production="1")


def test_a_weaker_candidate_is_caught_by_the_shadow_gate_and_production_answers_every_request(production_v1, model_server):
    rollout = "rollout:\n  shadow: {percent: 100, for: 1s}\n  canary: {steps: [10, 50, 100], bake: 1s}\n" + GATES
    (spec, run), summary = under_load(model_server, lambda: production_v1(spec_text(WEAK, rollout)))
    states = task_states(run)
    assert str(run.state) == "failed", states
    assert states["smoke_test"] == "success" and states["rollout"] == "failed", states
    assert states["promote"] == "upstream_failed", states
    version = xcom(run, "store")["version"]
    # Production answered every live request of the run: the candidate only ever saw copies.
    assert summary.ok > 30 and summary.by_status == {200: summary.ok}
    assert summary.by_version == {"1": summary.ok}, summary
    assert served_version(model_server, NAME) == "1" and registry().production_version(NAME) == 1
    found = registry().version_record(NAME, version)
    assert found.state == "rolled_back"
    record = found.rollout
    assert record["state"] == "rolled_back" and record["production"] == 1
    assert [(s["kind"], s["outcome"]) for s in record["steps"]] == [("shadow", "failed"), ("rollback", "failed")]
    agreement = next(c for c in record["steps"][0]["checks"] if c["gate"] == "agreement")
    assert agreement["value"] < 0.95 and not agreement["passed"]
    change = registry().production_changes(NAME)[-1]
    assert change.action == "auto_rollback" and change.to_version == 1 and "agreement" in change.reason


def answer_when_asked(dag_id: str, task_id: str, option: str, user: str, stop: threading.Event) -> None:
    """A person in the Airflow UI: once the task waits for input, answer it through the same function the
    REST API's PATCH .../taskInstances/{task_id}/-1/hitlDetails (and the Required Actions page) runs."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    while not stop.is_set():
        with create_session() as session:
            waiting = (session.query(TaskInstance)
                       .filter(TaskInstance.dag_id == dag_id, TaskInstance.task_id == task_id,
                               TaskInstance.state == TaskInstanceState.AWAITING_INPUT)
                       .one_or_none())
            if waiting is not None:
                update_hitl_detail(dag_id=dag_id, dag_run_id=waiting.run_id, task_id=task_id, map_index=-1,
                                   update_hitl_detail_payload=UpdateHITLDetailPayload(chosen_options=[option]),
                                   user=SimpleAuthManagerUser(username=user, role="admin"), session=session)
                return
        time.sleep(0.5)


def test_an_approval_rejected_in_airflow_rolls_back(production_v1, model_server):
    rollout = ("rollout:\n  canary: {steps: [50, 100], bake: 1s}\n" + GATES
               + "  approval: {required: true, timeout: 1h}\n")
    stop = threading.Event()
    person = threading.Thread(target=answer_when_asked, args=(NAME, "approve_rollout", "Reject", "alice", stop),
                              daemon=True)
    person.start()
    try:
        (spec, run), summary = under_load(model_server, lambda: production_v1(spec_text(STRONG, rollout)))
    finally:
        stop.set()
    states = task_states(run)
    assert str(run.state) == "failed", states
    assert states["rollout"] == "success" and states["approve_rollout"] == "failed", states
    assert states["complete_rollout"] == states["promote"] == "upstream_failed", states
    version = xcom(run, "store")["version"]
    # The steps before the approval went through: the candidate answered its share of live requests.
    assert [(s["kind"], s["percent"]) for s in xcom(run, "rollout")["steps"]] == [("canary", 50)]
    assert set(summary.by_version) == {"1", str(version)} and summary.by_status == {200: summary.ok}
    assert served_version(model_server, NAME) == "1" and registry().production_version(NAME) == 1
    record = registry().version_record(NAME, version).rollout
    assert record["state"] == "rolled_back"
    assert [(s["kind"], s["outcome"]) for s in record["steps"]] == [
        ("canary", "passed"), ("approval", "rejected"), ("rollback", "failed")]
    assert record["steps"][1]["by"] == "alice" and "alice rejected" in record["steps"][2]["message"]


def sweep_when_overdue(dag_id: str, task_id: str, stop: threading.Event) -> None:
    """The scheduler's part: once the task's approval is overdue, its awaiting-input timeout sweep (the same
    method the scheduler loop calls; dag.test runs no scheduler) answers with the request's defaults."""
    import logging
    from types import SimpleNamespace

    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    scheduler = SimpleNamespace(log=logging.getLogger("airflow.jobs.scheduler_job_runner"))
    while not stop.is_set():
        with create_session() as session:
            waiting = (session.query(TaskInstance)
                       .filter(TaskInstance.dag_id == dag_id, TaskInstance.task_id == task_id,
                               TaskInstance.state == TaskInstanceState.AWAITING_INPUT)
                       .one_or_none())
        if waiting is not None:
            SchedulerJobRunner.check_awaiting_input_timeouts(scheduler)
        time.sleep(0.5)


def test_an_approval_no_one_answers_within_its_timeout_rolls_back(production_v1, model_server):
    rollout = ("rollout:\n  canary: {steps: [50, 100], bake: 1s}\n" + GATES
               + "  approval: {required: true, timeout: 2s}\n")
    stop = threading.Event()
    scheduler = threading.Thread(target=sweep_when_overdue, args=(NAME, "approve_rollout", stop), daemon=True)
    scheduler.start()
    try:
        (spec, run), summary = under_load(model_server, lambda: production_v1(spec_text(STRONG, rollout)))
    finally:
        stop.set()
    states = task_states(run)
    assert states["rollout"] == "success" and states["approve_rollout"] == "failed", states
    version = xcom(run, "store")["version"]
    assert served_version(model_server, NAME) == "1" and registry().production_version(NAME) == 1
    record = registry().version_record(NAME, version).rollout
    assert record["state"] == "rolled_back"
    assert [(s["kind"], s["outcome"]) for s in record["steps"]] == [
        ("canary", "passed"), ("approval", "timed_out"), ("rollback", "failed")]
    assert "no one approved the last step within 2s" in record["steps"][2]["message"]


def test_an_agreeing_fast_candidate_goes_10_50_100_and_becomes_production(production_v1, model_server):
    rollout = "rollout:\n  canary: {steps: [10, 50, 100], bake: 1s}\n" + GATES
    (spec, run), summary = under_load(model_server, lambda: production_v1(spec_text(STRONG, rollout)))
    states = task_states(run)
    assert str(run.state) == "success", states
    version = xcom(run, "store")["version"]
    assert [(s["kind"], s["percent"]) for s in xcom(run, "rollout")["steps"]] == [
        ("canary", 10), ("canary", 50), ("canary", 100)]
    assert served_version(model_server, NAME) == str(version)
    assert registry().production_version(NAME) == version
    record = registry().version_record(NAME, version).rollout
    assert record["state"] == "completed"
    assert [(s["percent"], s["outcome"]) for s in record["steps"]] == [(10, "passed"), (50, "passed"), (100, "passed")]
    assert [s["traffic"] for s in record["steps"]] == [
        {"1": 90, str(version): 10}, {"1": 50, str(version): 50}, {"1": 0, str(version): 100}]
    assert all(c["passed"] for s in record["steps"] for c in s["checks"])
    # Live traffic went to both versions, and no request failed while the candidate took over.
    assert set(summary.by_version) == {"1", str(version)} and summary.by_status == {200: summary.ok}
    change = registry().production_changes(NAME)[-1]
    assert change.action == "promote" and "rollout passed (canary 10%, 50%, 100%)" in change.reason


def test_a_first_version_with_a_rollout_and_an_approval_serves_at_once(airflow_db, model_server, tmp_path,
                                                                       monkeypatch):
    """A brand-new model: no production to protect or compare with, and no client sends it traffic. The run
    succeeds without a step or a person: the rollout passes, the approval is not asked, complete_rollout makes
    the version served and promote makes it production; the summary says why no step ran."""
    from mlspec.compiler import build_dag
    from mlspec.spec import load_spec
    from mlspec.summary import format_summary, read_summary

    name = "rollout-first"
    rollout = ("rollout:\n  shadow: {percent: 100, for: 1s}\n  canary: {steps: [10, 50, 100], bake: 1s}\n" + GATES
               + "  approval: {required: true, timeout: 1h}\n")
    text = spec_text(STRONG, rollout).replace(f"name: {NAME}", f"name: {name}")
    monkeypatch.setenv("MLSPEC_SPECS_DIR", str(tmp_path))
    (tmp_path / f"{name}.yaml").write_text(text)
    spec = load_spec(tmp_path / f"{name}.yaml")
    assert registry().production_version(name) is None
    run = build_dag(spec, spec_text=text).test()
    states = task_states(run)
    assert str(run.state) == "success", states
    assert states["rollout"] == states["approve_rollout"] == states["complete_rollout"] == "success", states
    assert xcom(run, "rollout")["steps"] == [] and xcom(run, "approve_rollout") == {"approved": True, "by": None}
    assert served_version(model_server, name) == "1" and registry().production_version(name) == 1
    record = registry().version_record(name, 1).rollout
    assert record["state"] == "completed" and record["steps"] == []
    printed = format_summary(read_summary(spec, run.run_id))
    assert ("  rollout        no production version: nothing to roll out against; version 1 takes every request "
            "after its smoke test") in printed
    assert "rollout passed" not in registry().production_changes(name)[-1].reason

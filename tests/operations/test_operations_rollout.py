"""The mlspec_operations DAG's rollout actions (issue 16): its form offers them, and its task pauses, resumes,
reports and aborts a rollout as the Airflow user who triggered the run, refusing what makes no sense now.
Real parts in this process: the embedded MLflow registry, a file store and the mlspec model server."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from tests.operations.rollout_testkit import running_record, served_home, under_rollout
from tests.operators.operations_testkit import served


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    with served_home(tmp_path_factory.mktemp("ops-rollout-home")) as folder:
        yield folder


def run_task(specs_dir, model: str, action: str, user: str = "alice") -> dict:
    """The operations DAG's task as a run triggered by `user` runs it."""
    from mlspec.operations_dag import DAG_ID, ModelOperationOperator

    task = ModelOperationOperator(task_id="run_operation", specs_dir=str(specs_dir), model=model, action=action, version=None)
    dag_run = SimpleNamespace(triggering_user_name=user, run_type="manual", dag_id=DAG_ID, run_id="manual__1")
    return task.execute({"dag_run": dag_run, "run_id": "manual__1"})


def test_the_form_offers_the_rollout_actions(home):
    from mlspec.operations_dag import build_operations_dag

    (home / "specs").mkdir(exist_ok=True)
    dag = build_operations_dag(home / "specs", model_names=["any"])
    actions = dag.params.get_param("action").schema["enum"]
    assert actions == ["status", "deploy", "rollback", "undeploy", "rollout_status", "rollout_pause",
                       "rollout_resume", "rollout_abort"]


def test_the_task_acts_on_the_rollout_as_the_airflow_user(home):
    from airflow.sdk.exceptions import AirflowFailException

    specs = home / "specs-act"
    specs.mkdir()
    model, _ = under_rollout(specs, "ops-rollout-act")
    registry = model.registry()
    report = run_task(specs, model.name, "rollout_status")
    assert report["active"] and report["rollout"]["version"] == 2 and report["traffic"]["weights"] == {"1": 90, "2": 10}
    with pytest.raises(AirflowFailException, match="is running, not paused or held"):
        run_task(specs, model.name, "rollout_resume")
    result = run_task(specs, model.name, "rollout_pause")
    assert result["command"] == "pause" and result["actor"] == "alice" and "--resume" in result["next"]
    assert registry.version_record(model.name, 2).rollout_command["actor"] == "alice"
    with pytest.raises(AirflowFailException, match="the pause sent is acted on at the rollout task's next check"):
        run_task(specs, model.name, "rollout_resume", user="bob")  # the task has not stopped the step yet
    result = run_task(specs, model.name, "rollout_abort", user="carol")
    assert result["state"] == "aborted" and served(model.spec) == 1
    record = registry.version_record(model.name, 2)
    assert record.state == "rolled_back" and record.rollout_command["actor"] == "carol"
    assert record.rollout["steps"][-1]["by"] == "carol"
    with pytest.raises(AirflowFailException, match="no rollout in progress"):
        run_task(specs, model.name, "rollout_pause")


def test_an_abort_that_waited_for_the_lock_does_not_roll_back_a_second_time(home):
    """The rollout task saw the abort first and rolled back under the model's lock; the abort that waited for
    the lock finds the rollout over and changes nothing more (no second audit entry, no second notification)."""
    from mlspec.release import Trigger
    from mlspec.rollout_operations import abort_now

    specs = home / "specs-race"
    specs.mkdir()
    model, _ = under_rollout(specs, "ops-rollout-race")
    registry = model.registry()
    seen = running_record()  # what the abort read before it waited
    ended = {**running_record("rolled_back"), "steps": [*seen["steps"], {"kind": "rollback", "outcome": "failed",
                                                                         "by": "the rollout's gates", "message": "agreement"}]}
    registry.record_rollout(model.name, 2, ended)
    changes = len(registry.production_changes(model.name))
    result = abort_now(model.spec, seen, Trigger(actor="dave"), "too late")
    assert result["state"] == "rolled_back" and "the rollout had just ended (rolled_back, by the rollout's gates)" in result["next"]
    assert len(registry.production_changes(model.name)) == changes and registry.version_record(model.name, 2).rollout == ended

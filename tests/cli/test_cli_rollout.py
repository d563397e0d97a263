"""`mlspec rollout SPEC --status|--pause|--resume|--abort` (issue 16) against real parts in this process: the
embedded MLflow registry, a file store and the mlspec model server, which splits traffic between production
(version 1) and the candidate (version 2) as a rollout's canary step leaves it. The rollout record is written
through the registry as the rollout task writes it; the commands are read back from the registry."""

from __future__ import annotations

import getpass
import json

import pytest
from tests.operations.rollout_testkit import running_record, served_home, under_rollout
from tests.operators.operations_testkit import publish_versions, served, spec_text


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    with served_home(tmp_path_factory.mktemp("cli-rollout-home")) as folder:
        yield folder


def run(capsys, *argv: str) -> tuple[int, str, str]:
    from mlspec.cli import main

    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_status_reports_the_rollout_with_the_traffic_serving_reports(home, capsys):
    model, path = under_rollout(home, "cli-rollout-status")
    capsys.readouterr()  # the set-up's log lines
    code, out, err = run(capsys, "rollout", path, "--status")
    assert code == 0, err
    assert "rollout of version 2 against production 1: running" in out
    assert "step: the canary step at 10 %" in out and "40 requests" in out
    assert "traffic (as serving reports it): version 1 90 %, version 2 10 %; version 2 gets a copy of 100 %" in out
    # In the rollout task's log words (rollout.gates.GateCheck.line), with the page's signs.
    assert "gate min_requests 40 >= 20: passed" in out and "gate agreement 0.99 >= 0.95: passed" in out
    assert run(capsys, "rollout", path)[1] == out  # --status is the default
    code, out, _ = run(capsys, "rollout", path, "--json")
    report = json.loads(out)
    assert report["active"] and report["rollout"]["state"] == "running" and report["traffic"]["weights"] == {"1": 90, "2": 10}
    code, out, _ = run(capsys, "status", path)
    assert code == 0 and "rollout: version 2 running, the canary step at 10 %" in out
    assert json.loads(run(capsys, "status", path, "--json")[1])["rollout"].startswith("rollout: version 2 running")


def test_pause_and_resume_are_commands_on_the_candidate_refused_when_they_make_no_sense(home, capsys):
    model, path = under_rollout(home, "cli-rollout-pause")
    registry = model.registry()
    code, _, err = run(capsys, "rollout", path, "--resume")
    assert code == 1 and "is running, not paused or held: there is nothing to resume; nothing changed" in err
    assert not registry.version_record(model.name, 2).rollout_command
    code, out, err = run(capsys, "rollout", path, "--pause")
    assert code == 0, err
    assert f"pause of the rollout of version 2 recorded (by cli:{getpass.getuser()})" in out
    assert "stops the canary step at 10 % at its next check" in out and "--resume" in out
    command = registry.version_record(model.name, 2).rollout_command
    assert command["command"] == "pause" and command["actor"] == f"cli:{getpass.getuser()}" and command["at"]
    code, _, err = run(capsys, "rollout", path, "--pause")
    assert code == 1 and "was already asked to pause" in err
    registry.record_rollout(model.name, 2, running_record("paused"))  # the rollout task acted on it
    code, _, err = run(capsys, "rollout", path, "--pause")
    assert code == 1 and "is paused already" in err
    code, out, err = run(capsys, "rollout", path, "--resume")
    assert code == 0, err
    assert "runs the canary step at 10 % again" in out
    assert registry.version_record(model.name, 2).rollout_command["command"] == "resume"
    assert served(model.spec) == 1  # nothing but commands: serving untouched


def test_abort_gives_production_all_traffic_back_with_no_airflow_task_running(home, capsys):
    from mlspec.release import Release

    model, path = under_rollout(home, "cli-rollout-abort")
    code, out, err = run(capsys, "rollout", path, "--abort", "--reason", "dashboards look wrong")
    assert code == 0, err
    assert "version 1 answers all traffic again; version 2 is rolled back" in out
    assert served(model.spec) == 1
    assert Release.open(model.spec).serving.traffic(model.name)["weights"] == {"1": 100}
    record = model.registry().version_record(model.name, 2)
    assert record.state == "rolled_back" and record.rollout_command["command"] == "abort"
    assert record.rollout["state"] == "aborted" and record.rollout["steps"][-1]["kind"] == "rollback"
    assert record.rollout["steps"][-1]["message"] == "dashboards look wrong"
    assert model.registry().production_version(model.name) == 1
    code, out, _ = run(capsys, "rollout", path, "--status")
    assert code == 0 and "no rollout in progress; the last one: version 2 against production 1, aborted" in out
    code, _, err = run(capsys, "rollout", path, "--abort")
    assert code == 1 and "has no rollout in progress, so there is nothing to abort" in err


def test_a_spec_without_rollout_has_none_and_its_status_is_unchanged(home, capsys):
    from mlspec.operations import deploy_version

    model = publish_versions("cli-rollout-none", 1)
    deploy_version(model.spec, 1)
    path = home / "cli-rollout-none.yaml"
    path.write_text(spec_text("cli-rollout-none"))
    capsys.readouterr()  # the set-up's log lines
    code, out, _ = run(capsys, "rollout", str(path))
    assert code == 0 and "cli-rollout-none: no rollout in progress, and none recorded" in out
    code, out, _ = run(capsys, "status", str(path))
    assert code == 0 and "serving follows the registry" in out and "rollout:" not in out
    assert "rollout" not in json.loads(run(capsys, "status", str(path), "--json")[1])
    code, _, err = run(capsys, "rollout", str(path), "--pause")
    assert code == 1 and "no rollout in progress" in err

"""`mlspec run SPEC --accept-drift` (issue 14): the run's configuration carries {"accept_drift": true}, as the
trigger form's accept_drift field sets it, so validate_data goes on past a `fail` and the version records it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from tests.fixtures.paths import REPO, SPECS

from mlspec import cli
from mlspec.run_form import check_conf
from mlspec.spec import load_spec

MLSPEC = str(Path(sys.executable).parent / "mlspec")


def conf_of(*argv: str) -> dict:
    args = cli.build_parser().parse_args(["run", *argv])
    spec = load_spec(args.spec)
    conf = cli.run_conf(args, cli.parse_params(spec, args.param or []))
    check_conf(spec, conf)  # what the run's first task checks: the flag sets a key every spec accepts
    return conf


def test_the_flag_sets_accept_drift_in_the_run_conf():
    assert conf_of(str(SPECS / "iris-forest.yaml"), "--accept-drift") == {"accept_drift": True}
    assert conf_of(str(SPECS / "iris-forest.yaml")) == {}  # without it: the form's default (false) holds
    assert conf_of(str(SPECS / "digits.yaml"), "--epochs", "2", "--accept-drift") == {"epochs": 2, "accept_drift": True}
    assert conf_of(str(SPECS / "iris-forest.yaml"), "--param", "n_estimators=3", "--accept-drift") == {
        "n_estimators": 3, "accept_drift": True,
    }
    # --param accept_drift=true is the same switch, typed like any other parameter.
    assert conf_of(str(SPECS / "iris-forest.yaml"), "--param", "accept_drift=true") == {"accept_drift": True}


def test_a_mistyped_accept_drift_param_is_refused_as_other_params_are():
    spec = load_spec(SPECS / "iris-forest.yaml")
    with pytest.raises(ValueError, match="`accept_drift` must be"):
        cli.parse_params(spec, ["accept_drift=maybe"])


def test_run_hands_the_conf_to_the_dag(monkeypatch):
    """cmd_run's wiring, without Airflow's run: the DAG's test() gets the flag's conf."""
    import mlspec.compiler
    import mlspec.summary

    seen = {}

    class Dag:
        dag_id = "iris-forest"
        tasks: list = []  # no approval task: no timeout sweep beside the run

        def test(self, run_conf=None):
            seen["conf"] = run_conf
            return SimpleNamespace(state="success", run_id="manual__1")

    monkeypatch.setattr(cli, "_point_airflow_at", lambda *a: None)
    monkeypatch.setattr(cli, "_ensure_airflow_db", lambda: None)
    monkeypatch.setattr(mlspec.compiler, "build_dag", lambda spec, spec_text=None: Dag())
    monkeypatch.setattr(mlspec.summary, "read_summary", lambda spec, run_id: {})
    monkeypatch.setattr(mlspec.summary, "format_summary", lambda summary, spec_file=None: "done")
    args = cli.build_parser().parse_args(["run", str(SPECS / "iris-forest.yaml"), "--accept-drift"])
    assert cli.cmd_run(args) == cli.EXIT_OK
    assert seen["conf"] == {"accept_drift": True}


def test_run_help_names_the_flag():
    result = subprocess.run([MLSPEC, "run", "--help"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0 and "--accept-drift" in result.stdout
    assert "the version records that the drift was accepted" in " ".join(result.stdout.split())

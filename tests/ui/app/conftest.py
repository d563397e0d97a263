"""The Models app against a real store and the embedded MLflow registry: a small spec run twice through
Airflow (dag.test) with the model server serving it, once per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.ui.app.ui_app_testkit import TwoRuns, forest_spec, run_spec_text


@pytest.fixture(scope="module")
def two_runs(airflow_db, model_server, tmp_path_factory) -> Iterator[TwoRuns]:
    """`ui-iris` from specs/iris-forest.yaml: run 1 a random forest (production), run 2 a one-split tree that
    loses the champion gate (a registered candidate); the specs folder holds the spec of run 2."""
    specs = tmp_path_factory.mktemp("ui-specs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLSPEC_SPECS_DIR", str(specs))
        first_spec, first = run_spec_text(specs, forest_spec("ui-iris"), "ui-iris")
        second_spec, second = run_spec_text(specs, forest_spec("ui-iris", weak=True), "ui-iris")
        yield TwoRuns(specs, model_server, first_spec, second_spec, first, second)

"""A folder of hive-style partitions as data.source (issue 13 §3): prepare_data reads every file in name order,
its `key=value` folders become columns (here the label itself), and the spec trains end to end through Airflow
to a smoke-tested endpoint."""

from __future__ import annotations

import pandas as pd
import pytest
from tests.e2e.e2e_testkit import task_states, xcom
from tests.fixtures.paths import SPECS

pytestmark = pytest.mark.e2e

FOREST = (SPECS / "iris-forest.yaml").read_text()


def test_a_folder_of_partitions_trains_with_its_folders_as_columns(run_spec, tmp_path):
    from sklearn.datasets import load_iris

    bunch = load_iris()
    frame = pd.DataFrame(bunch.data, columns=["sepal_length", "sepal_width", "petal_length", "petal_width"])
    folder = tmp_path / "iris"
    for index, species in enumerate(bunch.target_names):
        rows = frame[bunch.target == index]
        for part in range(2):  # two files per partition, as a writer with two tasks leaves them
            (folder / f"species={species}").mkdir(parents=True, exist_ok=True)
            rows.iloc[part::2].to_parquet(folder / f"species={species}" / f"part-{part}.parquet", index=False)
    (folder / "_SUCCESS").write_text("")
    text = FOREST.replace("name: iris-forest", "name: iris-partitions").replace(
        "  source: builtin:iris\n", f"  source: '{folder.as_uri()}/'\n  label: species\n"
    )
    _spec, dag_run = run_spec(text, "iris-partitions")
    assert str(dag_run.state) == "success", task_states(dag_run)
    prepared = xcom(dag_run, "prepare_data")
    assert prepared["class_names"] == ["setosa", "versicolor", "virginica"] and prepared["input_shape"] == [4]
    assert sum(prepared["samples"].values()) == 150
    assert xcom(dag_run, "evaluate")["metrics"]["accuracy"] >= 0.85

"""The operators in a hand-written DAG: renamed tasks, inputs passed explicitly, no fixed task ids.

A data team that outgrows one spec per DAG wires mlspec's stages into its own DAG; each operator
takes what it needs as arguments (another task's `.output`), so the task ids are theirs to choose.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.e2e.e2e_testkit import task_states, xcom
from tests.fixtures.paths import SPECS

pytestmark = pytest.mark.e2e


def handwritten_dag(spec: dict):
    from airflow.sdk import DAG

    from mlspec.compiler import START_DATE
    from mlspec.operators.data import PrepareDataOperator
    from mlspec.operators.deploy import DeployModelOperator
    from mlspec.operators.evaluate import EvaluateOperator
    from mlspec.operators.export import OnnxExportOperator
    from mlspec.operators.promote import PromoteOperator
    from mlspec.operators.publish import RegisterModelOperator, StoreModelOperator
    from mlspec.operators.smoke_test import SmokeTestOperator
    from mlspec.operators.train import TrainOperator

    with DAG("handmade_forest", schedule=None, start_date=START_DATE, catchup=False) as dag:
        load = PrepareDataOperator(task_id="load_flowers", spec=spec)
        fit = TrainOperator(task_id="fit_forest", spec=spec, data=load.output)
        score = EvaluateOperator(task_id="score_on_holdout", spec=spec, data=load.output, model=fit.output)
        onnx = OnnxExportOperator(task_id="to_onnx", spec=spec, data=load.output, model=fit.output)
        publish = StoreModelOperator(task_id="publish", spec=spec, exported=onnx.output, evaluation=score.output)
        index = RegisterModelOperator(task_id="index", spec=spec, stored=publish.output, evaluation=score.output)
        serve = DeployModelOperator(task_id="serve", spec=spec, stored=publish.output)
        check = SmokeTestOperator(task_id="check_endpoint", spec=spec, data=load.output, stored=publish.output, deployment=serve.output)
        live = PromoteOperator(
            task_id="go_live", spec=spec, data=load.output, evaluation=score.output, stored=publish.output,
            registration=index.output, deployment=serve.output, smoke_test=check.output,
        )
        score >> onnx
        index >> serve
    return dag, live


DAG_FILE = """\
# A user's own Airflow DAG file (the words "airflow" and "dag" make Airflow parse it): mlspec's
# operators under the user's task ids.
import json
from pathlib import Path

from tests.operators.test_operators_handwritten_dag import handwritten_dag

dag, _ = handwritten_dag(json.loads((Path(__file__).parent / "handmade.json").read_text()))
"""


def test_a_handwritten_dag_with_renamed_tasks_runs_every_stage(airflow_db, model_server, mlspec_home, tmp_path, monkeypatch):

    from mlspec.spec import load_spec_text

    text = (SPECS / "iris-forest.yaml").read_text().replace("name: iris-forest", "name: handmade")
    spec = load_spec_text(text, "handmade.yaml")
    # dag.test() runs what Airflow parsed from the DAG folder: make this DAG file the folder's.
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "handmade.json").write_text(json.dumps(spec.to_dict()))
    (dags / "handmade_dag.py").write_text(DAG_FILE)
    bundle = {"name": "handmade-dags", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "kwargs": {"path": str(dags)}}
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([bundle]))
    dag, live = handwritten_dag(spec.to_dict())
    assert {"prepare_data", "train", "store"}.isdisjoint(dag.task_ids)  # none of the compiled ids
    dag_run = dag.test()
    states = task_states(dag_run)
    assert set(states.values()) == {"success"}, states

    summary = xcom(dag_run, "go_live")
    assert summary["model"] == "handmade" and summary["version"] == 1
    assert summary["smoke_test"]["passed"] is True
    assert summary["registry"]["model_name"] == "handmade"
    assert xcom(dag_run, "publish")["files"].keys() >= {"model.onnx", "input_schema.json", "output_schema.json"}

    # The endpoint the renamed tasks deployed answers a raw iris sample like the summary says.
    import httpx

    example = summary["example"]
    body = {"inputs": [{"name": "input", "shape": example["shape"], "datatype": "FP32", "data": example["input"]}]}
    answer = httpx.post(summary["infer_url"], json=body, timeout=10).json()
    outputs = {o["name"]: o["data"] for o in answer["outputs"]}
    classes = ["setosa", "versicolor", "virginica"]
    assert classes[outputs["label"][0]] == example["predicted"]
    assert np.isclose(sum(outputs["probabilities"]), 1.0, atol=1e-5)
    assert json.loads(json.dumps(summary)) == summary  # plain JSON all the way


def test_an_operator_without_its_input_says_which_stage_to_run_first(mlspec_home):
    from airflow.sdk.exceptions import AirflowException

    from mlspec.operators.evaluate import EvaluateOperator
    from mlspec.spec import load_spec_text

    spec = load_spec_text((SPECS / "iris-forest.yaml").read_text(), "iris-forest.yaml")
    lonely = EvaluateOperator(task_id="score", spec=spec.to_dict(), data=None, model=None)
    with pytest.raises(AirflowException, match=r"score got no `data` from the stage before it \(got None\) for model iris-forest; run that stage first"):
        lonely.execute({"run_id": "manual__1"})

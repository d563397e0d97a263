"""A version's input and output schemas reach the Kubeflow Model Registry as typed customProperties."""

from __future__ import annotations

import json

from kubeflow_testkit import TOKEN

from mlspec.registry.kubeflow import KubeflowRegistry, read_value

INPUT_SCHEMA = {
    "name": "input",
    "datatype": "FP32",
    "shape": [-1, 2],
    "features": [
        {"name": "petal length (cm)", "dtype": "FP32", "min": 1.0, "max": 6.9, "mean": 3.76, "std": 1.76, "missing": 0},
        {"name": "petal width (cm)", "dtype": "FP32", "min": 0.1, "max": 2.5, "mean": 1.2, "std": 0.76, "missing": 0},
    ],
}
OUTPUT_SCHEMA = {
    "task": "classification",
    "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}, {"name": "label", "datatype": "INT64", "shape": [-1]}],
    "class_names": ["setosa", "versicolor", "virginica"],
}


def test_schemas_framework_and_task_are_version_properties(fake, make_request) -> None:
    request = make_request(framework="sklearn", task="classification", input_schema=INPUT_SCHEMA, output_schema=OUTPUT_SCHEMA)
    KubeflowRegistry.from_url(fake.url, token=TOKEN).register(request)
    [version] = fake.entities("ModelVersion")
    props = version["customProperties"]
    assert read_value(props["framework"]) == "sklearn" and read_value(props["task"]) == "classification"
    assert json.loads(read_value(props["input_schema"])) == INPUT_SCHEMA
    assert json.loads(read_value(props["output_schema"]))["class_names"] == ["setosa", "versicolor", "virginica"]
    assert json.loads(read_value(props["class_names"])) == ["setosa", "versicolor", "virginica"]


def test_the_mlflow_signature_is_built_from_the_schemas(make_request) -> None:
    from mlflow.models import ModelSignature

    request = make_request(input_schema=INPUT_SCHEMA, output_schema=OUTPUT_SCHEMA)
    signature = ModelSignature.from_dict(request.mlflow_signature())
    assert signature.inputs.inputs[0].name == "input" and signature.inputs.inputs[0].shape == (-1, 2)
    assert [spec.name for spec in signature.outputs.inputs] == ["probabilities", "label"]
    assert str(signature.outputs.inputs[1].type) == "int64"
    assert request.input_example() == [3.76, 1.2]

"""A table model (issue 13) in MLflow: its signature has one tensor per column with the column's datatype
(strings as object), and its input example is a real published example row, which MLflow's pyfunc answers
with a class name."""

from __future__ import annotations

import json

import numpy as np

from mlspec.registry.mlflow_connection import resolve_connection
from mlspec.registry.mlflow_registry import MlflowRegistry
from mlspec.storage import open_store

COLUMNS = [
    {"name": "island", "type": "category", "datatype": "BYTES", "shape": [-1, 1], "missing": "error", "fill": None},
    {"name": "bill_length_mm", "type": "number", "datatype": "FP32", "shape": [-1, 1], "missing": "median", "fill": 44.5},
]
EXAMPLE = [{"island": "Dream", "bill_length_mm": None}, {"island": "Biscoe", "bill_length_mm": 47.5}]


def penguin_onnx() -> bytes:
    """A real table pipeline: island one-hot, bill length with its gaps filled, species by name."""
    import pandas as pd
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = pd.DataFrame(
        {"island": ["Dream", "Biscoe", "Torgersen", "Biscoe"] * 10, "bill_length_mm": [48.0, 47.0, 38.0, np.nan] * 10}
    )
    species = ["Chinstrap", "Gentoo", "Adelie", "Gentoo"] * 10
    pipeline = Pipeline([
        ("columns", ColumnTransformer([
            ("island", OneHotEncoder(handle_unknown="ignore"), ["island"]),
            ("bill", SimpleImputer(strategy="median"), ["bill_length_mm"]),
        ])),
        ("model", LogisticRegression(max_iter=500)),
    ]).fit(frame, species)
    types = [("island", StringTensorType([None, 1])), ("bill_length_mm", FloatTensorType([None, 1]))]
    onnx_model = to_onnx(pipeline, initial_types=types, options={id(pipeline): {"zipmap": False}},
                         target_opset={"": 17, "ai.onnx.ml": 3})
    return onnx_model.SerializeToString()


def test_a_table_model_has_one_signature_tensor_per_column_and_a_real_example_row(
    publisher, unique_name, monkeypatch
) -> None:
    import mlflow

    tracking_uri = resolve_connection(None).tracking_uri
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", tracking_uri)
    name = unique_name("penguins")
    input_schema = {"columns": COLUMNS, "example": EXAMPLE}
    output_schema = {
        "task": "classification", "label_datatype": "BYTES", "class_names": ["Adelie", "Chinstrap", "Gentoo"],
        "outputs": [{"name": "label", "datatype": "BYTES", "shape": [-1]},
                    {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}],
    }
    published = open_store(publisher.store_uri).publish_version(
        name,
        {"model.onnx": penguin_onnx(), "input_schema.json": json.dumps(input_schema).encode(),
         "output_schema.json": json.dumps(output_schema).encode()},
        run_id="manual__table",
    )
    request = publisher.request(
        published, metrics={"accuracy": 1.0}, input_schema=input_schema, output_schema=output_schema,
        task="classification",
    )

    assert request.input_example() == EXAMPLE[1]  # the first example row without a gap
    entry = MlflowRegistry().register(request)

    info = mlflow.models.get_model_info(f"models:/{name}/{entry.registry_version}")
    inputs = json.loads(info.signature.to_dict()["inputs"])
    assert [(t["name"], t["tensor-spec"]["dtype"], t["tensor-spec"]["shape"]) for t in inputs] == [
        ("island", "object", [-1, 1]), ("bill_length_mm", "float32", [-1, 1])
    ]
    model = mlflow.pyfunc.load_model(f"models:/{name}/{entry.registry_version}")
    answer = model.predict({"island": np.array([["Biscoe"]], dtype=object),
                            "bill_length_mm": np.array([[47.5]], dtype=np.float32)})
    assert [str(v) for v in np.asarray(answer["label"]).ravel()] == ["Gentoo"]


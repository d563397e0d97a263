"""Raw table rows at the endpoint (issue 13 §2): one v2 input per column, strings as BYTES, a gap
(JSON null, binary NaN) only where the column's spec fills it, the class answered by name.

The models are real scikit-learn pipelines (a ColumnTransformer with an imputer and one-hot
encoders, then a logistic regression on species names) converted with skl2onnx, published with
the input_schema.json and output_schema.json a table model publishes.
"""

from __future__ import annotations

import json
import struct
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from tests.fixtures.server_testkit import load

from mlspec.inference_protocol import ORT_TYPES
from mlspec.ml import tabular
from mlspec.ml.columns import Column
from mlspec.ml.data import Dataset
from mlspec.ml.frameworks import TrainingPlan, get_adapter
from mlspec.ml.onnx_export import onnx_predict
from mlspec.server.tensors import SIMD_MIN_BYTES
from mlspec.storage import open_store

SPECIES = ["Adelie", "Chinstrap", "Gentoo"]

# name, type, v2 datatype, missing, fill (what the published input_schema.json says about each column)
PENGUIN_COLUMNS = [
    ("island", "category", "BYTES", "error", None),
    ("bill_length_mm", "number", "FP32", "median", 44.5),
    ("body_mass_g", "number", "FP32", "error", None),
    ("sex", "category", "BYTES", "constant", "unknown"),
    ("year", "integer", "INT64", "most_frequent", 2008),
    ("tagged", "boolean", "BOOL", "most_frequent", True),
]
NUMBER_COLUMNS = [
    ("bill_length_mm", "number", "FP32", "median", 44.5),
    ("body_mass_g", "number", "FP32", "mean", 4200.0),
]


def _penguins(rows: int = 300):
    import pandas as pd

    rng = np.random.default_rng(0)
    species = rng.choice(SPECIES, rows)
    island = np.where(
        species == "Gentoo",
        "Biscoe",
        np.where(species == "Chinstrap", "Dream", rng.choice(["Torgersen", "Dream", "Biscoe"], rows)),
    )
    bill = np.where(species == "Adelie", 38.8, np.where(species == "Chinstrap", 48.8, 47.5))
    frame = pd.DataFrame(
        {
            "island": island.astype(object),
            "bill_length_mm": bill + rng.normal(0, 2, rows),
            "body_mass_g": np.where(species == "Gentoo", 5076.0, 3700.0) + rng.normal(0, 300, rows),
            "sex": rng.choice(["male", "female", ""], rows, p=[0.45, 0.45, 0.1]).astype(object),
            "year": rng.choice([2007.0, 2008.0, 2009.0], rows),
            "tagged": rng.choice([0.0, 1.0], rows),
        }
    )
    frame.loc[::9, "bill_length_mm"] = np.nan
    return frame, species


def _cast_inputs(model, datatypes: dict[str, int]):
    """Give the graph INT64/BOOL inputs where skl2onnx made float ones: a Cast in front, as a table
    model's export does for integer and boolean columns."""
    from onnx import TensorProto, helper

    for graph_input in model.graph.input:
        if graph_input.name not in datatypes:
            continue
        name = graph_input.name
        for node in model.graph.node:
            node.input[:] = [f"{name}__float" if item == name else item for item in node.input]
        graph_input.type.tensor_type.elem_type = datatypes[name]
        model.graph.node.insert(0, helper.make_node("Cast", [name], [f"{name}__float"], to=TensorProto.FLOAT))
    return model


@cache
def penguins_onnx() -> bytes:
    from onnx import TensorProto
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame, species = _penguins()
    one_hot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    preprocess = ColumnTransformer(
        [
            ("island", one_hot, ["island"]),
            ("bill_length_mm", SimpleImputer(strategy="median"), ["bill_length_mm"]),
            ("body_mass_g", "passthrough", ["body_mass_g"]),
            (
                "sex",
                make_pipeline(
                    SimpleImputer(missing_values="", strategy="constant", fill_value="unknown"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                ["sex"],
            ),
            ("year", "passthrough", ["year"]),
            ("tagged", "passthrough", ["tagged"]),
        ]
    )
    classifier = LogisticRegression(max_iter=2000)
    pipeline = Pipeline([("preprocess", preprocess), ("model", classifier)]).fit(frame, species)
    types = [
        (name, StringTensorType([None, 1]) if datatype == "BYTES" else FloatTensorType([None, 1]))
        for name, _, datatype, _, _ in PENGUIN_COLUMNS
    ]
    model = to_onnx(
        pipeline,
        initial_types=types,
        target_opset={"": 17, "ai.onnx.ml": 3},
        options={id(classifier): {"zipmap": False}},
    )
    return _cast_inputs(model, {"year": TensorProto.INT64, "tagged": TensorProto.BOOL}).SerializeToString()


@cache
def numbers_onnx() -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    frame, species = _penguins()
    names = [name for name, *_ in NUMBER_COLUMNS]
    preprocess = ColumnTransformer([(name, SimpleImputer(strategy="median"), [name]) for name in names])
    classifier = LogisticRegression(max_iter=2000)
    pipeline = Pipeline([("preprocess", preprocess), ("model", classifier)]).fit(frame[names], species)
    model = to_onnx(
        pipeline,
        initial_types=[(name, FloatTensorType([None, 1])) for name in names],
        target_opset={"": 17, "ai.onnx.ml": 3},
        options={id(classifier): {"zipmap": False}},
    )
    return model.SerializeToString()


def _publish_table(store_root: Path, name: str, model: bytes, columns: list) -> str:
    """Publish a table model the way a run does: model.onnx, signature.json and both schemas."""
    import onnxruntime

    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])

    def tensors(args) -> list[dict]:
        return [
            {
                "name": a.name,
                "datatype": ORT_TYPES[a.type],
                "shape": [d if isinstance(d, int) else -1 for d in a.shape],
            }
            for a in args
        ]

    signature = {
        "inputs": tensors(session.get_inputs()),
        "outputs": tensors(session.get_outputs()),
        "opset": 17,
    }
    input_schema = {
        "columns": [
            {"name": n, "type": t, "datatype": d, "shape": [-1, 1], "missing": m, "fill": f}
            for n, t, d, m, f in columns
        ],
        "example": [{n: None for n, *_ in columns}],
    }
    output_schema = {"class_names": SPECIES, "label_datatype": "BYTES"}
    files = {
        "model.onnx": model,
        "signature.json": json.dumps(signature).encode(),
        "input_schema.json": json.dumps(input_schema).encode(),
        "output_schema.json": json.dumps(output_schema).encode(),
    }
    return open_store(store_root.as_uri()).publish_version(name, files, run_id=f"run-{name}").uri


@pytest.fixture
def served(server, store_root):
    """`penguins` (every column type) and `measures` (numbers only) loaded; returns (server, client)."""
    client = server.client(timeout=60)
    for name, model, columns in [
        ("penguins", penguins_onnx(), PENGUIN_COLUMNS),
        ("measures", numbers_onnx(), NUMBER_COLUMNS),
    ]:
        response = load(client, name, _publish_table(store_root, name, model, columns))
        assert response.status_code == 200, response.text
    yield server, client
    client.close()


# Three raw rows: an island the model never saw, gaps where the spec fills them.
ROWS = {
    "island": ["Biscoe", "Dream", "Atlantis"],
    "bill_length_mm": [47.1, None, 39.0],
    "body_mass_g": [5100.0, 3650.0, 3500.0],
    "sex": ["female", None, "male"],
    "year": [2009, None, 2007],
    "tagged": [True, False, None],
}
DATATYPES = {name: datatype for name, _, datatype, _, _ in PENGUIN_COLUMNS}


def _expected(rows: dict = ROWS) -> tuple[list[str], np.ndarray]:
    """What the graph answers for `rows` with every gap filled by hand (NaN, "", the published fill)."""
    import onnxruntime

    fills = {"bill_length_mm": np.nan, "sex": "", "year": 2008, "tagged": True}
    dtypes = {"BYTES": object, "FP32": np.float32, "INT64": np.int64, "BOOL": bool}
    feeds = {
        name: np.array(
            [fills[name] if v is None else v for v in values], dtype=dtypes[DATATYPES[name]]
        ).reshape(-1, 1)
        for name, values in rows.items()
    }
    session = onnxruntime.InferenceSession(penguins_onnx(), providers=["CPUExecutionProvider"])
    label, probabilities = session.run(["label", "probabilities"], feeds)
    return label.tolist(), probabilities


def _body(rows: dict = ROWS, **datatypes) -> dict:
    return {
        "inputs": [
            {"name": n, "shape": [len(v), 1], "datatype": datatypes.get(n, DATATYPES[n]), "data": v}
            for n, v in rows.items()
        ]
    }


def test_metadata_lists_every_column_input_and_the_class_names(served):
    _, client = served
    metadata = client.get("/v2/models/penguins").json()
    assert metadata["inputs"] == [
        {"name": name, "datatype": datatype, "shape": [-1, 1]} for name, _, datatype, _, _ in PENGUIN_COLUMNS
    ]
    assert metadata["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
    ]
    assert metadata["parameters"]["output_schema"] == {"class_names": SPECIES, "label_datatype": "BYTES"}
    assert [c["name"] for c in metadata["parameters"]["input_schema"]["columns"]] == list(DATATYPES)


def test_raw_rows_with_strings_and_nulls_answer_species_names(served):
    _, client = served
    labels, probabilities = _expected()
    response = client.post("/v2/models/penguins/infer", json=_body())
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert outputs["label"] == {"name": "label", "datatype": "BYTES", "shape": [3], "data": labels}
    assert labels[:2] == ["Gentoo", "Chinstrap"] and set(labels) <= set(SPECIES)
    got = np.asarray(outputs["probabilities"]["data"], dtype=np.float32).reshape(3, 3)
    np.testing.assert_array_equal(got, probabilities)

    # Columns as [N], nested [[...]] data and FP64 numbers (what clients often send) answer the same.
    body = _body(body_mass_g="FP64")
    for tensor in body["inputs"]:
        if tensor["name"] in ("island", "year"):
            tensor["shape"] = [3]
        elif tensor["name"] in ("sex", "bill_length_mm"):
            tensor["data"] = [[value] for value in tensor["data"]]
    response = client.post("/v2/models/penguins/infer", json={**body, "outputs": [{"name": "label"}]})
    assert response.status_code == 200, response.text
    assert response.json()["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [3], "data": labels}
    ]


@pytest.mark.parametrize(
    ("column", "value", "fragment"),
    [
        (
            "island",
            None,
            "column island has a null in row 1; its spec has no missing: strategy, so send a value",
        ),
        ("body_mass_g", None, "column body_mass_g has a null in row 1; its spec has no missing: strategy"),
        (
            "island",
            "",
            "column island has an empty string (a missing value) in row 1; its spec has no missing:",
        ),
        ("island", 3, "datatype BYTES holds strings; 'data' has int at element 1"),
        ("body_mass_g", "heavy", "datatype FP32 cannot hold strings"),
        ("year", 2008.5, "cannot hold non-integer numbers"),
        ("bill_length_mm", 1e39, "too large for FP32"),
        ("island", "x" * 70_000, "element 1 is longer than the server's limit of 65536 bytes per string"),
    ],
)
def test_bad_values_in_a_column_answer_400_naming_it(served, column, value, fragment):
    _, client = served
    rows = {name: list(values) for name, values in ROWS.items()}
    rows[column][1] = value
    response = client.post("/v2/models/penguins/infer", json=_body(rows))
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]


def test_strings_and_numbers_never_convert_into_each_other(served):
    _, client = served
    for column, datatype, fragment in [
        ("island", "FP32", "cannot hold strings"),
        ("body_mass_g", "BYTES", "datatype BYTES holds strings; 'data' has float"),
    ]:
        response = client.post("/v2/models/penguins/infer", json=_body(**{column: datatype}))
        assert response.status_code == 400 and fragment in response.json()["error"], response.text
    body = _body()
    body["inputs"][0] = {"name": "island", "shape": [3, 1], "datatype": "FP32", "data": [1.0, 2.0, 3.0]}
    response = client.post("/v2/models/penguins/infer", json=body)
    assert response.status_code == 400
    assert (
        "input 'island' of model penguins is BYTES; FP32 data cannot be converted" in response.json()["error"]
    )


def _binary_request(tensors: dict[str, tuple[str, np.ndarray]]) -> tuple[bytes, dict]:
    """A Triton binary request: BYTES as 4-byte little-endian lengths + UTF-8, numbers little-endian."""
    inputs, blobs = [], []
    for name, (datatype, array) in tensors.items():
        if datatype == "BYTES":
            blob = b"".join(struct.pack("<I", len(s.encode())) + s.encode() for s in array.reshape(-1))
        else:
            blob = array.astype(array.dtype.newbyteorder("<")).tobytes()
        inputs.append(
            {
                "name": name,
                "shape": list(array.shape),
                "datatype": datatype,
                "parameters": {"binary_data_size": len(blob)},
            }
        )
        blobs.append(blob)
    header = json.dumps({"inputs": inputs, "parameters": {"binary_data_output": True}}).encode()
    return header + b"".join(blobs), {"Inference-Header-Content-Length": str(len(header))}


def _binary_rows(**changes) -> dict[str, tuple[str, np.ndarray]]:
    tensors = {
        "island": ("BYTES", np.array(["Biscoe", "Dream", "Atlantis"], dtype=object)),
        "bill_length_mm": ("FP32", np.array([47.1, np.nan, 39.0], dtype=np.float32)),
        "body_mass_g": ("FP64", np.array([[5100.0], [3650.0], [3500.0]])),
        "sex": ("BYTES", np.array(["female", "", "male"], dtype=object)),
        "year": ("INT64", np.array([2009, 2008, 2007], dtype=np.int64)),
        "tagged": ("BOOL", np.array([True, False, True])),
    }
    tensors.update(changes)
    return tensors


def _read_binary_answer(response) -> dict[str, object]:
    length = int(response.headers["inference-header-content-length"])
    header = json.loads(response.content[:length])
    blob = response.content[length:]
    outputs, offset = {}, 0
    for output in header["outputs"]:
        size = output["parameters"]["binary_data_size"]
        chunk, offset = blob[offset : offset + size], offset + size
        if output["datatype"] == "BYTES":
            texts, at = [], 0
            while at < len(chunk):
                (n,) = struct.unpack_from("<I", chunk, at)
                texts.append(chunk[at + 4 : at + 4 + n].decode())
                at += 4 + n
            outputs[output["name"]] = texts
        else:
            outputs[output["name"]] = np.frombuffer(chunk, dtype="<f4").reshape(output["shape"])
    return outputs


def test_binary_tensors_carry_strings_and_nan_gaps(served):
    _, client = served
    labels, probabilities = _expected()
    body, headers = _binary_request(_binary_rows())
    response = client.post("/v2/models/penguins/infer", content=body, headers=headers)
    assert response.status_code == 200, response.text
    answer = _read_binary_answer(response)
    assert answer["label"] == labels
    np.testing.assert_array_equal(answer["probabilities"], probabilities)

    # NaN only where the spec fills gaps; infinities nowhere.
    for changes, fragment in [
        (
            {"body_mass_g": ("FP64", np.array([[5100.0], [np.nan], [3500.0]]))},
            "column body_mass_g has NaN in row 1",
        ),
        (
            {"island": ("BYTES", np.array(["Biscoe", "Dream", ""], dtype=object))},
            "column island has an empty string (a missing value) in row 2",
        ),
        (
            {"bill_length_mm": ("FP32", np.array([47.1, np.inf, 39.0], dtype=np.float32))},
            "only finite numbers",
        ),
    ]:
        body, headers = _binary_request(_binary_rows(**changes))
        response = client.post("/v2/models/penguins/infer", content=body, headers=headers)
        assert response.status_code == 400 and fragment in response.json()["error"], response.text


def test_malformed_binary_strings_answer_400(served):
    _, client = served
    good, headers = _binary_request(_binary_rows())
    length = int(headers["Inference-Header-Content-Length"])
    header = json.loads(good[:length])
    island_size = header["inputs"][0]["parameters"]["binary_data_size"]
    rest = good[length + island_size :]

    def with_island(blob: bytes, size: int | None = None) -> tuple[bytes, dict]:
        header["inputs"][0]["parameters"]["binary_data_size"] = len(blob) if size is None else size
        text = json.dumps(header).encode()
        return text + blob + rest, {"Inference-Header-Content-Length": str(len(text))}

    cases = [
        (b"\0" * 11, "11 bytes of binary data cannot hold the 3 strings"),
        (struct.pack("<I", 6) + b"Biscoe" + struct.pack("<I", 5) + b"Dream", "ends after 2 of the 3 strings"),
        (
            struct.pack("<I", 6)
            + b"Biscoe"
            + struct.pack("<I", 5)
            + b"Dream"
            + struct.pack("<I", 99)
            + b"x" * 3,
            "element 2 says 99 bytes, beyond the end",
        ),
        (b"".join(struct.pack("<I", 2) + b"\xff\xfe" for _ in range(3)), "element 0 is not UTF-8 text"),
        (b"".join(struct.pack("<I", 1) + b"a" for _ in range(3)) + b"\0", "1 bytes more than its 3 strings"),
        (struct.pack("<I", 70_000) * 3, "element 0 is 70000 bytes, over the server's limit"),
    ]
    for blob, fragment in cases:
        body, headers = with_island(blob)
        response = client.post("/v2/models/penguins/infer", content=body, headers=headers)
        assert response.status_code == 400, (fragment, response.text)
        assert fragment in response.json()["error"]


def test_tritonclient_sends_and_reads_strings(served):
    import tritonclient.http as triton

    server, _ = served
    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    try:
        metadata = client.get_model_metadata("penguins")
        assert {i["name"]: i["datatype"] for i in metadata["inputs"]} == DATATYPES
        for binary in (True, False):
            if binary:
                labels, probabilities = _expected()
                tensors = _binary_rows()
            else:  # tritonclient writes NaN into JSON, which is not JSON: no gap in this one
                labels, probabilities = _expected({**ROWS, "bill_length_mm": [47.1, 44.0, 39.0]})
                tensors = _binary_rows(
                    bill_length_mm=("FP32", np.array([47.1, 44.0, 39.0], dtype=np.float32))
                )
            inputs = []
            for name, (datatype, array) in tensors.items():
                tensor = triton.InferInput(name, list(array.shape), datatype)
                tensor.set_data_from_numpy(array, binary_data=binary)
                inputs.append(tensor)
            wanted = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("label", "probabilities")]
            result = client.infer("penguins", inputs, outputs=wanted)
            got = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("label").tolist()]
            assert got == labels, binary
            np.testing.assert_array_equal(result.as_numpy("probabilities"), probabilities)
        wrong = triton.InferInput("island", [3], "BYTES")
        wrong.set_data_from_numpy(np.array(["a", "b", "c"], dtype=object))
        with pytest.raises(triton.InferenceServerException, match="needs input 'bill_length_mm'"):
            client.infer("penguins", [wrong])
    finally:
        client.close()


def test_a_numbers_only_table_model_still_takes_one_input_tensor(served):
    _, client = served
    columns = {"bill_length_mm": [47.1, None, 39.0], "body_mass_g": [5100.0, 3650.0, 3500.0]}
    by_column = {
        "inputs": [{"name": n, "shape": [3], "datatype": "FP32", "data": v} for n, v in columns.items()]
    }
    response = client.post("/v2/models/measures/infer", json=by_column)
    assert response.status_code == 200, response.text
    expected = response.json()["outputs"]
    assert expected[0]["data"][0] == "Gentoo"

    rows = [[47.1, 5100.0], [44.5, 3650.0], [39.0, 3500.0]]  # today's [N, F] in column order
    single = {"inputs": [{"name": "input", "shape": [3, 2], "datatype": "FP64", "data": rows}]}
    response = client.post("/v2/models/measures/infer", json=single)
    assert response.status_code == 200, response.text
    by_column["inputs"][0]["data"] = [47.1, 44.5, 39.0]
    assert (
        response.json()["outputs"]
        == client.post("/v2/models/measures/infer", json=by_column).json()["outputs"]
    )

    for body, fragment in [
        ({"inputs": [{**single["inputs"][0], "shape": [2, 3], "data": [1.0] * 6}]}, "must have shape [N, 2]"),
        ({"inputs": [{**single["inputs"][0], "data": [[47.1, None]] + rows[1:]}]}, "cannot hold mixed, null"),
    ]:
        response = client.post("/v2/models/measures/infer", json=body)
        assert response.status_code == 400 and fragment in response.json()["error"], response.text
    # A model with text columns has no single-tensor form.
    response = client.post("/v2/models/penguins/infer", json=single)
    assert response.status_code == 400 and "has no input named 'input'" in response.json()["error"]


def test_a_table_model_exported_by_mlspec_answers_raw_rows_with_gaps_and_unseen_values(server, store_root):
    """The real thing: mlspec.ml.tabular's export of a scikit-learn model, published with its columns and
    fills; the endpoint answers raw JSON rows as the graph answers the feeds mlspec builds for them."""
    import pandas as pd

    columns = (
        Column("bill length", "number", missing="median"),
        Column("count", "integer", missing="most_frequent"),
        Column("flag", "boolean", missing="most_frequent"),
        Column("island", "category", missing="constant", constant="unknown"),
        Column("size", "category", encode="ordinal"),
    )
    frame, species = _penguins(240)
    table = pd.DataFrame(
        {
            "bill length": frame["bill_length_mm"],
            "count": frame["year"] - 2007,
            "flag": frame["tagged"],
            "island": frame["island"].where(frame.index % 10 != 0, ""),
            "size": np.where(frame["body_mass_g"] > 4200, "large", "small").astype(object),
        }
    )
    table.loc[::7, "count"] = np.nan
    table.loc[::11, "flag"] = np.nan
    y = np.searchsorted(SPECIES, species).astype(np.int64)
    dataset = Dataset(
        table[:200], y[:200], table[200:220], y[200:220], table[220:], y[220:], tuple(SPECIES),
        columns=columns, label_datatype="BYTES",
    )  # fmt: skip
    adapter = tabular.wrap(get_adapter("sklearn"))
    plan = TrainingPlan(
        framework="sklearn", task="classification", preprocess=(), seed=0, estimator="logistic_regression"
    )
    model = adapter.build(plan, dataset)
    adapter.fit(model, plan, dataset)
    onnx_bytes = adapter.to_onnx(model, task="classification", opset=17, sample=dataset.x_train[:8])
    fills = tabular.fill_values(model)
    published = [
        (c.name, c.type, c.datatype, c.missing, fills.get(c.name) if c.filled else None) for c in columns
    ]
    client = server.client(timeout=60)
    assert (
        load(client, "tabular", _publish_table(store_root, "tabular", onnx_bytes, published)).status_code
        == 200
    )

    rows = {
        "bill length": [None, 47.5, 39.1],
        "count": [1, None, 2],
        "flag": [None, True, False],
        "island": ["Atlantis", None, "Dream"],
        "size": ["large", "huge", "small"],
    }
    datatypes = {c.name: c.datatype for c in columns}
    body = {
        "inputs": [{"name": n, "shape": [3], "datatype": datatypes[n], "data": v} for n, v in rows.items()]
    }
    response = client.post("/v2/models/tabular/infer", json=body)
    assert response.status_code == 200, response.text
    answer = {o["name"]: o for o in response.json()["outputs"]}
    want = onnx_predict(onnx_bytes, tabular.feeds(columns, pd.DataFrame(rows), fills))
    assert answer["label"]["datatype"] == "BYTES" and answer["label"]["data"] == want["label"].tolist()
    assert set(answer["label"]["data"]) <= set(SPECIES)
    np.testing.assert_allclose(
        np.asarray(answer["probabilities"]["data"], dtype=np.float32).reshape(3, 3),
        want["probabilities"],
        atol=1e-6,
    )
    rows["size"][0] = None  # `size` has no missing: strategy
    body = {
        "inputs": [{"name": n, "shape": [3], "datatype": datatypes[n], "data": v} for n, v in rows.items()]
    }
    response = client.post("/v2/models/tabular/infer", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == (
        "column size has a null in row 0; its spec has no missing: strategy, so send a value"
    )
    client.close()


def test_a_large_body_of_rows_reads_as_small_ones_do(served):
    """Bodies over SIMD_MIN_BYTES take simdjson's path; strings and nulls come through it unchanged."""
    _, client = served
    repeat = 300
    rows = {name: values * repeat for name, values in ROWS.items()}
    body = _body(rows)
    assert len(json.dumps(body)) > SIMD_MIN_BYTES
    response = client.post("/v2/models/penguins/infer", json={**body, "outputs": [{"name": "label"}]})
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == _expected()[0] * repeat
    rows["island"][-1] = None
    response = client.post("/v2/models/penguins/infer", json=_body(rows))
    assert response.status_code == 400
    assert "column island has a null in row 899" in response.json()["error"]

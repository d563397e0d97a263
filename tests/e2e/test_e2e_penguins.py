"""A real table end to end (issue 13): the raw Palmer penguins CSV (data/penguins.csv: text columns, 19
missing values) trains with scikit-learn and with Keras from specs/penguins*.yaml, and the endpoint, called
with raw rows (strings, nulls in filled columns, an island it never saw) through plain JSON and through
tritonclient, answers species names. The same table trains from a real PostgreSQL server (sql://) and from a
dated folder of hive partitions ({{ ds }}, year=... folders)."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from tests.e2e.e2e_testkit import task_states, xcom
from tests.e2e.test_e2e_frameworks import held_out, version_dir
from tests.fixtures.paths import REPO, SPECS

from mlspec.ml.model_io import rows_inputs
from mlspec.ml.onnx_export import onnx_predict

pytestmark = pytest.mark.e2e

PENGUINS_CSV = REPO / "data" / "penguins.csv"
SPECIES = ["Adelie", "Chinstrap", "Gentoo"]
FEATURES = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex"]
CATEGORIES = {"island", "sex"}
SOURCE_LINE = "  source: file://data/penguins.csv\n"

# Raw rows as a client has them: an island the model never saw (Anvers), and nulls in columns the spec fills
# with a constant (sex), the mean (flipper_length_mm, body_mass_g).
RAW_ROWS = [
    {"island": "Anvers", "bill_length_mm": 38.2, "bill_depth_mm": 18.1, "flipper_length_mm": 185.0,
     "body_mass_g": 3950.0, "sex": None},
    {"island": "Dream", "bill_length_mm": 50.0, "bill_depth_mm": 19.5, "flipper_length_mm": None,
     "body_mass_g": 3900.0, "sex": "male"},
    {"island": "Biscoe", "bill_length_mm": 47.5, "bill_depth_mm": 14.2, "flipper_length_mm": 217.0,
     "body_mass_g": None, "sex": "female"},
]
RAW_SPECIES = ["Adelie", "Chinstrap", "Gentoo"]


@pytest.fixture
def penguins_file():
    """data/penguins.csv where `file://data/penguins.csv` points: $MLSPEC_HOME/data (README's first step)."""
    from mlspec.home import mlspec_home

    target = mlspec_home() / "data" / "penguins.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PENGUINS_CSV, target)
    return target


def test_the_shipped_table_is_the_raw_one():
    frame = pd.read_csv(PENGUINS_CSV)
    assert frame.shape == (344, 8) and list(frame.columns[-1:]) == ["year"]
    assert int(frame.isna().sum().sum()) == 19 and frame["island"].dtype != np.float64
    assert sorted(frame["species"].unique()) == SPECIES


LINTED = {
    # A misspelled label and a misspelled feature: each at its line, with the column it meant.
    "misspelled.yaml": """\
apiVersion: mlspec/v1
kind: ModelSpec
metadata: {{name: penguins-misspelled, description: two misspelled columns}}
data:
  source: {table}
  label: Species
  features:
    island: category
    bill_lenght_mm: {{type: number, missing: median}}
model: {{framework: sklearn, task: classification, estimator: random_forest}}
""",
    # Every column but year, types inferred: an id column is text of many values, gaps have no strategy.
    "untyped.yaml": """\
apiVersion: mlspec/v1
kind: ModelSpec
metadata: {{name: penguins-untyped, description: text without a type and gaps without a strategy}}
data:
  source: {table}
  label: species
  exclude: [year]
model: {{framework: sklearn, task: classification, estimator: random_forest}}
""",
    "template.yaml": """\
apiVersion: mlspec/v1
kind: ModelSpec
metadata: {{name: penguins-template, description: a bad template}}
data:
  source: '{folder}/{{{{ ds }}.csv'
  label: species
model: {{framework: sklearn, task: classification, estimator: random_forest}}
""",
}


def test_lint_finds_the_tables_mistakes_at_their_lines_before_any_run(tmp_path):
    frame = pd.read_csv(PENGUINS_CSV)
    frame["individual"] = [f"N{i // 2 + 1}A{i % 2 + 1}" for i in range(len(frame))]  # as penguins_raw has it
    frame.to_csv(tmp_path / "penguins.csv", index=False)
    for name, text in LINTED.items():
        table = (tmp_path / "penguins.csv").as_uri()
        (tmp_path / name).write_text(text.format(table=table, folder=tmp_path.as_uri()))
    mlspec = Path(sys.executable).parent / "mlspec"
    result = subprocess.run(
        [mlspec, "lint", *sorted(LINTED)],
        cwd=tmp_path, capture_output=True, text=True, env=os.environ.copy(), timeout=120,
    )
    found = result.stdout + result.stderr
    assert result.returncode == 1, found
    assert "misspelled.yaml:6:10: data.label: data.label 'Species' is not a column" in found, found
    assert "did you mean 'species'?" in found
    assert "misspelled.yaml:9:" in found and "did you mean 'bill_length_mm'?" in found, found
    assert "untyped.yaml:5:" in found, found
    assert "column 'individual' is text with 344 distinct values" in found, found
    assert "column bill_length_mm has 2 missing values (data rows 4 and 272)" in found, found
    assert "column sex has 11 missing values" in found, found
    assert "template.yaml:5:" in found and "data.source is not a valid template" in found, found


def json_inputs(rows: list[dict]) -> list[dict]:
    """One v2 input per column, [N, 1], JSON null for a missing value."""
    return [
        {
            "name": name,
            "shape": [len(rows), 1],
            "datatype": "BYTES" if name in CATEGORIES else "FP32",
            "data": [row[name] for row in rows],
        }
        for name in FEATURES
    ]


def infer_json(server_url: str, model: str, rows: list[dict]) -> dict[str, list]:
    url = f"{server_url}/v2/models/{model}/infer"
    response = httpx.post(url, json={"inputs": json_inputs(rows)}, timeout=30)
    assert response.status_code == 200, response.text
    return {out["name"]: out for out in response.json()["outputs"]}


def infer_triton(server_url: str, model: str, rows: list[dict]) -> dict[str, np.ndarray]:
    """The same rows through a real v2 client, binary tensors: BYTES for text ("" is a missing category), FP32
    with NaN for a missing number."""
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=server_url.removeprefix("http://"))
    assert client.is_model_ready(model)
    inputs = []
    for name in FEATURES:
        values = [row[name] for row in rows]
        if name in CATEGORIES:
            array = np.array(["" if v is None else v for v in values], dtype=object).reshape(-1, 1)
            tensor = triton.InferInput(name, list(array.shape), "BYTES")
        else:
            array = np.array([math.nan if v is None else v for v in values], dtype=np.float32).reshape(-1, 1)
            tensor = triton.InferInput(name, list(array.shape), "FP32")
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    answer = client.infer(model, inputs)
    return {name: answer.as_numpy(name) for name in ("label", "probabilities")}


def texts(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(values, dtype=object).ravel()]


def rows_of(frame: pd.DataFrame) -> list[dict]:
    """A normalized raw table (NaN / "" for gaps) back as the JSON rows a client sends (null for gaps)."""
    rows = []
    for record in frame[FEATURES].to_dict(orient="records"):
        rows.append({
            name: (None if value == "" else value) if name in CATEGORIES
            else (None if isinstance(value, float) and math.isnan(value) else float(value))
            for name, value in record.items()
        })
    return rows


def check_served_species(server_url: str, model: str, spec, dag_run) -> float:
    """The endpoint answers raw rows with species names, through JSON and tritonclient alike, and its answers
    on the held-out rows score the run's test accuracy. Returns that accuracy."""
    folder = version_dir(spec, xcom(dag_run, "store")["version"])
    output_schema = json.loads((folder / "output_schema.json").read_text())
    assert output_schema["class_names"] == SPECIES and output_schema["label_datatype"] == "BYTES"
    metadata = httpx.get(f"{server_url}/v2/models/{model}", timeout=30).json()
    assert {entry["name"]: entry["datatype"] for entry in metadata["inputs"]} == {
        name: "BYTES" if name in CATEGORIES else "FP32" for name in FEATURES
    }, metadata
    assert metadata["parameters"]["output_schema"]["class_names"] == SPECIES
    assert "Adelie, Chinstrap, Gentoo" in (folder / "model_card.md").read_text()

    answer = infer_json(server_url, model, RAW_ROWS)
    assert answer["label"]["datatype"] == "BYTES" and answer["label"]["data"] == RAW_SPECIES, answer
    probabilities = np.array(answer["probabilities"]["data"], dtype=np.float64).reshape(len(RAW_ROWS), 3)
    assert [SPECIES[i] for i in probabilities.argmax(1)] == RAW_SPECIES
    assert np.allclose(probabilities.sum(1), 1.0, atol=1e-4)

    # island has no missing: strategy, so a null there is refused by name.
    refused = httpx.post(
        f"{server_url}/v2/models/{model}/infer",
        json={"inputs": json_inputs([{**RAW_ROWS[0], "island": None}])},
        timeout=30,
    )
    assert refused.status_code == 400 and "island" in refused.json()["error"], refused.text

    # The published example (the model card's and the run summary's curl): real test rows, a null among them.
    example = json.loads((folder / "input_schema.json").read_text())["example"]
    assert any(value is None for row in example for value in row.values()), example
    schema = json.loads((folder / "input_schema.json").read_text())
    offline = onnx_predict((folder / "model.onnx").read_bytes(), rows_inputs(example, schema))
    assert infer_json(server_url, model, example)["label"]["data"] == [str(v) for v in offline["label"].ravel()]

    binary = infer_triton(server_url, model, RAW_ROWS)
    assert texts(binary["label"]) == RAW_SPECIES
    assert np.allclose(binary["probabilities"].reshape(len(RAW_ROWS), 3), probabilities, atol=1e-6)

    dataset = held_out(dag_run)
    assert list(dataset.x_test.columns) == FEATURES
    served = infer_json(server_url, model, rows_of(dataset.x_test))["label"]["data"]
    labels = np.asarray(dataset.y_test)
    truth = [SPECIES[i] for i in (labels.argmax(1) if labels.ndim == 2 else labels)]  # Keras: one-hot labels
    return float(np.mean([a == b for a, b in zip(served, truth, strict=True)]))


def trained_accuracy(dag_run) -> float:
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert xcom(dag_run, "smoke_test")["passed"]
    return xcom(dag_run, "evaluate")["metrics"]["accuracy"]


@pytest.mark.parametrize("name", ["penguins", "penguins-keras"])
def test_the_raw_penguins_table_trains_and_the_endpoint_answers_species_names(
    name, run_spec, model_server, penguins_file
):
    # Its own model name: tests/e2e/test_e2e_table_champion.py publishes `penguins` in the same session.
    model = f"{name}-raw"
    text = (SPECS / f"{name}.yaml").read_text().replace(f"name: {name}\n", f"name: {model}\n", 1)
    spec, dag_run = run_spec(text, model)
    assert spec.name == model
    accuracy = trained_accuracy(dag_run)
    prepared = xcom(dag_run, "prepare_data")
    assert prepared["class_names"] == SPECIES and sum(prepared["samples"].values()) == 344
    assert accuracy >= 0.95, accuracy
    served = check_served_species(model_server, model, spec, dag_run)
    assert served == pytest.approx(accuracy, abs=1e-6), (served, accuracy)
    print(f"{name}: test accuracy {accuracy:.4f}")


def load_penguins(server) -> None:
    """data/penguins.csv as a PostgreSQL table, its NA cells as NULL."""
    columns = (
        "species text NOT NULL, island text NOT NULL, bill_length_mm double precision, "
        "bill_depth_mm double precision, flipper_length_mm integer, body_mass_g integer, sex text, "
        "year integer"
    )
    with server.connect() as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS penguins ({columns})")
        cursor.execute("TRUNCATE penguins")
        with PENGUINS_CSV.open() as rows:
            cursor.copy_expert("COPY penguins FROM STDIN WITH (FORMAT csv, HEADER true, NULL 'NA')", rows)
    connection.close()


def test_the_penguins_table_trains_from_postgresql(run_spec, postgres_server, model_server, monkeypatch):
    load_penguins(postgres_server)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", postgres_server.airflow_uri)
    text = (SPECS / "penguins.yaml").read_text().replace("name: penguins\n", "name: penguins-sql\n")
    text = text.replace(SOURCE_LINE, "  source: sql://warehouse\n  query: SELECT * FROM penguins\n")
    _spec, dag_run = run_spec(text, "penguins-sql")
    accuracy = trained_accuracy(dag_run)
    prepared = xcom(dag_run, "prepare_data")
    assert prepared["source"] == "sql://warehouse" and prepared["class_names"] == SPECIES
    assert sum(prepared["samples"].values()) == 344
    assert accuracy >= 0.95, accuracy
    answer = infer_json(model_server, "penguins-sql", RAW_ROWS)
    assert answer["label"]["data"] == RAW_SPECIES, answer
    print(f"penguins-sql: test accuracy {accuracy:.4f}")


def test_a_dated_folder_of_year_partitions_trains_with_the_partition_column_excluded(
    airflow_db, model_server, tmp_path, monkeypatch
):
    """`{{ ds }}` names the run's folder, `year=...` folders add a column the spec excludes; the other
    columns' types are inferred (island and sex: text, so categories). A daily export without the rows that
    have gaps."""
    from mlspec.compiler import build_dag
    from mlspec.spec import load_spec

    frame = pd.read_csv(PENGUINS_CSV).dropna()
    day = tmp_path / "exports" / "2024-03-05"
    for year, rows in frame.groupby("year"):
        (day / f"year={year}").mkdir(parents=True)
        rows.drop(columns="year").to_parquet(day / f"year={year}" / "part-0.parquet", index=False)
    (day / "_SUCCESS").write_text("")
    specs = tmp_path / "specs"
    specs.mkdir()
    monkeypatch.setenv("MLSPEC_SPECS_DIR", str(specs))
    text = (SPECS / "penguins.yaml").read_text().replace("name: penguins\n", "name: penguins-daily\n")
    head, rest = text.split("  features:\n", 1)
    text = head + "  exclude: [year]\n" + rest[rest.index("  split:"):]
    text = text.replace(SOURCE_LINE, f"  source: '{(tmp_path / 'exports').as_uri()}/{{{{ ds }}}}/'\n")
    (specs / "penguins-daily.yaml").write_text(text)
    spec = load_spec(specs / "penguins-daily.yaml")
    assert spec.data.source.endswith("/exports/{{ ds }}/")
    dag_run = build_dag(spec, spec_text=text).test(logical_date=dt.datetime(2024, 3, 5, tzinfo=dt.UTC))
    accuracy = trained_accuracy(dag_run)
    prepared = xcom(dag_run, "prepare_data")
    assert prepared["source"] == f"{(tmp_path / 'exports').as_uri()}/2024-03-05/"
    assert sum(prepared["samples"].values()) == len(frame) == 333
    assert accuracy >= 0.95, accuracy
    dataset = held_out(dag_run)
    assert sorted(dataset.x_test.columns) == sorted(FEATURES)
    assert {column.name: column.type for column in dataset.columns} == {
        name: "category" if name in CATEGORIES else "number" for name in FEATURES
    }
    print(f"penguins-daily: test accuracy {accuracy:.4f}")

"""Retraining on a table that grows, each story of issue 14 through real Airflow runs (dag.test) against the
session's store, registry (MLflow) and model server.

data/cars.csv (the vega-datasets cars table, 1970-82) grows as a nightly retrain sees it, in one file
(`file://data/cars_stream.csv`):
- run 1: the cars before 1980;
- run 2: the 1980-82 cars appended (a growing table: v2's test rows were never v1's training rows);
- run 3: late rows appended whose weights came in kilograms under the same column `Weight_in_lbs`: every
  eighth car of the table, held back from runs 1 and 2, so that they are like the reference in all but the
  unit. `on_drift: fail` stops it at validate_data; the same data with `on_drift: warn` publishes v3, which
  records the drift;
- run 4: the same file again: v4's lineage equals v3's.
A second model (cars-accepted) trains on run 2's file, then on run 3's with `on_drift: fail` and
`--accept-drift` (the run's conf `accept_drift`): it trains anyway and records who accepted the drift.
Penguins (data/penguins.csv): v1 on Adelie and Gentoo, v2 once the Chinstrap rows arrived: the champion is
scored by class name, and v2 records the class it added.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from tests.e2e.e2e_testkit import kept_messages, task_states, xcom
from tests.e2e.test_e2e_frameworks import held_out, version_dir
from tests.fixtures.paths import REPO, SPECS

pytestmark = pytest.mark.e2e

CARS_CSV = REPO / "data" / "cars.csv"
CARS_COLUMNS = [
    "Name", "Miles_per_Gallon", "Cylinders", "Displacement", "Horsepower", "Weight_in_lbs", "Acceleration",
    "Year", "Origin",
]
POUNDS_PER_KILOGRAM = 2.20462262

# The spec the README's "Retraining: splits, validation, lineage" shows, on the growing file.
CARS_SPEC = """\
apiVersion: mlspec/v1
kind: ModelSpec
metadata: {name: cars-stream, description: Miles per gallon of the cars table as it grows, owner: ml-team}
data:
  source: file://data/cars_stream.csv
  label: Miles_per_Gallon
  features:
    Cylinders: number
    Displacement: number
    Horsepower: {type: number, missing: median}
    Weight_in_lbs: number
    Acceleration: number
    Year: number
    Origin: category
  split: {method: hash, key: [Name, Year], validation: 0.1, test: 0.2}
model:
  framework: sklearn
  task: regression
  estimator: random_forest
  params: {n_estimators: 60, max_depth: 8, random_state: 0}
evaluation:
  metrics: [rmse, mae, r2]
  thresholds: {r2: {min: 0.6}}
"""
FAIL_ON_DRIFT = "validation:\n  schema: fail\n  drift: {on_drift: fail}\n"
WARN_ON_DRIFT = "validation:\n  drift: {on_drift: warn}\n"


def cars_table() -> pd.DataFrame:
    return pd.read_csv(CARS_CSV)


def held_back(frame: pd.DataFrame) -> pd.Series:
    """Every eighth car of the table: the late rows of run 3, from every year and origin."""
    return pd.Series(np.arange(len(frame)) % 8 == 5, index=frame.index)


def in_kilograms(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["Weight_in_lbs"] = (frame["Weight_in_lbs"] / POUNDS_PER_KILOGRAM).round()
    return frame


def cars_stream(run: int) -> pd.DataFrame:
    """The growing file as run 1, 2 or 3 (and 4, the same as 3) reads it."""
    frame = cars_table()
    late = held_back(frame)
    stream = frame[~late & (frame["Year"] < 1980)]
    if run >= 2:
        stream = pd.concat([stream, frame[~late & (frame["Year"] >= 1980)]])
    if run >= 3:
        stream = pd.concat([stream, in_kilograms(frame[late])])
    return stream


def write_stream(name: str, frame: pd.DataFrame) -> None:
    """The file `file://data/<name>` points at, in $MLSPEC_HOME/data, overwritten as the table grows."""
    from mlspec.home import mlspec_home

    target = mlspec_home() / "data" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(target, index=False)


def registry():
    from mlspec.registry.mlflow_registry import MlflowRegistry

    return MlflowRegistry(None)


def version_tags(name: str, version: int) -> dict[str, str]:
    return dict(registry().client.get_model_version(name, str(version)).tags)


def published_splits(spec, version: int) -> pd.DataFrame:
    from mlspec.ml.splits import read_splits

    return read_splits((version_dir(spec, version) / "splits.parquet").read_bytes())


def ids_of(splits: pd.DataFrame, split: str) -> set[int]:
    return set(splits.loc[splits["split"] == split, "row_id"].astype("uint64").tolist())


@pytest.fixture(scope="module")
def run_model(airflow_db, model_server, tmp_path_factory):
    """run_spec (tests/e2e/conftest.py) for a whole module: the stories chain their runs of one model."""
    specs = tmp_path_factory.mktemp("retraining-specs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLSPEC_SPECS_DIR", str(specs))

        def run(text: str, name: str, **run_conf):
            from mlspec.compiler import build_dag
            from mlspec.spec import load_spec

            (specs / f"{name}.yaml").write_text(text)
            spec = load_spec(specs / f"{name}.yaml")
            with kept_messages("mlspec") as messages:
                dag_run = build_dag(spec, spec_text=text).test(run_conf=run_conf or None)
            return spec, dag_run, messages

        yield run


@pytest.fixture(scope="module")
def cars(run_model) -> dict:
    """The cars table's runs, in order (each test reads what it needs; a run that failed is kept). Runs 1
    and 2 have no validation section: its defaults (schema warn, on_drift warn)."""
    runs = {}
    write_stream("cars_stream.csv", cars_stream(1))
    runs[1] = run_model(CARS_SPEC, "cars-stream")
    write_stream("cars_stream.csv", cars_stream(2))
    runs[2] = run_model(CARS_SPEC, "cars-stream")
    write_stream("cars_stream.csv", cars_stream(3))
    runs["3 fail"] = run_model(CARS_SPEC + FAIL_ON_DRIFT, "cars-stream")
    runs["3 production"] = registry().production_version("cars-stream")
    runs[3] = run_model(CARS_SPEC + WARN_ON_DRIFT, "cars-stream")
    runs["4 production"] = registry().production_version("cars-stream")
    runs[4] = run_model(CARS_SPEC + WARN_ON_DRIFT, "cars-stream")
    return runs


def accepted_spec() -> str:
    return CARS_SPEC.replace("name: cars-stream", "name: cars-accepted").replace(
        "file://data/cars_stream.csv", "file://data/cars_accepted.csv"
    )


def test_the_shipped_cars_table_is_the_vega_datasets_one():
    frame = cars_table()
    assert list(frame.columns) == CARS_COLUMNS and len(frame) == 406
    assert frame["Year"].between(1970, 1982).all()
    assert sorted(frame["Origin"].unique()) == ["Europe", "Japan", "USA"]
    assert frame["Miles_per_Gallon"].isna().sum() == 8 and frame["Horsepower"].isna().sum() == 6
    assert int(frame.isna().sum().sum()) == 14


def test_the_late_rows_differ_from_the_table_only_in_their_unit():
    """The held-back cars in pounds are like the rest (so a drift test on them measures the unit, not a sample
    of other cars): the same two-sample test the validation uses finds nothing; in kilograms it does."""
    from scipy.stats import ks_2samp

    frame = cars_table()
    late = held_back(frame)
    for column in ["Cylinders", "Displacement", "Horsepower", "Weight_in_lbs", "Acceleration", "Year"]:
        kept, late_values = frame.loc[~late, column].dropna(), frame.loc[late, column].dropna()
        assert ks_2samp(kept, late_values).pvalue > 0.05, column
    kilograms = in_kilograms(frame[late])["Weight_in_lbs"]
    assert ks_2samp(frame.loc[~late, "Weight_in_lbs"], kilograms).pvalue < 1e-6


def test_a_growing_table_never_tests_the_new_version_on_rows_the_old_one_trained_on(cars):
    spec, first, _ = cars[1]
    _, second, _ = cars[2]
    assert str(first.state) == "success", task_states(first)
    assert str(second.state) == "success", task_states(second)
    v1, v2 = published_splits(spec, 1), published_splits(spec, 2)
    assert len(v1) == len(cars_stream(1)) - cars_stream(1)["Miles_per_Gallon"].isna().sum()
    assert ids_of(v2, "test") and ids_of(v1, "train")
    assert ids_of(v2, "test").isdisjoint(ids_of(v1, "train"))
    # Stronger: a row keeps its split as the table grows; the new rows spread over all three.
    both = v1.merge(v2, on="row_id", suffixes=("_v1", "_v2"))
    assert len(both) == len(v1) and (both["split_v1"] == both["split_v2"]).all()
    new = v2[~v2["row_id"].isin(v1["row_id"])]
    assert set(new["split"]) == {"train", "validation", "test"}
    rows = xcom(second, "prepare_data")["lineage"]["rows"]
    published_counts = v2["split"].value_counts().to_dict()
    assert {split: rows[split] for split in ("train", "validation", "test")} == published_counts
    # The 1980-82 cars differ from the 1970s ones: with the defaults (on_drift: warn) v2 goes on and says so.
    checks = xcom(second, "validate_data")
    assert checks["outcome"] == "warned" and checks["reference_version"] == 1
    assert "Year" in checks["drifted_columns"], checks


def test_a_unit_change_fails_the_run_or_is_recorded_on_the_version(cars):
    spec, failed, messages = cars["3 fail"]
    states = task_states(failed)
    assert str(failed.state) == "failed" and states["validate_data"] == "failed", states
    assert states["train"] != "success" and states["store"] != "success"
    said = "\n".join(messages)
    stop = next(m for m in messages if "--accept-drift" in m)
    assert "Weight_in_lbs" in stop and "mlspec run" in stop, said

    _, warned, _ = cars[3]
    assert str(warned.state) == "success", task_states(warned)
    result = xcom(warned, "validate_data")
    # Only the unit change: the late rows are like the rest in every other column.
    assert result["outcome"] == "warned" and result["drifted_columns"] == ["Weight_in_lbs"], result
    assert result["reference_version"] == cars["3 production"]
    tags = version_tags("cars-stream", 3)
    assert "Weight_in_lbs" in tags["mlspec.validation.drifted"].split(",")
    assert tags["mlspec.validation.outcome"] == "warned"
    assert tags["mlspec.validation.reference_version"] == str(cars["3 production"])
    drift = json.loads((version_dir(spec, 3) / "drift.json").read_text())
    assert "Weight_in_lbs" in drift["drifted_columns"] and drift["outcome"] == "warned"
    weight = [r for r in drift["rows"] if r["column"] == "Weight_in_lbs" and r["drifted"]]
    assert {r["check"] for r in weight} >= {"drift (new rows)"}, drift["rows"]
    assert (version_dir(spec, 3) / "drift.png").read_bytes().startswith(b"\x89PNG")
    lineage = json.loads((version_dir(spec, 3) / "lineage.json").read_text())
    assert lineage["validation"]["outcome"] == "warned"
    assert "Weight_in_lbs" in lineage["validation"]["drifted_columns"]


def test_accept_drift_retrains_anyway_and_says_who_accepted(run_model):
    write_stream("cars_accepted.csv", cars_stream(2))
    _, first, _ = run_model(accepted_spec() + FAIL_ON_DRIFT, "cars-accepted")
    assert str(first.state) == "success", task_states(first)
    assert xcom(first, "validate_data")["outcome"] == "no_reference"
    write_stream("cars_accepted.csv", cars_stream(3))
    spec, accepted, messages = run_model(accepted_spec() + FAIL_ON_DRIFT, "cars-accepted", accept_drift=True)
    assert str(accepted.state) == "success", task_states(accepted)
    result = xcom(accepted, "validate_data")
    assert result["outcome"] == "accepted" and result["drifted_columns"] == ["Weight_in_lbs"], result
    assert result["accepted_by"] and result["reference_version"] == 1
    assert any("accept_drift" in m and "Weight_in_lbs" in m for m in messages), messages
    tags = version_tags("cars-accepted", 2)
    assert tags["mlspec.validation.outcome"] == "accepted"
    assert tags["mlspec.validation.drifted"] == "Weight_in_lbs"
    lineage = json.loads((version_dir(spec, 2) / "lineage.json").read_text())
    assert lineage["validation"]["accepted_by"] == result["accepted_by"]


def lineage_tags(name: str, version: int) -> dict:
    tags = version_tags(name, version)
    return {
        "digest": tags["mlspec.data.digest"],
        "source": tags["mlspec.data.source"],
        "rows": json.loads(tags["mlspec.data.rows"]),
        "files": json.loads(tags["mlspec.data.files"]),
        "reference_version": tags.get("mlspec.validation.reference_version"),
    }


def test_each_versions_lineage_differs_where_its_data_differs(cars):
    spec = cars[1][0]
    lineage = {version: lineage_tags("cars-stream", version) for version in (1, 2, 3, 4)}
    digests = {version: entry["digest"] for version, entry in lineage.items()}
    assert all(d.startswith("sha256:") and len(d) == len("sha256:") + 64 for d in digests.values()), digests
    assert len({digests[1], digests[2], digests[3]}) == 3  # each run's data differs
    # Run 4 read the same data as run 3: the same lineage.
    assert digests[4] == digests[3] and lineage[4]["rows"] == lineage[3]["rows"]
    for version, run in ((1, 1), (2, 2), (3, 3), (4, 3)):
        stream = cars_stream(run)
        assert lineage[version]["rows"]["read"] == len(stream)
        no_label = int(stream["Miles_per_Gallon"].isna().sum())
        assert lineage[version]["rows"]["dropped"] == {"no label": no_label}
    # The file read, by its sha256: another file for each of runs 1 to 3, the same for run 4.
    files = {version: [entry["sha256"] for entry in lineage[version]["files"]] for version in lineage}
    assert all(len(hashes) == 1 for hashes in files.values()), files
    assert len({files[1][0], files[2][0], files[3][0]}) == 3 and files[4] == files[3]
    # The reference each version's data was checked against: none, then the production version of the time.
    references = [lineage[version]["reference_version"] for version in (1, 2, 3, 4)]
    assert references == [None, "1", str(cars["3 production"]), str(cars["4 production"])]
    if cars["4 production"] == 3:  # v4's data is v3's: nothing drifted
        assert version_tags("cars-stream", 4)["mlspec.validation.outcome"] == "passed"
    # The registry's record reads the same lineage back (what the Models page and mlspec status show).
    record = registry().version_record("cars-stream", 2).lineage
    assert record["digest"] == digests[2] and record["rows"] == lineage[2]["rows"]
    # One source, rendered, for every version; the digest is the one splits.parquet carries.
    assert {entry["source"] for entry in lineage.values()} == {"file://data/cars_stream.csv"}
    import pyarrow.parquet as pq

    for version in (1, 2, 3, 4):
        metadata = pq.read_metadata(version_dir(spec, version) / "splits.parquet").metadata
        assert metadata[b"mlspec.digest"].decode() == digests[version]
        published = json.loads((version_dir(spec, version) / "lineage.json").read_text())
        assert published["digest"] == digests[version]
    assert json.loads((version_dir(spec, 1) / "lineage.json").read_text())["reference_version"] is None


def test_a_holdout_is_the_test_split_and_never_trained_on(run_model):
    """evaluation.holdout: the 1982 cars as a fixed evaluation set; the whole table is the source, so its 1982
    rows leave the training data, and the thresholds and the champion gate score the holdout."""
    frame = cars_table()
    holdout = frame[frame["Year"] == 1982]
    write_stream("cars_holdout.csv", holdout)
    write_stream("cars_all.csv", frame)
    text = CARS_SPEC.replace("name: cars-stream", "name: cars-holdout")
    text = text.replace("file://data/cars_stream.csv", "file://data/cars_all.csv")
    text = text.replace("evaluation:\n", "evaluation:\n  holdout: {source: file://data/cars_holdout.csv}\n")
    spec, first, _ = run_model(text, "cars-holdout")
    assert str(first.state) == "success", task_states(first)
    labelled = int(holdout["Miles_per_Gallon"].notna().sum())
    lineage = xcom(first, "prepare_data")["lineage"]
    (holdout_file,) = lineage["holdout"].pop("files")  # the holdout's files are in the lineage too
    assert holdout_file["uri"] == "file://data/cars_holdout.csv" and len(holdout_file["sha256"]) == 64
    assert lineage["holdout"] == {"source": "file://data/cars_holdout.csv", "query": None, "rows": labelled}
    assert lineage["rows"]["test"] == labelled and lineage["rows"]["dropped"]["in the holdout"] == labelled
    splits = published_splits(spec, 1)
    assert int((splits["split"] == "test").sum()) == labelled
    assert ids_of(splits, "test").isdisjoint(ids_of(splits, "train") | ids_of(splits, "validation"))

    _, second, _ = run_model(text, "cars-holdout")
    assert str(second.state) == "success", task_states(second)
    verdict = xcom(second, "evaluate")["champion"]
    assert verdict["scored_on"] == "the holdout", verdict
    # The same model on the same rows (production through ONNX in float32: equal to 4 places, not to 6): a tie.
    assert verdict["champion"] == pytest.approx(verdict["challenger"], abs=1e-4)
    assert verdict["decision"] == "tie", verdict


# -- a new class, compared by name ---------------------------------------------------------------------
def penguins_spec() -> str:
    text = (SPECS / "penguins.yaml").read_text().replace("name: penguins\n", "name: penguins-classes\n")
    text = text.replace("source: file://data/penguins.csv", "source: file://data/penguins_stream.csv")
    return text + "  champion: {metric: accuracy, min_delta: 0}\n"


def by_name_accuracy(onnx_bytes: bytes, x: pd.DataFrame, truth: list[str]) -> float:
    """A published table model's accuracy on raw rows, scored by the species names it answers, fed through
    onnxruntime directly (one input per column: text with "" for a gap, numbers with NaN)."""
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    feeds = {}
    for node in session.get_inputs():
        values = x[node.name]
        if node.type == "tensor(string)":
            feeds[node.name] = values.fillna("").astype(str).to_numpy(dtype=object).reshape(-1, 1)
        else:
            dtype = np.float64 if node.type == "tensor(double)" else np.float32
            feeds[node.name] = values.to_numpy(dtype=dtype).reshape(-1, 1)
    label = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))["label"]
    answers = [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(label).reshape(-1).tolist()]
    return float(np.mean([a == t for a, t in zip(answers, truth, strict=True)]))


def test_a_new_class_is_scored_by_name_and_recorded(run_model):
    table = pd.read_csv(REPO / "data" / "penguins.csv")
    chinstrap = table["species"] == "Chinstrap"
    write_stream("penguins_stream.csv", table[~chinstrap])
    spec, first, _ = run_model(penguins_spec(), "penguins-classes")
    assert str(first.state) == "success", task_states(first)
    write_stream("penguins_stream.csv", pd.concat([table[~chinstrap], table[chinstrap]]))
    _, second, messages = run_model(penguins_spec(), "penguins-classes")
    assert str(second.state) == "success", task_states(second)

    verdict = xcom(second, "evaluate")["champion"]
    assert verdict["metric"] == "accuracy" and verdict["champion_version"] == 1
    assert verdict["scored_on"] == "this run's test split"
    assert verdict["classes_added"] == ["Chinstrap"] and verdict["classes_removed"] == []
    dataset = held_out(second)
    truth = [dataset.class_names[int(i)] for i in dataset.y_test]
    assert "Chinstrap" in truth
    expected = by_name_accuracy((version_dir(spec, 1) / "model.onnx").read_bytes(), dataset.x_test, truth)
    assert verdict["champion"] == pytest.approx(expected, abs=1e-6)
    assert expected < 0.9 and verdict["decision"] == "challenger_wins", verdict  # Chinstrap: wrong for v1
    # The rows it was scored on are v2's published test split.
    assert len(dataset.x_test) == len(ids_of(published_splits(spec, 2), "test"))
    tags = version_tags("penguins-classes", 2)
    assert float(tags["champion.champion"]) == pytest.approx(expected, abs=1e-6)
    assert tags["champion.classes_added"] == "Chinstrap"
    assert any("Chinstrap" in m and "added" in m for m in messages), messages

"""validate_data against real parts: a file store under MLSPEC_HOME and the embedded MLflow registry.

Story (issue 14 §3, the cars): a column's unit changes under the same name (pounds to kilograms). With
`on_drift: fail` the run stops before training, naming the column, the production version and the command that
retrains anyway; with `warn` it goes on and drift.json records the drift; with accept_drift the run goes on and
records who accepted it. With no production version (or one published before profiles existed) the profile is
recorded and the run passes.
"""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from tests.fixtures.paths import SPECS
from tests.fixtures.server_testkit import classifier_onnx
from tests.operators.operations_testkit import spec_for

from mlspec.ml.columns import Column
from mlspec.ml.data import Dataset

COLUMNS = (Column("Weight_in_lbs", "number"), Column("Horsepower", "number"), Column("Origin", "category"))
CLASSES = ("economy", "thirsty")


def cars(n: int, seed: int, *, kilograms: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
    """Normalized raw rows of a cars table; `kilograms`: the weight column holds kilograms under its old name."""
    rng = np.random.default_rng(seed)
    weight = rng.normal(3000.0, 600.0, n)
    frame = pd.DataFrame({
        "Weight_in_lbs": weight * 0.4536 if kilograms else weight,
        "Horsepower": rng.normal(100.0, 30.0, n),
        "Origin": rng.choice(["USA", "Europe", "Japan"], n).astype(object),
    })
    return frame, (weight > 3000.0).astype(np.int64)


def cars_dataset(seed: int, *, kilograms: bool = False, n: int = 300) -> Dataset:
    (train, y_train), (val, y_val), (test, y_test) = (
        cars(n, seed, kilograms=kilograms), cars(30, seed + 100), cars(60, seed + 200)
    )
    return Dataset(train, y_train, val, y_val, test, y_test, CLASSES, columns=COLUMNS, label_datatype="BYTES")


@pytest.fixture(autouse=True)
def home(ops_home):
    return ops_home


@pytest.fixture
def logged():
    """What mlspec says at INFO and above (a handler on the `mlspec` logger: Airflow routes the root's)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler, logger = Keep(), logging.getLogger("mlspec")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(level)


def text(records) -> str:
    return "\n".join(record.getMessage() for record in records)


def model_name(request) -> str:
    return "validate-" + request.node.name.removeprefix("test_").replace("_", "-")[:40].rstrip("-")


def operator(spec, data: str | dict):
    """validate_data given prepare_data's result (`handed_over`), or only its data_uri."""
    from mlspec.operators.validate import ValidateDataOperator

    data = {"data_uri": data} if isinstance(data, str) else data
    return ValidateDataOperator(task_id="validate_data", spec=spec.to_dict(), spec_file="specs/cars.yaml", data=data)


def handed_over(spec, dataset: Dataset, run_id: str) -> str:
    """prepare_data's npz of `dataset` in the run's folder: its data_uri."""
    from mlspec.storage import open_store

    store = open_store(spec.storage.uri, spec.storage.connection)
    return store.write_bytes(f"{store.run_prefix(spec.name, run_id)}/data/dataset.npz", dataset.to_npz_bytes())


def prepared(spec, dataset: Dataset, run_id: str) -> dict:
    """prepare_data's result for `dataset`: its npz and its splits.parquet in the run's folder."""
    from mlspec.ml.splits import splits_parquet
    from mlspec.storage import open_store

    store = open_store(spec.storage.uri, spec.storage.connection)
    splits = splits_parquet(dataset, "sha256:" + "1" * 64)
    splits_uri = store.write_bytes(f"{store.run_prefix(spec.name, run_id)}/data/splits.parquet", splits)
    return {"data_uri": handed_over(spec, dataset, run_id), "splits_uri": splits_uri}


def context(run_id: str, **params) -> dict:
    dag_run = SimpleNamespace(triggering_user_name="alice", run_type="manual", dag_id="cars", run_id=run_id)
    return {"run_id": run_id, "params": params, "dag_run": dag_run}


def publish_production(spec, dataset: Dataset | None, extra_files: dict | None = None) -> int:
    """Version 1 of the spec's model, production, with the profile of `dataset`'s training split (none: a version
    published before issue 14)."""
    from mlspec.ml.profile import build_profile
    from mlspec.registry import open_registry
    from mlspec.registry.base import RegistrationRequest
    from mlspec.storage import open_store

    files = {"model.onnx": classifier_onnx(1), **(extra_files or {})}
    if dataset is not None:
        files["profile.json"] = json.dumps(build_profile(dataset.x_train, dataset.columns)).encode()
    store = open_store(spec.storage.uri, spec.storage.connection)
    version = store.publish_version(spec.name, files, run_id="run-1")
    registry = open_registry(spec.registry.backend, spec.registry.connection)
    registry.register(RegistrationRequest(
        model_name=spec.name, version=version.version, source_uri=version.uri, model_uri=f"{version.uri}/model.onnx",
        metrics={"accuracy": 0.9}, data_source="file:///data/cars.csv", spec_hash="ab12", dag_id=spec.name,
        run_id="run-1", onnx_opset=17, files=dict(version.files),
    ))
    registry.set_production(spec.name, version.version, reason="the first version")
    return version.version


def read(uri: str) -> bytes:
    from mlspec.storage import resolve_file_uri

    return resolve_file_uri(uri).read_bytes()


def test_with_no_production_version_the_profile_is_recorded_and_the_run_passes(request, logged):
    spec = spec_for(model_name(request))
    result = operator(spec, handed_over(spec, cars_dataset(0), "manual__1")).run(context("manual__1"))
    assert result["outcome"] == "no_reference" and result["reference_version"] is None
    assert result["drift_uri"] is None and result["plot_uri"] is None and result["drifted_columns"] == []
    assert result["profile_uri"].endswith("/runs/manual__1/validate/profile.json")
    profile = json.loads(read(result["profile_uri"]))
    assert profile["rows"] == 300 and [c["name"] for c in profile["columns"]] == [c.name for c in COLUMNS]
    assert "has no production version yet" in text(logged)


def test_a_production_version_published_before_profiles_is_no_reference(request, logged):
    spec = spec_for(model_name(request))
    publish_production(spec, None)
    result = operator(spec, handed_over(spec, cars_dataset(1), "manual__2")).run(context("manual__2"))
    assert result["outcome"] == "no_reference" and result["profile_uri"]
    said = text(logged)
    assert "production version 1 of" in said and "published before mlspec recorded training profiles" in said


def test_a_unit_change_fails_the_run_before_training_and_names_the_way_out(request, logged):
    from airflow.sdk.exceptions import AirflowFailException

    spec = spec_for(model_name(request), "validation: {drift: {on_drift: fail}}\n")
    publish_production(spec, cars_dataset(0))
    op = operator(spec, handed_over(spec, cars_dataset(1, kilograms=True), "manual__3"))
    with pytest.raises(AirflowFailException) as failed:
        op.execute(context("manual__3"))
    message = str(failed.value)
    assert message.startswith(f"validate_data failed for model {spec.name}: ")
    assert "production version 1" in message and "on_drift is fail and columns drifted: Weight_in_lbs" in message
    assert "Horsepower" not in message.split("Next step")[0].split("drifted:")[1]
    assert "mlspec run specs/cars.yaml --accept-drift" in message and "accept_drift" in message.split("--accept-drift")[1]
    # The table is in the log, one line per row, and the run folder keeps drift.json with the outcome.
    assert sum("Weight_in_lbs" in record.getMessage() for record in logged) >= 1
    drift = op.store.read_json(op.store.run_prefix(spec.name, "manual__3") + "/validate/drift.json")
    assert drift["outcome"] == "failed" and drift["drifted_columns"] == ["Weight_in_lbs"]
    assert drift["settings"]["on_drift"] == "fail" and drift["reference"]["version"] == 1
    # The failure says where the table and the plot are, and the log why a p-value limit is not the 0.05 written.
    run = op.store.uri_for(op.store.run_prefix(spec.name, "manual__3"))
    assert f"The table is in {run}/validate/drift.json, the plot in {run}/validate/drift.png" in message
    assert any("the 3 p-value tests share 0.05 (validation.drift.threshold, or 0.05): each is judged at 0.0167"
               in record.getMessage() for record in logged)


def test_with_warn_the_run_goes_on_and_records_the_drift(request, logged):
    spec = spec_for(model_name(request), "validation: {drift: {on_drift: warn}}\n")
    publish_production(spec, cars_dataset(0))
    result = operator(spec, handed_over(spec, cars_dataset(1, kilograms=True), "manual__4")).run(context("manual__4"))
    assert result["outcome"] == "warned" and result["reference_version"] == 1
    assert result["drifted_columns"] == ["Weight_in_lbs"] and result["accepted_by"] is None
    drift = json.loads(read(result["drift_uri"]))
    assert drift["outcome"] == "warned" and drift["accepted_by"] is None
    assert {row["column"] for row in drift["rows"] if row["drifted"]} == {"Weight_in_lbs"}
    assert result["plot_uri"].endswith("/validate/drift.png") and read(result["plot_uri"]).startswith(b"\x89PNG")
    assert any(record.levelno == logging.WARNING and "the version records it" in record.getMessage() for record in logged)


def test_the_same_data_passes(request):
    spec = spec_for(model_name(request), "validation: {schema: fail, drift: {on_drift: fail}}\n")
    publish_production(spec, cars_dataset(0))
    result = operator(spec, handed_over(spec, cars_dataset(0), "manual__5")).run(context("manual__5"))
    assert result["outcome"] == "passed" and result["drifted_columns"] == [] and result["schema_problems"] == []


def test_accept_drift_lets_the_run_go_on_and_records_who_accepted(request, logged):
    spec = spec_for(model_name(request), "validation: {drift: {on_drift: fail}}\n")
    publish_production(spec, cars_dataset(0))
    result = operator(spec, handed_over(spec, cars_dataset(1, kilograms=True), "manual__6")).run(
        context("manual__6", accept_drift=True)
    )
    assert result["outcome"] == "accepted" and result["accepted_by"] == "alice"
    assert result["drifted_columns"] == ["Weight_in_lbs"]
    drift = json.loads(read(result["drift_uri"]))
    assert drift["outcome"] == "accepted" and drift["accepted_by"] == "alice"
    assert any(record.levelno == logging.WARNING and "accepted by alice" in record.getMessage() for record in logged)


def test_a_schema_problem_fails_under_schema_fail(request):
    from airflow.sdk.exceptions import AirflowFailException

    spec = spec_for(model_name(request), "validation: {schema: fail, drift: {on_drift: warn}}\n")
    publish_production(spec, cars_dataset(0))
    renamed = cars_dataset(0)
    frame = renamed.x_train.rename(columns={"Horsepower": "Power"})
    columns = (COLUMNS[0], Column("Power", "number"), COLUMNS[2])
    current = Dataset(frame, renamed.y_train, renamed.x_val, renamed.y_val, renamed.x_test, renamed.y_test, CLASSES,
                      columns=columns, label_datatype="BYTES")
    with pytest.raises(AirflowFailException) as failed:
        operator(spec, handed_over(spec, current, "manual__7")).execute(context("manual__7"))
    message = str(failed.value)
    assert "validation.schema is fail and the data has schema problems: " in message and "Horsepower" in message and "Power" in message and "--accept-drift" in message


def test_a_changed_profile_is_refused(request):
    """The reference is the profile the registry recorded: one changed after publishing is not compared with."""
    from airflow.sdk.exceptions import AirflowFailException

    from mlspec.storage import resolve_file_uri

    spec = spec_for(model_name(request))
    publish_production(spec, cars_dataset(0))
    from mlspec.registry import open_registry

    record = open_registry(spec.registry.backend, spec.registry.connection).version_record(spec.name, 1)
    (resolve_file_uri(record.source_uri) / "profile.json").write_text('{"rows": 1, "columns": []}')
    with pytest.raises(AirflowFailException, match="profile.json at .* does not match the sha256 the registry recorded"):
        operator(spec, handed_over(spec, cars_dataset(1), "manual__8")).execute(context("manual__8"))


def test_an_array_data_set_is_profiled_by_its_feature_names(request):
    from mlspec.ml.data import load_source

    spec = spec_for(model_name(request))
    x, y, names, features, *_ = load_source("builtin:iris", fmt=None, features=None, label=None, read_bytes=bytes)
    dataset = Dataset(x[:100], y[:100], x[100:120], y[100:120], x[120:], y[120:], names, feature_names=features)
    result = operator(spec, handed_over(spec, dataset, "manual__9")).run(context("manual__9"))
    assert result["outcome"] == "no_reference"
    profile = json.loads(read(result["profile_uri"]))
    assert [c["name"] for c in profile["columns"]] == list(features) and profile["rows"] == 100


def test_wide_arrays_are_skipped_with_the_reason(request, logged):
    spec = spec_for(model_name(request))
    images = np.zeros((12, 32, 32, 3), dtype=np.float32)
    labels = np.arange(12, dtype=np.int64) % 2
    dataset = Dataset(images, labels, images[:2], labels[:2], images[:2], labels[:2], ("cat", "dog"))
    result = operator(spec, handed_over(spec, dataset, "manual__10")).run(context("manual__10"))
    assert result["outcome"] == "skipped" and result["profile_uri"] is None
    assert "shape [32, 32, 3] (3072 values)" in text(logged)


def test_every_flow_checks_the_data_between_prepare_data_and_train():
    from mlspec.compiler import RETRIES, STAGES, TASK_ORDER, TUNED_TASK_ORDER, build_dag
    from mlspec.spec import load_spec

    assert TASK_ORDER[:3] == ("prepare_data", "validate_data", "train")
    assert TUNED_TASK_ORDER[:3] == ("prepare_data", "validate_data", "plan_trials")
    assert {task_id: inputs for task_id, _, inputs in STAGES}["validate_data"] == {"data": "prepare_data"}
    dag = build_dag(load_spec(SPECS / "iris.yaml"))
    validate = dag.get_task("validate_data")
    assert validate.data.operator.task_id == "prepare_data" and "train" in validate.downstream_task_ids
    assert dag.get_task("train").data.operator.task_id == "prepare_data"  # train reads prepare_data's result
    assert validate.retries == RETRIES["validate_data"] and validate.execution_timeout.total_seconds() == 15 * 60
    timed = build_dag(spec_for("validate-timed", "timeouts: {validate_data: 5m}\n")).get_task("validate_data")
    assert timed.execution_timeout.total_seconds() == 5 * 60


def test_new_rows_in_another_unit_drift_though_the_whole_split_barely_moves(request):
    """The growing cars table: production trained on 300 rows; this run trains on those and 30 new ones whose
    weight is in kilograms. The new rows (row ids not among production's training rows) are tested on their own."""
    from mlspec.ml.splits import row_ids, splits_parquet

    spec = spec_for(model_name(request), "validation: {drift: {on_drift: warn}}\n")
    old = cars_dataset(0)
    old = Dataset(**{**vars(old), "ids_train": row_ids(old.x_train, None)})
    publish_production(spec, old, {"splits.parquet": splits_parquet(old, "sha256:" + "0" * 64)})
    new_frame, new_y = cars(30, 9, kilograms=True)
    grown_frame = pd.concat([old.x_train, new_frame], ignore_index=True)
    grown = Dataset(**{
        **vars(old), "x_train": grown_frame, "y_train": np.concatenate([old.y_train, new_y]),
        "ids_train": row_ids(grown_frame, None),
    })
    result = operator(spec, prepared(spec, grown, "manual__11")).run(context("manual__11"))
    drift = json.loads(read(result["drift_uri"]))
    assert drift["current"] == {"rows": 330, "new_rows": 30}
    checks = {(row["column"], row["check"]): row["drifted"] for row in drift["rows"]}
    assert checks[("Weight_in_lbs", "drift (new rows)")] is True
    assert checks[("Horsepower", "drift (new rows)")] is False
    assert checks[("Weight_in_lbs", "drift")] is False  # 30 of 330 rows: the whole split's test does not see it
    assert result["outcome"] == "warned" and result["drifted_columns"] == ["Weight_in_lbs"]


@pytest.mark.parametrize("lost", ["profile.json", "splits.parquet"])
def test_a_reference_file_the_manifest_lists_but_the_store_lost_fails_the_run(request, lost):
    """Fail closed: production's manifest lists the file, the store cannot give it back. Passing as no_reference
    (or without the new-rows test) would let `on_drift: fail` through unchecked; the task fails (and its one retry
    covers a store blip), naming the file, the version and what to do."""
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from mlspec.ml.splits import row_ids, splits_parquet
    from mlspec.registry import open_registry
    from mlspec.storage import resolve_file_uri

    spec = spec_for(f"validate-lost-{lost.split('.')[0]}", "validation: {drift: {on_drift: fail}}\n")
    old = cars_dataset(0)
    old = Dataset(**{**vars(old), "ids_train": row_ids(old.x_train, None)})
    publish_production(spec, old, {"splits.parquet": splits_parquet(old, "sha256:" + "0" * 64)})
    record = open_registry(spec.registry.backend, spec.registry.connection).version_record(spec.name, 1)
    assert lost in record.files
    (resolve_file_uri(record.source_uri) / lost).unlink()
    with pytest.raises(AirflowException) as failed:
        operator(spec, handed_over(spec, cars_dataset(1, kilograms=True), "manual__12")).execute(context("manual__12"))
    assert not isinstance(failed.value, AirflowFailException)  # a store blip: the task's retry may fix it
    message = str(failed.value)
    assert f"{spec.name} version 1: {lost} cannot be read from " in message and "(its manifest lists it)" in message
    assert "mlspec deploy specs/cars.yaml --version N" in message


def test_under_warn_a_lost_reference_is_a_warning_and_the_run_goes_on(request, logged):
    """A store that lost production's version folder (test_e2e_champion's story two: the champion gate then falls
    back to the registry's recorded metrics) must not stop a run whose validation only warns: the checks could not
    have stopped it either. The log says what went unchecked."""
    from mlspec.registry import open_registry
    from mlspec.storage import resolve_file_uri

    spec = spec_for(model_name(request))  # no validation section: schema warn, on_drift warn
    publish_production(spec, cars_dataset(0))
    record = open_registry(spec.registry.backend, spec.registry.connection).version_record(spec.name, 1)
    (resolve_file_uri(record.source_uri) / "profile.json").unlink()
    outcome = operator(spec, handed_over(spec, cars_dataset(1, kilograms=True), "manual__13")).execute(context("manual__13"))
    assert outcome["outcome"] == "no_reference" and outcome["profile_uri"]
    warned = [r.getMessage() for r in logged if r.levelname == "WARNING"]
    assert any("profile.json cannot be read" in m and "this run's data is not checked against it (validation warns "
               "only, so the run goes on)" in m for m in warned), warned
    assert not any("published before mlspec recorded training profiles" in r.getMessage() for r in logged)


def test_a_version_whose_manifest_never_listed_splits_checks_the_whole_split_only(request):
    """splits.parquet absent from the manifest (published before issue 14's splits): no new-rows test, no failure."""
    spec = spec_for(model_name(request), "validation: {drift: {on_drift: warn}}\n")
    publish_production(spec, cars_dataset(0))
    result = operator(spec, handed_over(spec, cars_dataset(0), "manual__13")).run(context("manual__13"))
    drift = json.loads(read(result["drift_uri"]))
    assert result["outcome"] == "passed" and drift["current"].get("new_rows") in (None, 0)
    assert not any(row["check"] == "drift (new rows)" for row in drift["rows"])


def keyed_cars(frame: pd.DataFrame, y: np.ndarray, numbers: np.ndarray) -> Dataset:
    """A training split of cars under data.split.key [Name, Year] (car i: "car i" of 1970 + i % 13): row ids from
    the key, content ids from the feature and label columns (as load_source computes them)."""
    from mlspec.ml.splits import row_ids

    names = np.array([f"car {i}" for i in numbers], dtype=object)
    source = frame.assign(Name=names, Year=1970 + numbers % 13, label=np.asarray(CLASSES)[y])
    contents = row_ids(source[[c.name for c in COLUMNS] + ["label"]], None)
    empty = np.zeros(0, dtype=np.uint64)
    return Dataset(
        frame, y, frame[:0], y[:0], frame[:0], y[:0], CLASSES, columns=COLUMNS, label_datatype="BYTES",
        ids_train=row_ids(source, ["Name", "Year"]), ids_val=empty, ids_test=empty, content_ids_train=contents,
        content_ids_val=empty, content_ids_test=empty,
    )


def test_cars_re_sent_in_kilograms_under_their_key_are_new_rows_and_fail_the_run(request):
    """data.split.key [Name, Year]: 30 cars production trained on come again (same key, so the same row id and
    split) with their weight in kilograms. By content they are new rows: their weight drifts, and on_drift: fail
    stops the run, though the whole split's test does not see 30 rows of 330."""
    from airflow.sdk.exceptions import AirflowFailException

    from mlspec.ml.splits import splits_parquet

    spec = spec_for(model_name(request), "validation: {drift: {on_drift: fail}}\n")
    frame, y = cars(300, 0)
    old = keyed_cars(frame, y, np.arange(300))
    publish_production(spec, old, {"splits.parquet": splits_parquet(old, "sha256:" + "0" * 64)})
    copies = frame.iloc[:30].assign(Weight_in_lbs=frame["Weight_in_lbs"].iloc[:30] * 0.4536)
    grown = keyed_cars(
        pd.concat([frame, copies], ignore_index=True), np.concatenate([y, y[:30]]), np.r_[np.arange(300), np.arange(30)]
    )
    assert set(grown.ids_train[300:]) <= set(old.ids_train)  # the same keys: the same row ids
    op = operator(spec, prepared(spec, grown, "manual__14"))
    with pytest.raises(AirflowFailException, match="columns drifted: Weight_in_lbs"):
        op.execute(context("manual__14"))
    drift = op.store.read_json(op.store.run_prefix(spec.name, "manual__14") + "/validate/drift.json")
    assert drift["current"] == {"rows": 330, "new_rows": 30}
    checks = {(row["column"], row["check"]): row["drifted"] for row in drift["rows"]}
    assert checks[("Weight_in_lbs", "drift (new rows)")] is True and checks[("Weight_in_lbs", "drift")] is False
    assert checks[("Horsepower", "drift (new rows)")] is False

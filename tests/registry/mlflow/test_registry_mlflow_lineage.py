"""A version's data lineage on MLflow, embedded and on a real `mlflow server`: the mlspec.data.* and
mlspec.validation.* tags (a long file list cut to fit the server's tag limit) read back into VersionRecord.lineage,
and the training run's dataset input the server keeps."""

from __future__ import annotations

import json

import pytest

from mlspec.registry.base import TAG_VALUE_LIMIT
from mlspec.registry.mlflow_registry import MlflowRegistry
from mlspec.tracking import TrainingTracker, training_dataset

FILES = [{"uri": f"s3://raw/cars/day={i:03d}/part-0.csv", "sha256": f"{i:064x}", "etag": f'"{i:032x}"', "version_id": None}
         for i in range(100)]
LINEAGE = {
    "source": "s3://raw/cars/day=*/part-0.csv", "query": None, "files": FILES, "digest": "sha256:" + "7e" * 32,
    "rows": {"read": 30000, "dropped": {"no label": 12}, "train": 21000, "validation": 3000, "test": 5988},
    "split": {"method": "hash", "key": None, "validation": 0.1, "test": 0.2, "seed": 42},
    "reference_version": 4, "validation": {"outcome": "warned", "drifted_columns": ["Weight_in_lbs"],
                                           "schema_problems": [], "accepted_by": None},
}


@pytest.fixture(params=["embedded", "server"])
def connection(request) -> str | None:
    return None if request.param == "embedded" else request.getfixturevalue("server_connection")


def test_lineage_tags_round_trip_and_a_long_file_list_fits_a_tag(connection, publisher, unique_name) -> None:
    name = unique_name("cars")
    registry = MlflowRegistry(connection)
    published = publisher.publish(name, run_id="manual__1")
    entry = registry.register(publisher.request(published, lineage=LINEAGE, data_source=LINEAGE["source"]))
    mv = registry.client.get_model_version(name, entry.registry_version)
    assert all(len(value) <= TAG_VALUE_LIMIT for value in mv.tags.values())
    files = json.loads(mv.tags["mlspec.data.files"])
    assert files[:-1] == FILES[: len(files) - 1] and files[-1] == {"more": 100 - (len(files) - 1)}

    record = registry.version_record(name, published.version)
    assert record.data_source == LINEAGE["source"]
    assert record.lineage == {
        "source": LINEAGE["source"], "files": files, "digest": LINEAGE["digest"], "rows": LINEAGE["rows"],
        "reference_version": 4, "validation": {"outcome": "warned", "drifted_columns": ["Weight_in_lbs"]},
    }


def test_the_server_keeps_the_training_runs_dataset_input(mlflow_server, server_connection, client_for, unique_name) -> None:
    name = unique_name("cars")
    with TrainingTracker(server_connection, name, run_name="train", tags={"dag_id": name, "airflow_run_id": "r"}) as tracker:
        tracker.log_metrics({"loss": 0.2})
    client = client_for(mlflow_server.url)
    for _ in range(2):  # a retried register task records it again: still one input
        client.log_inputs(tracker.run_id, [training_dataset(name, LINEAGE)])
    (given,) = client.get_run(tracker.run_id).inputs.dataset_inputs
    assert given.dataset.digest == LINEAGE["digest"][:36] and given.dataset.source_type == "s3"
    assert json.loads(given.dataset.source) == {"uri": LINEAGE["source"]}
    assert json.loads(given.dataset.profile)["num_rows"] == 21000

"""The champion gate for a table model: production's ONNX takes this run's test rows one input per
column (with its own published fills) and answers species names, mapped back to this run's class indices
by name; a production version that takes other inputs is compared by its recorded metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.fixtures.table_model import SPECIES, published_schemas, table_dataset, trained

from mlspec.champion import ChampionUnfit, champion_outputs
from mlspec.errors import StoreError
from mlspec.ml import tabular
from mlspec.ml.data import Dataset


class FilesStore:
    """A store holding one version folder's files."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    def read_uri(self, uri: str) -> bytes:
        name = uri.rsplit("/", 1)[-1]
        if name not in self.files:
            raise StoreError(f"{uri} does not exist")
        return self.files[name]


def _production_store() -> FilesStore:
    inputs, outputs = published_schemas()
    return FilesStore({"input_schema.json": json.dumps(inputs).encode(), "output_schema.json": json.dumps(outputs).encode()})


def test_production_answers_are_class_indices_of_this_runs_classes_by_name():
    adapter, model, onnx_bytes = trained()
    dataset = table_dataset()
    direct = adapter.predict(model, dataset.x_test, "classification")["label"]  # indices into SPECIES
    # This run's classes in another order, and one class production never learned.
    reordered = Dataset(
        dataset.x_train, dataset.y_train, dataset.x_val, dataset.y_val, dataset.x_test, dataset.y_test,
        ("Gentoo", "Emperor", "Adelie", "Chinstrap"), columns=dataset.columns, label_datatype="BYTES",
    )
    outputs = champion_outputs(_production_store(), "file:///m/penguins/1", onnx_bytes, reordered)
    want = np.array([reordered.class_names.index(SPECIES[i]) for i in direct])
    assert outputs["label"].tolist() == want.tolist()
    assert outputs["probabilities"].shape == (len(dataset.x_test), len(SPECIES))
    assert tabular.fill_values(model)  # the production's own fills fed its integer gaps


def test_production_that_takes_other_columns_cannot_be_scored_on_this_split():
    _, _, onnx_bytes = trained()
    dataset = table_dataset()
    other = Dataset(
        dataset.x_train, dataset.y_train, dataset.x_val, dataset.y_val, dataset.x_test.drop(columns=["sex"]),
        dataset.y_test, SPECIES, columns=dataset.columns[:4] + dataset.columns[5:], label_datatype="BYTES",
    )
    with pytest.raises(ChampionUnfit, match="sex, which this run's data lacks"):
        champion_outputs(_production_store(), "file:///m/penguins/1", onnx_bytes, other)
    with pytest.raises(ChampionUnfit, match="one array of features"):
        champion_outputs(FilesStore({}), "file:///m/penguins/1", onnx_bytes, dataset)

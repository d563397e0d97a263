"""The champion gate for a table model: production's ONNX takes this run's test rows one input per
column (with its own published fills) and answers species names, mapped back to this run's class indices
by name; a production version that takes other inputs is compared by its recorded metrics."""

from __future__ import annotations

import numpy as np
import pytest
from tests.fixtures.table_model import SPECIES, published_schemas, table_dataset, trained

from mlspec.champion import ChampionUnfit, champion_outputs
from mlspec.ml import tabular
from mlspec.ml.data import Dataset
from mlspec.ml.onnx_export import onnx_predict


def test_production_answers_are_class_indices_of_this_runs_classes_by_name():
    adapter, model, onnx_bytes = trained()
    dataset = table_dataset()
    direct = adapter.predict(model, dataset.x_test, "classification")["label"]  # indices into SPECIES
    # This run's classes in another order, and one class production never learned.
    reordered = Dataset(
        dataset.x_train, dataset.y_train, dataset.x_val, dataset.y_val, dataset.x_test, dataset.y_test,
        ("Gentoo", "Emperor", "Adelie", "Chinstrap"), columns=dataset.columns, label_datatype="BYTES",
    )
    outputs = champion_outputs(onnx_bytes, reordered, *published_schemas())
    want = np.array([reordered.class_names.index(SPECIES[i]) for i in direct])
    assert outputs["label"].tolist() == want.tolist()
    # Probabilities too are in this run's class order, 0 for the class production never learned.
    own = onnx_predict(onnx_bytes, tabular.feeds(dataset.columns, dataset.x_test, tabular.fill_values(model)))["probabilities"]
    assert outputs["probabilities"].shape == (len(dataset.x_test), 4)
    for name in SPECIES:
        np.testing.assert_array_equal(outputs["probabilities"][:, reordered.class_names.index(name)], own[:, SPECIES.index(name)])
    assert not outputs["probabilities"][:, reordered.class_names.index("Emperor")].any()


def test_production_fills_a_gap_in_its_integer_column_with_its_own_published_fill():
    _, model, onnx_bytes = trained()
    dataset = table_dataset()
    fill = tabular.fill_values(model)["year"]
    assert fill in (2007, 2008, 2009)
    gap, filled = dataset.x_test.copy(), dataset.x_test.copy()
    gap.loc[:4, "year"] = np.nan
    filled.loc[:4, "year"] = float(fill)
    rows = _with_test_rows(dataset, gap)
    outputs = champion_outputs(onnx_bytes, rows, *published_schemas())
    want = onnx_predict(onnx_bytes, tabular.feeds(dataset.columns, filled, tabular.fill_values(model)))
    np.testing.assert_array_equal(outputs["probabilities"], want["probabilities"])


def _with_test_rows(dataset: Dataset, x_test) -> Dataset:
    return Dataset(
        dataset.x_train, dataset.y_train, dataset.x_val, dataset.y_val, x_test, dataset.y_test, SPECIES,
        columns=dataset.columns, label_datatype="BYTES",
    )


def test_production_is_never_scored_on_rows_with_a_gap_it_does_not_fill():
    _, _, onnx_bytes = trained()
    dataset = table_dataset()
    rows = dataset.x_test.copy()
    rows.loc[[1, 3], "mass"] = np.nan  # as if this run filled mass: production has no fill (its endpoint: 400)
    with pytest.raises(ChampionUnfit, match=r"gaps in column\(s\) it does not fill: mass \(2 rows\)"):
        champion_outputs(onnx_bytes, _with_test_rows(dataset, rows), *published_schemas())
    rows = dataset.x_test.copy()
    rows.loc[[2], "island"] = ""  # a category gap is "" in the raw table
    with pytest.raises(ChampionUnfit, match=r"island \(1 rows\)"):
        champion_outputs(onnx_bytes, _with_test_rows(dataset, rows), *published_schemas())


def test_production_that_reads_a_column_as_another_type_cannot_be_scored():
    _, _, onnx_bytes = trained()
    dataset = table_dataset()
    rows = dataset.x_test.copy()
    rows["mass"] = rows["island"]  # mass is now text in this run's data
    with pytest.raises(ChampionUnfit, match="a column it reads another way"):
        champion_outputs(onnx_bytes, _with_test_rows(dataset, rows), *published_schemas())


def test_production_that_takes_other_columns_cannot_be_scored_on_this_split():
    _, _, onnx_bytes = trained()
    dataset = table_dataset()
    other = Dataset(
        dataset.x_train, dataset.y_train, dataset.x_val, dataset.y_val, dataset.x_test.drop(columns=["sex"]),
        dataset.y_test, SPECIES, columns=dataset.columns[:4] + dataset.columns[5:], label_datatype="BYTES",
    )
    with pytest.raises(ChampionUnfit, match="sex, which this run's data lacks"):
        champion_outputs(onnx_bytes, other, *published_schemas())
    with pytest.raises(ChampionUnfit, match="one array of features"):
        champion_outputs(onnx_bytes, dataset, {}, {})

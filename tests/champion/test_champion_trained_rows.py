"""The champion is never graded on rows it trained on (issue 14, the cars v1 story): where production published
splits.parquet and some of this run's test rows are among its "train" rows (a random split, a changed
data.split.key, ...), both models are scored on the other rows, and the verdict says how many were left out.
A real ONNX champion in a real file store; the registry is the one stand-in."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from tests.champion.test_champion import (
    CLASSES,
    NAME,
    PREDICTED,
    Y_TEST,
    Registry,
    argmax_model,
    spec_with_gate,
)

import mlspec.champion
from mlspec.champion import ON_RECORDED_METRICS, ON_TEST_SPLIT, compare_with_champion, verdict_line
from mlspec.ml.data import Dataset
from mlspec.ml.splits import splits_parquet
from mlspec.registry.base import VersionRecord
from mlspec.storage import open_store

# This run's 6 test rows: row ids under this run's key, content ids (features + label) whatever the key.
ROW_IDS = np.arange(1, 7, dtype=np.uint64)
CONTENT_IDS = np.arange(11, 17, dtype=np.uint64)
# The challenger's answers on them: 5 of 6 right; on rows 3-5 alone 2 of 3.
CHALLENGER_LABELS = np.array([0, 1, 2, 0, 1, 1])


def this_run() -> Dataset:
    x = np.eye(3, dtype=np.float32)[PREDICTED]  # the champion (argmax) is right on rows 0-3 and wrong on 4-5
    return Dataset(x, Y_TEST, x, Y_TEST, x, Y_TEST, CLASSES, ids_test=ROW_IDS, content_ids_test=CONTENT_IDS)


def production_splits(train_row_ids, train_content_ids=None) -> bytes:
    """Production's splits.parquet: it trained on the given rows (and tested on others)."""
    train_row_ids = np.asarray(train_row_ids, dtype=np.uint64)
    contents = () if train_content_ids is None else np.asarray(train_content_ids, dtype=np.uint64)
    x = np.zeros((len(train_row_ids), 3), dtype=np.float32)
    y = np.zeros(len(train_row_ids), dtype=np.int64)
    none = np.zeros(0, dtype=np.uint64)
    published = Dataset(
        x, y, x[:0], y[:0], x[:0], y[:0], CLASSES, ids_train=train_row_ids, ids_val=none,
        ids_test=np.array([900], dtype=np.uint64), content_ids_train=contents,
    )
    return splits_parquet(published, "sha256:" + "0" * 64)


@pytest.fixture
def publish(monkeypatch, mlspec_home):
    """Publish version 1 (production, recorded accuracy 0.9) with the given splits.parquet (None: without one)."""
    registry = Registry()
    monkeypatch.setattr(mlspec.champion, "open_registry", registry.open)
    store = open_store("file://models")

    def publish(splits: bytes | None):
        files = {"model.onnx": argmax_model(), **({"splits.parquet": splits} if splits else {})}
        published = store.publish_version(NAME, files, run_id="manual__1")
        record = VersionRecord(
            NAME, published.version, published.uri, dict(published.files), {"accuracy": 0.9}, "manual__1", "production"
        )
        registry.production, registry.records[published.version] = published.version, record
        return store

    return publish


def compare(store, dataset=None):
    outputs = {"label": CHALLENGER_LABELS}
    return compare_with_champion(spec_with_gate("{metric: accuracy}"), store, dataset or this_run(), {"accuracy": round(5 / 6, 6)}, outputs)


def test_rows_production_trained_on_are_left_out_of_both_scores(publish, caplog):
    """Production trained on rows 0-2 of this run's test split, under another key (other row ids, same content):
    both are scored on rows 3-5 only."""
    store = publish(production_splits([101, 102, 103, 104], CONTENT_IDS[:3].tolist() + [99]))
    with caplog.at_level(logging.INFO, logger="mlspec"):
        verdict = compare(store)
    assert verdict["left_out"] == 3 and verdict["scored_on"] == ON_TEST_SPLIT
    assert verdict["challenger"] == round(2 / 3, 6)  # re-scored on rows 3-5, not its 5 of 6 on all rows
    assert verdict["champion"] == round(1 / 3, 6)  # argmax is right on row 3 only of 3-5 (4 of 6 on all rows)
    assert verdict["decision"] == "challenger_wins"
    assert "production version 1 trained on 3 of the 6 rows of this run's test split: both are scored on the other 3" in caplog.text


def test_without_content_ids_the_row_ids_say_which_rows_production_trained_on(publish):
    """A splits.parquet written before content ids (row_id and split only): its row ids stand in for them."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    old = io.BytesIO()
    pq.write_table(pa.table({"row_id": pa.array([5, 6, 77], type=pa.uint64()), "split": ["train", "train", "test"]}), old)
    store = publish(old.getvalue())
    verdict = compare(store)
    assert verdict["left_out"] == 2 and verdict["champion"] == 1.0 and verdict["challenger"] == 1.0  # rows 0-3: both right
    assert verdict["decision"] == "tie", str(verdict)
    assert verdict_line("iris-forest", verdict) == (
        "iris-forest: tie: the champion holds: production version 1 keeps serving: its accuracy is 1.0000 against the "
        "new model's 1.0000 (min_delta 0); both scored without the 2 test rows production trained on"
    )


def test_nothing_is_left_out_when_production_trained_on_none_of_the_test_rows(publish, caplog):
    """A hash split with an unchanged key: no test row was a training row; the verdict is as before."""
    store = publish(production_splits([101, 102], [21, 22]))
    with caplog.at_level(logging.INFO, logger="mlspec"):
        verdict = compare(store)
    assert "left_out" not in verdict
    assert verdict["challenger"] == round(5 / 6, 6) and verdict["champion"] == round(4 / 6, 6)
    assert "none of the 6 rows of this run's test split was production version 1's training rows" in caplog.text


def test_a_version_without_splits_is_scored_on_every_test_row(publish):
    verdict = compare(publish(None))
    assert "left_out" not in verdict and verdict["champion"] == round(4 / 6, 6)


def test_when_production_trained_on_every_test_row_its_recorded_metrics_decide(publish, caplog):
    store = publish(production_splits([201, 202, 203, 204, 205, 206], CONTENT_IDS.tolist()))
    with caplog.at_level(logging.WARNING, logger="mlspec"):
        verdict = compare(store)
    assert verdict["left_out"] == 6 and verdict["scored_on"] == ON_RECORDED_METRICS
    assert verdict["champion"] == 0.9 and verdict["decision"] == "champion_holds"
    assert verdict_line("iris-forest", verdict).endswith("against the new model's 0.8333 (min_delta 0)")
    assert "trained on 6 of the 6 rows of this run's test split, leaving too few to score on" in caplog.text


def test_when_one_test_row_would_be_left_the_recorded_metrics_decide(publish, caplog):
    """One row left is no score (r2 of one row is NaN, which evaluate could not hand on): as when none is left."""
    store = publish(production_splits([201, 202, 203, 204, 205], CONTENT_IDS[:5].tolist()))
    with caplog.at_level(logging.WARNING, logger="mlspec"):
        verdict = compare(store)
    assert verdict["left_out"] == 5 and verdict["scored_on"] == ON_RECORDED_METRICS and verdict["champion"] == 0.9
    assert "trained on 5 of the 6 rows of this run's test split, leaving too few to score on" in caplog.text

"""The issue's cars story as it was (a random split re-drawn over the whole table on every run), through real
Airflow runs: run 2's test split holds cars version 1 trained on. The champion gate leaves them out: it scores
both models on the other test rows, logs how many it left out and records "left_out" in its verdict. With the
default hash split nothing overlaps and the verdict has no "left_out" (tests/e2e/test_e2e_retraining.py's cars)."""

from __future__ import annotations

import pytest
from tests.e2e.e2e_testkit import task_states, xcom
from tests.e2e.test_e2e_retraining import CARS_SPEC, cars_stream, published_splits, run_model, write_stream

pytestmark = pytest.mark.e2e

__all__ = ["run_model"]  # the module-scoped fixture these runs share

RANDOM_SPEC = CARS_SPEC.replace("name: cars-stream", "name: cars-random").replace(
    "file://data/cars_stream.csv", "file://data/cars_random.csv"
).replace(
    "split: {method: hash, key: [Name, Year], validation: 0.1, test: 0.2}",
    "split: {method: random, seed: 7, key: [Name, Year], validation: 0.1, test: 0.2}",
)


def content_ids(splits, split: str) -> set[int]:
    return set(splits.loc[splits["split"] == split, "content_id"].astype("uint64").tolist())


def test_a_random_split_leaves_the_rows_production_trained_on_out_of_the_champion_gate(run_model):
    assert RANDOM_SPEC.count("method: random") == 1
    write_stream("cars_random.csv", cars_stream(1))
    spec, first, _ = run_model(RANDOM_SPEC, "cars-random")
    write_stream("cars_random.csv", cars_stream(2))
    _, second, messages = run_model(RANDOM_SPEC, "cars-random")
    assert str(first.state) == "success", task_states(first)
    assert str(second.state) == "success", task_states(second)
    v1, v2 = published_splits(spec, 1), published_splits(spec, 2)
    tested = content_ids(v2, "test")
    trained = len(tested & content_ids(v1, "train"))
    assert 0 < trained < len(tested)  # the random split re-drawn: some of v1's training cars are v2's test cars
    verdict = xcom(second, "evaluate")["champion"]
    assert verdict["left_out"] == trained and verdict["scored_on"] == "this run's test split", verdict
    said = "\n".join(messages)
    assert (
        f"production version 1 trained on {trained} of the {len(tested)} rows of this run's test split: both are "
        f"scored on the other {len(tested) - trained}"
    ) in said
    assert f"less the {trained} rows production trained on" in said

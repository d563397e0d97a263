"""Issue 14's spec surface: data.split.method/key, evaluation.holdout and the `validation` section, with their
defaults, typed accessors, dict form and the schema's refusals (file:line and field)."""

from __future__ import annotations

import dataclasses

import pytest

from mlspec.spec import SpecError, load_spec_text

BASE = """\
apiVersion: mlspec/v1
kind: ModelSpec
metadata:
  name: cars
data:
  source: file://data/cars.csv
  label: Miles_per_Gallon
model:
  framework: sklearn
  task: regression
  estimator: random_forest
"""


def spec_of(extra: str = "", data: str = ""):
    text = BASE.replace("  label: Miles_per_Gallon\n", "  label: Miles_per_Gallon\n" + data) + extra
    return load_spec_text(text, "cars.yaml")


def errors_of(extra: str = "", data: str = "") -> list[str]:
    with pytest.raises(SpecError) as info:
        spec_of(extra, data)
    return [str(p) for p in info.value.problems]


def test_a_spec_without_the_new_fields_gets_the_defaults():
    spec = spec_of()
    assert spec.data.split.method == "hash" and spec.data.split.key is None
    assert spec.evaluation.holdout is None
    validation = spec.validation
    assert (validation.reference, validation.schema) == ("production", "warn")
    assert (validation.drift.threshold, validation.drift.share, validation.drift.on_drift) == (None, 0.5, "warn")
    as_dict = spec.to_dict()
    assert as_dict["validation"] == {"reference": "production", "schema": "warn", "drift": {"threshold": None, "share": 0.5, "on_drift": "warn"}}
    assert as_dict["data"]["split"]["method"] == "hash" and as_dict["data"]["split"]["key"] is None
    assert as_dict["evaluation"]["holdout"] is None


def test_the_issue_s_example_reads_back_typed():
    spec = spec_of(
        "evaluation:\n  holdout: {source: 'file://data/cars_holdout_{{ ds }}.csv'}\n"
        "validation:\n  reference: production\n  schema: fail\n  drift: {threshold: 0.1, share: 0.5, on_drift: fail}\n",
        data="  split: {method: hash, key: [Name, Year], validation: 0.1, test: 0.2}\n",
    )
    assert spec.data.split.key == ("Name", "Year") and spec.data.split.method == "hash"
    assert spec.evaluation.holdout.source == "file://data/cars_holdout_{{ ds }}.csv" and spec.evaluation.holdout.query is None
    assert spec.validation.schema == "fail"
    assert spec.validation.drift.threshold == 0.1 and spec.validation.drift.on_drift == "fail"
    assert spec.to_dict()["validation"]["drift"]["on_drift"] == "fail"
    assert spec.to_dict()["evaluation"]["holdout"] == {"source": "file://data/cars_holdout_{{ ds }}.csv", "query": None}
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.validation.drift.share = 0.9  # type: ignore[misc]


def test_random_keeps_today_s_split_settings():
    split = spec_of(data="  split: {method: random, seed: 3, stratify: false}\n").data.split
    assert (split.method, split.seed, split.stratify, split.key) == ("random", 3, False, None)


def test_a_partial_validation_section_keeps_the_other_defaults():
    validation = spec_of("validation:\n  drift: {on_drift: fail}\n").validation
    assert validation.schema == "warn" and validation.drift.share == 0.5 and validation.drift.on_drift == "fail"


@pytest.mark.parametrize(
    ("extra", "data", "expected"),
    [
        ("", "  split: {method: hashed}\n", "cars.yaml:8:19: data.split.method: 'hashed' is not allowed; allowed values: hash, random; did you mean `hash`?"),
        ("", "  split: {key: []}\n", "data.split.key"),
        ("", "  split: {key: [Name, Name]}\n", "data.split.key"),
        ("", "  split: {key: ['']}\n", "data.split.key[0]: '' should be non-empty"),
        ("validation:\n  drift: {on_drift: fial}\n", "", "validation.drift.on_drift: 'fial' is not allowed; allowed values: fail, warn; did you mean `fail`?"),
        ("validation:\n  schema: warning\n", "", "validation.schema: 'warning' is not allowed; allowed values: fail, warn, off; did you mean `warn`?"),
        ("validation:\n  reference: latest\n", "", "validation.reference: 'latest' is not allowed; allowed values: production"),
        ("validation:\n  drift: {threshold: 0}\n", "", "validation.drift.threshold"),
        ("validation:\n  drift: {threshold: 1.5}\n", "", "validation.drift.threshold"),
        ("validation:\n  drift: {share: 0}\n", "", "validation.drift.share"),
        ("validation:\n  drift: {share: 1.2}\n", "", "validation.drift.share"),
        ("validation:\n  drift: {shares: 0.2}\n", "", "validation.drift.shares: unknown key `shares`; did you mean `share`?"),
        ("evaluation:\n  holdout: {query: SELECT 1}\n", "", "evaluation.holdout.source: required key `source` is missing"),
        ("evaluation:\n  holdout: {source: file://h.csv, sql: x}\n", "", "evaluation.holdout.sql: unknown key `sql`"),
    ],
)
def test_the_schema_refuses_bad_values_at_their_place(extra, data, expected):
    problems = errors_of(extra, data)
    assert any(expected in problem for problem in problems), problems


def test_share_and_threshold_of_one_are_allowed():
    drift = spec_of("validation:\n  drift: {threshold: 1, share: 1}\n").validation.drift
    assert (drift.threshold, drift.share) == (1, 1)

"""One vocabulary: the JSON Schema and the code read the same words; this fails when they drift apart."""

from __future__ import annotations

import json

from mlspec import vocabulary
from mlspec.ml import columns
from mlspec.ml.frameworks import FRAMEWORKS
from mlspec.spec.schema import load_schema, schema_path

SCHEMA = load_schema()["properties"]


def enum(node: dict) -> set:
    return {value for value in node["enum"] if value is not None}


def test_tasks():
    assert enum(SCHEMA["model"]["properties"]["task"]) == set(vocabulary.TASKS)


def test_the_schema_offers_the_frameworks_of_the_table():
    assert enum(SCHEMA["model"]["properties"]["framework"]) == set(FRAMEWORKS)
    assert SCHEMA["model"]["properties"]["framework"]["default"] in FRAMEWORKS
    for name, framework in FRAMEWORKS.items():
        assert framework.name == framework.adapter.name == name
        for path in framework.fields:  # each field it owns is one the schema knows (KeyError otherwise)
            section, *keys = path.split(".")
            node = SCHEMA[section]
            for key in keys:
                node = node["properties"][key]


def test_the_schema_file_names_no_framework_so_adding_one_leaves_it_alone():
    on_disk = json.loads(schema_path().read_text())["properties"]["model"]["properties"]["framework"]
    assert "enum" not in on_disk
    loaded = SCHEMA["model"]["properties"]["framework"]["description"]
    assert all(f"{name} ({framework.title})" in loaded for name, framework in FRAMEWORKS.items())


def test_layers_are_the_ones_the_keras_builder_knows():
    branches = SCHEMA["model"]["properties"]["layers"]["items"]["oneOf"]
    assert {branch["required"][0] for branch in branches} == set(vocabulary.LAYERS)


def test_preprocess_steps():
    branches = SCHEMA["data"]["properties"]["preprocess"]["items"]["oneOf"]
    assert {branch["required"][0] for branch in branches} == set(vocabulary.FEATURE_STEPS + vocabulary.LABEL_STEPS)


def test_metrics_losses_optimizers_and_formats():
    assert enum(SCHEMA["evaluation"]["properties"]["metrics"]["items"]) == set(vocabulary.METRICS)
    training = SCHEMA["training"]["properties"]
    assert enum(training["loss"]) == {loss for losses in vocabulary.LOSSES.values() for loss in losses}
    assert enum(training["optimizer"]["properties"]["name"]) == set(vocabulary.OPTIMIZERS)
    assert enum(SCHEMA["data"]["properties"]["format"]) == set(vocabulary.DATA_FORMATS)


def test_every_known_data_source_is_documented_and_loadable_by_name():
    description = SCHEMA["data"]["properties"]["source"]["description"]
    for source in vocabulary.DATA_SOURCES:
        assert source.split(":", 1)[1] in description, source


def test_default_metrics_and_losses_belong_to_their_task():
    for task in vocabulary.TASKS:
        assert all(vocabulary.METRICS[m].task == task for m in vocabulary.DEFAULT_METRICS[task])
        assert vocabulary.DEFAULT_LOSS[task] in vocabulary.LOSSES[task]


def test_column_types_missing_strategies_and_encodings_are_the_columns_module():
    mapping = next(b for b in SCHEMA["data"]["properties"]["features"]["oneOf"] if b.get("type") == "object")
    shorthand, declaration = (b for b in mapping["additionalProperties"]["oneOf"] if b["type"] != "null")
    keys = declaration["properties"]
    assert shorthand["enum"] == keys["type"]["enum"] == list(columns.COLUMN_TYPES)
    words, constant = keys["missing"]["oneOf"]
    assert set(words["enum"]) | set(constant["required"]) == set(columns.MISSING_STRATEGIES)
    assert keys["encode"]["enum"] == list(columns.ENCODINGS)
    assert keys["encode"]["x-default"] == columns.Column("x", "category").encode
    assert keys["missing"]["x-default"] == columns.Column("x", "number").missing
    assert f"at most {columns.MAX_INFERRED_CATEGORIES} distinct values" in SCHEMA["data"]["properties"]["features"]["description"]

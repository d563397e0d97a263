"""The compiled schema validator (fastjsonschema) that checks valid specs fast never disagrees with jsonschema
in the direction that matters: what it accepts, jsonschema accepts; where it objects, jsonschema explains, so
every message is the one jsonschema's findings make (file, line, field), as before (issue 15, parse speed)."""

from __future__ import annotations

import copy
import datetime

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from tests.fixtures.paths import SPECS
from tests.spec.fuzz_strategies import mutated_specs

from mlspec.spec import SpecError, load_schema, schema
from mlspec.spec.yaml_loader import load_yaml

EXAMPLES = sorted(SPECS.glob("*.yaml"))


def jsonschema_problems(doc) -> list:
    """What validate() said before the compiled validator: jsonschema's findings, as messages."""
    problems = []
    for error in schema._validator().iter_errors(doc.data):
        problems.extend(schema._messages(error, doc))
    return sorted(set(problems))


def test_the_schema_compiles_so_valid_specs_skip_jsonschema():
    assert schema._compiled_validator() is not None


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_spec_passes_both(path):
    doc = load_yaml(path.read_text(), str(path))
    assert schema.passes_compiled_check(doc.data)
    assert jsonschema_problems(doc) == [] == schema.validate(doc)


def iris() -> dict:
    return yaml.safe_load((SPECS / "iris.yaml").read_text())


def edited(change) -> dict:
    data = iris()
    change(data)
    return data


# Values where a compiled validator and jsonschema tend to part: integers written as floats, booleans as
# numbers, a name with a trailing newline (`$` matches before it in Python), whitespace that only Python's
# `\s` knows, one value too many after prefixItems, const, uniqueItems, propertyNames.
EDGES = {
    "epochs-float-integer": lambda d: d["training"].update(epochs=5.0),
    "epochs-bool": lambda d: d["training"].update(epochs=True),
    "batch-size-string": lambda d: d["training"].update(batch_size="32"),
    "learning-rate-bool": lambda d: d["training"]["optimizer"].update(learning_rate=False),
    "name-trailing-newline": lambda d: d["metadata"].update(name="iris\n"),
    "tag-duplicates": lambda d: d["metadata"].update(tags=["a", "a"]),
    "api-version": lambda d: d.update(apiVersion="mlspec/v2"),
    "kind-null": lambda d: d.update(kind=None),
    "notify-odd-space": lambda d: d.update(notify={"connection": "smtp_default", "to": ["a\x1cb@example.com"]}),
    "tuning-uniform-three": lambda d: d.update(
        tuning={"trials": 2, "space": {"training.optimizer.learning_rate": {"uniform": [0.1, 0.2, 0.3]}}}
    ),
    "tuning-uniform-one": lambda d: d.update(
        tuning={"trials": 2, "space": {"training.optimizer.learning_rate": {"uniform": [0.1]}}}
    ),
    "tuning-int-uniform-floats": lambda d: d.update(
        tuning={"trials": 2, "space": {"training.epochs": {"int_uniform": [1.0, 3.0]}}}
    ),
    "unknown-top-key": lambda d: d.update(extra=1),
    "layer-two-kinds": lambda d: d["model"]["layers"].append({"dense": {"units": 1}, "dropout": {"rate": 0.1}}),
    "date-value": lambda d: d["metadata"].update(description=datetime.date(2024, 1, 1)),
}


@pytest.mark.parametrize("change", EDGES.values(), ids=EDGES.keys())
def test_accepted_means_accepted_by_jsonschema_and_messages_are_jsonschemas(change):
    data = edited(change)
    doc = load_yaml(yaml.safe_dump(data, sort_keys=False), "spec.yaml")
    reference = jsonschema_problems(doc)
    if schema.passes_compiled_check(doc.data):
        assert reference == [], reference
    assert schema.validate(doc) == reference


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated_specs())
def test_fuzzed_specs_accepted_by_the_compiled_validator_are_accepted_by_jsonschema(case):
    text, _labels = case
    try:
        doc = load_yaml(text, "fuzz.yaml")
    except SpecError:
        return
    reference = jsonschema_problems(doc)
    if schema.passes_compiled_check(doc.data):
        assert reference == [], reference
    assert schema.validate(doc) == reference


def test_a_keyword_the_compiled_validator_does_not_check_leaves_the_schema_to_jsonschema():
    grown = copy.deepcopy(load_schema())
    grown["properties"]["metadata"]["unevaluatedProperties"] = False
    with pytest.raises(schema._NotCompilable, match="unevaluatedProperties"):
        schema._draft7_schema(grown)
    assert schema._as_draft7({"type": "array", "prefixItems": [{"type": "number"}], "items": False}, {}) == {
        "type": "array", "items": [{"type": "number"}], "additionalItems": False,
    }

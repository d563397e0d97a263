"""The spec loader: defaults, immutability, and errors that say file:line:col and field."""

from __future__ import annotations

import dataclasses
import json

import pytest
from tests.fixtures.paths import SPECS

from mlspec.spec import ModelSpec, SpecError, load_schema, load_spec, load_spec_text

MINIMAL = """\
apiVersion: mlspec/v1
kind: ModelSpec
metadata:
  name: tiny
data:
  source: builtin:iris
model:
  layers:
    - dense: {units: 3, activation: softmax}
"""


def errors_of(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec_text(text, "spec.yaml")
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_spec_loads(path):
    spec = load_spec(path)
    assert spec.name == path.stem
    assert spec.source_file == str(path)


def test_minimal_spec_gets_every_default_from_the_schema():
    spec = load_spec_text(MINIMAL, "tiny.yaml")
    schema = load_schema()["properties"]
    assert spec.training.epochs == schema["training"]["properties"]["epochs"]["default"]
    assert spec.storage.uri == "file://models"
    assert spec.registry.backend == "mlflow"
    assert spec.serving.platform == "local" and spec.resolved["serving"]["kserve"]["replicas"]["min"] == 1
    assert spec.data.split.test == 0.2 and spec.data.split.stratify is True
    assert spec.export.opset == 17 and spec.export.parity_atol == 1e-4
    assert spec.smoke_test.min_agreement == 0.99
    assert spec.schedule is None


def test_model_spec_is_immutable():
    spec = load_spec(SPECS / "digits.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.training.epochs = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.resolved["training"]["epochs"] = 1  # type: ignore[index]
    assert spec.model.layers[0].kind == "conv2d"
    assert spec.model.layers[0].to_mapping() == {"conv2d": {"filters": 16, "kernel_size": 3, "activation": "relu", "strides": 1, "padding": "valid"}}


def test_spec_hash_is_stable_and_sensitive():
    text = (SPECS / "digits.yaml").read_text()
    assert load_spec_text(text).spec_hash == load_spec_text(text).spec_hash
    assert load_spec_text(text).spec_hash != load_spec_text(text.replace("epochs: 10", "epochs: 11")).spec_hash
    # Comments and an explicit default do not change what the spec means.
    assert load_spec_text("# hello\n" + MINIMAL).spec_hash == load_spec_text(MINIMAL + "storage: {uri: file://models}\n").spec_hash


def test_round_trip_through_dict():
    spec = load_spec(SPECS / "cifar10.yaml")
    assert ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == dataclasses.replace(spec, source_file="")


def test_out_of_range_value_points_at_the_value():
    text = MINIMAL + "training:\n  epochs: -1\n"
    assert errors_of(text) == ["spec.yaml:11:11: training.epochs: -1 is less than the minimum of 1"]


def test_misspelled_key_suggests_the_right_one():
    text = MINIMAL + "training:\n  epoch: 3\n"
    assert errors_of(text) == ["spec.yaml:11:3: training.epoch: unknown key `epoch`; did you mean `epochs`?"]


def test_missing_key_points_at_its_parent_mapping():
    text = MINIMAL.replace("  source: builtin:iris\n", "  label: y\n")
    assert errors_of(text) == ["spec.yaml:6:3: data.source: required key `source` is missing"]


def test_enum_error_lists_allowed_values_and_a_suggestion():
    (message,) = errors_of(MINIMAL + "registry: {backend: mlfow}\n")
    assert message.startswith("spec.yaml:10:21: registry.backend: 'mlfow' is not allowed; allowed values: mlflow, kubeflow")
    assert message.endswith("did you mean `mlflow`?")


def test_unknown_layer_type_is_named_with_suggestion():
    (message,) = errors_of(MINIMAL.replace("- dense: {units: 3", "- dens: {units: 3"))
    assert "spec.yaml:9:7: model.layers[0].dens: unknown type `dens`; did you mean `dense`?" in message


def test_layer_parameter_error_is_reported_inside_the_right_layer():
    (message,) = errors_of(MINIMAL.replace("units: 3,", "units: 0,"))
    assert message == "spec.yaml:9:22: model.layers[0].dense.units: 0 is less than the minimum of 1"


def test_every_problem_is_reported_at_once():
    text = MINIMAL + "training:\n  epochs: 0\n  batch_size: big\nexport: {opset: 99}\n"
    messages = errors_of(text)
    assert len(messages) == 3
    assert [m.split(": ")[1] for m in messages] == ["training.epochs", "training.batch_size", "export.opset"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "spec.yaml:1:1: the spec is empty"),
        ("- a\n- b\n", "spec.yaml:1:1: the spec must be a mapping, not list"),
        ("a: [1, 2\n", "spec.yaml:2:1: invalid YAML"),
        ("a: 1\na: 2\n", "spec.yaml:2:1: a: duplicate key `a`"),
        ("a: !!python/object/apply:os.system ['echo hi']\n", "spec.yaml:1:4: a: YAML tag"),
        ("a: !!python/name:os.system\n", "spec.yaml:1:4: invalid YAML: could not determine a constructor"),
    ],
)
def test_unreadable_yaml_gives_a_located_error(text, expected):
    (message,) = errors_of(text)
    assert message.startswith(expected)


def test_oversized_and_deeply_nested_specs_are_refused():
    (message,) = errors_of("a: " + "x" * (1024 * 1024))
    assert "limit is 1048576" in message
    (message,) = errors_of("a: " + "[" * 200 + "]" * 200)
    assert "nested more than" in message
    laughs = "a: &a [1,1,1,1,1,1,1,1,1]\n" + "".join(f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n" for p, c in zip("abcdefg", "bcdefgh", strict=True))
    (message,) = errors_of(laughs)
    assert "alias expansion" in message


def test_unreadable_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "missing.yaml")
    assert "cannot read the spec" in str(info.value)

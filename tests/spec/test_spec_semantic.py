"""Semantic checks the schema cannot express, and the security rules; each problem has a location."""

from __future__ import annotations

import pytest
from tests.spec.test_spec_loader import MINIMAL

from mlspec.spec import SpecError, load_spec_text


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec_text(text, "s.yaml")
    return [str(p) for p in info.value.problems]


DIGITS_CNN = """\
apiVersion: mlspec/v1
kind: ModelSpec
metadata: {name: cnn}
data:
  source: builtin:digits
  preprocess:
    - scale: {divide_by: 16.0}
model:
  layers:
    - conv2d: {filters: 4}
    - flatten: {}
    - dense: {units: 10, activation: softmax}
"""


def test_conv2d_on_flat_input_is_refused_with_a_hint():
    (message,) = problems(DIGITS_CNN)
    assert message.startswith("s.yaml:10:7: model.layers[0].conv2d: conv2d needs input of rank 3")
    assert "reshape" in message


def test_reshape_makes_conv2d_valid():
    text = DIGITS_CNN.replace("    - scale: {divide_by: 16.0}\n", "    - scale: {divide_by: 16.0}\n    - reshape: [8, 8, 1]\n")
    assert load_spec_text(text).model.layers[0].kind == "conv2d"


def test_final_layer_width_must_match_the_classes():
    (message,) = problems(MINIMAL.replace("units: 3", "units: 4"))
    assert message == "s.yaml:9:22: model.layers[0].dense.units: the last layer has 4 units but builtin:iris has 3 classes"


def test_threshold_on_a_metric_that_is_not_computed():
    text = MINIMAL + "evaluation:\n  metrics: [accuracy]\n  thresholds:\n    f1: {min: 0.5}\n"
    (message,) = problems(text)
    assert message.startswith("s.yaml:13:5: evaluation.thresholds.f1: threshold on `f1`, which is not computed")


@pytest.mark.parametrize("schedule", ["'61 * * * *'", "'* * *'", "'@fortnightly'", "'every day'"])
def test_invalid_schedule(schedule):
    (message,) = problems(MINIMAL + f"schedule: {schedule}\n")
    assert message.startswith("s.yaml:10:11: schedule: ")


@pytest.mark.parametrize("schedule", ["'@daily'", "'0 3 * * 1'", "'*/15 * * * *'", "null", "{assets: ['s3://data/x.csv']}"])
def test_valid_schedules(schedule):
    load_spec_text(MINIMAL + f"schedule: {schedule}\n")


@pytest.mark.parametrize("name", ["Digits", "my_model", "-x", "x-", "a" * 64])
def test_names_must_be_dns_1123_labels(name):
    messages = problems(MINIMAL.replace("name: tiny", f"name: '{name}'"))
    assert any("metadata.name" in m for m in messages)


@pytest.mark.parametrize(
    "line, path",
    [
        ("storage: {uri: 'gs://bucket/x'}", "storage.uri"),
        ("storage: {uri: 'file://models/../../etc'}", "storage.uri"),
        ("registry: {backend: mlflow, connection: 'bad id!'}", "registry.connection"),
    ],
)
def test_uris_and_connection_ids(line, path):
    assert any(f": {path}: " in m for m in problems(MINIMAL + line + "\n"))


def test_unknown_builtin_dataset_lists_the_available_ones():
    (message,) = problems(MINIMAL.replace("builtin:iris", "builtin:penguins"))
    assert "available: builtin:digits, builtin:iris, builtin:wine, builtin:breast_cancer, builtin:diabetes" in message


@pytest.mark.parametrize(
    "extra, fragment",
    [
        ("storage: {uri: 's3://AKIA:secret@bucket/x'}", "user info"),
        ("storage: {uri: 's3://bucket/x', aws_secret_access_key: abc}", "looks like a credential"),
        ("registry: {backend: mlflow, token: abc}", "looks like a credential"),
        ("metadata_extra: {password: x}", "looks like a credential"),
        ("serving: {url: 'http://AKIAABCDEFGHIJKLMNOP'}", "AWS access key"),
    ],
)
def test_credentials_are_refused(extra, fragment):
    assert any(fragment in m for m in problems(MINIMAL + extra + "\n"))


def test_serving_and_loss_consistency():
    messages = problems(MINIMAL + "serving: {platform: kserve, runtime: onnxruntime}\ntraining: {loss: categorical_crossentropy}\n")
    assert any("serving.runtime: platform kserve needs runtime" in m for m in messages)
    assert any("training.loss: categorical_crossentropy needs one-hot labels" in m for m in messages)

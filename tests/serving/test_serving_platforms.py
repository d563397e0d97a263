"""The serving platforms are one table (mlspec.serving.platforms): the schema agrees with it, a spec's
`serving.<platform>` settings come from it, today's flat KServe keys keep working with a warning that names
their new place, and a platform is opened through its own entry, never as local by default."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from tests.fixtures.paths import REPO

import mlspec.serving.platforms as platforms
from mlspec.serving import PLATFORMS, open_serving, platform_of
from mlspec.serving.kserve_manifest import KServeSettings, kserve_config
from mlspec.spec import SpecError, load_spec_text, resolve_spec
from mlspec.spec.lint import check
from mlspec.spec.schema import load_schema
from mlspec.spec.yaml_loader import load_yaml

SERVING = load_schema()["properties"]["serving"]["properties"]

IRIS = """\
apiVersion: mlspec/v1
kind: ModelSpec
metadata: {name: iris}
data: {source: builtin:iris}
model:
  layers:
    - dense: {units: 3, activation: softmax}
storage: {uri: "s3://bucket/models"}
"""
KSERVE_NEW = IRIS + """\
serving:
  platform: kserve
  runtime: kserve-ovms
  kserve:
    namespace: models
    service_account: mlspec-s3
    replicas: {min: 1, max: 3}
    resources: {cpu: "2", memory: 4Gi, gpu: 1}
"""
KSERVE_FLAT = IRIS + """\
serving:
  platform: kserve
  runtime: kserve-ovms
  namespace: models
  service_account: mlspec-s3
  replicas: {min: 1, max: 3}
  resources: {cpu: "2", memory: 4Gi, gpu: 1}
"""


def lint(text: str) -> tuple:
    """(the spec, every problem lint reports for it, warnings included)."""
    doc = load_yaml(text, "s.yaml")
    spec = resolve_spec(doc)
    return spec, [str(p) for p in check(doc, spec.to_dict())]


def errors(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec_text(text, "s.yaml")
    return [str(p) for p in info.value.problems]


# -- the schema agrees with the table ----------------------------------------------------------
def test_the_schema_platforms_and_runtimes_are_the_table():
    assert SERVING["platform"]["enum"] == list(PLATFORMS)
    assert set(SERVING["runtime"]["enum"]) == {runtime for p in PLATFORMS.values() for runtime in p.runtimes}


def test_each_platform_with_settings_has_its_schema_object_and_its_moved_keys_point_there():
    for platform in PLATFORMS.values():
        if platform.settings is None:
            assert platform.name not in SERVING and not platform.moved_keys
            continue
        own = SERVING[platform.name]
        assert own["type"] == "object" and own["additionalProperties"] is False
        for key in platform.moved_keys:
            assert key in own["properties"], key
            assert SERVING[key]["deprecated"] is True and f"serving.{platform.name}.{key}" in SERVING[key]["description"]
            assert "default" not in SERVING[key]  # a default where it was would hide the one in its new place


# -- serving.kserve, and today's flat keys ------------------------------------------------------
def test_kserve_settings_are_read_from_serving_kserve():
    spec, problems = lint(KSERVE_NEW)
    assert problems == []
    assert spec.serving.settings == KServeSettings(
        namespace="models", service_account="mlspec-s3", deployment_mode="RawDeployment",
        min_replicas=1, max_replicas=3, cpu="2", memory="4Gi", gpu=1,
    )
    config = kserve_config(spec)
    assert (config.namespace, config.max_replicas, config.gpu, config.runtime) == ("models", 3, 1, "kserve-ovms")


def test_flat_kserve_keys_keep_working_with_a_warning_naming_the_new_place():
    spec, problems = lint(KSERVE_FLAT)
    assert spec.serving.settings == lint(KSERVE_NEW)[0].serving.settings
    assert spec.to_dict()["serving"] == lint(KSERVE_NEW)[0].to_dict()["serving"]
    for key in ("namespace", "service_account", "replicas", "resources"):
        assert any(f"warning: serving.{key}: serving.{key} is now serving.kserve.{key}" in p for p in problems), key
    assert len(problems) == 4


def test_a_flat_key_partly_written_gets_the_defaults_of_its_new_place():
    spec, _ = lint(IRIS + "serving: {platform: kserve, runtime: kserve-ovms, replicas: {max: 4}}\n")
    assert (spec.serving.settings.min_replicas, spec.serving.settings.max_replicas) == (1, 4)


def test_a_flat_key_breaking_a_kserve_rule_is_reported_where_it_is_written():
    (message,) = errors(IRIS + "serving: {platform: kserve, runtime: kserve-ovms, replicas: {min: 0}}\n")
    assert "serving.replicas.min: scaling to zero needs deployment_mode: Serverless" in message
    (message,) = errors(IRIS + "serving: {platform: kserve, runtime: kserve-ovms, kserve: {namespace: Models}}\n")
    assert "serving.kserve.namespace: 'Models' is not a valid Kubernetes namespace" in message


def test_a_key_written_in_both_places_is_an_error():
    text = KSERVE_NEW.replace("  runtime: kserve-ovms\n", "  runtime: kserve-ovms\n  namespace: other\n")
    (message,) = errors(text)
    assert "serving.namespace: written twice: serving.kserve.namespace is read" in message


def test_settings_of_another_platform_are_reported_as_ignored():
    spec, problems = lint(IRIS + "serving: {kserve: {namespace: models}}\n")
    assert spec.serving.platform == "local" and spec.serving.settings is None
    assert problems == ["s.yaml:9:19: warning: serving.kserve: ignored: serving.platform is local, not kserve"]


def test_settings_written_for_another_platform_are_still_checked():
    (message,) = errors(IRIS + "serving: {namespace: Models}\n")
    assert "serving.namespace: 'Models' is not a valid Kubernetes namespace" in message


def test_the_runtime_and_the_store_come_from_the_platform():
    assert any("serving.runtime: platform local needs runtime onnxruntime, not kserve-ovms" in m
               for m in errors(IRIS + "serving: {runtime: kserve-ovms}\n"))
    text = KSERVE_NEW.replace('storage: {uri: "s3://bucket/models"}\n', "")
    assert any("storage.uri: platform kserve cannot load a model from a file:// store: use an s3:// storage.uri" in m
               for m in errors(text))


def test_the_example_kserve_spec_uses_the_new_place():
    spec, problems = lint((REPO / "specs" / "cifar10.yaml").read_text())
    assert problems == [] and spec.serving.settings.namespace == "models"


# -- a platform is opened and described through its own entry -----------------------------------
class _Recorded:
    """A backend that only remembers how it was opened."""

    def __init__(self, spec, store, timeout_s):
        self.opened_with = (spec.name, store, timeout_s)


def test_a_new_platform_is_opened_through_its_own_factory_not_as_local(monkeypatch):
    elsewhere = replace(platforms.LOCAL, name="elsewhere", title="Elsewhere", open_backend=_Recorded)
    monkeypatch.setitem(PLATFORMS, "elsewhere", elsewhere)
    spec = load_spec_text(IRIS)
    spec = replace(spec, serving=replace(spec.serving, platform="elsewhere"))
    backend = open_serving(spec, "the store", timeout_s=3)
    assert isinstance(backend, _Recorded) and backend.opened_with == ("iris", "the store", 3)
    assert platform_of(spec) is elsewhere


def test_words_and_advice_per_platform():
    local = load_spec_text(IRIS)
    kserve = load_spec_text(KSERVE_NEW)
    assert platform_of(local).where(local) == "the local model server at http://127.0.0.1:8555"
    assert platform_of(kserve).where(kserve) == "KServe namespace models"
    assert platform_of(kserve).endpoint_base(kserve) == platforms.ENDPOINT_PLACEHOLDER
    assert "kubectl get inferenceservice iris -n models" in platform_of(kserve).unreachable_next_step(kserve)
    assert platform_of(kserve).manifest(kserve, version=2)["metadata"] == {
        "name": "iris", "namespace": "models", "labels": {"app.kubernetes.io/managed-by": "mlspec", "mlspec/version": "2"},
        "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment"},
    }
    assert platform_of(local).manifest is None and platform_of(local).serves_versions


# -- nothing outside mlspec.serving compares a platform's name ------------------------------------
PLATFORM_CHECK = re.compile(r"""(==|!=)\s*["'](%s)["']|["'](%s)["']\s*(==|!=)""" % (("|".join(PLATFORMS),) * 2))


def test_no_platform_name_is_compared_outside_the_serving_package():
    package = REPO / "plugins" / "mlspec"
    found = [
        f"{path.relative_to(package)}:{number}: {line.strip()}"
        for path in sorted(package.rglob("*.py"))
        if "serving" not in path.relative_to(package).parts[:1]
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if PLATFORM_CHECK.search(line)
    ]
    assert found == []

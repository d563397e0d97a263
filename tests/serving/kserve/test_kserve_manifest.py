"""InferenceService manifests checked against the vendored KServe CRD schema."""

from __future__ import annotations

import copy
import json

import pytest
from kserve_testkit import crd_validator, schema_errors

from mlspec.errors import ServingError
from mlspec.serving.kserve_manifest import (
    KServeConfig,
    build_inference_service,
    served_model_name,
)

CONFIGS = {
    "ovms-s3": (KServeConfig(), "s3://models-bucket/team-a"),
    "triton-s3": (
        KServeConfig(runtime="kserve-tritonserver", namespace="ml-serving"),
        "s3://models-bucket/team-a/",
    ),
    "token-auth": (
        KServeConfig(auth="token", service_account="s3-reader", namespace="ds-project"),
        "s3://b/p",
    ),
    "gpu": (
        KServeConfig(runtime="kserve-tritonserver", gpu=2, cpu="4", memory="16Gi", max_replicas=3),
        "s3://b/p",
    ),
    "serverless": (
        KServeConfig(deployment_mode="Serverless", min_replicas=0, max_replicas=5, cpu="500m"),
        "s3://b",
    ),
    "file-root": (KServeConfig(), "file:///srv/mlspec/models"),
    "pvc-root": (KServeConfig(runtime="kserve-tritonserver"), "pvc://models-pvc/models"),
}


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_manifest_is_valid_for_the_crd(case, isvc_validator):
    config, root = CONFIGS[case]
    manifest = build_inference_service(config, model_name="digits", version=3, store_root_uri=root,
                                       labels={"team": "vision"})
    assert schema_errors(isvc_validator, manifest) == []
    assert manifest["apiVersion"] == "serving.kserve.io/v1beta1"
    assert manifest["kind"] == "InferenceService"
    meta = manifest["metadata"]
    assert (meta["name"], meta["namespace"]) == ("digits", config.namespace)
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "mlspec"
    assert meta["labels"]["mlspec/version"] == "3"
    assert meta["labels"]["team"] == "vision"
    assert meta["annotations"]["serving.kserve.io/deploymentMode"] == config.deployment_mode
    predictor = manifest["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (config.min_replicas, config.max_replicas)
    model = predictor["model"]
    assert model["modelFormat"] == {"name": "onnx"}
    assert model["protocolVersion"] == "v2"
    assert model["runtime"] == config.runtime
    assert model["resources"]["requests"]["cpu"] == config.cpu
    assert model["resources"]["limits"]["memory"] == config.memory


def test_ovms_layout_pins_the_version():
    manifest = build_inference_service(KServeConfig(), model_name="digits", version=7,
                                       store_root_uri="s3://bucket/models/")
    model = manifest["spec"]["predictor"]["model"]
    # OVMS reads <storageUri>/<version>/model.onnx, so storageUri is the model folder ...
    assert model["storageUri"] == "s3://bucket/models/digits"
    # ... and without a pin it would serve the highest version folder there, not the one deployed.
    (arg,) = model["args"]
    flag, policy = arg.split("=", 1)
    assert flag == "--model_version_policy"
    assert json.loads(policy) == {"specific": {"versions": [7]}}
    assert "storageUris" not in manifest["spec"]["predictor"]
    assert served_model_name(KServeConfig(), "digits") == manifest["metadata"]["name"]


def test_triton_mounts_only_the_deployed_version():
    config = KServeConfig(runtime="kserve-tritonserver")
    manifest = build_inference_service(
        config, model_name="digits", version=4, store_root_uri="s3://bucket/models"
    )
    predictor = manifest["spec"]["predictor"]
    # Not the store root: that would load every model (and every run folder) in the store.
    assert "storageUri" not in predictor["model"]
    assert predictor["storageUris"] == [
        {"uri": "s3://bucket/models/digits/4", "mountPath": "/mnt/models/digits/4"}
    ]
    # Triton names the model after its folder under the repository (/mnt/models).
    assert predictor["storageUris"][0]["mountPath"].split("/")[-2] == served_model_name(config, "digits")


def test_each_version_is_a_spec_change():
    """Otherwise a new version would not roll new pods and rollback would change nothing."""
    for runtime in ("kserve-ovms", "kserve-tritonserver"):
        config = KServeConfig(runtime=runtime)
        specs = [build_inference_service(config, model_name="m", version=v, store_root_uri="s3://b")["spec"]
                 for v in (1, 2)]
        assert specs[0] != specs[1]
        again = build_inference_service(config, model_name="m", version=1, store_root_uri="s3://b")
        assert again["spec"] == specs[0]  # deterministic: a retry patches nothing


def test_token_auth_sets_openshift_ai_keys_and_none_does_not():
    secured = build_inference_service(
        KServeConfig(auth="token"), model_name="m", version=1, store_root_uri="s3://b"
    )
    assert secured["metadata"]["annotations"]["security.opendatahub.io/enable-auth"] == "true"
    assert secured["metadata"]["labels"]["networking.kserve.io/visibility"] == "exposed"
    open_ = build_inference_service(KServeConfig(), model_name="m", version=1, store_root_uri="s3://b")
    assert "security.opendatahub.io/enable-auth" not in open_["metadata"]["annotations"]
    assert "networking.kserve.io/visibility" not in open_["metadata"]["labels"]


def test_gpu_in_requests_and_limits_only_when_asked():
    gpu = build_inference_service(KServeConfig(gpu=1), model_name="m", version=1, store_root_uri="s3://b")
    resources = gpu["spec"]["predictor"]["model"]["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == "1"
    cpu = build_inference_service(KServeConfig(), model_name="m", version=1, store_root_uri="s3://b")
    assert "nvidia.com/gpu" not in json.dumps(cpu)


def test_service_account_only_when_set():
    with_sa = build_inference_service(KServeConfig(service_account="s3-sa"), model_name="m", version=1,
                                      store_root_uri="s3://b")
    assert with_sa["spec"]["predictor"]["serviceAccountName"] == "s3-sa"
    without = build_inference_service(KServeConfig(), model_name="m", version=1, store_root_uri="s3://b")
    assert "serviceAccountName" not in without["spec"]["predictor"]


@pytest.mark.parametrize(
    "breakage",
    [
        lambda m: m["spec"]["predictor"].__setitem__("minReplicas", "two"),
        lambda m: m["spec"]["predictor"]["model"].__setitem__("modelFormat", {"version": "1"}),
        lambda m: m["spec"]["predictor"]["model"]["resources"]["limits"].__setitem__("cpu", "lots"),
        lambda m: m["spec"]["predictor"].__setitem__("minReplica", 1),  # misspelt: strict mode rejects it
        lambda m: m["metadata"]["labels"].__setitem__("mlspec/version", 3),
        lambda m: m.pop("spec"),
    ],
    ids=[
        "minReplicas-string", "modelFormat-no-name", "bad-quantity", "unknown-field", "int-label", "no-spec"
    ],
)
def test_the_schema_check_rejects_broken_manifests(breakage, isvc_validator):
    manifest = build_inference_service(
        KServeConfig(), model_name="digits", version=1, store_root_uri="s3://b/p"
    )
    assert schema_errors(isvc_validator, manifest) == []
    broken = copy.deepcopy(manifest)
    breakage(broken)
    assert schema_errors(isvc_validator, broken) != []


def test_int_or_string_and_lenient_mode(kserve_crd):
    lenient = crd_validator(kserve_crd, strict=False)
    manifest = build_inference_service(
        KServeConfig(), model_name="digits", version=1, store_root_uri="s3://b/p"
    )
    manifest["spec"]["predictor"]["model"]["resources"]["limits"]["cpu"] = 2  # int-or-string: ints are fine
    manifest["spec"]["predictor"]["minReplica"] = 1  # pruned, not rejected, by a non-strict server
    assert schema_errors(lenient, manifest) == []
    manifest["spec"]["predictor"]["minReplicas"] = "two"
    assert any("minReplicas" in e for e in schema_errors(lenient, manifest))


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"runtime": "onnxruntime"}, "runtime"),
        ({"deployment_mode": "Knative"}, "deployment_mode"),
        ({"auth": "oauth"}, "auth"),
        ({"min_replicas": 0}, "min_replicas"),
        ({"min_replicas": 3, "max_replicas": 2}, "max_replicas"),
        ({"gpu": -1}, "gpu"),
        ({"cpu": "two cores"}, "cpu"),
        ({"namespace": "Bad_NS"}, "namespace"),
        ({"namespace": "models\n"}, "namespace"),  # `$` alone would match before a trailing newline
        ({"cpu": "2\n"}, "cpu"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"min_replicas": "1"}, "min_replicas"),
    ],
)
def test_config_rejects_bad_settings(kwargs, fragment):
    with pytest.raises(ServingError, match=fragment):
        KServeConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"model_name": "Digits_V2", "version": 1, "store_root_uri": "s3://b"}, "DNS-1123"),
        ({"model_name": "digits", "version": 0, "store_root_uri": "s3://b"}, "positive integer"),
        ({"model_name": "digits", "version": 1, "store_root_uri": "/srv/models"}, "not a URI"),
    ],
)
def test_manifest_rejects_bad_inputs(kwargs, fragment):
    with pytest.raises(ServingError, match=fragment):
        build_inference_service(KServeConfig(), **kwargs)


@pytest.mark.parametrize("percent", [0, 10, 50])
@pytest.mark.parametrize("runtime", ["kserve-ovms", "kserve-tritonserver"])
def test_a_canary_manifest_is_valid_for_the_crd(percent, runtime, isvc_validator):
    config = KServeConfig(runtime=runtime, deployment_mode="Serverless")
    canary = build_inference_service(config, model_name="digits", version=3, store_root_uri="s3://b/p",
                                      canary_percent=percent)
    assert schema_errors(isvc_validator, canary) == []
    assert canary["spec"]["predictor"]["canaryTrafficPercent"] == percent
    assert canary["metadata"]["annotations"]["serving.kserve.io/enable-tag-routing"] == "true"
    plain = build_inference_service(config, model_name="digits", version=3, store_root_uri="s3://b/p")
    del canary["spec"]["predictor"]["canaryTrafficPercent"]
    assert canary["spec"] == plain["spec"]  # the share is the only difference in the spec
    broken = copy.deepcopy(plain)
    broken["spec"]["predictor"]["canaryTrafficPercent"] = "10"
    assert any("canaryTrafficPercent" in e for e in schema_errors(isvc_validator, broken))


def test_the_crd_has_every_canary_field_mlspec_writes_and_reads(kserve_crd):
    (v1beta1,) = [v for v in kserve_crd["spec"]["versions"] if v["name"] == "v1beta1"]
    root = v1beta1["schema"]["openAPIV3Schema"]["properties"]
    predictor = root["spec"]["properties"]["predictor"]["properties"]
    assert predictor["canaryTrafficPercent"]["type"] == "integer"
    status = root["status"]["properties"]
    assert status["deploymentMode"]["type"] == "string"
    component = status["components"]["additionalProperties"]["properties"]
    for read in ("latestCreatedRevision", "latestReadyRevision", "latestRolledoutRevision", "traffic"):
        assert read in component
    traffic = component["traffic"]["items"]["properties"]
    assert {"tag", "url", "percent", "revisionName", "latestRevision"} <= set(traffic)
    assert traffic["percent"]["type"] == "integer"


def test_a_canary_is_refused_in_raw_deployment():
    with pytest.raises(ServingError, match=r"runs in RawDeployment, where KServe ignores canaryTrafficPercent.*kserve#5335"):
        build_inference_service(KServeConfig(), model_name="digits", version=2, store_root_uri="s3://b/p",
                                canary_percent=0)

"""What the operations need from KServe, against the Kubernetes API emulator: which version an
InferenceService serves, and undeploy deleting it."""

from __future__ import annotations

from kserve_testkit import ready_status, running_controller

from mlspec.serving.kserve import KServeConfig, KServeServing

ROOT = "s3://models-bucket/prod"
NS = "ml-serving"


def test_served_version_follows_the_inferenceservice_and_undeploy_deletes_it(k8s_api, k8s_connection):
    kserve = KServeServing(KServeConfig(namespace=NS, connection=k8s_connection, timeout_s=30), ROOT, poll_interval_s=0.02)
    assert kserve.served_version("digits") is None
    with running_controller(k8s_api, NS, "digits", ready_status):
        kserve.deploy("digits", 1, f"{ROOT}/digits/1")
        assert kserve.served_version("digits") == 1
        kserve.deploy("digits", 2, f"{ROOT}/digits/2")
        assert kserve.served_version("digits") == 2
    kserve.undeploy("digits")
    assert kserve.get("digits") is None and kserve.served_version("digits") is None
    kserve.undeploy("digits")  # nothing left to delete is fine

"""Fixtures for the KServe backend: the vendored InferenceService CRD and a Kubernetes API emulator for it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from kserve_testkit import EmulatorThread, crd_validator
from tests.fixtures.paths import require_contract

CONN_ID = "kserve_emulator"


@pytest.fixture(scope="session")
def kserve_crd() -> dict:
    path = require_contract("kserve/serving.kserve.io_inferenceservices.yaml")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRD is 2 MB; the C loader is 5x faster
    return yaml.load(path.read_text(), Loader=loader)


@pytest.fixture(scope="session")
def isvc_validator(kserve_crd):
    return crd_validator(kserve_crd, strict=True)


@pytest.fixture(autouse=True)
def _own_mlspec_home(mlspec_home: Path) -> None:
    """Every test here gets its own MLSPEC_HOME."""


@pytest.fixture()
def k8s_api(isvc_validator):
    """A kmock Kubernetes API emulator serving InferenceServices on 127.0.0.1."""
    server = EmulatorThread(isvc_validator).start()
    yield server
    server.stop()


@pytest.fixture()
def k8s_connection(k8s_api, monkeypatch, tmp_path) -> str:
    """An Airflow kubernetes connection (env var) whose kube_config points at the emulator."""
    kube_config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": k8s_api.url}}],
        "users": [{"name": "tester", "user": {"token": "emulator-token"}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "tester"}}],
        "current-context": "emulator",
    }
    conn = {"conn_type": "kubernetes", "extra": {"kube_config": kube_config, "in_cluster": False}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    # The kubernetes client would otherwise fall back to ~/.kube/config for anything unset.
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    return CONN_ID

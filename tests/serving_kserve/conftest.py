from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CONN_ID = "kserve_emulator"


@pytest.fixture(scope="session")
def kserve_crd() -> dict:
    contracts = Path(os.environ.get("MLSPEC_CONTRACTS", REPO / ".." / "shared" / "contracts"))
    path = contracts / "kserve" / "serving.kserve.io_inferenceservices.yaml"
    if not path.is_file():
        pytest.skip(f"KServe CRD contract not found: {path}")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRD is 2 MB; the C loader is 5x faster
    return yaml.load(path.read_text(), Loader=loader)


@pytest.fixture(scope="session")
def isvc_validator(kserve_crd):
    from kserve_testkit import crd_validator

    return crd_validator(kserve_crd, strict=True)


@pytest.fixture(autouse=True)
def _mlspec_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MLSPEC_HOME", str(tmp_path / "mlspec-home"))


@pytest.fixture()
def k8s_api(isvc_validator):
    """A kmock Kubernetes API emulator serving InferenceServices on 127.0.0.1."""
    from kserve_testkit import EmulatorThread

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

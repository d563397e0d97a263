"""The Airflow connections of docker-compose.yaml, read by Airflow and by mlspec's own code.

Every AIRFLOW_CONN_* value must be a connection Airflow accepts, of the type its users need; every
connection a spec names must exist in the stack or be documented as intentionally external; and
mlspec's readers must turn the compose values into the compose services' addresses.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import compose_stack
import pytest

AIRFLOW_SERVICES = (
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
)

# Connections specs in specs/ name that the compose stack deliberately does not define: they
# describe a cluster (KServe, Kubeflow Model Registry, the S3 its pods read), which a laptop's
# compose stack cannot stand in for. docs/production.md explains each one.
EXTERNAL_CONNECTIONS = {"aws_default", "model_registry", "kubernetes_default"}


def spec_connections(spec) -> dict[str, str]:
    """conn_id -> the conn_type its use needs, for the connections a spec really uses (defaults included)."""
    used: dict[str, str] = {}
    if spec.storage.uri.startswith("s3://"):
        used[spec.storage.connection or "aws_default"] = "aws"
    if spec.data.source.startswith("s3://"):
        used[spec.data.connection or "aws_default"] = "aws"
    if spec.registry.connection:
        used[spec.registry.connection] = "http"  # both MLflow and the Kubeflow registry speak HTTP
    if spec.serving.platform == "kserve":
        used[spec.serving.connection or "kubernetes_default"] = "kubernetes"
    elif spec.serving.connection:
        used[spec.serving.connection] = "kubernetes"
    return used


def targets_a_cluster(spec) -> bool:
    return spec.serving.platform == "kserve" or spec.registry.backend == "kubeflow"


@pytest.fixture(scope="module")
def compose_connections(services) -> dict[str, str]:
    return compose_stack.airflow_connections(services["airflow-scheduler"])


@pytest.fixture
def use_compose_connection(compose_connections, monkeypatch):
    """Make one compose connection visible to Airflow in this process, exactly as compose sets it."""

    def define(conn_id: str) -> str:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", compose_connections[conn_id])
        return conn_id

    for name in (
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return define


def test_every_airflow_service_defines_the_same_connections(services, compose_connections):
    assert compose_connections, "no AIRFLOW_CONN_* in the Airflow services"
    for name in AIRFLOW_SERVICES:
        assert compose_stack.airflow_connections(services[name]) == compose_connections, name
    # Services outside Airflow read S3 through boto3's environment, never through a connection.
    for name in ("model-server", "mlflow", "minio-init"):
        assert compose_stack.airflow_connections(services[name]) == {}, name


def test_every_compose_connection_parses_into_an_airflow_connection_of_its_type(compose_connections, specs):
    needed: dict[str, str] = {}
    for spec in specs.values():
        needed.update(spec_connections(spec))
    for conn_id, value in compose_connections.items():
        conn = compose_stack.to_connection(conn_id, value)
        assert conn.conn_id == conn_id
        assert conn_id in needed, f"{conn_id} is defined in the compose file but no spec uses it"
        assert conn.conn_type == needed[conn_id], f"{conn_id}: {conn.conn_type} != {needed[conn_id]}"
    assert {"minio_s3", "mlflow_server"} <= set(compose_connections)


def test_every_connection_a_spec_uses_is_in_the_stack_or_intentionally_external(compose_connections, specs):
    doc = compose_stack.PRODUCTION_DOC.read_text()
    for file_name, spec in specs.items():
        for conn_id in spec_connections(spec):
            if conn_id in compose_connections:
                continue
            assert conn_id in EXTERNAL_CONNECTIONS, (
                f"{file_name} uses {conn_id}, which the compose file lacks"
            )
            # External only where compose cannot help anyway: a spec that targets a cluster.
            assert targets_a_cluster(spec), f"{file_name} runs locally but needs {conn_id} from outside"
            assert f"`{conn_id}`" in doc, f"docs/production.md does not mention {conn_id}"
    used = {c for spec in specs.values() for c in spec_connections(spec)}
    assert EXTERNAL_CONNECTIONS <= used, "an external connection no spec uses: drop it from the list"
    assert not EXTERNAL_CONNECTIONS & set(compose_connections)


def test_every_example_connection_in_the_production_guide_parses():
    examples = re.findall(
        r"^AIRFLOW_CONN_([A-Z0-9_]+)='(.+)'$", compose_stack.PRODUCTION_DOC.read_text(), re.M
    )
    types = {}
    for suffix, value in examples:
        types[suffix.lower()] = compose_stack.to_connection(suffix.lower(), value).conn_type
    assert {t for t in types.values()} == {"aws", "http", "kubernetes"}
    assert types["minio_s3"] == "aws" and types["mlflow_server"] == "http"
    assert types["model_registry"] == "http" and types["kubernetes_default"] == "kubernetes"
    k8s = [json.loads(v)["extra"] for s, v in examples if types[s.lower()] == "kubernetes"]
    assert any(extra.get("in_cluster") is True for extra in k8s)
    assert any("kube_config_path" in extra or "kube_config" in extra for extra in k8s)


def test_the_mlflow_connection_resolves_to_the_mlflow_service(use_compose_connection, services):
    from mlspec.registry.mlflow_connection import resolve_connection

    uri = resolve_connection(use_compose_connection("mlflow_server")).tracking_uri
    argv = compose_stack.command(services["mlflow"])
    assert argv[:2] == ["mlflow", "server"]
    parts = urlsplit(uri)
    assert parts.scheme == "http" and parts.hostname in services
    assert parts.hostname == "mlflow"
    assert str(parts.port) == compose_stack.option(argv, "--port")
    assert compose_stack.option(argv, "--host") == "0.0.0.0"


def test_the_mlflow_server_accepts_the_host_header_airflow_tasks_send(use_compose_connection, services):
    """MLflow 3 answers 403 to unknown Host headers; its default list has no 'mlflow:5000'."""
    from mlflow.server.security_utils import get_default_allowed_hosts, is_allowed_host_header

    from mlspec.registry.mlflow_connection import resolve_connection

    host_header = urlsplit(resolve_connection(use_compose_connection("mlflow_server")).tracking_uri).netloc
    allowed = [
        h.strip()
        for h in compose_stack.option(compose_stack.command(services["mlflow"]), "--allowed-hosts").split(",")
    ]
    assert is_allowed_host_header(allowed, host_header)
    assert is_allowed_host_header(allowed, "localhost:5000")  # the browser, through the published port
    assert not is_allowed_host_header(get_default_allowed_hosts(), host_header), (
        "the flag would be unnecessary"
    )
    assert not is_allowed_host_header(allowed, "attacker.example:5000")


def test_the_s3_connection_gives_a_client_for_minio_with_minios_keys(use_compose_connection, services, specs):
    from mlspec.storage import open_store

    spec = specs["digits-s3.yaml"]
    store = open_store(spec.storage.uri, use_compose_connection(spec.storage.connection))
    client = store.client
    endpoint = urlsplit(client.meta.endpoint_url)
    assert endpoint.hostname == "minio" and endpoint.hostname in services
    minio_argv = compose_stack.command(services["minio"])
    assert compose_stack.option(minio_argv, "--address") == f":{endpoint.port}"
    credentials = client._request_signer._credentials.get_frozen_credentials()
    minio_env = compose_stack.environment(services["minio"])
    assert credentials.access_key == minio_env["MINIO_ROOT_USER"]
    assert credentials.secret_key == minio_env["MINIO_ROOT_PASSWORD"]
    assert client.meta.region_name == "us-east-1"


def test_services_outside_airflow_read_the_same_store_with_the_same_keys(compose_connections, services):
    conn = compose_stack.to_connection("minio_s3", compose_connections["minio_s3"])
    endpoint = conn.extra_dejson["endpoint_url"]
    for name in ("model-server", "mlflow", "minio-init"):
        env = compose_stack.environment(services[name])
        assert env["AWS_ACCESS_KEY_ID"] == conn.login, name
        assert env["AWS_SECRET_ACCESS_KEY"] == conn.password, name
        assert env["AWS_ENDPOINT_URL"] == endpoint, name
        assert env["AWS_DEFAULT_REGION"] == conn.extra_dejson["region_name"], name
    assert compose_stack.environment(services["mlflow"])["MLFLOW_S3_ENDPOINT_URL"] == endpoint


def test_bucket_init_creates_every_bucket_the_specs_and_mlflow_use(services, specs):
    import importlib.util

    service = services["minio-init"]
    argv = compose_stack.command(service)
    script = compose_stack.host_path_for(service, argv[1])
    assert argv[0] == "python" and script == compose_stack.REPO / "docker" / "create_buckets.py"
    module_spec = importlib.util.spec_from_file_location("create_buckets", script)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    created = set(module.build_parser().parse_args(argv[2:]).buckets)

    needed = {}
    for file_name, spec in specs.items():
        for uri in (spec.storage.uri, spec.data.source):
            if uri.startswith("s3://"):
                needed[urlsplit(uri).netloc] = file_name
    destination = compose_stack.option(compose_stack.command(services["mlflow"]), "--artifacts-destination")
    needed[urlsplit(destination).netloc] = "the mlflow service"
    assert "models" in needed
    missing = {bucket: user for bucket, user in needed.items() if bucket not in created}
    assert not missing, f"buckets used but not created by minio-init: {missing}"
    assert (
        compose_stack.depends_on(services["mlflow"])["minio-init"]["condition"]
        == "service_completed_successfully"
    )
    assert (
        compose_stack.depends_on(services["model-server"])["minio-init"]["condition"]
        == "service_completed_successfully"
    )

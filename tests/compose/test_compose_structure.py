"""docker-compose.yaml and docker/Dockerfile, checked without a Docker engine (none runs here).

What these tests can catch: a missing service, a dangling depends_on, a bind mount of a path the
repository does not have, a container layout where the DAG file or the schema cannot find specs/
or schemas/, an image whose Airflow differs from the one requirements.lock was resolved for, and a
spec pointing at a model server the stack does not run. What they cannot: whether the images pull,
build and start (see docs/production.md, "What is tested").
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import compose_stack
import pytest

REQUIRED_SERVICES = {
    "postgres",
    "minio",
    "minio-init",
    "mlflow",
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "model-server",
}
# Airflow service -> the `airflow` sub-command it runs (the image's entrypoint prefixes `airflow`).
AIRFLOW_COMMANDS = {
    "airflow-init": ["db", "migrate"],
    "airflow-apiserver": ["api-server"],
    "airflow-scheduler": ["scheduler"],
    "airflow-dag-processor": ["dag-processor"],
    "airflow-triggerer": ["triggerer"],
}
LONG_RUNNING_AIRFLOW = sorted(set(AIRFLOW_COMMANDS) - {"airflow-init"})


def test_every_required_service_is_defined(services):
    assert REQUIRED_SERVICES <= set(services), f"missing: {sorted(REQUIRED_SERVICES - set(services))}"


def test_every_variable_has_a_default_so_the_stack_starts_without_a_dot_env():
    undefaulted = sorted(
        {v.name for v in compose_stack.variables_in(compose_stack.load_raw()) if not v.has_default}
    )
    assert undefaulted == []


def test_depends_on_names_existing_services_with_conditions_they_can_meet(services):
    for name, service in services.items():
        for target, spec in compose_stack.depends_on(service).items():
            assert target in services, f"{name} depends on {target}, which is not a service"
            assert target != name
            condition = spec.get("condition", "service_started")
            assert condition in ("service_started", "service_healthy", "service_completed_successfully")
            if condition == "service_healthy":
                assert services[target].get("healthcheck"), (
                    f"{name} waits for {target} to be healthy; it has no healthcheck"
                )
            if condition == "service_completed_successfully":
                # A one-shot job that compose restarted would never count as completed.
                assert services[target].get("restart", "no") == "no", f"{target} must not restart"


def test_bind_mounts_exist_in_the_repository_and_named_volumes_are_declared(compose, services):
    declared = set(compose.get("volumes") or {})
    binds = 0
    for name, service in services.items():
        for mount in compose_stack.mounts(service):
            if mount.kind == "bind":
                binds += 1
                assert mount.host_path().exists(), f"{name}: bind mount {mount.source} does not exist"
                assert (
                    compose_stack.REPO in mount.host_path().parents or mount.host_path() == compose_stack.REPO
                ), f"{name}: {mount.source} lies outside the repository"
            elif mount.source:
                assert mount.source in declared, (
                    f"{name}: volume {mount.source} is not declared under volumes:"
                )
    assert binds >= 6  # dags, plugins, specs, schemas, the postgres init scripts, the bucket script


def test_services_built_from_the_project_image_build_docker_dockerfile_from_the_repo_root(services):
    built = {name: s for name, s in services.items() if "build" in s}
    assert {"mlflow", "model-server", "minio-init", *AIRFLOW_COMMANDS} <= set(built)
    for name, service in built.items():
        build = service["build"]
        assert (compose_stack.REPO / build["context"]).resolve() == compose_stack.REPO, name
        assert (compose_stack.REPO / build["dockerfile"]).resolve() == compose_stack.DOCKERFILE, name
        assert service["image"] == built["airflow-scheduler"]["image"], f"{name} builds another image"


def test_dockerfile_airflow_version_equals_the_lock_pin():
    image = compose_stack.dockerfile_from_image()
    match = re.fullmatch(r"apache/airflow:(\d+\.\d+\.\d+)-python(\d+\.\d+)", image)
    assert match, f"unexpected base image {image}"
    assert match.group(1) == compose_stack.locked_version("apache-airflow")
    assert match.group(1) == compose_stack.locked_version("apache-airflow-core")
    assert match.group(2) == "3.11"  # pyproject: requires-python >=3.11,<3.12


def test_dockerfile_copies_only_paths_that_exist_and_are_not_dockerignored():
    ignore = compose_stack.REPO / "docker" / "Dockerfile.dockerignore"
    ignored = {
        line.strip() for line in ignore.read_text().splitlines() if line.strip() and not line.startswith("#")
    }
    sources = compose_stack.dockerfile_copy_sources()
    # Everything `pip install .` needs: hatchling reads README.md and force-includes the schema.
    assert {"requirements.lock", "pyproject.toml", "README.md", "schemas", "plugins/mlspec"} <= set(sources)
    for source in sources:
        assert (compose_stack.REPO / source).exists(), source
        assert source.split("/")[0] not in ignored, f"{source} is excluded from the build context"
    assert ".venv" in ignored  # gigabytes the build must not upload


def test_airflow_services_run_their_component_without_examples(services):
    for name, argv in AIRFLOW_COMMANDS.items():
        service = services[name]
        assert compose_stack.command(service) == argv, name
        assert "entrypoint" not in service, f"{name} must keep the Airflow image's entrypoint"
        env = compose_stack.environment(service)
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"].lower() == "false", name
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor", name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://"), name
        assert urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).hostname in services
        # Tasks reach the execution API by the api-server's service name, and JWTs must verify.
        api = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
        assert (api.hostname, api.port, api.path) == ("airflow-apiserver", 8080, "/execution/")
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"]


def test_airflow_services_share_one_configuration(services):
    reference = compose_stack.environment(services["airflow-scheduler"])
    for name in AIRFLOW_COMMANDS:
        assert compose_stack.environment(services[name]) == reference, name
        assert compose_stack.mounts(services[name]) == compose_stack.mounts(services["airflow-scheduler"]), (
            name
        )


@pytest.mark.parametrize("name", sorted(AIRFLOW_COMMANDS))
def test_container_layout_lets_dags_and_plugins_find_specs_and_schema(services, name):
    service = services[name]
    env = compose_stack.environment(service)
    host = lambda path: compose_stack.host_path_for(service, path)  # noqa: E731

    assert host(env["AIRFLOW__CORE__DAGS_FOLDER"]) == compose_stack.REPO / "dags"
    assert host(env["AIRFLOW__CORE__PLUGINS_FOLDER"]) == compose_stack.REPO / "plugins"
    assert host(env["MLSPEC_SPECS_DIR"]) == compose_stack.SPECS_DIR
    # Without MLSPEC_SPECS_DIR, dags/mlspec_dags.py reads <its folder>/../specs.
    dag_file = PurePosixPath(env["AIRFLOW__CORE__DAGS_FOLDER"]) / "mlspec_dags.py"
    assert host(dag_file).is_file()
    assert host(dag_file.parent.parent / "specs") == compose_stack.SPECS_DIR
    # PYTHONPATH puts the mounted plugins first; schema.py then looks three folders up for schemas/.
    assert env["PYTHONPATH"].split(":")[0] == env["AIRFLOW__CORE__PLUGINS_FOLDER"]
    schema_py = PurePosixPath(env["PYTHONPATH"].split(":")[0]) / "mlspec" / "spec" / "schema.py"
    assert host(schema_py).is_file()
    schema = host(schema_py.parents[3] / "schemas" / "model-spec.schema.json")
    assert schema is not None and schema.is_file(), "schemas/ is not mounted where schema.py looks"
    # The mounted source is read, not written: no root-owned __pycache__ in the checkout.
    for mount in compose_stack.mounts(service):
        if mount.kind == "bind":
            assert mount.read_only, f"{name}: {mount.source} should be mounted :ro"


def test_long_running_airflow_services_have_healthchecks_and_wait_for_init(services):
    for name in LONG_RUNNING_AIRFLOW:
        service = services[name]
        assert service.get("healthcheck", {}).get("test"), name
        deps = compose_stack.depends_on(service)
        assert deps["airflow-init"]["condition"] == "service_completed_successfully", name
    assert "127.0.0.1:8080:8080" in services["airflow-apiserver"]["ports"]
    # The scheduler runs the tasks: the services tasks call must be up first.
    scheduler_deps = compose_stack.depends_on(services["airflow-scheduler"])
    for needed in ("mlflow", "model-server", "airflow-apiserver"):
        assert scheduler_deps[needed]["condition"] == "service_healthy"


def test_published_ports_bind_to_loopback_only(services):
    # SimpleAuthManager with all-admins and default credentials are only acceptable on 127.0.0.1.
    for name, service in services.items():
        for port in service.get("ports") or []:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_model_server_service_runs_mlspec_serve_with_a_persistent_state_dir(services):
    service = services["model-server"]
    argv = compose_stack.command(service)
    assert argv[:2] == ["mlspec", "serve"]
    assert compose_stack.option(argv, "--host") == "0.0.0.0"
    state_dir = compose_stack.option(argv, "--state-dir")
    assert any(
        m.target == PurePosixPath(state_dir) and m.kind == "volume" for m in compose_stack.mounts(service)
    )
    # file:// stores of the other specs: same MLSPEC_HOME volume at the same path as the Airflow side.
    airflow_home = compose_stack.environment(services["airflow-scheduler"])["MLSPEC_HOME"]
    assert compose_stack.environment(service)["MLSPEC_HOME"] == airflow_home
    home = PurePosixPath(airflow_home)
    served_from = {m.source for m in compose_stack.mounts(service) if m.target == home}
    written_to = {m.source for m in compose_stack.mounts(services["airflow-scheduler"]) if m.target == home}
    assert served_from and served_from == written_to


def _serving_urls(specs, services) -> list[str]:
    urls = [s.serving.url for s in specs.values() if s.serving.platform == "local" and s.serving.url]
    urls.append(compose_stack.environment(services["airflow-scheduler"])["MLSPEC_SERVER_URL"])
    return urls


def test_local_serving_urls_name_the_model_server_service_and_its_port(specs, services):
    assert specs["digits-s3.yaml"].serving.url == "http://model-server:8555"
    argv = compose_stack.command(services["model-server"])
    for url in _serving_urls(specs, services):
        parts = urlsplit(url)
        assert parts.hostname in services, f"{url}: no service named {parts.hostname}"
        assert parts.hostname == "model-server"
        assert str(parts.port) == compose_stack.option(argv, "--port"), url


def test_the_compose_spec_uses_s3_the_mlflow_server_and_the_compose_model_server(specs, services):
    spec = specs["digits-s3.yaml"]
    assert spec.name == "digits-s3"
    assert spec.data.source == "builtin:digits"  # runs offline, like digits.yaml
    assert spec.storage.uri == "s3://models/mlspec" and spec.storage.connection == "minio_s3"
    assert (spec.registry.backend, spec.registry.connection) == ("mlflow", "mlflow_server")
    assert (spec.serving.platform, spec.serving.runtime) == ("local", "onnxruntime")
    names = [s.name for s in specs.values()]
    assert len(names) == len(set(names)), "two specs claim the same dag_id"

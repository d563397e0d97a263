"""The serving platforms, one table: what each one adds to the spec, how it is linted and described, and
how its backend is opened.

Everything outside mlspec.serving asks a platform's descriptor (`platform_of(spec)`) instead of comparing
its name. Adding a platform is one backend module (a `ServingBackend`) and one entry in `PLATFORMS`; the
schema's `serving.platform` enum is checked against this table by tests/serving/test_serving_platforms.py.

Light on purpose (read at DAG parse time): a backend module is imported only when a backend is opened.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mlspec.errors import ServingError
from mlspec.home import DEFAULT_SERVER_URL, local_server_url
from mlspec.request_logs import request_log_settings
from mlspec.serving.base import ServingBackend
from mlspec.serving.kserve_manifest import (
    MOVED_KEYS,
    RUNTIMES,
    KServeSettings,
    kserve_config,
    lint_settings,
    manifest_for_spec,
    rollout_refusal,
)
from mlspec.storage import open_store

# Where a curl or a card shows the endpoint of a platform that knows its URL only once deployed.
ENDPOINT_PLACEHOLDER = "$ENDPOINT"


@dataclass(frozen=True)
class ServingPlatform:
    """One serving platform. `spec` arguments are ModelSpecs; `serving` ones the resolved `serving` mapping."""

    name: str  # the value of serving.platform
    title: str  # in sentences: "KServe", "the local model server"
    runtimes: tuple[str, ...]  # the serving.runtime values it serves with
    # (spec, store or None, timeout_s or None) -> its ServingBackend; imports the backend module when called
    open_backend: Callable[[Any, Any, float | None], ServingBackend]
    where: Callable[[Any], str]  # where the model is served, for status lines: "KServe namespace models"
    endpoint_base: Callable[[Any], str]  # the base URL clients call, or ENDPOINT_PLACEHOLDER
    deploy_next_step: str  # what to do when a deploy failed
    unreachable_next_step: Callable[[Any], str]  # what to do when serving cannot be asked what it serves
    # Its own settings: serving.<name> (defaults filled) -> a typed, frozen settings object; None: it has none.
    settings: Callable[[Mapping], Any] | None = None
    moved_keys: tuple[str, ...] = ()  # serving.* keys that moved into serving.<name>: still read, with a warning
    # Rules on serving.<name> the schema cannot express: (its mapping, problem(path, message)) -> problems.
    lint: Callable[[Mapping, Callable[..., Any]], Iterable[Any]] | None = None
    store_schemes: tuple[str, ...] = ()  # the storage.uri schemes it can load a model from; () any
    on_this_machine: bool = False  # served by this machine's model server, which reads file:// stores itself
    # Its endpoint answers /v2/models/<name>/versions/<n> for the version it was given (the smoke test asks it).
    serves_versions: bool = False
    # The endpoint as a shell word for the DAG docs' curl (spec -> str); None: known only once deployed.
    shell_endpoint: Callable[[Any], str] | None = None
    # A shell command that prints the endpoint when endpoint_base is ENDPOINT_PLACEHOLDER (spec -> str).
    endpoint_lookup: Callable[[Any], str] | None = None
    # The manifest deploy applies for a version, for `mlspec manifest` ((spec, version) -> dict); None: none.
    manifest: Callable[..., dict] | None = None
    # What a rollout and serving.log_requests can use there: a shadow version (a copy of live requests), mlspec's
    # per-version metrics at the endpoint's /metrics, and request logging to the store. Lint reads these.
    shadows: bool = False
    version_metrics: bool = False
    logs_requests: bool = False
    # Why a spec's rollout cannot run with these settings (its typed settings -> sentence or None); a lint error.
    rollout_refusal: Callable[[Any], str | None] | None = None

    def settings_of(self, serving: Mapping) -> Any:
        """The typed settings of a resolved `serving` mapping (None when this platform has none)."""
        return self.settings(serving[self.name]) if self.settings else None


# -- local: mlspec's own Open Inference Protocol server --------------------------------------
def _local_base(spec: Any) -> str:
    return (spec.serving.url or local_server_url()).rstrip("/")


def _open_local(spec: Any, store: Any, timeout_s: float | None) -> ServingBackend:
    from mlspec.serving.local import LocalServing

    # A bounded caller (the Models page) polls fast within its own deadline.
    bounds = {} if timeout_s is None else {"timeout_s": timeout_s, "poll_interval_s": 0.1}
    return LocalServing(_local_base(spec), connection_id=spec.serving.connection,
                        request_logs=_request_logs(spec, store), **bounds)


def _request_logs(spec: Any, store: Any) -> dict | None:
    """The server's /logging parameters for the spec (None: it logs nothing). The folder is below the store's
    absolute root, not the spec's `storage.uri`: a relative `file://models` would be read against the server's
    MLSPEC_HOME, while `mlspec drift` reads through the store Airflow opens."""
    if spec.serving.log_requests is None:
        return None  # no store to open for a spec that logs nothing
    store = store if store is not None else open_store(spec.storage.uri, spec.storage.connection)
    return request_log_settings(spec, store.root_uri)


LOCAL = ServingPlatform(
    name="local",
    title="the local model server",
    runtimes=("onnxruntime",),
    open_backend=_open_local,
    where=lambda spec: f"the local model server at {_local_base(spec)}",
    endpoint_base=_local_base,
    deploy_next_step=(
        "start the model server (`make serve` or `mlspec serve`) or fix the serving settings, then clear this task"
    ),
    unreachable_next_step=lambda spec: "start the model server (`make serve` or `mlspec serve`) and ask again",
    on_this_machine=True,
    serves_versions=True,
    shell_endpoint=lambda spec: f"${{MLSPEC_SERVER_URL:-{spec.serving.url or DEFAULT_SERVER_URL}}}",
    shadows=True,
    version_metrics=True,
    logs_requests=True,
)


# -- kserve: an InferenceService on Kubernetes -----------------------------------------------
def _open_kserve(spec: Any, store: Any, timeout_s: float | None) -> ServingBackend:
    from mlspec.serving.kserve import KServeServing

    store = store if store is not None else open_store(spec.storage.uri, spec.storage.connection)
    return KServeServing(kserve_config(spec), store.root_uri)


def _kserve_get(spec: Any) -> str:
    return f"kubectl get inferenceservice {spec.name} -n {spec.serving.settings.namespace}"


KSERVE = ServingPlatform(
    name="kserve",
    title="KServe",
    runtimes=RUNTIMES,
    open_backend=_open_kserve,
    where=lambda spec: f"KServe namespace {spec.serving.settings.namespace}",
    endpoint_base=lambda spec: ENDPOINT_PLACEHOLDER,
    deploy_next_step=(
        "check the Kubernetes connection, the namespace and that KServe is installed "
        "(`kubectl get inferenceservices -n <namespace>`), then clear this task"
    ),
    unreachable_next_step=lambda spec: (
        f"check the Kubernetes connection and the InferenceService `{spec.name}` (`{_kserve_get(spec)}`) and ask again"
    ),
    settings=KServeSettings.from_mapping,
    moved_keys=MOVED_KEYS,
    lint=lint_settings,
    store_schemes=("s3",),
    endpoint_lookup=lambda spec: f"{_kserve_get(spec)} -o jsonpath='{{.status.url}}'",
    manifest=manifest_for_spec,
    rollout_refusal=rollout_refusal,
)


PLATFORMS: dict[str, ServingPlatform] = {platform.name: platform for platform in (LOCAL, KSERVE)}


def moved_keys_written(serving: Mapping) -> list[tuple[str, str]]:
    """(key, platform) for each `serving.<key>` written where it used to be, before it moved into
    `serving.<platform>.<key>`."""
    return [(key, p.name) for p in PLATFORMS.values() for key in p.moved_keys if key in serving]


def with_settings_moved(spec: dict) -> dict:
    """The written spec with each moved `serving.<key>` in its new place, `serving.<platform>.<key>` (a key
    written in both places keeps the new one; lint reports both). Run before the schema's defaults are filled."""
    serving = spec.get("serving")
    moved = moved_keys_written(serving) if isinstance(serving, dict) else []
    if not moved:
        return spec
    serving = dict(serving)
    for key, name in moved:
        value = serving.pop(key)
        settings = serving.setdefault(name, {})
        if isinstance(settings, dict):
            serving[name] = {key: value, **settings}
    return {**spec, "serving": serving}


def platform_named(name: str) -> ServingPlatform:
    try:
        return PLATFORMS[name]
    except KeyError:
        raise ServingError(f"unknown serving platform {name!r}; known: {', '.join(PLATFORMS)}") from None


def platform_of(spec: Any) -> ServingPlatform:
    """The descriptor of a ModelSpec's serving.platform."""
    return platform_named(spec.serving.platform)

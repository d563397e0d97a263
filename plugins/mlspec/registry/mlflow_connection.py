"""Where a spec's MLflow lives and how to talk to it: the embedded SQLite file, or a tracking server named
by an Airflow connection, with that connection's credentials.

:func:`resolve_connection` turns ``registry.connection`` (or ``tracking.connection``) into an
:class:`MlflowConnection`: no connection id means the embedded ``sqlite:///<MLSPEC_HOME>/mlflow/mlflow.db``;
a connection id names an Airflow connection whose host (and schema/port) is the tracking server, and whose
login/password (basic auth) or ``extra.token`` (bearer) sign this connection's requests in.

:func:`mlflow_client` makes an explicit ``MlflowClient(tracking_uri=..., registry_uri=...)`` so that several
tasks in one process never share MLflow's global "current tracking URI". Credentials go to that client
only, never into ``os.environ``, where MLflow's default reads them and where they would outlive the task
and sign in the next task of the process to another server. MLflow has no public argument for per-client
credentials: its REST stores take a ``get_host_creds`` callable, and the client with credentials is an
MlflowClient whose tracking and registry service clients hold such stores (the sign-in is
``MlflowConnection.host_creds``). Artifacts uploaded through a server (``mlflow-artifacts:`` locations)
use the same credentials. What a platform engineer exported in the worker's environment
(MLFLOW_TRACKING_USERNAME/PASSWORD/TOKEN/AUTH, TLS settings) still applies where the connection says nothing;
a connection with credentials signs in with those alone (TLS settings still apply).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mlspec.connections import bearer_token, get_connection
from mlspec.errors import RegistryError
from mlspec.registry.mlflow_embedded import embedded_dir, embedded_store_exists, prepare_embedded_store

if TYPE_CHECKING:  # pragma: no cover - typing only; mlflow is imported inside functions
    from mlflow import MlflowClient
    from mlflow.utils.rest_utils import MlflowHostCreds

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MlflowConnection:
    """One MLflow: its tracking (and registry) URI, which never holds credentials, and the credentials
    its Airflow connection gives (kept out of repr, logs and the URI)."""

    tracking_uri: str
    connection_id: str | None = None
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    @property
    def is_server(self) -> bool:
        return is_server_uri(self.tracking_uri)

    @property
    def has_credentials(self) -> bool:
        return bool(self.username or self.token)

    def host_creds(self, host: str) -> MlflowHostCreds:
        """What MLflow sends to `host`: its defaults (TLS settings, and credentials from the worker's
        environment) with this connection's credentials in their place where it has any.

        A connection with credentials signs in with those alone: MLflow prefers a login over a token and an
        auth provider over both, so any kind the environment sets would otherwise send the worker's own
        login (exported for another server, perhaps) to this connection's server."""
        from mlflow.utils.credentials import get_default_host_creds

        creds = get_default_host_creds(host)
        if self.has_credentials:
            creds.username = self.username
            creds.password = (self.password or "") if self.username else None
            creds.token = self.token
            creds.auth, creds.aws_sigv4 = None, False
        return creds


def embedded_tracking_uri() -> str:
    """``sqlite:///<MLSPEC_HOME>/mlflow/mlflow.db`` (its folder is created)."""
    return f"sqlite:///{(embedded_dir() / 'mlflow.db').as_posix()}"


def resolve_connection(connection_id: str | None) -> MlflowConnection:
    """The MLflow of a spec's ``registry.connection`` (or ``tracking.connection``).

    ``None`` gives the embedded store (:func:`embedded_tracking_uri`). A connection id gives
    ``<scheme>://<host>[:<port>][/path]``: the host may be a bare name (scheme from the connection's schema,
    ``http`` unless it says ``https``) or a full URL. Login/password become basic auth and ``extra.token``
    a bearer token, of this connection's clients only; they are never logged or put in the URI.
    """
    if not connection_id:
        return MlflowConnection(embedded_tracking_uri())

    conn = get_connection(
        connection_id,
        used_for="the MLflow tracking server (its host; or leave the connection out to use the embedded MLflow)",
        error_type=RegistryError,
    )
    host = (conn.host or "").strip()
    if not host:
        raise RegistryError(
            f"Airflow connection {connection_id!r} has no host; set it to the MLflow tracking server, "
            "e.g. host=mlflow.example.com port=5000 schema=https, or host=http://mlflow:5000."
        )
    login, password = conn.login, conn.password
    if "://" in host:
        parts = urlsplit(host)
        scheme = parts.scheme.lower()
        hostname = parts.hostname or ""
        port = conn.port or parts.port
        path = parts.path.rstrip("/")
        # credentials written into the host URL would otherwise end up in logs and error messages
        login = login or parts.username
        password = password or parts.password
    else:
        hostname, _, rest = host.partition("/")
        path = f"/{rest}".rstrip("/") if rest else ""
        candidates = [(conn.schema or "").lower(), (conn.conn_type or "").lower()]
        scheme = next((c for c in candidates if c in ("http", "https")), "http")
        port = conn.port
    if scheme not in ("http", "https"):
        raise RegistryError(
            f"Airflow connection {connection_id!r}: MLflow tracking server URL scheme {scheme!r} is not "
            "http or https; set the connection's schema to http or https."
        )
    if ":" in hostname and not hostname.startswith("["):
        hostname = f"[{hostname}]"  # IPv6 literal
    uri = f"{scheme}://{hostname}{f':{port}' if port else ''}{path}"

    token = bearer_token(conn) if not login else (conn.extra_dejson or {}).get("token")
    auth = (["basic auth"] if login else []) + (["token"] if token else [])
    log.info("MLflow tracking server %s (Airflow connection %r%s)", uri, connection_id,
             f", {' and '.join(auth)}" if auth else "")
    return MlflowConnection(
        uri,
        connection_id,
        username=login or None,
        password=(password or "") if login else None,
        token=str(token) if token else None,
    )


def ui_url(connection_id: str | None, tracking_uri: str) -> str:
    """Where people open the MLflow UI: the connection's extra ``ui_url`` (a server whose UI is at
    another address than its API, e.g. behind a proxy), else the tracking server's own URL; "" for the
    embedded MLflow, which has no UI of its own."""
    if not connection_id:
        return ""
    conn = get_connection(connection_id, used_for="the MLflow tracking server", error_type=RegistryError)
    configured = str((conn.extra_dejson or {}).get("ui_url") or "").strip()
    if configured.startswith(("http://", "https://")):
        return display_uri(configured).rstrip("/")
    if configured:
        log.warning("Airflow connection %r: extra ui_url %r is not an http(s) URL; using the server's URL",
                    connection_id, configured)
    return display_uri(tracking_uri).rstrip("/") if is_server_uri(tracking_uri) else ""


def is_server_uri(tracking_uri: str) -> bool:
    return urlsplit(tracking_uri).scheme in ("http", "https")


def display_uri(tracking_uri: str) -> str:
    """The tracking URI without any user:password, for messages."""
    parts = urlsplit(tracking_uri)
    if parts.username or parts.password:
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return parts._replace(netloc=netloc).geturl()
    return tracking_uri


def mlflow_error_text(exc: BaseException, limit: int = 400) -> str:
    """One short line from an MLflow exception (connection errors carry pages of urllib3 detail)."""
    text = " ".join(str(getattr(exc, "message", None) or exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def mlflow_client(connection: MlflowConnection, *, create: bool = True) -> MlflowClient:
    """An MlflowClient bound to one URI for tracking and registry (no global MLflow state), signed in
    with the connection's credentials when it has any.

    For the embedded store, `create` (tasks, the CLI) makes the database, or migrates or repairs it,
    under its lock first (:func:`prepare_embedded_store`); ``create=False`` (pages, status reads) only
    opens one that exists and is at MLflow's schema, and raises RegistryError otherwise.
    """
    from mlflow import MlflowClient

    uri = connection.tracking_uri
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        if create:
            prepare_embedded_store(db)
        elif not embedded_store_exists(db):
            raise RegistryError(
                f"the embedded MLflow database {db} does not exist yet: nothing has been registered; "
                "the first run of a spec creates it"
            )
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    if connection.is_server and connection.has_credentials:
        _sign_in(client, connection)
    return client


def _sign_in(client: MlflowClient, connection: MlflowConnection) -> None:
    """Give `client` tracking and registry stores (and server artifact uploads) that send `connection`'s
    credentials. MlflowClient reaches its stores through these two service clients (mlflow 3.x)."""
    tracking_class, registry_class = _signed_in_service_clients()
    client._tracking_client = tracking_class(connection)
    client._registry_client_lazy = registry_class(connection)


@cache
def _signed_in_service_clients() -> tuple[type, type]:
    """MLflow's tracking and registry service clients, holding REST stores signed in as one connection
    instead of reading the process environment on every request."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository
    from mlflow.store.model_registry.rest_store import RestStore as RegistryRestStore
    from mlflow.store.tracking.rest_store import RestStore as TrackingRestStore
    from mlflow.tracking._model_registry.client import ModelRegistryClient
    from mlflow.tracking._tracking_service.client import TrackingServiceClient

    class SignedInTracking(TrackingServiceClient):
        def __init__(self, connection: MlflowConnection) -> None:
            self.connection = connection
            self._signed_in_store = TrackingRestStore(lambda: connection.host_creds(connection.tracking_uri))
            super().__init__(connection.tracking_uri)

        @property
        def store(self) -> Any:
            return self._signed_in_store

        def _get_artifact_repo(self, resource_id: str, *, resource: str = "run") -> Any:
            # Not MLflow's process-wide cache of repositories by run or model id: a repository made here
            # signs in as this connection, and another client must not be handed it.
            if resource == "run":
                location = self.get_run(resource_id).info.artifact_uri
            else:
                location = self.get_logged_model(resource_id).artifact_location
            repository = get_artifact_repository(location, tracking_uri=self.tracking_uri)
            if isinstance(repository, HttpArtifactRepository):  # uploads through the tracking server
                repository.__class__ = _signed_in_artifacts(type(repository))
                repository.connection = self.connection
            return repository

    class SignedInRegistry(ModelRegistryClient):
        def __init__(self, connection: MlflowConnection) -> None:
            self._signed_in_store = RegistryRestStore(lambda: connection.host_creds(connection.tracking_uri))
            super().__init__(connection.tracking_uri, connection.tracking_uri)

        @property
        def store(self) -> Any:
            return self._signed_in_store

    return SignedInTracking, SignedInRegistry


@cache
def _signed_in_artifacts(repository_class: type) -> type:
    """`repository_class` (an HTTP artifact repository) sending its connection's credentials on uploads and
    on its capability probe, where MLflow's own reads them from the environment."""
    artifacts_root = "/api/2.0/mlflow-artifacts/artifacts"

    class SignedIn(repository_class):
        connection: MlflowConnection

        @property
        def _host_creds(self) -> Any:
            return self.connection.host_creds(self.artifact_uri)

        @property
        def _artifact_server_host_creds(self) -> Any:
            return self.connection.host_creds(self.artifact_uri.partition(artifacts_root)[0].rstrip("/"))

    SignedIn.__name__ = SignedIn.__qualname__ = f"SignedIn{repository_class.__name__}"
    return SignedIn

"""Local serving backend: deploys versions to the mlspec model server (`mlspec serve`) over HTTP.

It uses only the server's public API: the Open Inference Protocol for health, metadata and
readiness, and the model repository extension (`/v2/repository/models/{m}/load|unload`) to change
what is served. The server keeps earlier versions in memory, so a rollback is one fast call.

Every request to the configured model server (MLSPEC_SERVER_URL) carries its bearer token:
MLSPEC_SERVER_TOKEN, else the token file the server wrote into its state folder (MLSPEC_HOME/server/token,
as `make serve` runs it). Any other URL gets only the token of the Airflow connection named for it, or
none (mlspec.serving.credentials decides).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx

from mlspec.errors import ServingError
from mlspec.home import local_server_url
from mlspec.inference_protocol import LIVE_PATH, SERVER_READY_PATH, model_path, ready_path, repository_path
from mlspec.serving.base import Deployment, ServingBackend
from mlspec.serving.credentials import foreign_server_hint, is_configured_server, token_for

log = logging.getLogger(__name__)


class LocalServing(ServingBackend):
    """Deploy to and roll back on the local Open Inference Protocol server at `base_url`."""

    platform = "local"

    def __init__(
        self,
        base_url: str | None = None,
        *,
        token: str | None = None,
        connection_id: str | None = None,
        timeout_s: float = 120.0,
        poll_interval_s: float = 0.2,
        request_logs: dict | None = None,
    ) -> None:
        self.base_url = (base_url or local_server_url()).rstrip("/")
        # The spec's serving.log_requests as the server's /logging parameters (mlspec.request_logs), set on each
        # apply; None: the spec logs no request, so each apply stops the model's logging (a setting removed from
        # the spec stops the writing; on a model that logs nothing it is a no-op).
        self.request_logs = request_logs
        # Never the admin token to a URL that is not the configured server (see credentials.token_for).
        self.token = token or token_for(self.base_url, connection_id=connection_id)
        self.timeout_s = timeout_s
        self.poll_interval_s = poll_interval_s

    # -- HTTP helpers -------------------------------------------------------------------------
    def _client(self) -> httpx.Client:
        # A load reads the model and builds a session: allow it the whole deploy timeout.
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(
            base_url=self.base_url, timeout=httpx.Timeout(self.timeout_s, connect=5.0), headers=headers
        )

    def _request(self, client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                response = client.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                raise ServingError(
                    f"the model server at {self.base_url} did not answer {method} {path}: "
                    f"{type(exc).__name__}: {exc}"
                ) from None
            if response.status_code == 401:
                raise ServingError(
                    f"the model server at {self.base_url} refused {method} {path} (HTTP 401: "
                    f"{self._error_text(response)}); " + self._token_hint()
                )
            # 409: another load or unload of this model is in flight (a concurrent deploy, or the
            # server restoring it after a restart): wait for it rather than fail.
            if response.status_code != 409 or time.monotonic() >= deadline:
                return response
            time.sleep(self.poll_interval_s)

    def _token_hint(self) -> str:
        if self.token:
            return (
                "the token sent is not the server's: set MLSPEC_SERVER_TOKEN to the token in the server's "
                "state folder (the `token` file)"
            )
        if not is_configured_server(self.base_url):
            return foreign_server_hint(self.base_url)
        return (
            "no token was found: set MLSPEC_SERVER_TOKEN, or run the server with its state folder at "
            "MLSPEC_HOME/server (as `make serve` does) so its token file is found"
        )

    @staticmethod
    def _error_text(response: httpx.Response) -> str:
        try:
            return str(response.json().get("error") or response.text)
        except (ValueError, AttributeError):
            return response.text or f"HTTP {response.status_code}"

    def _require_live(self, client: httpx.Client) -> None:
        try:
            response = client.get(LIVE_PATH)
        except httpx.HTTPError as exc:
            raise ServingError(
                f"no model server answers at {self.base_url} ({type(exc).__name__}); start one with "
                "`mlspec serve` or `make serve`, or point MLSPEC_SERVER_URL at a running one"
            ) from None
        if response.status_code != 200:
            raise ServingError(
                f"the model server at {self.base_url} is not live (GET {LIVE_PATH} answered "
                f"{response.status_code}); restart it with `mlspec serve` or `make serve`"
            )
        # Just restarted: wait until it has loaded again what it served, so "what serves now" is true.
        deadline = time.monotonic() + self.timeout_s
        while (ready := self._request(client, "GET", SERVER_READY_PATH)).status_code == 503:
            if time.monotonic() >= deadline:
                raise ServingError(
                    f"the model server at {self.base_url} did not become ready within {self.timeout_s:g}s: "
                    f"{self._error_text(ready)}"
                )
            time.sleep(self.poll_interval_s)

    def _served(self, client: httpx.Client, model_name: str) -> tuple[str | None, list[str], str | None]:
        """(served version, loaded versions, storage URI of the served version) or Nones when none serves."""
        response = self._request(client, "GET", model_path(model_name))
        if response.status_code in (404, 503):
            return None, [], None
        if response.status_code != 200:
            raise ServingError(
                f"cannot read which version of {model_name} the model server at {self.base_url} serves: "
                f"HTTP {response.status_code}: {self._error_text(response)}"
            )
        metadata = response.json()
        parameters = metadata.get("parameters") or {}
        versions = list(metadata.get("versions") or [])
        return parameters.get("served_version"), versions, parameters.get("storage_uri")

    def _storage_uri(self, client: httpx.Client, model_name: str, version: str) -> str | None:
        response = self._request(client, "GET", model_path(model_name, version))
        if response.status_code != 200:
            return None
        return (response.json().get("parameters") or {}).get("storage_uri")

    def _load(
        self, client: httpx.Client, model_name: str, version: int, storage_uri: str | None, *, serve: bool = True
    ) -> httpx.Response:
        parameters: dict[str, Any] = {"version": str(version)}
        if storage_uri:
            parameters["storage_uri"] = storage_uri
        if not serve:  # loaded and ready beside the served version, answering nothing (a rollout's candidate)
            parameters["serve"] = False
        return self._request(
            client, "POST", repository_path(model_name, "load"), json={"parameters": parameters}
        )

    def _unload(self, client: httpx.Client, model_name: str, version: int | None) -> None:
        body = {"parameters": {"version": str(version)}} if version is not None else {}
        response = self._request(client, "POST", repository_path(model_name, "unload"), json=body)
        # 404: already gone (a retried rollback); that is the state we want.
        if response.status_code not in (200, 404):
            what = f"version {version} of {model_name}" if version is not None else model_name
            raise ServingError(
                f"the model server at {self.base_url} could not unload {what}: HTTP {response.status_code}: "
                f"{self._error_text(response)}"
            )

    def _wait_ready(self, client: httpx.Client, model_name: str, version: int) -> None:
        path = ready_path(model_name, version)
        deadline = time.monotonic() + self.timeout_s
        while True:
            response = self._request(client, "GET", path)
            if response.status_code == 200:
                return
            if time.monotonic() >= deadline:
                raise ServingError(
                    f"{model_name} version {version} did not become ready on {self.base_url} within "
                    f"{self.timeout_s:g}s (last answer: HTTP {response.status_code}: "
                    f"{self._error_text(response)})"
                )
            time.sleep(self.poll_interval_s)

    def _log_requests(self, client: httpx.Client, model_name: str) -> None:
        """Have the server log the model's requests as the spec asks, or stop logging them. A log is for later
        drift checks, not a gate: a server that refuses is a warning, and the version serves."""
        response = self._request(client, "POST", repository_path(model_name, "logging"),
                                 json={"parameters": self.request_logs})
        if self.request_logs is None:
            if response.status_code != 200:
                log.warning("the model server at %s did not stop logging the requests of %s (HTTP %d: %s)",
                            self.base_url, model_name, response.status_code, self._error_text(response))
            return
        if response.status_code != 200:
            log.warning("the model server at %s did not start logging the requests of %s to %s (HTTP %d: %s); "
                        "`mlspec drift` will find no rows", self.base_url, model_name, self.request_logs.get("uri"),
                        response.status_code, self._error_text(response))
            return
        log.info("the model server logs %s's requests to %s (sample %g)", model_name, self.request_logs.get("uri"),
                 self.request_logs.get("sample"))

    # -- ServingBackend -------------------------------------------------------------------------
    def apply(self, model_name: str, version: int, version_uri: str, *, serve: bool = True) -> dict:
        """Load `version` from `version_uri`; the previous version serves until it is ready (with
        `serve=False`, it keeps serving: the candidate answers no live request until the traffic says so).

        Raises ServingError when no server answers or the load fails (the previous version keeps serving).
        """
        with self._client() as client:
            self._require_live(client)
            served, loaded, served_uri = self._served(client, model_name)
            if served == str(version):
                # A retried deploy finds its own version serving: what served before it is the newest
                # older version the server still holds.
                older = sorted((int(v) for v in loaded if v.isdigit() and int(v) < version), reverse=True)
                served = str(older[0]) if older else None
                served_uri = self._storage_uri(client, model_name, served) if served else None
            previous = int(served) if served is not None and served.isdigit() else None
            log.info(
                "deploying %s version %d from %s to %s (serving now: %s%s)",
                model_name,
                version,
                version_uri,
                self.base_url,
                served or "nothing",
                "" if serve else "; loaded beside it, answering no live traffic yet",
            )
            response = self._load(client, model_name, version, version_uri, serve=serve)
            if response.status_code != 200:
                keeps = f"version {served} keeps serving" if served else "nothing was served before"
                raise ServingError(
                    f"the model server at {self.base_url} could not load {model_name} version {version} from "
                    f"{version_uri}: {self._error_text(response)}; {keeps}"
                )
            self._log_requests(client, model_name)
        state = {"model_name": model_name, "version": version, "previous_version": previous,
                 "previous_storage_uri": served_uri if previous is not None else None}
        return state if serve else {**state, "serve": False}

    def await_ready(self, state: dict, event: dict | None = None) -> Deployment:
        """Wait until the loaded version answers (the server loads in seconds: no triggerer event here)."""
        model_name, version, previous = state["model_name"], state["version"], state["previous_version"]
        with self._client() as client:
            self._wait_ready(client, model_name, version)
        if state.get("serve", True):
            log.info("%s version %d is served at %s", model_name, version, self.base_url)
        else:
            log.info("%s version %d is ready at %s beside version %s, answering no live request", model_name, version,
                     self.base_url, previous)
        return Deployment(
            platform=self.platform,
            model_name=model_name,
            version=version,
            endpoint_url=self.base_url,
            served_model_name=model_name,
            previous_version=previous,
            previous_state={"storage_uri": state["previous_storage_uri"]} if state.get("previous_storage_uri") else None,
        )

    def rollback(self, deployment: Deployment) -> None:
        """Serve deployment.previous_version again and unload the failed version (or the model if none)."""
        name, version = deployment.served_model_name, deployment.version
        previous = deployment.previous_version
        with self._client() as client:
            self._require_live(client)
            if previous is None or previous == version:
                log.info("rolling back %s: nothing served before version %d; unloading it", name, version)
                self._unload(client, name, None)
                return
            storage_uri = (deployment.previous_state or {}).get("storage_uri")
            log.info("rolling back %s: serving version %s again, unloading %d", name, previous, version)
            # The server still holds a version it served (even if its folder is gone since): ask for
            # it by number first, and read it from its folder only when the server no longer has it.
            response = self._load(client, name, previous, None)
            if response.status_code != 200 and storage_uri:
                response = self._load(client, name, previous, storage_uri)
            if response.status_code != 200:
                raise ServingError(
                    f"rolling back {name} to version {previous} on {self.base_url} failed: "
                    f"{self._error_text(response)}; version {version} may still be served; load version "
                    f"{previous} by hand with POST /v2/repository/models/{name}/load"
                )
            self._wait_ready(client, name, previous)
            self._unload(client, name, version)
        log.info("rolled back %s to version %s on %s", name, previous, self.base_url)

    def served_version(self, model_name: str) -> int | None:
        with self._client() as client:
            self._require_live(client)
            served, _, _ = self._served(client, model_name)
        return int(served) if served is not None and str(served).isdigit() else None

    def undeploy(self, model_name: str) -> None:
        with self._client() as client:
            self._require_live(client)
            self._unload(client, model_name, None)
        log.info("%s is no longer served at %s", model_name, self.base_url)

    # -- a rollout: the server's traffic split (POST /v2/repository/models/{m}/traffic) ------------------
    def set_traffic(self, model_name: str, traffic: dict) -> None:
        with self._client() as client:
            self._require_live(client)
            body = {"parameters": {"weights": None} if traffic.get("weights") is None else traffic}
            response = self._request(client, "POST", repository_path(model_name, "traffic"), json=body)
        if response.status_code != 200:
            raise ServingError(
                f"the model server at {self.base_url} refused the traffic {traffic} for {model_name}: HTTP "
                f"{response.status_code}: {self._error_text(response)}"
            )
        log.info("%s traffic on %s: %s", model_name, self.base_url, (response.json() or {}).get("traffic", traffic))

    def traffic(self, model_name: str) -> dict:
        with self._client() as client:
            self._require_live(client)
            response = self._request(client, "GET", model_path(model_name))
        if response.status_code != 200:
            raise ServingError(
                f"cannot read the traffic of {model_name} on the model server at {self.base_url}: HTTP "
                f"{response.status_code}: {self._error_text(response)}"
            )
        return dict((response.json().get("parameters") or {}).get("traffic") or {})

    def metrics_url(self, deployment: Deployment) -> str | None:
        return f"{deployment.endpoint_url.rstrip('/')}/metrics"

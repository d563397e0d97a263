"""A small REST client for the Kubeflow Model Registry (API v1, falling back to v1alpha3).

It knows HTTP, the API prefix and the registry's error format, nothing about mlspec: the
mapping from a published model to registry entities lives in `mlspec.registry.kubeflow`.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from mlspec.errors import RegistryError

log = logging.getLogger(__name__)

API_ROOT = "/api/model_registry"
# Newest first: v1alpha3 is what servers released before the v1 API answer.
API_VERSIONS = ("v1", "v1alpha3")
DEFAULT_TIMEOUT_S = 30.0


class KubeflowApiError(RegistryError):
    """The registry answered with an error status (or could not be reached: status 0)."""

    def __init__(self, message: str, *, status: int, server_message: str, method: str, path: str) -> None:
        super().__init__(message)
        self.status = status
        self.server_message = server_message
        self.method = method
        self.path = path


def hint_for_status(status: int, where: str) -> str:
    """What an operator should check for an error status; `where` names the connection or URL."""
    if status in (401, 403):
        return (
            f"check the bearer token of {where} (connection password or extra {{'token': ...}}) "
            "and its RBAC rights"
        )
    if status == 404:
        return f"check that {where} points at a Kubeflow Model Registry REST server"
    if status in (400, 422):
        return "the registry rejected the request; read the server's message above"
    if status == 409:
        return "an entity with the same name already exists; retry the task, it re-reads what exists"
    if status >= 500:
        return "the registry server failed; check its logs and its database, then retry the task"
    if status == 0:
        return f"check the host and port of {where} and that the registry is reachable from the worker"
    return "read the server's message above"


class ModelRegistryClient:
    """JSON over HTTP to one Model Registry server; detects the API version once, on first use.

    Methods return the decoded JSON body. `find` returns None where the registry answers 404
    (the registry's way of saying "no entity with these parameters"); every other error status
    raises `KubeflowApiError` with the status and the server's message.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        verify: bool | str = True,
        timeout: float = DEFAULT_TIMEOUT_S,
        where: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.where = where or self.base_url
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        # The token lives only in the client's headers: never in a log line or an error message.
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout, verify=verify)
        self._api_version: str | None = None

    def close(self) -> None:
        self._http.close()

    # ---- API version -------------------------------------------------------------------
    @property
    def api_version(self) -> str:
        """"v1" or "v1alpha3": the first one the server answers; asked once, then remembered."""
        if self._api_version is None:
            self._api_version = self._detect_api_version()
        return self._api_version

    @property
    def api_url(self) -> str:
        return f"{self.base_url}{API_ROOT}/{self.api_version}"

    def _detect_api_version(self) -> str:
        # A list call: find-by-name endpoints answer 404 for "absent", which would be ambiguous.
        for version in API_VERSIONS:
            path = f"{API_ROOT}/{version}/registered_models"
            response = self._send("GET", path, params={"pageSize": "1"})
            if response.status_code == 404:
                log.info("Model Registry at %s has no API %s (404); trying the next", self.base_url, version)
                continue
            if response.is_success:
                log.info("Model Registry at %s speaks API %s", self.base_url, version)
                return version
            raise self._error("GET", path, response)
        tried = ", ".join(f"{API_ROOT}/{v}" for v in API_VERSIONS)
        raise KubeflowApiError(
            f"no Kubeflow Model Registry REST API at {self.base_url} (404 for {tried}); "
            + hint_for_status(404, self.where),
            status=404,
            server_message="",
            method="GET",
            path=f"{API_ROOT}/{API_VERSIONS[-1]}/registered_models",
        )

    # ---- requests ----------------------------------------------------------------------
    def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        return self._call("GET", path, params=params)

    def find(self, path: str, params: dict[str, str]) -> dict[str, Any] | None:
        """A find-by-parameters call (`/registered_model?name=`): None when the registry has none."""
        return self._call("GET", path, params=params, none_on_404=True)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", path, json=body)

    def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("PATCH", path, json=body)

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        none_on_404: bool = False,
    ) -> Any:
        full_path = f"{API_ROOT}/{self.api_version}{path}"
        response = self._send(method, full_path, params=params, json=json)
        if none_on_404 and response.status_code == 404:
            return None
        if not response.is_success:
            raise self._error(method, full_path, response)
        try:
            return response.json()
        except ValueError as exc:
            raise KubeflowApiError(
                f"{method} {full_path} answered {response.status_code} with a body that is not JSON; "
                + hint_for_status(404, self.where),
                status=response.status_code,
                server_message=response.text[:200],
                method=method,
                path=full_path,
            ) from exc

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        log.debug("Model Registry %s %s", method, path)
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise KubeflowApiError(
                f"could not reach the Model Registry at {self.base_url} ({type(exc).__name__}: {exc}); "
                + hint_for_status(0, self.where),
                status=0,
                server_message=str(exc),
                method=method,
                path=path,
            ) from exc

    def _error(self, method: str, path: str, response: httpx.Response) -> KubeflowApiError:
        server_message = _server_message(response)
        return KubeflowApiError(
            f"{method} {path} answered HTTP {response.status_code}: {server_message or '(no message)'}; "
            + hint_for_status(response.status_code, self.where),
            status=response.status_code,
            server_message=server_message,
            method=method,
            path=path,
        )


def _server_message(response: httpx.Response) -> str:
    """The registry's `{"code", "message"}` error body, or the start of whatever else it sent."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300]
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(body)[:300]

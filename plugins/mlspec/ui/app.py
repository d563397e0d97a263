"""The Models page: a FastAPI app that Airflow's api-server serves under /mlspec (the plugin's `fastapi_apps`).

Pages (server-rendered HTML, no scripts):

    /                                          every model: production, what serves, drift; specs with errors
    /models/{name}                             one model: status, the main metric over versions, every version
    /models/{name}/versions/{v}                a version's model card: metrics, plots, schemas, lineage, curl
    /models/{name}/versions/{v}/files/{file}   a published file, served only when its sha256 matches the manifest
    /dag/{dag_id}                              the "Model" tab of a DAG's page (the model page, or the spec's errors)

Inside Airflow the user's Airflow login is required (the JWT cookie the UI already holds, or a bearer token)
and a model is shown only to users who may read its DAG. A backend that is down or slow is said on the
page; no page answers 500.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import Request  # module level: FastAPI resolves the handlers' annotations here

from mlspec.inference_protocol import infer_url
from mlspec.model_card import curl_example, example_words, model_summary
from mlspec.ui import data, pages

log = logging.getLogger(__name__)

FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MODEL_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
CONTENT_TYPES = {
    ".png": "image/png",
    ".json": "application/json",
    ".md": "text/plain; charset=utf-8",  # shown as text in the browser (text/markdown would download)
}
HTML_HEADERS = {
    # No scripts, no outside resources; framed only by Airflow's own pages.
    "Content-Security-Policy": "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="#1a73e8" stroke-width="2" '
    'stroke-linecap="round" stroke-linejoin="round"><path d="M12 2 3 7l9 5 9-5-9-5z"/><path d="m3 17 9 5 9-5"/>'
    '<path d="m3 12 9 5 9-5"/></svg>'
)

Allowed = Callable[[str], bool]
Access = Callable[[Any], Awaitable[Allowed]]


class NotLoggedIn(Exception):
    """The request carries no valid Airflow login."""


async def allow_all(request: Any) -> Allowed:
    """Access for tests and for running the app on its own: every model is shown."""
    return lambda dag_id: True


async def airflow_access(request: Any) -> Allowed:
    """The Airflow user of the request (the UI's JWT cookie or a bearer token), and which DAGs they may read."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import HTTPException
    from fastapi.security import HTTPAuthorizationCredentials

    header = request.headers.get("authorization", "")
    credentials = None
    if header[:7].lower() == "bearer ":
        credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=header[7:].strip())
    try:
        user = await get_user(request, None, credentials)
    except HTTPException as exc:
        raise NotLoggedIn(str(exc.detail)) from None
    manager = get_auth_manager()

    def allowed(dag_id: str) -> bool:
        try:
            return bool(manager.is_authorized_dag(method="GET", details=DagDetails(id=dag_id), user=user))
        except Exception as exc:  # noqa: BLE001 - a failing check hides the model rather than failing the page
            log.warning("could not check access of %s to DAG %s: %s", getattr(user, "get_name", lambda: "?")(), dag_id, exc)
            return False

    return allowed


def create_app(*, specs_dir: str | None = None, access: Access = allow_all, timeout_s: float = data.DEFAULT_TIMEOUT_S):
    """The Models app. specs_dir: read on every request (MLSPEC_SPECS_DIR wins, as for the DAGs)."""
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, Response
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    app = FastAPI(title="mlspec models", docs_url=None, redoc_url=None, openapi_url=None)

    def html(body: str, status_code: int = 200) -> HTMLResponse:
        return HTMLResponse(body, status_code=status_code, headers=HTML_HEADERS)

    async def respond(request: Request, build: Callable[[str, Allowed], Any]) -> Response:
        base = (request.scope.get("root_path") or "").rstrip("/")
        try:
            allowed = await access(request)
        except NotLoggedIn as exc:
            return html(pages.message_page(base, "Log in to Airflow", f"The Models page needs an Airflow login ({exc}). "
                                                                       "Log in to Airflow, then open Models again."), 401)
        try:
            result = await run_in_threadpool(build, base, allowed)
        except data.NotFound as exc:
            return html(pages.message_page(base, "Not found", str(exc)), 404)
        except Exception as exc:  # noqa: BLE001 - a page explains; it never answers 500
            log.exception("the Models page failed: %s", request.url.path)
            return html(pages.message_page(base, "Models page error", f"This page could not be built: {data.one_line(exc)}"), 503)
        return result if isinstance(result, Response) else html(result)

    def catalog() -> data.Catalog:
        return data.load_catalog(specs_dir)

    def model_spec(name: str, allowed: Allowed) -> Any:
        found = catalog().model(name) if MODEL_NAME.fullmatch(name) else None
        if found is None or not allowed(name):
            raise data.NotFound(f"there is no model {name!r} (no compiled spec of that name in the specs folder)")
        return found

    def production_curl(status: data.ModelStatus) -> tuple[str | None, str]:
        """The example request for what serving really answers with (nothing when it serves nothing, or did
        not answer): the endpoint without a version, which the server answers with its served version; and
        what it sends, in words."""
        if not status.serving_ok or status.served is None or not status.store_ok:
            return None, ""
        return _curl(status, status.served, served=True, timeout_s=timeout_s)

    def overview(base: str, allowed: Allowed) -> str:
        found = catalog()
        models = [spec for spec in found.models if allowed(spec.name)]
        shown = data.Catalog(found.specs_dir, tuple(models), tuple(b for b in found.broken if allowed(b.name)))
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(models)))) as pool:
            statuses = list(pool.map(lambda spec: data.model_status(spec, timeout_s), models))
        return pages.overview_page(base, shown, statuses)

    def model(base: str, allowed: Allowed, name: str) -> str:
        status = data.model_status(model_spec(name, allowed), timeout_s)
        return pages.model_page(base, status, *production_curl(status))

    def card(base: str, allowed: Allowed, name: str, version: int) -> str:
        spec = model_spec(name, allowed)
        found = data.version_card(spec, version, timeout_s)
        curl, words = None, ""  # only for the version serving answers with: any other gets how to deploy it instead
        if found.input_schema and found.status.serving_ok and found.status.served == version:
            curl = curl_example(infer_url(found.status.endpoint(), name, None), found.input_schema)
            words = example_words(found.input_schema)
        spec_hash = (found.info.spec_hash if found.info else "") or (found.manifest or {}).get("spec_hash", "")
        # The parameters the version's training run logged (trigger-form values included) over the spec's.
        logged = found.settings.values if found.settings and found.settings.source == "tracking" else {}
        run_params = {k.removeprefix("params."): v for k, v in logged.items() if k.startswith("params.")}
        summary = model_summary(spec, run_params) if spec_hash == spec.spec_hash else None
        return pages.card_page(base, found, curl, summary, words)

    def file(base: str, allowed: Allowed, name: str, version: int, file_name: str) -> Response:
        spec = model_spec(name, allowed)
        if not FILE_NAME.fullmatch(file_name) or file_name.startswith("."):
            raise data.NotFound(f"no file {file_name!r}")
        try:
            payload = data.verified_bytes(spec, version, file_name, timeout_s)
        except data.ChecksumMismatch as exc:
            return Response(f"refused: {exc}\n", status_code=409, media_type="text/plain", headers={"Cache-Control": "no-store"})
        except data.Unavailable as exc:
            return Response(f"the store did not answer: {exc}\n", status_code=503, media_type="text/plain")
        suffix = "." + file_name.rsplit(".", 1)[-1] if "." in file_name else ""
        headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=300"}
        if suffix not in CONTENT_TYPES:
            headers["Content-Disposition"] = f'attachment; filename="{name}-v{version}-{file_name}"'
        return Response(payload, media_type=CONTENT_TYPES.get(suffix, "application/octet-stream"), headers=headers)

    def dag_tab(base: str, allowed: Allowed, dag_id: str) -> str:
        found = catalog()
        if not allowed(dag_id):
            raise data.NotFound(f"there is no model for DAG {dag_id!r}")
        spec = found.model(dag_id)
        if spec is not None:
            status = data.model_status(spec, timeout_s)
            return pages.page(f"{dag_id} · Model", [("Models", f"{base}/"), (dag_id, None)],
                              pages.model_section(base, status, *production_curl(status)))
        broken = found.broken_named(dag_id)
        if broken is not None:
            return pages.broken_model_page(base, broken, str(found.specs_dir))
        return pages.message_page(base, dag_id, f"The DAG {dag_id} is not compiled from an mlspec spec, so it has no model.")

    @app.get("/", response_class=HTMLResponse)
    async def index(request: Request):
        return await respond(request, overview)

    @app.get("/models/{name}", response_class=HTMLResponse)
    async def model_route(request: Request, name: str):
        return await respond(request, lambda base, allowed: model(base, allowed, name))

    @app.get("/models/{name}/versions/{version}", response_class=HTMLResponse)
    async def card_route(request: Request, name: str, version: str):
        return await respond(request, lambda base, allowed: card(base, allowed, name, version_number(name, version)))

    @app.get("/models/{name}/versions/{version}/files/{file_name}")
    async def file_route(request: Request, name: str, version: str, file_name: str):
        return await respond(request, lambda base, allowed: file(base, allowed, name, version_number(name, version), file_name))

    @app.get("/dag/{dag_id}", response_class=HTMLResponse)
    async def dag_route(request: Request, dag_id: str):
        return await respond(request, lambda base, allowed: dag_tab(base, allowed, dag_id))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        """A path the app has no page for (404), or a method it does not answer (405): a page that says so."""
        base = (request.scope.get("root_path") or "").rstrip("/")
        if exc.status_code == 404:
            title, message = "Not found", f"There is no page at {request.url.path}. {PAGES_HINT}"
        elif exc.status_code == 405:
            title, message = "Not allowed", f"{request.method} is not answered here: the Models pages are read with GET."
        else:
            title, message = f"Error {exc.status_code}", str(exc.detail)
        return html(pages.message_page(base, title, message), exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        base = (request.scope.get("root_path") or "").rstrip("/")
        return html(pages.message_page(base, "Not found", f"There is no page at {request.url.path}. {PAGES_HINT}"), 404)

    @app.get("/icon.svg")
    async def icon():
        return Response(ICON, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})

    return app


PAGES_HINT = "The Models pages are / (every model), /models/<name>, /models/<name>/versions/<number> and /dag/<dag_id>."


def version_number(name: str, text: str) -> int:
    """A version from a path: a whole number from 1; anything else is a page that does not exist."""
    if not (text.isascii() and text.isdigit()) or int(text) < 1 or len(text) > 9:
        raise data.NotFound(f"{text[:40]!r} is not a version of {name[:63]!r}: versions are whole numbers from 1, "
                            f"as in /models/{name[:63]}/versions/1")
    return int(text)


def _curl(status: data.ModelStatus, version: int, *, served: bool, timeout_s: float) -> tuple[str | None, str]:
    """The example request for the model's endpoint, built from the version's input_schema.json, and what it
    sends in words."""
    import json

    try:
        schema = json.loads(data.verified_bytes(status.spec, version, "input_schema.json", timeout_s))
    except (data.Unavailable, data.NotFound, data.ChecksumMismatch, ValueError) as exc:
        status.problems.append(f"no example request: {exc}")
        return None, ""
    return curl_example(infer_url(status.endpoint(), status.name, None if served else version), schema), example_words(schema)


def airflow_app() -> Any:
    """The app as the api-server mounts it: Airflow login required."""
    return create_app(access=airflow_access)

"""Serving backends behind one interface: the local Open Inference Protocol server and KServe."""

from __future__ import annotations

from mlspec.serving.base import Deployment, ServingBackend

__all__ = ["Deployment", "ServingBackend", "open_local_serving", "open_serving"]


def open_local_serving(url: str | None, connection_id: str | None = None) -> ServingBackend:
    """The local model server at `url` (None: MLSPEC_SERVER_URL); the admin token goes only to the
    configured server, another URL's token only from `connection_id` (mlspec.serving.credentials)."""
    from mlspec.home import local_server_url
    from mlspec.serving.local import LocalServing

    return LocalServing(url or local_server_url(), connection_id=connection_id)


def open_serving(spec, store) -> ServingBackend:
    """The spec's serving backend: the local model server, or KServe serving from the store's root."""
    if spec.serving.platform == "kserve":
        from mlspec.serving.kserve import KServeServing
        from mlspec.serving.kserve_manifest import kserve_config

        return KServeServing(kserve_config(spec), store.root_uri)
    return open_local_serving(spec.serving.url, spec.serving.connection)

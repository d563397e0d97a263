"""Serving backends behind one interface: the local Open Inference Protocol server and KServe."""

from __future__ import annotations

from mlspec.serving.base import Deployment, ServingBackend

__all__ = ["Deployment", "ServingBackend", "open_local_serving"]


def open_local_serving(url: str | None) -> ServingBackend:
    from mlspec.home import local_server_url
    from mlspec.serving.local import LocalServing

    return LocalServing(url or local_server_url())

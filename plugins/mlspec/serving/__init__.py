"""Serving backends behind one interface, one per platform in `mlspec.serving.platforms.PLATFORMS`."""

from __future__ import annotations

from mlspec.serving.base import Deployment, ServingBackend
from mlspec.serving.local import LocalServing
from mlspec.serving.platforms import PLATFORMS, ServingPlatform, platform_named, platform_of

__all__ = [
    "PLATFORMS",
    "Deployment",
    "ServingBackend",
    "ServingPlatform",
    "open_local_serving",
    "open_serving",
    "platform_named",
    "platform_of",
]


def open_local_serving(url: str | None, connection_id: str | None = None) -> ServingBackend:
    """The local model server at `url` (None: MLSPEC_SERVER_URL); the admin token goes only to the
    configured server, another URL's token only from `connection_id` (mlspec.serving.credentials)."""
    return LocalServing(url, connection_id=connection_id)


def open_serving(spec, store=None, *, timeout_s: float | None = None) -> ServingBackend:
    """The spec's serving backend, on its platform; `store` is the spec's model store (opened here when a
    platform needs it and none is given), `timeout_s` bounds each call for a caller with a deadline."""
    return platform_of(spec).open_backend(spec, store, timeout_s)

"""A registry opened only to read it (the Models page, `mlspec status`): it never creates, migrates or
repairs anything; the embedded MLflow before its database exists answers "nothing yet" to every read."""

from __future__ import annotations

from typing import Any

from mlspec.registry.backends import backend_named


def open_for_reading(backend: str, connection_id: str | None) -> Any:
    """The spec's registry for reads only (`registry.backend`, `registry.connection`)."""
    return backend_named(backend).open_for_reading(connection_id)

"""Errors the model server answers with: each maps to one HTTP status and an `{"error": "..."}` body."""

from __future__ import annotations


class ProtocolError(Exception):
    """A request the server refuses; `status` is the HTTP status the client gets."""

    status = 500


class BadRequest(ProtocolError):
    """The request is malformed or does not fit the model (input name, shape, datatype), or a load failed."""

    status = 400


class NotFound(ProtocolError):
    """No such model, or no such version of it."""

    status = 404


class NotReady(ProtocolError):
    """The model (or version) is known but cannot answer now: still loading, or its load failed."""

    status = 503

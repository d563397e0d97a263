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


class Unauthorized(ProtocolError):
    """No bearer token, or not the server's (answered with `WWW-Authenticate: Bearer`)."""

    status = 401


class Forbidden(ProtocolError):
    """A load from a storage URI outside the roots the server may load from."""

    status = 403


class Conflict(ProtocolError):
    """A load or unload of the same model is already in flight, or the version is taken."""

    status = 409


class ServerFull(ProtocolError):
    """The server holds --max-models models already. Not a 409: a client waits out a 409 (a load in flight),
    but this lasts until someone unloads a model."""

    status = 507  # Insufficient Storage


class PayloadTooLarge(ProtocolError):
    """The request body is over the server's limit; answered before the body is read whole."""

    status = 413


class StateNotSaved(ProtocolError):
    """The change could not be written to state.json, so it was not made."""

    status = 500


class LoadTimedOut(ProtocolError):
    """A load did not finish in time (storage that does not answer); what served before keeps serving."""

    status = 504


class Busy(ProtocolError):
    """Too many request bytes in flight across requests: retry shortly (the answer carries Retry-After)."""

    status = 503


class ServerSetupError(Exception):
    """The server cannot start as configured (a token too short, limits that contradict each other)."""

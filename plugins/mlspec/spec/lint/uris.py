"""What makes a store or data URI well formed, shared by the data and storage checks."""

from __future__ import annotations

import re
from urllib.parse import urlparse

from mlspec.spec.errors import quote
from mlspec.storage import store_kind

CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Bidirectional controls (embeddings, overrides, isolates, marks): U+202E makes "ml-team\u202egnp.exe" read
# differently from what it is. Refused with the control characters in every free-text field.
BIDI_CONTROL = re.compile(r"[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def parse_uri(value: str):
    """urlparse, or None for text it refuses (an unbalanced '[' raises ValueError: 'Invalid IPv6 URL')."""
    try:
        return urlparse(value)
    except ValueError:
        return None


def uri_scheme(value: str) -> str:
    parsed = parse_uri(value)
    return parsed.scheme if parsed else ""


def uri_problem(value: str, *, names_an_object: bool) -> str | None:
    """What is wrong with a store or data URI, in any part of it: control characters, '..', no bucket."""
    control = CONTROL_CHARACTER.search(value)
    if control:
        return f"{quote(value)} contains the control character {control.group()!r}; a URI is one line of plain text"
    if value != value.strip():
        return f"{quote(value)} starts or ends with white space"
    parsed = parse_uri(value)
    if parsed is None:
        return f"{quote(value)} is not a valid URI"
    rest = value.split("://", 1)[1] if "://" in value else value.split(":", 1)[-1]
    if ".." in re.split(r"[/\\]", rest):
        return f"{quote(value)} contains '..'; store and data paths may not climb out of their prefix"
    kind = store_kind(value)  # file:// and s3:// data sources are written as the stores of their kind are
    return kind.uri_problem(value, quote, names_an_object) if kind is not None else None

"""What makes a store or data URI well formed, shared by the data and storage checks."""

from __future__ import annotations

import re
from urllib.parse import urlparse

from mlspec.spec.errors import quote

S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
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
    if parsed.scheme == "file" and not rest.strip("/"):
        return f"{quote(value)} has no path; use file://models (under MLSPEC_HOME) or file:///absolute/path"
    if parsed.scheme != "s3":
        return None
    if not value.startswith("s3://"):
        return f"{quote(value)} is not written s3://bucket/key"
    bucket, _, key = rest.partition("/")
    if not bucket:
        return f"{quote(value)} has no bucket; write s3://bucket/{'key' if names_an_object else 'prefix'}"
    if not S3_BUCKET.fullmatch(bucket) or ".." in bucket:
        return (
            f"bucket {quote(bucket)} in {quote(value)} is not a valid S3 bucket name (3 to 63 lowercase letters, "
            "digits, '.' and '-', starting and ending with a letter or digit)"
        )
    if names_an_object and not key.strip("/"):
        return f"{quote(value)} names a bucket, not an object; give the full key of the data file"
    return None

"""Checks of the whole document's text: no control, bidirectional or invisible character anywhere, and no
credential (a key that names one, an AWS access key, user:password@ in a URI)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from mlspec.spec.errors import SpecProblem, quote
from mlspec.spec.lint.uris import BIDI_CONTROL, CONTROL_CHARACTER, parse_uri
from mlspec.spec.yaml_loader import LoadedYaml

# Invisible characters (zero-width space, joiners, word joiner, BOM): "ml-team" and "ml\u200b-team" look the same.
INVISIBLE = re.compile(r"[\u200b-\u200d\u2060\ufeff]")
UNPRINTABLE = re.compile(CONTROL_CHARACTER.pattern[:-1] + BIDI_CONTROL.pattern[1:-1] + INVISIBLE.pattern[1:])
CREDENTIAL_KEY = re.compile(r"(passw(or)?d|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential)", re.I)
AWS_ACCESS_KEY = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")


def check_text(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    """No control character (newline, NUL, ESC, ...) or bidirectional control (U+202E, ...) in any text the
    spec holds, keys included: they forge log lines, cut names short or make text read as something else in
    the Airflow UI, the registry and the model card. (URIs report their control characters themselves.)"""
    for path, value in _walk(doc.data):
        if path and isinstance(path[-1], str):
            found = UNPRINTABLE.search(path[-1])
            if found:
                yield doc.problem(path, f"key {quote(path[-1])} {_unprintable(found.group())}", at_key=True)
        if not isinstance(value, str):
            continue
        uri = path in (("data", "source"), ("storage", "uri"))
        found = (BIDI_CONTROL if uri else UNPRINTABLE).search(value)
        if found:
            yield doc.problem(path, f"{quote(value)} {_unprintable(found.group())}")


def _unprintable(char: str) -> str:
    kind = ("bidirectional control" if BIDI_CONTROL.fullmatch(char)
            else "invisible character" if INVISIBLE.fullmatch(char) else "control character")
    return (
        f"contains the {kind} U+{ord(char):04X}; spec text is one line of printable characters (no newline, tab, "
        "NUL, escape, direction override or invisible character, which forge log lines or make text read as something else)"
    )


def _walk(value, path=()) -> Iterator[tuple[tuple, object]]:
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, path + (index,))


def check_credentials(doc: LoadedYaml) -> list[SpecProblem]:
    """Runs before the schema, on the raw document: a credential is refused as such, not as an unknown key."""
    return list(_credentials(doc))


def _credentials(doc: LoadedYaml) -> Iterator[SpecProblem]:
    advice = "credentials never belong in a spec: put them in an Airflow connection and name its id"
    for path, value in _walk(doc.data):
        if path and isinstance(path[-1], str) and CREDENTIAL_KEY.search(path[-1]):
            yield doc.problem(path, f"key {quote(path[-1])} looks like a credential; {advice}", at_key=True)
        if isinstance(value, str):
            if AWS_ACCESS_KEY.search(value):
                yield doc.problem(path, f"this value looks like an AWS access key; {advice}")
            elif "://" in value and (re.match(r"^[a-z0-9+]+://[^/@\s]+@", value) or getattr(parse_uri(value), "password", None)):
                yield doc.problem(path, f"URI carries user info (user:password@); {advice}")

"""Plain data again, for JSON, XCom, Keras builders and anything that edits a copy: dicts and lists from
the frozen mappings and tuples a ModelSpec holds (or from plain data, which it copies).

Below every other mlspec module (it imports none): the spec package, the framework table and tuning all
copy specs with it. Several times faster than copy.deepcopy, which matters as every spec a parse checks
is copied to fill in its defaults."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any


def thaw(value: Any) -> Any:
    """A copy of `value` with every mapping a dict and every list or tuple a list; scalars are shared."""
    if isinstance(value, MappingProxyType | dict):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    return value

"""A model's traffic on the local server: which loaded versions answer which share of live requests,
and which version gets a copy of them (the shadow).

Routing is by a stable hash of the request id (the JSON body's `id`, else the X-Request-Id header,
else the body bytes): blake2b, never Python's per-process `hash()`, so a retried request lands on the
same version on every server process and after a restart. The low digits of the hash pick the
answering version by weight; the next digits pick the share copied to the shadow, so the copies are
spread over every answering version. Finding the id parses the body: the app hashes a body over
INLINE_BODY_BYTES in its request pool, never on the event loop that every model's requests share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any

import orjson

from mlspec.server.errors import BadRequest

DEFAULT_SHADOW_ATOL = 0.0
DEFAULT_SHADOW_RTOL = 1e-6
_BODY_ID = b'"id"'


@dataclass(frozen=True)
class ShadowSpec:
    """The version that gets a copy of `percent` % of live requests, and how closely its predictions must
    match (|a - b| <= atol + rtol * |b|; labels are compared exactly)."""

    version: str
    percent: int
    atol: float = DEFAULT_SHADOW_ATOL
    rtol: float = DEFAULT_SHADOW_RTOL

    def to_json(self) -> dict:
        return {"version": self.version, "percent": self.percent, "atol": self.atol, "rtol": self.rtol}


@dataclass(frozen=True)
class Traffic:
    """Weights per version (non-negative ints summing to 100) and an optional shadow."""

    weights: dict[str, int]
    shadow: ShadowSpec | None = None

    def to_json(self) -> dict:
        return {
            "weights": dict(self.weights),
            "shadow": self.shadow.to_json() if self.shadow is not None else None,
        }

    def versions(self) -> set[str]:
        """The versions this traffic holds: those with weight > 0 and the shadow."""
        held = {v for v, w in self.weights.items() if w > 0}
        if self.shadow is not None:
            held.add(self.shadow.version)
        return held

    def percent_of(self, version: str) -> int:
        return self.weights.get(version, 0)

    def shadow_percent_of(self, version: str) -> int:
        return self.shadow.percent if self.shadow is not None and self.shadow.version == version else 0

    @classmethod
    def from_parameters(cls, parameters: Any) -> Traffic | None:
        """The traffic a `/traffic` body's parameters ask for (None: clear the split); BadRequest naming what
        is wrong with the shape. Whether the versions are loaded is the repository's check."""
        if not isinstance(parameters, dict):
            raise BadRequest(
                'the body must be {"parameters": {"weights": {version: percent}, "shadow": ...}}'
            )
        unknown = sorted(set(parameters) - {"weights", "shadow"})
        if unknown:
            raise BadRequest(f"parameters has unknown keys {unknown}; it takes 'weights' and 'shadow'")
        if "weights" not in parameters:
            raise BadRequest(
                "parameters.weights is required: {version: percent, ...} summing to 100, or null to clear"
            )
        weights = parameters["weights"]
        shadow = parameters.get("shadow")
        if weights is None:
            if shadow is not None:
                raise BadRequest(
                    "parameters.shadow needs weights: a shadow copies requests that other versions answer"
                )
            return None
        parsed = cls(_weights(weights), _shadow(shadow) if shadow is not None else None)
        if parsed.shadow is not None and parsed.percent_of(parsed.shadow.version) == 100:
            # Copies go only to requests another version answered: every request would run twice for nothing.
            raise BadRequest(
                f"parameters.shadow.version {parsed.shadow.version} answers every request (weight 100): "
                "the shadow must be a version other than the one answering, e.g. weights {production: 100} "
                "and shadow the candidate"
            )
        return parsed

    @classmethod
    def from_state(cls, state: dict) -> Traffic:
        """Traffic as state.json holds it (written by to_json); BadRequest when it does not parse."""
        return cls.from_parameters({"weights": state.get("weights"), "shadow": state.get("shadow")})


def _version_name(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        raise BadRequest(f"{where} must be a version number or name, got {str(value)[:80]!r}")
    text = str(value).strip()
    if len(text) > 128 or any(ord(c) < 32 for c in text):
        raise BadRequest(f"{where} is too long or holds control characters")
    return text


def _weights(weights: Any) -> dict[str, int]:
    if not isinstance(weights, dict) or not weights:
        raise BadRequest(
            f"parameters.weights must be a non-empty object of version -> percent, got {str(weights)[:80]!r}"
        )
    parsed: dict[str, int] = {}
    for version, weight in weights.items():
        name = _version_name(version, "a key of parameters.weights")
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            raise BadRequest(
                f"parameters.weights[{name!r}] must be a non-negative integer percent, "
                f"got {str(weight)[:40]!r}"
            )
        if name in parsed:
            raise BadRequest(f"parameters.weights names version {name!r} twice")
        parsed[name] = weight
    total = sum(parsed.values())
    if total != 100:
        raise BadRequest(f"parameters.weights must sum to 100, they sum to {total}: {parsed}")
    return parsed


def _shadow(shadow: Any) -> ShadowSpec:
    if not isinstance(shadow, dict):
        raise BadRequest(
            'parameters.shadow must be null or {"version", "percent", "atol", "rtol"}, '
            f"got {str(shadow)[:80]!r}"
        )
    unknown = sorted(set(shadow) - {"version", "percent", "atol", "rtol"})
    if unknown:
        raise BadRequest(
            f"parameters.shadow has unknown keys {unknown}; it takes version, percent, atol, rtol"
        )
    if "version" not in shadow:
        raise BadRequest("parameters.shadow.version is required")
    version = _version_name(shadow["version"], "parameters.shadow.version")
    percent = shadow.get("percent", 100)
    if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 100:
        raise BadRequest(
            f"parameters.shadow.percent must be an integer from 1 to 100, got {str(percent)[:40]!r}"
        )
    tolerances = {}
    for key, default in (("atol", DEFAULT_SHADOW_ATOL), ("rtol", DEFAULT_SHADOW_RTOL)):
        value = shadow.get(key, default)
        if value is None:
            value = default
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise BadRequest(
                f"parameters.shadow.{key} must be a non-negative number, got {str(value)[:40]!r}"
            )
        tolerances[key] = float(value)
    return ShadowSpec(version, percent, **tolerances)


def request_hash(body: bytes, header_length: str | None, request_id_header: bytes | None) -> int:
    """A stable 64-bit hash of the request's id: the JSON body's `id`, else X-Request-Id, else the body."""
    key = None
    head = body
    if header_length is not None:
        try:
            head = body[: int(header_length)]
        except ValueError:
            head = body
    if _BODY_ID in head:  # parse only bodies that can hold an id
        try:
            payload = orjson.loads(head)
        except orjson.JSONDecodeError:
            payload = None
        if isinstance(payload, dict) and isinstance(payload.get("id"), str):
            key = payload["id"].encode("utf-8", "surrogatepass")
    if key is None:
        key = request_id_header if request_id_header else body
    return int.from_bytes(blake2b(key, digest_size=8).digest(), "little")


def route_bucket(hashed: int) -> int:
    """0..99: which answering version (by cumulative weight, versions in order)."""
    return hashed % 100


def shadow_bucket(hashed: int) -> int:
    """0..99: whether the request is copied to the shadow (bucket < percent); independent of route_bucket."""
    return (hashed // 100) % 100


@dataclass(frozen=True)
class Route:
    """A model's traffic bound to its loaded versions: what an unversioned request resolves to while a
    split or a shadow is set. A request keeps the versions it resolved even if the traffic changes."""

    traffic: Traffic
    # Cumulative weights, versions in order: a bucket below limits[i] goes to answering[i].
    limits: tuple[int, ...]
    answering: tuple[Any, ...]  # LoadedVersion
    shadow: Any | None  # LoadedVersion that gets the copies

    @classmethod
    def bind(cls, traffic: Traffic, loaded: dict[str, Any], order) -> Route:
        """`loaded`: version -> LoadedVersion holding every version of `traffic`; `order`: a sort key."""
        limits, answering, total = [], [], 0
        for version in sorted(traffic.weights, key=order):
            weight = traffic.weights[version]
            if weight > 0:
                total += weight
                limits.append(total)
                answering.append(loaded[version])
        shadow = loaded[traffic.shadow.version] if traffic.shadow is not None else None
        return cls(traffic, tuple(limits), tuple(answering), shadow)

    def pick(self, hashed: int) -> tuple[Any, Any | None]:
        """(the version that answers, the shadow version that gets a copy or None)."""
        bucket = route_bucket(hashed)
        answering = self.answering[-1]
        for limit, loaded in zip(self.limits, self.answering, strict=True):
            if bucket < limit:
                answering = loaded
                break
        shadow = self.shadow
        if shadow is None or shadow is answering or shadow_bucket(hashed) >= self.traffic.shadow.percent:
            return answering, None
        return answering, shadow

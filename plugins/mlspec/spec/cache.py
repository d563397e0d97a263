"""A disk cache of validated specs, keyed by content: Airflow re-parses dags/ every few seconds, and an
unchanged spec need not be parsed and validated again.

The key is a sha256 of the spec text, the schema as validation sees it (model.framework's words come
from the framework table), the frameworks' parameter tables and the mlspec version, so any edit to
these (a new framework, a regenerated table) or an upgrade validates again. Only valid specs are cached (as their resolved dict); the cache is a speed-up
and nothing more: any problem reading or writing it falls back to the full path. `mlspec lint` never uses it.
Besides, the DagBag remembers for a while which spec texts ran over their check budget (`put_overrun`), so
that a slow spec does not spend the DAG file's parse budget again on every parse.
Set MLSPEC_SPEC_CACHE to a folder to choose where it lives, or to "off" to disable it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from functools import cache
from pathlib import Path

from mlspec import __version__
from mlspec.ml import frameworks
from mlspec.spec.schema import load_schema

log = logging.getLogger(__name__)


def cache_dir() -> Path | None:
    setting = os.environ.get("MLSPEC_SPEC_CACHE", "")
    if setting.lower() == "off":
        return None
    return Path(setting) if setting else Path(tempfile.gettempdir()) / f"mlspec-spec-cache-{os.getuid()}"


# The tables lint checks model.params against (xgboost_params.json, sklearn_estimators.json, ...) lie
# beside the framework modules.
FRAMEWORK_TABLES = Path(frameworks.__file__).parent


@cache
def _salt() -> bytes:
    salt = hashlib.sha256(__version__.encode() + b"\0" + json.dumps(load_schema(), sort_keys=True).encode())
    for table in sorted(FRAMEWORK_TABLES.glob("*.json")):
        salt.update(b"\0" + table.name.encode() + b"\0" + table.read_bytes())
    return salt.digest()


def _entry(text: str, suffix: str = ".json") -> Path | None:
    folder = cache_dir()
    if folder is None:
        return None
    digest = hashlib.sha256(_salt() + text.encode("utf-8", "surrogatepass")).hexdigest()
    return folder / f"{digest}{suffix}"


def get(text: str) -> dict | None:
    """The resolved spec for this exact text, validated earlier by this schema and version, or None."""
    entry = _entry(text)
    try:
        return json.loads(entry.read_bytes()) if entry is not None else None
    except (OSError, ValueError):
        return None


def put(text: str, resolved: dict) -> None:
    _write(_entry(text), resolved)


def _write(entry: Path | None, payload: dict) -> None:
    if entry is None:
        return
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=".tmp-")
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle)
        os.replace(tmp, entry)
    except (OSError, TypeError, ValueError) as exc:  # never let the cache break parsing
        log.debug("spec cache not written: %s", exc)


def put_overrun(text: str, outcome: dict) -> None:
    """Remember that checking this exact text ran over its budget (what happened, and when)."""
    _write(_entry(text, ".overrun.json"), {**outcome, "at": time.time()})


def get_overrun(text: str, max_age_s: float) -> dict | None:
    """What put_overrun remembered of this text within the last max_age_s seconds, or None."""
    entry = _entry(text, ".overrun.json")
    try:
        payload = json.loads(entry.read_bytes()) if entry is not None else None
    except (OSError, ValueError):
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("at"), int | float):
        return None
    if not 0 <= time.time() - payload["at"] <= max_age_s:
        return None
    payload.pop("at")
    return payload

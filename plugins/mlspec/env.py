"""Settings read from the environment, shared by the DAG file's parser, the Models page and notifications."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def env_number(name: str, default: float) -> float:
    """A positive number from the environment variable `name`, else `default` (a warning when it is not one)."""
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        log.warning("%s=%r is not a number; using %s", name, raw[:40], default)
        return default
    return value if value > 0 else default

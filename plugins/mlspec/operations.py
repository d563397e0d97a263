"""Operations on a model's production version: deploy N, roll back, undeploy, status, and a rollout's
status, pause, resume and abort (mlspec.rollout_operations).

What `mlspec deploy|rollback|undeploy|status` and the `mlspec_operations` DAG ask for, each one call into the
release service (mlspec.release) under the model's lock: the registry moves first, then serving, then the
smoke test; a failure restores both.
"""

from __future__ import annotations

import logging
from typing import Any

from mlspec.locks import model_lock
from mlspec.release import OperationFailed, Release, Trigger
from mlspec.rollout_operations import ROLLOUT_ACTIONS, rollout_status, send, summary_line

log = logging.getLogger(__name__)

ACTIONS = ("status", "deploy", "rollback", "undeploy", *ROLLOUT_ACTIONS)


def status(spec: Any) -> dict[str, Any]:
    """The registry's production version, what serving answers with, and every disagreement (read only);
    for a spec with a rollout section, the rollout under way (`rollout`: one line, when there is one)."""
    report = Release.for_reading(spec).status()
    line = summary_line(spec)
    if line:
        report["rollout"] = line
    return report


def deploy_version(
    spec: Any, version: int, *, reason: str = "deployed on request", trigger: Trigger | None = None
) -> dict[str, Any]:
    """Make store version `version` production and serve it; restore both if it fails its smoke test."""
    trigger = trigger or Trigger.from_cli()
    with model_lock(spec.name, f"deploy version {version} for {trigger.actor}"):
        return Release.open(spec).change_production(version, reason, trigger, "deploy")


def rollback(spec: Any, to_version: int | None = None, *, trigger: Trigger | None = None) -> dict[str, Any]:
    """Serve `to_version`, by default the version that was production before the current one (skipping
    versions that failed or were rolled back)."""
    trigger = trigger or Trigger.from_cli()
    with model_lock(spec.name, f"rollback to {to_version or 'the previous version'} for {trigger.actor}"):
        release = Release.open(spec)
        current = release.production()
        if to_version is None:
            to_version = release.previous_production(current)
        result = release.change_production(to_version, f"rollback from version {current}", trigger, "rollback")
    return {**result, "rolled_back_from": current}


def undeploy(spec: Any, *, trigger: Trigger | None = None) -> dict[str, Any]:
    """Nothing is production and nothing serves; if serving refuses, the registry is restored."""
    trigger = trigger or Trigger.from_cli()
    with model_lock(spec.name, f"undeploy for {trigger.actor}"):
        return Release.open(spec).undeploy(trigger)


def reconcile(spec: Any) -> str:
    """Make serving follow the registry; a sentence of what was done ("" when it already did)."""
    with model_lock(spec.name, "reconcile serving with the registry"):
        done = Release.open(spec).reconcile()
    if done:
        log.warning("reconciled: %s", done)
    return done


def run_action(spec: Any, action: str, version: int | None = None, *, trigger: Trigger | None = None) -> dict[str, Any]:
    if action == "status":
        return status(spec)
    if action == "deploy":
        if version is None:
            raise OperationFailed("deploy needs a version")
        return deploy_version(spec, int(version), trigger=trigger)
    if action == "rollback":
        return rollback(spec, None if version is None else int(version), trigger=trigger)
    if action == "undeploy":
        return undeploy(spec, trigger=trigger)
    if action == "rollout_status":
        return rollout_status(spec)
    if action in ROLLOUT_ACTIONS:
        return send(spec, ROLLOUT_ACTIONS[action], trigger)
    raise OperationFailed(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")

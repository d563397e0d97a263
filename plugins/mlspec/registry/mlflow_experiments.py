"""MLflow experiments and run roles, shared by experiment tracking (mlspec.tracking) and the registry: every
spec's runs live in experiment ``mlspec/<name>``, each run tagged with the role it plays."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from mlspec.registry.mlflow_connection import is_server_uri
from mlspec.registry.mlflow_embedded import embedded_dir

if TYPE_CHECKING:  # pragma: no cover - typing only; mlflow is imported inside functions
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

ROLE_TAG = "mlspec.role"  # "training" (TrainingTracker) | "registration" (registry upload run)
EXPERIMENT_PREFIX = "mlspec/"
_TAG_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-/ ]+")


def tag_key(text: str) -> str:
    """`text` with the characters MLflow refuses in a tag key replaced by ``_``."""
    return _TAG_KEY_UNSAFE.sub("_", text)


def experiment_name(name: str) -> str:
    """``mlspec/<name>``: every spec's runs live in one experiment of that name."""
    return name if name.startswith(EXPERIMENT_PREFIX) else f"{EXPERIMENT_PREFIX}{name}"


def ensure_experiment(client: MlflowClient, tracking_uri: str, name: str) -> str:
    """The id of experiment ``name``, created when missing.

    The embedded store gets an explicit artifact folder under MLSPEC_HOME, since MLflow's own
    default there would be ``./mlruns`` relative to whatever the worker's working directory is.
    """
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    location = None
    if not is_server_uri(tracking_uri):
        folder = embedded_dir() / "artifacts" / tag_key(name).replace("/", "_")
        location = folder.as_uri()
    try:
        experiment_id = client.create_experiment(name, artifact_location=location)
        log.info("created MLflow experiment %r (id %s)", name, experiment_id)
        return str(experiment_id)
    except MlflowException:
        # another task created it between our lookup and create
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)

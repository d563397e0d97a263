"""Experiment tracking for the train task (its own room, apart from the registry): params,
per-epoch metrics, final metrics, tags. `open_tracker(spec, ...)` picks where runs go from the
spec's `tracking` section: MLflow (a server, or the embedded SQLite file) or nowhere.

Usage::

    tags = {"dag_id": dag_id, "airflow_run_id": run_id}
    with open_tracker(spec, run_name=run_id, tags=tags) as tracker:
        tracker.log_params(plan.log_params())
        adapter.fit(model, plan, dataset, on_progress=tracker.log_epoch)  # one point per epoch/stage
        xcom["tracking_run_id"] = tracker.run_id

Runs go to experiment ``mlspec/<name>`` (created when missing) of the MLflow named by
``tracking.connection``; when that is left out, the registry's MLflow connection (registry backend
mlflow) or the embedded SQLite file. Everything goes through one ``MlflowClient`` per tracker, never through
``mlflow.start_run``'s process-global active run, so several tasks in one process (``dag.test()``)
do not write into each other's runs.

Retries: a retried train task starts a new tracking run (an earlier try's run is left FAILED or
unfinished); every run is tagged ``airflow_run_id``, ``dag_id`` and ``task_try`` (taken from the
``tags`` argument, else from the AIRFLOW_CTX_* variables Airflow exports to a running task), so the
registry can link a model version to the finished run of its DAG run.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from mlspec.errors import RegistryError
from mlspec.registry.backends import backend_of
from mlspec.registry.mlflow_connection import (
    display_uri,
    is_server_uri,
    mlflow_client,
    mlflow_error_text,
    resolve_connection,
    ui_url,
)
from mlspec.registry.mlflow_experiments import ROLE_TAG, ensure_experiment, experiment_name, tag_key
from mlspec.sources import source_kind
from mlspec.vocabulary import DRIFT_CHECK, DRIFT_FILE, DRIFT_NEW_ROWS_CHECK

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

_MAX_PARAM_VALUE = 6000  # MLflow's limit on a param value
_BATCH = 100  # log_batch accepts at most 100 params / 1000 metrics / 100 tags per call
_CONTEXT_TAGS = {  # run tag -> variable Airflow exports while a task runs
    "dag_id": "AIRFLOW_CTX_DAG_ID",
    "airflow_run_id": "AIRFLOW_CTX_DAG_RUN_ID",
    "task_try": "AIRFLOW_CTX_TRY_NUMBER",
    "task_id": "AIRFLOW_CTX_TASK_ID",
}


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"optimizer": {"name": "adam"}} -> {"optimizer.name": "adam"}: MLflow params are flat."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


class TrainingTracker:
    """One MLflow run for one train task try; a context manager.

    Entering creates the run (and the experiment); leaving ends it FINISHED, or FAILED when the
    block raised. MLflow failures raise :class:`RegistryError` saying which server and what to
    check; a failure while ending a run that is already failing is logged, never masking the
    original exception.
    """

    def __init__(
        self,
        connection_id: str | None,
        experiment: str,
        run_name: str,
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        self.connection_id = connection_id
        self.experiment = experiment_name(experiment)
        self.run_name = run_name
        self.tags = {str(k): str(v) for k, v in (tags or {}).items()}
        self.tracking_uri: str = ""
        self.experiment_id: str = ""
        self._client: MlflowClient | None = None
        self._run_id: str | None = None
        self._ended_run_id: str | None = None  # run_id stays readable after the with-block
        self._ui_url: str | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> TrainingTracker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.end("FAILED" if exc_type is not None else "FINISHED", failing=exc_type is not None)

    def start(self) -> str:
        """Create the run (idempotent on one tracker) and return its id."""
        if self._run_id is not None:
            return self._run_id
        connection = resolve_connection(self.connection_id)
        self.tracking_uri = connection.tracking_uri
        tags = dict(self.tags)
        for tag, variable in _CONTEXT_TAGS.items():
            if tag not in tags and os.environ.get(variable):
                tags[tag] = os.environ[variable]
        missing = [t for t in ("dag_id", "airflow_run_id") if t not in tags]
        if missing:
            log.warning("tracking run %r has no %s tag; the registry cannot link it to a DAG run",
                        self.run_name, " or ".join(missing))
        tags[ROLE_TAG] = "training"
        with self._errors("start a tracking run"):
            self._client = mlflow_client(connection)
            self.experiment_id = ensure_experiment(self._client, self.tracking_uri, self.experiment)
            run = self._client.create_run(self.experiment_id, run_name=self.run_name, tags=tags)
            self._run_id = str(run.info.run_id)
        log.info("MLflow tracking run %s started in experiment %r: %s",
                 self._run_id, self.experiment, self.url)
        return self._run_id

    def end(self, status: str = "FINISHED", failing: bool = False) -> None:
        """Mark the run FINISHED / FAILED / KILLED; a no-op when it never started or already ended."""
        if self._run_id is None or self._client is None:
            return
        run_id, self._run_id = self._run_id, None
        try:
            with self._errors(f"end tracking run {run_id} as {status}"):
                self._client.set_terminated(run_id, status)
            log.info("MLflow tracking run %s ended %s", run_id, status)
        except RegistryError:
            if not failing:
                raise
            log.warning("could not mark MLflow run %s %s", run_id, status, exc_info=True)
        finally:
            self._ended_run_id = run_id

    # -- logging -------------------------------------------------------------------------------
    @property
    def run_id(self) -> str:
        run_id = self._run_id or self._ended_run_id
        if run_id is None:
            raise RuntimeError("TrainingTracker has no run yet; use it as a context manager (with ...:)")
        return run_id

    @property
    def url(self) -> str:
        """The run's page in the MLflow UI for a server (the connection's extra ui_url, else the server's
        URL), else the SQLite tracking URI."""
        if is_server_uri(self.tracking_uri):
            if self._ui_url is None:
                try:
                    self._ui_url = ui_url(self.connection_id, self.tracking_uri)
                except RegistryError:
                    self._ui_url = display_uri(self.tracking_uri).rstrip("/")
            return f"{self._ui_url}/#/experiments/{self.experiment_id}/runs/{self.run_id}"
        return self.tracking_uri

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log (nested dicts flattened with dots) params; values become strings, as MLflow stores them."""
        from mlflow.entities import Param

        items = []
        for key, value in _flatten(params).items():
            text = str(value)
            if len(text) > _MAX_PARAM_VALUE:
                text = text[: _MAX_PARAM_VALUE - 3] + "..."
            items.append(Param(key, text))
        with self._errors("log params"):
            for i in range(0, len(items), _BATCH):
                self._live_client().log_batch(self.run_id, params=items[i : i + _BATCH])

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Log one epoch's metrics (loss, val_loss, accuracy, ...) at step=epoch."""
        self._log_metrics(metrics, step=int(epoch))

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        """Log final metrics (e.g. test metrics) at step 0."""
        self._log_metrics(metrics, step=0)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(str(k), str(v)) for k, v in tags.items()]
        with self._errors("set tags"):
            for i in range(0, len(items), _BATCH):
                self._live_client().log_batch(self.run_id, tags=items[i : i + _BATCH])

    # -- helpers -------------------------------------------------------------------------------
    def _log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = []
        for key, value in metrics.items():
            number = float(value)  # numpy scalars and 0-d tensors alike
            if math.isnan(number):
                log.warning("metric %r is NaN at step %d; logged as NaN", key, step)
            items.append(Metric(str(key), number, now, step))
        with self._errors(f"log metrics at step {step}"):
            for i in range(0, len(items), _BATCH):
                self._live_client().log_batch(self.run_id, metrics=items[i : i + _BATCH])

    def _live_client(self) -> MlflowClient:
        if self._run_id is None or self._client is None:
            raise RuntimeError("TrainingTracker is not running; log inside its with-block")
        return self._client

    def _errors(self, action: str) -> _TrackingErrors:
        return _TrackingErrors(self, action)


class _TrackingErrors:
    """Turns MLflow failures into a RegistryError naming the experiment, run and what to check."""

    def __init__(self, tracker: TrainingTracker, action: str) -> None:
        self.tracker = tracker
        self.action = action

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if exc is None or isinstance(exc, (RegistryError, RuntimeError)):
            return False
        from mlflow.exceptions import MlflowException

        if not isinstance(exc, (MlflowException, OSError)):
            return False
        t = self.tracker
        where = display_uri(t.tracking_uri) if t.tracking_uri else "MLflow"
        if t.connection_id:
            hint = (f"check that the MLflow server is reachable from the worker and that Airflow connection "
                    f"{t.connection_id!r} points at it")
        else:
            hint = "check that MLSPEC_HOME/mlflow is writable"
        raise RegistryError(
            f"MLflow tracking at {where}: could not {self.action} (experiment {t.experiment!r}, run "
            f"{t.run_name!r}): {mlflow_error_text(exc)}; {hint}."
        ) from exc


class NullTracker:
    """`tracking.backend: none`: the same calls, recorded nowhere."""

    run_id = ""
    url = ""

    def __enter__(self) -> NullTracker:
        log.info("experiment tracking is off (tracking.backend: none)")
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float]) -> None: ...

    def set_tags(self, tags: Mapping[str, Any]) -> None: ...


def tracking_connection(spec: Any) -> str | None:
    """The MLflow connection id runs go to (None: the embedded MLflow under MLSPEC_HOME): tracking.connection,
    else the registry's connection when the registry backend is an MLflow server too."""
    if spec.tracking.connection:
        return spec.tracking.connection
    return spec.registry.connection if backend_of(spec).tracks_training else None


def _open_mlflow_tracker(spec: Any, run_name: str, tags: Mapping[str, Any]) -> TrainingTracker:
    return TrainingTracker(tracking_connection(spec), experiment=f"mlspec/{spec.name}", run_name=run_name, tags=tags)


def _add_to_finished_mlflow_run(spec: Any, run_id: str, metrics: Mapping[str, float], tags: Mapping[str, Any]) -> None:
    from mlflow.entities import Metric, RunTag

    try:
        client = mlflow_client(resolve_connection(tracking_connection(spec)))
        now = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(str(k), float(v), now, 0) for k, v in metrics.items()],
            tags=[RunTag(str(k), str(v)) for k, v in tags.items()],
        )
    except Exception as exc:  # noqa: BLE001 - MLflow raises many types; the run's outcome does not depend on it
        log.warning("could not add metrics to tracking run %s: %s", run_id, mlflow_error_text(exc))


# MLflow keeps a dataset's digest in at most 36 characters: "sha256:" and the first 29 hex digits of the data
# digest; the whole digest goes in the dataset's profile and the input's mlspec.data.digest tag.
_MAX_DATASET_DIGEST = 36


def training_dataset(model_name: str, lineage: Mapping[str, Any]):
    """The MLflow dataset input of a training run: the data set prepare_data made (name = the model's, digest,
    source = data.source as rendered, with the query), in context "training"."""
    import json

    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    source = str(lineage.get("source") or "")
    kind = source_kind(source)
    # MLflow's source types: "local" for files on this machine, else the data source's own kind (s3, sql, builtin)
    source_type = "local" if kind is not None and kind.local_path is not None else (kind.scheme if kind else "unknown")
    where = {"uri": source}
    if lineage.get("query"):
        where["query"] = str(lineage["query"])
    rows = dict(lineage.get("rows") or {})
    profile = {"digest": lineage["digest"], "num_rows": rows.get("train"), "rows": rows}
    dataset = Dataset(
        name=model_name,
        digest=str(lineage["digest"])[:_MAX_DATASET_DIGEST],
        source_type=source_type,
        source=json.dumps(where),
        profile=json.dumps(profile, default=str),
    )
    tags = [InputTag(MLFLOW_DATASET_CONTEXT, "training"), InputTag("mlspec.data.digest", str(lineage["digest"]))]
    return DatasetInput(dataset, tags)


def drift_metrics(drift: Mapping[str, Any]) -> dict[str, float]:
    """drift.json's scores as run metrics: `drift.<column>` (the test on the training split) and
    `drift.<column>.new_rows` (on the rows the reference had not trained on); schema checks have no score."""
    metrics = {}
    for row in drift.get("rows") or []:
        suffix = {DRIFT_CHECK: "", DRIFT_NEW_ROWS_CHECK: ".new_rows"}.get(row.get("check"))
        if suffix is not None and isinstance(row.get("score"), int | float):
            metrics[tag_key(f"drift.{row.get('column')}{suffix}")] = float(row["score"])
    return metrics


def _record_data_on_mlflow_run(spec: Any, run_id: str, lineage: Mapping[str, Any], drift: Mapping[str, Any]) -> None:
    import json
    import tempfile
    from pathlib import Path

    from mlflow.entities import Metric

    try:
        client = mlflow_client(resolve_connection(tracking_connection(spec)))
        if lineage.get("digest"):
            client.log_inputs(run_id, [training_dataset(spec.name, lineage)])
        now = int(time.time() * 1000)
        metrics = [Metric(key, value, now, 0) for key, value in drift_metrics(drift).items()]
        for i in range(0, len(metrics), _BATCH):
            client.log_batch(run_id, metrics=metrics[i : i + _BATCH])
        if drift:
            with tempfile.TemporaryDirectory(prefix="mlspec-drift-") as folder:
                path = Path(folder) / DRIFT_FILE
                path.write_text(json.dumps(drift, indent=2, default=str))
                client.log_artifact(run_id, str(path))
    except Exception as exc:  # noqa: BLE001 - MLflow raises many types; the run's outcome does not depend on it
        log.warning("could not record the data set and its drift on tracking run %s: %s", run_id, mlflow_error_text(exc))


@dataclass(frozen=True)
class TrackingBackend:
    """One `tracking.backend`: how a train task's tracker is opened, and how a finished run gets more."""

    name: str  # the value of tracking.backend
    title: str  # in sentences
    open: Callable[[Any, str, Mapping[str, Any]], TrainingTracker | NullTracker]  # (spec, run_name, tags)
    # (spec, run_id, metrics, tags) -> None, never raising; None: there is no run to add to.
    add_to_finished_run: Callable[[Any, str, Mapping[str, float], Mapping[str, Any]], None] | None = None
    # (spec, run_id, lineage.json, drift.json) -> None, never raising: the data set and its drift on the run.
    record_data: Callable[[Any, str, Mapping[str, Any], Mapping[str, Any]], None] | None = None


# The schema's tracking.backend enum is checked against this table (tests/registry/test_registry_backends.py).
TRACKING_BACKENDS: dict[str, TrackingBackend] = {
    backend.name: backend
    for backend in (
        TrackingBackend("mlflow", "MLflow", _open_mlflow_tracker, _add_to_finished_mlflow_run, _record_data_on_mlflow_run),
        TrackingBackend("none", "nothing (tracking is off)", lambda spec, run_name, tags: NullTracker()),
    )
}


def tracking_of(spec: Any) -> TrackingBackend:
    """The descriptor of a ModelSpec's tracking.backend."""
    try:
        return TRACKING_BACKENDS[spec.tracking.backend]
    except KeyError:
        raise RegistryError(
            f"unknown tracking backend {spec.tracking.backend!r}; known: {', '.join(TRACKING_BACKENDS)}"
        ) from None


def open_tracker(spec: Any, *, run_name: str, tags: Mapping[str, Any]) -> TrainingTracker | NullTracker:
    """The tracker for a ModelSpec's `tracking` section."""
    return tracking_of(spec).open(spec, run_name, tags)


def log_to_finished_run(spec: Any, run_id: str, metrics: Mapping[str, float], tags: Mapping[str, Any]) -> None:
    """Add metrics and tags to the training run after it ended (the test metrics, the champion's
    scores). Tracking is a record, not a gate: a failure here is logged, never fatal."""
    add = tracking_of(spec).add_to_finished_run
    if add is not None and run_id:
        add(spec, run_id, metrics, tags)


def record_data_on_run(spec: Any, run_id: str, lineage: Mapping[str, Any], drift: Mapping[str, Any]) -> None:
    """Record on the training run the data set it trained on (lineage.json: an MLflow dataset input with the
    digest and the rendered source) and validate_data's drift (drift.json: scores as metrics, the file as an
    artifact). A record, not a gate: a failure is logged, never fatal; nothing without a run or a lineage."""
    record = tracking_of(spec).record_data
    if record is not None and run_id and (lineage or drift):
        record(spec, run_id, lineage, drift)

"""validate_data: this run's training split against the data the production version trained on, before training.

The training split is profiled (mlspec.ml.profile) and the profile written under the run's prefix, so store can
publish it beside the model: it is the next version's reference. The reference is the registry's production
version's published profile.json (and its splits.parquet: the rows whose content it did not train on are tested
on their own), read from the store through mlspec.release.published_file, verified against the sha256 the
registry recorded: never a run folder that keep_runs may have pruned. A file its manifest lists that the store
cannot give back fails the task where validation can stop the run (a `fail`), and is a warning under `warn`;
with no production profile to read the outcome is "no_reference".
mlspec.ml.drift compares the two; the spec's `validation` section says what a schema problem or a drifted column
does: `fail` stops the run before training, unless the run was started with accept_drift; `warn` goes on and
the version records it.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from mlspec.errors import MlspecError, StoreError
from mlspec.ml.columns import Column
from mlspec.ml.splits import unseen_training_rows
from mlspec.operators.base import GateFailed, MlspecOperator
from mlspec.registry import open_registry
from mlspec.release import PublishedFileChanged, Trigger, published_file
from mlspec.vocabulary import (
    DRIFT_FILE,
    DRIFT_PLOT,
    MAX_CHECKED_FEATURES,
    P_VALUE_TESTS,
    PROFILE_FILE,
    SPLITS_FILE,
    VALIDATION_OUTCOMES,
)

log = logging.getLogger(__name__)

NO_REFERENCE, PASSED, WARNED, ACCEPTED, FAILED, SKIPPED = VALIDATION_OUTCOMES


class ValidateDataOperator(MlspecOperator):
    """Input: `data` (prepare_data's result). Output: the outcome (passed, warned, accepted, no_reference,
    skipped), the reference version and the URIs of profile.json, drift.json and drift.png under
    `<run>/validate/`, the drifted columns and schema problems, and who accepted them."""

    stage = "validate_data"
    ui_color = "#e6f4ea"
    template_fields = ("data",)
    next_step = "fix the cause above (the store or the registry) and clear this task to retry it"

    def __init__(self, *, data: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data = data

    def run(self, context) -> dict:
        from mlspec.ml import profile as ml_profile  # pandas: not at DAG parse time

        dataset = self.load_dataset()
        table = training_table(dataset)
        if isinstance(table, str):
            log.info("validate_data: the data is not checked: %s", table)
            return result(SKIPPED)
        frame, columns = table
        prefix = f"{self.run_prefix(context)}/validate"
        profile = ml_profile.build_profile(frame, columns)
        profile_uri = self.store.write_bytes(f"{prefix}/{PROFILE_FILE}", json.dumps(profile, indent=2).encode())
        log.info("profile of this run's %d training rows and %d columns: %s", len(frame), len(columns), profile_uri)
        reference = self.reference()
        if reference is None:
            return result(NO_REFERENCE, profile_uri=profile_uri)
        return self.compare(context, prefix, profile_uri, reference, frame, columns)

    def reference(self) -> Reference | None:
        """The production version's published profile (and splits), or None (logged) where there is none."""
        spec = self.model_spec
        registry = open_registry(spec.registry.backend, spec.registry.connection)
        version = registry.production_version(spec.name)
        if version is None:
            log.info(
                "%s has no production version yet: this run's profile is recorded, nothing to compare it with", spec.name
            )
            return None
        record = registry.version_record(spec.name, version)
        if record is None or not record.source_uri:
            raise MlspecError(
                f"the registry names version {version} of {spec.name} as production but has no record of its files"
            )
        profile = self.published(record, PROFILE_FILE)
        if profile is None and PROFILE_FILE in record.files:
            return None  # lost, and the spec lets the run go on: published() said so
        if profile is None:
            log.warning(
                "production version %d of %s was published before mlspec recorded training profiles: nothing to "
                "compare this run's data with; this run's profile is recorded for the next one", version, spec.name,
            )
            return None
        try:
            reference = json.loads(profile)
        except ValueError as exc:
            raise GateFailed(
                f"the production version {version} of {spec.name}: its published {PROFILE_FILE} at {record.source_uri} "
                f"is not JSON ({exc}); this run's data cannot be checked against it",
                next_step=self.lost_reference_step(),
            ) from None
        return Reference(version, reference, self.published(record, SPLITS_FILE))

    def published(self, record: Any, name: str) -> bytes | None:
        """A file of the production version (mlspec.release.published_file: checked against the sha256 the
        registry recorded); None where it was published without it. One its manifest lists that the store cannot
        give back stays a StoreError (the task's retry covers a blip) when the spec's validation can stop the run:
        passing without it would let a configured `fail` through unchecked. Under warn (the default) the checks
        could not stop the run anyway, so a store that lost the version's folder (the champion gate then falls
        back to the registry's recorded metrics) does not stop it either: a warning says what went unchecked."""
        try:
            return published_file(self.store, record, name)
        except PublishedFileChanged as exc:
            raise GateFailed(str(exc), next_step=self.lost_reference_step()) from None
        except StoreError as exc:
            validation = self.model_spec.validation
            if "fail" in (validation.schema, validation.drift.on_drift):
                raise StoreError(
                    f"{exc}; this run's data is not checked without it, and validation says fail. If the file is "
                    f"lost for good: {self.lost_reference_step()}"
                ) from None
            unchecked = "this run's data is not checked against it" if name == PROFILE_FILE else "no new-rows test"
            log.warning("%s; %s (validation warns only, so the run goes on)", exc, unchecked)
            return None

    def this_run_splits(self) -> bytes | None:
        """This run's splits.parquet (prepare_data's "splits_uri"); None for a hand-written DAG whose prepare step
        writes none."""
        uri = self.handed_over("data").get("splits_uri")
        return self.store.read_uri(uri) if uri else None

    def lost_reference_step(self) -> str:
        """What to do when production's published reference is gone or damaged."""
        return (
            f"restore it from a backup, or make a version with intact files production (`mlspec deploy "
            f"{self.spec_file or '<spec>'} --version N`) before retraining"
        )

    def compare(self, context, prefix: str, profile_uri: str, reference: Reference, frame, columns) -> dict:
        from mlspec.ml import drift as ml_drift  # pandas and scipy: not at DAG parse time

        settings = self.model_spec.validation
        new_rows = reference.new_rows(self.this_run_splits(), len(frame))
        report = ml_drift.compare(
            reference.profile, frame, columns, new_rows=new_rows, schema=settings.schema,
            threshold=settings.drift.threshold, share=settings.drift.share, reference_version=reference.version,
        )
        log.info(
            "data checks against production version %d (column, check, test, score, threshold, verdict):", reference.version
        )
        limits = [row.threshold for row in report.rows if row.test in P_VALUE_TESTS and row.score is not None]
        if len(limits) > 1:  # a p-value limit of 0.00714 next to a written 0.1 needs a word (drift shared it)
            base = settings.drift.threshold if settings.drift.threshold is not None else ml_drift.P_VALUE_THRESHOLD
            log.info(
                "the %d p-value tests share %g (validation.drift.threshold, or 0.05): each is judged at %.3g, so "
                "unchanged data raises a false alarm at most that often however many columns there are", len(limits),
                base, limits[0],
            )
        for line in report.log_lines():
            log.info("%s", line)
        failing = failures(report, settings)
        accepted_by = None
        if failing and context["params"].get("accept_drift"):
            accepted_by = Trigger.from_context(context).actor
            outcome = ACCEPTED
        elif failing:
            outcome = FAILED
        elif report.drifted_columns or report.schema_problems:
            outcome = WARNED
        else:
            outcome = PASSED
        drift = report.to_json()
        drift["settings"] = {**drift.get("settings", {}), "on_drift": settings.drift.on_drift}
        drift.update(outcome=outcome, accepted_by=accepted_by)
        drift_uri = self.store.write_bytes(f"{prefix}/{DRIFT_FILE}", json.dumps(drift, indent=2).encode())
        plot_uri = self.write_plot(prefix, drift, reference.profile, frame, new_rows)
        verdict = verdict_line(reference.version, drift, report)
        if outcome == FAILED:
            raise GateFailed(
                f"{verdict}. The run stops before training: {'; '.join(failing)}. The table is in {drift_uri}"
                + (f", the plot in {plot_uri}" if plot_uri else ""),
                next_step=(
                    "nothing was trained. If the change is expected, retrain anyway: `mlspec run "
                    f"{self.spec_file or '<spec file>'} --accept-drift`, or trigger the DAG with accept_drift "
                    "checked in the trigger form; else correct the data at its source, or set the spec's "
                    "validation.schema or validation.drift.on_drift to warn"
                ),
            )
        if outcome == ACCEPTED:
            log.warning(
                "%s. %s; accepted by %s (accept_drift): the run goes on and the version records it", verdict,
                "; ".join(failing), accepted_by,
            )
        elif outcome == WARNED:
            log.warning("%s: the run goes on and the version records it", verdict)
        else:
            log.info("%s: passed", verdict)
        return result(
            outcome, reference_version=reference.version, profile_uri=profile_uri, drift_uri=drift_uri,
            plot_uri=plot_uri, drifted_columns=list(report.drifted_columns), schema_problems=list(report.schema_problems),
            accepted_by=accepted_by,
        )

    def write_plot(self, prefix: str, drift: dict, reference: dict, frame, new_rows) -> str | None:
        """drift.png beside drift.json (a column that drifted on its new rows is drawn with those rows); a plot
        that cannot be drawn is a warning, never a failure."""
        from mlspec.ml.plots import drift_plot  # matplotlib: not at DAG parse time

        try:
            png = drift_plot(drift, reference, frame, new_rows=new_rows)
        except Exception as exc:  # noqa: BLE001 - the plot is for people; drift.json decides
            log.warning("could not draw the drift plot (%s: %s); drift.json has the numbers", type(exc).__name__, exc)
            return None
        return self.store.write_bytes(f"{prefix}/{DRIFT_PLOT}", png)


class Reference:
    """The production version's published training profile, and which rows it trained on (splits.parquet)."""

    def __init__(self, version: int, profile: dict, splits: bytes | None) -> None:
        self.version = version
        self.profile = profile
        self.splits = splits

    def new_rows(self, this_run: bytes | None, training_rows: int) -> Any:
        """A mask of this run's `training_rows` training rows that production did not train on, by content
        (mlspec.ml.splits.unseen_training_rows: a row re-sent under the same data.split.key with a value changed
        is new), from the two versions' splits.parquet; None where either side has none (a version published
        before splits.parquet, a hand-written prepare step)."""
        if self.splits is None or this_run is None:
            return None
        mask = unseen_training_rows(this_run, self.splits)
        return mask if len(mask) == training_rows else None


def training_table(dataset) -> tuple[Any, tuple[Column, ...]] | str:
    """The training split as a frame of typed columns, or why it is not checked. A table's columns as they are;
    an array data set of at most MAX_CHECKED_FEATURES flat features as number columns named by its feature_names
    (else f0, f1, ...)."""
    import pandas as pd

    if dataset.columns:
        return dataset.x_train, tuple(dataset.columns)
    shape = tuple(dataset.x_train.shape[1:])
    features = math.prod(shape)
    if features > MAX_CHECKED_FEATURES:
        return (
            f"its samples are arrays of shape {list(shape)} ({features} values), more than the "
            f"{MAX_CHECKED_FEATURES} features data checks profile one by one"
        )
    named = len(dataset.feature_names) == features
    names = list(dataset.feature_names) if named else [f"f{i}" for i in range(features)]
    frame = pd.DataFrame(dataset.x_train.reshape(len(dataset.x_train), features).astype("float64"), columns=names)
    return frame, tuple(Column(name, "number") for name in names)


def failures(report, settings) -> list[str]:
    """What the spec says stops the run: schema problems under `schema: fail`, drifted columns under
    `on_drift: fail`."""
    failing = []
    if settings.schema == "fail" and report.schema_problems:
        failing.append("validation.schema is fail and the data has schema problems: " + "; ".join(report.schema_problems))
    if settings.drift.on_drift == "fail" and report.drifted_columns:
        failing.append("validation.drift.on_drift is fail and columns drifted: " + ", ".join(report.drifted_columns))
    return failing


def verdict_line(version: int, drift: dict, report) -> str:
    """One sentence: what was compared with what, and what was found."""
    current = drift.get("current", {})
    new_rows = current.get("new_rows")
    return (
        f"data checks against production version {version} ({drift.get('reference', {}).get('rows')} training rows) "
        f"on this run's {current.get('rows')} training rows" + (f" ({new_rows} new)" if new_rows else "")
        + f": {len(report.drifted_columns)} of {drift['columns_compared']} columns compared drifted"
        + (f" ({', '.join(report.drifted_columns)})" if report.drifted_columns else "")
        + f", {len(report.schema_problems)} schema problem(s)"
    )


def result(outcome: str, **values: Any) -> dict:
    """validate_data's XCom result (what store and register record on the version)."""
    return {
        "outcome": outcome, "reference_version": None, "profile_uri": None, "drift_uri": None, "plot_uri": None,
        "drifted_columns": [], "schema_problems": [], "accepted_by": None, **values,
    }

"""prepare_data: load the source, split it, write the splits under the run's prefix of the store."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlspec.errors import DataError, DataSourceError, StoreError
from mlspec.ml.columns import Column
from mlspec.ml.splits import splits_parquet
from mlspec.operators.base import GateFailed, MlspecOperator
from mlspec.sources import SourceRead, source_kind
from mlspec.storage import max_source_bytes, sha256_hex

log = logging.getLogger(__name__)

# A data error's next step: the message above says what is wrong with the data or the spec's data section.
DATA_NEXT_STEP = (
    "correct the data or the spec's data section as the message above says, then start a new run "
    "(clearing this task reads the same data again)"
)
# The lineage names at most this many of the files a folder, glob or prefix read (then {"more": n}).
MAX_LINEAGE_FILES = 100


def describe_column(column: Column) -> str:
    """`island: category, one_hot, missing error (inferred)`: a table column as prepare_data's log shows it."""
    parts = [column.type]
    if column.type == "category":
        parts.append(column.encode + (f" (max_categories {column.max_categories})" if column.max_categories else ""))
    parts.append(f"missing {column.missing}" + (f" {column.constant!r}" if column.missing == "constant" else ""))
    return f"{column.name}: {', '.join(parts)}" + (" (inferred)" if column.inferred else "")


def lineage_files(files: list[dict]) -> list[dict]:
    """The files the lineage lists: the first MAX_LINEAGE_FILES read, then {"more": n} when there were more."""
    listed = files[:MAX_LINEAGE_FILES]
    if len(files) > MAX_LINEAGE_FILES:
        listed.append({"more": len(files) - MAX_LINEAGE_FILES})
    return listed


HOLDOUT_SOURCE = "evaluation.holdout.source"


class PrepareDataOperator(MlspecOperator):
    """data.source and data.query (and evaluation.holdout's source and query) are Jinja templates: Airflow renders
    them with the run's context ({{ ds }}, {{ data_interval_start | ds }}, ...) before `run`, which reads, logs and
    returns the rendered values."""

    stage = "prepare_data"
    ui_color = "#fef7e0"
    template_fields = ("source", "query", "holdout_source", "holdout_query")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source: str = self.spec["data"]["source"]
        self.query: str | None = self.spec["data"].get("query")
        holdout = (self.spec.get("evaluation") or {}).get("holdout") or {}
        self.holdout_source: str | None = holdout.get("source")
        self.holdout_query: str | None = holdout.get("query")
        self.files_read: list[dict] = []  # each file read_source_bytes read: the lineage's files

    @property
    def next_step(self) -> str:
        """What to check depends on the source's kind: the file's folder, the S3 connection, the network."""
        kind = source_kind(self.source)
        return kind.next_step_for(self.source) if kind is not None else super().next_step

    def read_options(self, query: str | None = None) -> SourceRead:
        """How to read a source; `query`: the table kind's query (data.query, or evaluation.holdout's)."""
        data = self.model_spec.data
        specs_dir = Path(self.spec_file).resolve().parent if self.spec_file else None
        return SourceRead(
            connection=data.connection, max_bytes=max_source_bytes(data.limits.max_bytes), specs_dir=specs_dir,
            query=query,
        )

    def read_source_bytes(self, uri: str) -> bytes:
        """The bytes of a file source (mlspec.sources): a regular file within the allowed data folders, or an
        S3 object; within the size cap (storage.max_source_bytes). Each file is recorded in `files_read` with
        its sha256 and what its kind's response said of those bytes (S3: ETag, VersionId)."""
        kind = source_kind(uri)
        if kind is None or kind.read_bytes is None:
            raise ValueError(f"unsupported data source {uri[:80]!r}")
        identity: dict[str, str | None] = {"etag": None, "version_id": None}
        if kind.read_identified is not None:
            data, answered = kind.read_identified(uri, self.read_options())
            identity.update(answered)
        else:
            data = kind.read_bytes(uri, self.read_options())
        self.files_read.append({"uri": uri, "sha256": sha256_hex(data), **identity})
        return data

    def list_source_files(self, uri: str) -> list[tuple[str, str]]:
        """The files of a folder, glob or prefix source in name order, each read through read_source_bytes."""
        kind = source_kind(uri)
        if kind is None or kind.list_files is None:
            raise ValueError(f"unsupported data source {uri[:80]!r}")
        return kind.list_files(uri, self.read_options())

    def read_source_table(self, uri: str, query: str | None) -> Any:
        """The DataFrame a table source's `query` (data.query, or evaluation.holdout's own) returns (sql://). A
        missing connection or a query the database refuses fails at once: a retry would read the same connection
        and the same query."""
        kind = source_kind(uri)
        if kind is None or kind.read_table is None:
            raise ValueError(f"unsupported data source {uri[:80]!r}")
        try:
            return kind.read_table(uri, self.read_options(query))
        except DataError as exc:
            raise GateFailed(str(exc), next_step=kind.next_step_for(uri)) from exc

    def holdout_failed(self, exc: Exception) -> GateFailed:
        """A holdout that cannot be read, said of evaluation.holdout.source: the source kinds word their messages
        and next steps for data.source, which the user need not touch."""
        kind = source_kind(self.holdout_source)
        if isinstance(exc, GateFailed):
            next_step = exc.next_step
        else:
            next_step = kind.next_step_for(self.holdout_source) if kind and isinstance(exc, DataSourceError) else DATA_NEXT_STEP
        return GateFailed(
            "evaluation.holdout: " + str(exc).replace("data.source", HOLDOUT_SOURCE),
            next_step=next_step.replace("data.source", HOLDOUT_SOURCE),
        )

    def prune_old_runs(self, run_id: str) -> None:
        """Keep the newest storage.keep_runs run folders (this run's among them); never fails the task."""
        try:
            self.store.prune_runs(self.model_spec.name, self.model_spec.storage.keep_runs, current_run_id=run_id)
        except StoreError as exc:
            log.warning("could not prune old run folders of model %s: %s", self.model_spec.name, exc)

    def render_template_fields(self, context, jinja_env=None) -> None:
        """Airflow's rendering of data.source and data.query (and evaluation.holdout's), where a template that
        cannot render (a name or key the run's context lacks, e.g. a params key the run did not get) fails the task
        at once: a retry renders the same."""
        import jinja2

        try:
            super().render_template_fields(context, jinja_env)
            return
        except jinja2.TemplateError as exc:
            problem = (
                "data.source or data.query could not be rendered with the run's context (nor evaluation.holdout's "
                f"source or query, if the spec has one): {exc}"
            )

        def fail() -> None:
            raise GateFailed(
                problem,
                next_step="correct the template in the spec's data section (mlspec lint checks the names it "
                "reads), or start the run with the params it reads",
            )

        self.run_guarded(fail)

    def execute(self, context) -> Any:
        return self.run_guarded(lambda: self.run_without_retrying_data_errors(context))

    def run_without_retrying_data_errors(self, context) -> dict:
        """run, where a DataError fails the task at once: the data or the spec's data section is wrong, and a
        retry reads the same. A missing or refused file's next step is its kind's (the data folders, the
        connection); any other's is the spec's data section, as its message says."""
        try:
            return self.run(context)
        except DataError as exc:
            kind = source_kind(self.source)
            next_step = kind.next_step_for(self.source) if isinstance(exc, DataSourceError) and kind else DATA_NEXT_STEP
            raise GateFailed(str(exc), next_step=next_step) from exc

    def run(self, context) -> dict:
        from mlspec.ml import data as ml_data  # imports numpy: not at DAG parse time

        spec = self.model_spec
        data, split = spec.data, spec.data.split
        self.files_read = []
        log.info("loading %s%s", self.source, f" with data.query: {self.query}" if self.query else "")
        loaded = self.load(self.source, lambda uri: self.read_source_table(uri, self.query), key=split.key)
        for column in loaded.columns:
            log.info("column %s", describe_column(column))
        files, holdout_files = self.files_read, []
        holdout = None
        if self.holdout_source is not None:
            log.info("loading evaluation.holdout %s%s", self.holdout_source,
                     f" with query: {self.holdout_query}" if self.holdout_query else "")  # fmt: skip
            self.files_read = []
            try:
                holdout = self.load(
                    self.holdout_source, lambda uri: self.read_source_table(uri, self.holdout_query), key=split.key
                )
            except (DataError, GateFailed) as exc:
                raise self.holdout_failed(exc) from exc
            holdout_files = self.files_read
        dataset = ml_data.split(
            *loaded.splittable,
            method=split.method,
            validation=split.validation,
            test=split.test,
            seed=split.seed,
            stratify=split.stratify,
            task=spec.model.task,
            holdout=holdout,
        )
        dataset = ml_data.apply_label_steps(dataset, [step.to_mapping() for step in data.preprocess])
        payload = dataset.to_npz_bytes()
        prefix = self.run_prefix(context)
        uri = self.store.write_bytes(f"{prefix}/data/dataset.npz", payload)
        payload_sha256 = sha256_hex(payload)  # hundreds of MB for a big table: hashed once
        digest = "sha256:" + payload_sha256
        splits_uri = self.store.write_bytes(f"{prefix}/data/splits.parquet", splits_parquet(dataset, digest))
        self.prune_old_runs(context["run_id"])
        counts = {"train": len(dataset.x_train), "validation": len(dataset.x_val), "test": len(dataset.x_test)}
        dropped = dict(loaded.dropped)
        in_holdout = len(loaded.y) - counts["train"] - counts["validation"] if holdout is not None else 0
        if in_holdout:
            dropped["in the holdout"] = in_holdout
        target = f"{dataset.num_classes} classes" if dataset.task == "classification" else "a numeric target"
        how = f"method {split.method}" + (f" by key {', '.join(split.key)}" if split.key else "")
        log.info(
            "split %d samples (%s): train=%d validation=%d test=%d%s, %s; wrote %s and %s",
            len(loaded.x), how, counts["train"], counts["validation"], counts["test"],
            " (the holdout)" if holdout is not None else "", target, uri, splits_uri,
        )
        for reason, rows in dropped.items():
            log.info("dropped %d of %d rows read: %s", rows, loaded.rows_read, reason)
        return {
            "source": self.source,  # as rendered for this run
            "data_uri": uri,
            "data_sha256": payload_sha256,
            "class_names": list(dataset.class_names),
            "input_shape": list(dataset.input_shape),
            "samples": counts,
            "splits_uri": splits_uri,
            "lineage": {
                "source": self.source,
                "query": self.query,
                "files": lineage_files(files),
                "digest": digest,
                "rows": {"read": loaded.rows_read, "dropped": dropped, **counts},
                "split": {
                    "method": split.method, "key": list(split.key) if split.key else None,
                    "validation": split.validation, "test": split.test,
                    **({"seed": split.seed} if split.method == "random" else {}),  # a hash split has no seed
                },
                "holdout": None if holdout is None else {
                    "source": self.holdout_source, "query": self.holdout_query, "rows": counts["test"],
                    "files": lineage_files(holdout_files),
                },
            },
        }

    def load(self, source: str, read_table: Callable[[str], Any], *, key: tuple[str, ...] | None) -> Any:
        """load_source (a Loaded) with the spec's data section (features, label, exclude, format, limits) for
        `source`: data.source, or evaluation.holdout's source read the same way."""
        from mlspec.ml import data as ml_data  # imports numpy: not at DAG parse time

        data = self.model_spec.data
        return ml_data.load_source(
            source, fmt=data.format, features=data.features, label=data.label, read_bytes=self.read_source_bytes,
            task=self.model_spec.model.task, limits=data.limits, read_table=read_table,
            list_files=self.list_source_files, exclude=data.exclude, key=key,
        )

"""prepare_data: load the source, split it, write the splits under the run's prefix of the store."""

from __future__ import annotations

import logging
from urllib.parse import urlparse

from mlspec.operators.base import MlspecOperator

log = logging.getLogger(__name__)


class PrepareDataOperator(MlspecOperator):
    stage = "prepare_data"
    ui_color = "#fef7e0"
    next_step = "check data.source in the spec (and its connection for s3://), then clear this task"

    def read_source_bytes(self, uri: str) -> bytes:
        """The source's bytes: a regular file (never a device or a FIFO) within the allowed data folders
        (storage.check_data_path), or an S3 object; within the size cap (storage.max_source_bytes)."""
        from pathlib import Path

        from mlspec.storage import max_source_bytes

        cap = max_source_bytes(self.model_spec.data.limits.max_bytes)
        scheme = urlparse(uri).scheme
        if scheme == "file":
            from mlspec.storage import check_data_path, resolve_file_uri
            from mlspec.storage.file import read_regular_file

            specs_dir = Path(self.spec_file).resolve().parent if self.spec_file else None
            what = f"data.source {uri[:160]!r}"
            path = check_data_path(resolve_file_uri(uri), what=what, specs_dir=specs_dir)
            log.info("reading %s", path)
            return read_regular_file(path, cap)
        if scheme == "s3":
            from mlspec.storage.s3 import read_uri_bytes

            return read_uri_bytes(uri, self.model_spec.data.connection or "aws_default", max_bytes=cap)
        raise ValueError(f"unsupported data source {uri[:80]!r}")

    def prune_old_runs(self, run_id: str) -> None:
        """Keep the newest storage.keep_runs run folders (this run's among them); never fails the task."""
        from mlspec.errors import StoreError

        try:
            self.store.prune_runs(self.model_spec.name, self.model_spec.storage.keep_runs, current_run_id=run_id)
        except StoreError as exc:
            log.warning("could not prune old run folders of model %s: %s", self.model_spec.name, exc)

    def run(self, context) -> dict:
        from mlspec.ml import data as ml_data

        data = self.model_spec.data
        log.info("loading %s", data.source)
        features = list(data.features) if isinstance(data.features, tuple) else data.features
        x, y, class_names, feature_names = ml_data.load_source(
            data.source, fmt=data.format, features=features, label=data.label, read_bytes=self.read_source_bytes,
            task=self.model_spec.model.task, limits=data.limits,
        )
        dataset = ml_data.split(
            x,
            y,
            validation=data.split.validation,
            test=data.split.test,
            seed=data.split.seed,
            stratify=data.split.stratify,
            class_names=class_names,
            feature_names=feature_names,
            task=self.model_spec.model.task,
        )
        dataset = ml_data.apply_label_steps(dataset, [step.to_mapping() for step in data.preprocess])
        payload = dataset.to_npz_bytes()
        uri = self.store.write_bytes(f"{self.run_prefix(context)}/data/dataset.npz", payload)
        self.prune_old_runs(context["run_id"])
        target = f"{dataset.num_classes} classes" if dataset.task == "classification" else "a numeric target"
        log.info(
            "split %d samples: train=%d validation=%d test=%d, %s; wrote %s",
            len(x), len(dataset.x_train), len(dataset.x_val), len(dataset.x_test), target, uri,
        )
        from mlspec.storage import sha256_hex

        return {
            "data_uri": uri,
            "data_sha256": sha256_hex(payload),
            "class_names": list(dataset.class_names),
            "input_shape": list(dataset.x_train.shape[1:]),
            "samples": {"train": len(dataset.x_train), "validation": len(dataset.x_val), "test": len(dataset.x_test)},
        }

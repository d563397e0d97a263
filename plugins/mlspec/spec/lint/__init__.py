"""Checks the JSON Schema cannot express, each reported at the node it is about: one module per spec
section (data, storage, model and training, evaluation, validation, serving, registry, schedule, timeouts,
tuning, rollout), plus the whole document's text and credentials."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mlspec.spec.errors import SpecProblem
from mlspec.spec.lint.columns import check_columns
from mlspec.spec.lint.data import (
    check_data_source,
    check_local_holdout,
    check_local_source,
    check_split,
    local_sample,
)
from mlspec.spec.lint.evaluation import check_evaluation, check_holdout
from mlspec.spec.lint.metadata import check_name
from mlspec.spec.lint.model import check_framework
from mlspec.spec.lint.registry import check_registry
from mlspec.spec.lint.rollout import check_request_logging, check_rollout
from mlspec.spec.lint.schedule import check_schedule
from mlspec.spec.lint.serving import check_serving
from mlspec.spec.lint.storage import check_local_store, check_storage_uri
from mlspec.spec.lint.text import check_credentials, check_text
from mlspec.spec.lint.timeouts import check_deploy_deadline
from mlspec.spec.lint.tuning import check_tuning
from mlspec.spec.lint.validation import check_validation
from mlspec.spec.yaml_loader import LoadedYaml

__all__ = ["check", "check_credentials", "check_local_files", "local_table_sample"]

# Each takes (doc, spec) and yields problems; a new section's checks are one more entry here.
CHECKS = (
    check_text,
    check_name,
    check_data_source,
    check_columns,
    check_storage_uri,
    check_schedule,
    check_framework,  # and the framework's own rules (mlspec.ml.frameworks)
    check_evaluation,
    check_holdout,
    check_validation,
    check_split,
    check_serving,
    check_registry,
    check_deploy_deadline,
    check_tuning,
    check_rollout,
    check_request_logging,
)


def check(doc: LoadedYaml, spec: dict) -> list[SpecProblem]:
    """`spec` is the schema-valid spec with defaults filled; positions come from doc."""
    return [problem for check_fn in CHECKS for problem in check_fn(doc, spec)]


def check_local_files(doc: LoadedYaml, spec: dict) -> list[SpecProblem]:
    """`mlspec lint` only, on a valid spec: a file:// store must be within the allowed store folders, and a
    file:// data source within the allowed data folders and, when it exists here, a regular file within the
    size cap whose first rows fit the spec; a file:// evaluation.holdout likewise. (Parsing DAGs never looks
    at files: the data may live only where tasks run, and the allowed folders are the workers'
    MLSPEC_DATA_ROOTS / MLSPEC_STORE_ROOTS.)"""
    specs_dir = _specs_dir(doc)
    return (
        check_local_store(doc, spec, _home, specs_dir)
        + check_local_source(doc, spec, _home, specs_dir)
        + check_local_holdout(doc, spec, _home, specs_dir)
    )


def local_table_sample(doc: LoadedYaml, spec: dict) -> tuple[Any, str] | None:
    """`mlspec render`: the first rows of a local table source that lint checks, and where they come from in
    words; None when there is none on this machine."""
    return local_sample(doc, spec, _home, _specs_dir(doc))


def _home() -> Path:
    return Path(os.environ.get("MLSPEC_HOME") or Path.home() / ".mlspec").expanduser()


def _specs_dir(doc: LoadedYaml) -> Path | None:
    """The specs folder, for the default roots (its parent is the project folder) when MLSPEC_SPECS_DIR is unset."""
    return Path(doc.file).resolve().parent if doc.file and not doc.file.startswith("<") else None

"""Errors a user sees from a running task (spec errors live in mlspec.spec.errors)."""

from __future__ import annotations


class MlspecError(Exception):
    """A task failed for a reason the operator should read: what, for which model, what to do next."""


class StoreError(MlspecError):
    """An object store could not read or write what a task needs."""


class RegistryError(MlspecError):
    """A model registry refused or could not be reached."""


class ServingError(MlspecError):
    """A serving backend could not deploy, reach or roll back a model."""


class DataError(MlspecError):
    """The data named by a spec cannot be loaded, split or preprocessed."""


class DataSourceError(StoreError, DataError):
    """A data source file that is not there, not allowed or over the size cap: a StoreError to whoever reads
    files, and a DataError to prepare_data, which does not retry it (a retry finds the same file)."""

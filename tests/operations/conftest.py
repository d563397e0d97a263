"""The release service's tests share the operations fixtures: one MLSPEC_HOME per module (the embedded MLflow
registry is migrated once) and a model server per test."""

from tests.operators.conftest import ops_home, ops_server

__all__ = ["ops_home", "ops_server"]

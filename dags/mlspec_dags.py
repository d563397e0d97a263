"""Compiles every spec in specs/ into an Airflow DAG, plus the mlspec_operations DAG. This is the only
DAG file mlspec needs."""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import get_parsing_context

from mlspec.dagbag import compile_specs
from mlspec.operations_dag import DAG_ID, build_operations_dag

SPECS_DIR = Path(__file__).resolve().parent.parent / "specs"

_compiled = compile_specs(SPECS_DIR)
globals().update(_compiled)
# A worker running a model's task needs that model's DAG only (Airflow's parsing context); one running
# an operation compiles no spec, so the operations DAG reads the spec names itself.
_context = get_parsing_context().dag_id
if _context is None:
    globals()[DAG_ID] = build_operations_dag(SPECS_DIR, model_names=list(_compiled))
elif _context == DAG_ID:
    globals()[DAG_ID] = build_operations_dag(SPECS_DIR)

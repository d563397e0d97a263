"""Compiles every spec in specs/ into an Airflow DAG. This is the only DAG file mlspec needs."""

from __future__ import annotations

from pathlib import Path

from mlspec.dagbag import compile_specs

globals().update(compile_specs(Path(__file__).resolve().parent.parent / "specs"))

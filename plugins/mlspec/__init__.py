"""mlspec: declarative YAML model specs compiled into Airflow ML pipelines.

Importing this package is cheap on purpose: Airflow parses DAG files every few seconds, so heavy
libraries (tensorflow, onnxruntime, mlflow, boto3, kubernetes) are only imported inside the code
that runs a task.
"""

from __future__ import annotations

__version__ = "0.1.0"

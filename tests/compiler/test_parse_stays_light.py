"""What the DAG processor imports to parse dags/mlspec_dags.py stays light: numpy, pandas, pyarrow and every
heavy library are imported by the tasks that need them, never at parse time (README, "Parsing stays light").
A fresh interpreter, so nothing another test imported counts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from tests.fixtures.paths import REPO, SPECS

# numpy alone costs about 90 ms of CPU in every DAG-processor child that parses the DAG file (issue 15, F3).
HEAVY = [
    "numpy", "pandas", "pyarrow", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "onnxmltools",
    "skl2onnx", "sklearn", "xgboost", "lightgbm", "optuna", "mlflow", "boto3", "kubernetes", "matplotlib",
    "prometheus_client",
]
# A spec with a rollout compiles the rollout's operators too (issue 16): they must stay as light.
ROLLOUT = "rollout: {shadow: {percent: 100, for: 1m}, approval: {required: true}}\n"

PARSE = f"""
import json, runpy, sys
import mlspec.compiler, mlspec.operations_dag, mlspec.plugin
dags = runpy.run_path({str(REPO / "dags" / "mlspec_dags.py")!r})  # the DAG file, as the DAG processor parses it
assert {{"digits", "digits-rollout", "mlspec_operations"}} <= set(dags), sorted(dags)
heavy = {HEAVY!r}
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
"""


def test_parsing_imports_no_numpy_pandas_pyarrow_or_heavy_library(tmp_path):
    specs = tmp_path / "specs"
    specs.mkdir()
    shutil.copy(SPECS / "digits.yaml", specs / "digits.yaml")
    digits = (SPECS / "digits.yaml").read_text()
    (specs / "digits-rollout.yaml").write_text(digits.replace("name: digits", "name: digits-rollout", 1) + ROLLOUT)
    env = {**os.environ, "MLSPEC_SPECS_DIR": str(specs), "MLSPEC_HOME": str(tmp_path / "home")}
    result = subprocess.run([sys.executable, "-c", PARSE], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == [], f"imported while parsing: {loaded}"

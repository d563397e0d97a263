"""A scikit-learn model goes to KServe exactly like a Keras one: the same ONNX layout, a valid
InferenceService, so OVMS and Triton serve it unchanged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tests.fixtures.paths import REPO, SPECS
from tests.serving.kserve.kserve_testkit import schema_errors

KSERVE_SETTINGS = """\
storage: {uri: s3://models/mlspec, connection: aws_default}
serving:
  platform: kserve
  runtime: RUNTIME
  namespace: models
  connection: kubernetes_default
"""


def manifest(spec_path: Path, version: int) -> dict:
    mlspec = str(Path(sys.executable).parent / "mlspec")
    result = subprocess.run(
        [mlspec, "manifest", str(spec_path), "--version", str(version)], capture_output=True, text=True, cwd=REPO, env=os.environ.copy()
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.mark.parametrize("runtime", ["kserve-ovms", "kserve-tritonserver"])
def test_a_sklearn_spec_gets_a_valid_inferenceservice_with_the_onnx_layout(runtime, tmp_path, isvc_validator):
    settings = KSERVE_SETTINGS.replace("RUNTIME", runtime)
    forest = tmp_path / "iris-forest.yaml"
    forest.write_text((SPECS / "iris-forest.yaml").read_text() + settings)
    keras = tmp_path / "iris.yaml"
    keras.write_text((SPECS / "iris.yaml").read_text().replace("name: iris", "name: iris-forest") + settings)

    sklearn_isvc, keras_isvc = manifest(forest, 4), manifest(keras, 4)
    assert schema_errors(isvc_validator, sklearn_isvc) == []
    predictor = sklearn_isvc["spec"]["predictor"]
    assert predictor["model"]["modelFormat"]["name"] == "onnx"
    # Same spec settings, other framework: the very same InferenceService.
    assert sklearn_isvc == keras_isvc

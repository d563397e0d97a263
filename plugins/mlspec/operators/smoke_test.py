"""smoke_test: prove the endpoint answers like the offline ONNX model; when it does not, the release
service puts serving back on the registry's production version, which keeps serving."""

from __future__ import annotations

import json
import logging
from typing import Any

from mlspec.locks import model_lock
from mlspec.operators.base import GateFailed, MlspecOperator
from mlspec.release import CandidateRefused, Release, Trigger
from mlspec.serving import Deployment
from mlspec.serving.smoke_test import SmokeTestFailed

log = logging.getLogger(__name__)


class SmokeTestOperator(MlspecOperator):
    """Inputs: `data` (prepare_data's result), `stored` (store's) and `deployment` (deploy's).
    Output: the smoke test report (agreement, latencies)."""

    stage = "smoke_test"
    ui_color = "#d2e3fc"
    template_fields = ("data", "stored", "deployment")

    def __init__(self, *, data: Any, stored: Any, deployment: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data = data
        self.stored = stored
        self.deployment = deployment

    def run(self, context) -> dict:
        spec = self.model_spec
        deployment = Deployment.from_xcom(self.handed_over("deployment"))
        stored = self.handed_over("stored")
        dataset = self.load_dataset()
        x = dataset.x_test[: spec.smoke_test.samples]
        onnx_bytes = self.store.read_uri(f"{stored['uri']}/model.onnx")
        signature = json.loads(self.store.read_uri(f"{stored['uri']}/signature.json"))
        input_schema = None
        if dataset.columns:  # real test rows as a client sends them: raw values, null in a gap
            from mlspec.ml.model_io import json_rows  # pandas: tasks only, not at DAG parse

            x = json_rows(x, dataset.columns)
            input_schema = json.loads(self.store.read_uri(f"{stored['uri']}/input_schema.json"))
        release = Release.open(spec, self.store)
        try:
            report = release.smoke_test(deployment, x, onnx_bytes, signature, input_schema)
        except SmokeTestFailed as exc:
            self.roll_back_to_production(context, release, deployment, exc)
        log.info(
            "smoke test passed: %d samples, agreement %.3f, p95 %.1f ms", report["samples"], report["agreement"], report["p95_ms"]
        )
        return report

    def roll_back_to_production(self, context, release: Release, deployment: Deployment, failure: Exception) -> None:
        """The release service serves the registry's production version again (read under the model's lock:
        an operation may have changed it since deploy) and records it; the task fails."""
        version = deployment.version
        with model_lock(self.model_spec.name, f"roll back version {version} after its failed smoke test"):
            try:
                release.fail_candidate(deployment, str(failure), Trigger.from_context(context))
            except CandidateRefused as refused:
                raise GateFailed(str(refused), next_step=refused.next_step) from None

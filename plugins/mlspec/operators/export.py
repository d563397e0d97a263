"""export_onnx: tf2onnx at the spec's opset, checked against the trained model with onnxruntime."""

from __future__ import annotations

import json
import logging

from mlspec.operators.base import GateFailed, MlspecOperator

log = logging.getLogger(__name__)


class OnnxExportOperator(MlspecOperator):
    stage = "export_onnx"
    ui_color = "#f3e8fd"

    def run(self, context) -> dict:
        from mlspec.ml import onnx_export

        spec = self.model_spec
        dataset = self.dataset(context)
        model = self.trained_model(context)
        onnx_bytes, signature = onnx_export.export_onnx(model, opset=spec.export.opset)
        signature["class_names"] = list(dataset.class_names)
        samples = dataset.x_test[: spec.export.parity_samples]
        try:
            max_diff = onnx_export.check_parity(model, onnx_bytes, samples, atol=spec.export.parity_atol)
        except onnx_export.ParityError as exc:
            raise GateFailed(
                str(exc),
                next_step="nothing was published; try another export.opset, or raise export.parity.atol if the difference is acceptable",
            ) from None
        log.info("ONNX Runtime agrees with Keras on %d samples (max |diff| %.2e <= atol %g)", len(samples), max_diff, spec.export.parity_atol)
        prefix = f"{self.run_prefix(context)}/export"
        return {
            "onnx_uri": self.store.write_bytes(f"{prefix}/model.onnx", onnx_bytes),
            "signature_uri": self.store.write_bytes(f"{prefix}/signature.json", json.dumps(signature, indent=2).encode()),
            "max_abs_diff": float(max_diff),
            "parity_samples": int(len(samples)),
            "opset": spec.export.opset,
        }

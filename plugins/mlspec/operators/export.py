"""export_onnx: the adapter's ONNX export, checked against the trained model with onnxruntime, plus
the input and output schemas every published version carries. A table model's check also covers raw
rows with a gap in each filled column and a category never seen in training."""

from __future__ import annotations

import json
import logging

from mlspec.ml import tabular
from mlspec.operators.base import GateFailed, TrainedModelStage

log = logging.getLogger(__name__)


class OnnxExportOperator(TrainedModelStage):
    """Inputs: `data` (prepare_data's result) and `model` (train's). Output: URIs of model.onnx,
    signature.json, input_schema.json and output_schema.json under the run's prefix."""

    stage = "export_onnx"
    ui_color = "#f3e8fd"

    def run(self, context) -> dict:
        import onnxruntime as ort

        from mlspec.ml import io_schema, model_io, onnx_export  # numpy: not at DAG parse time

        spec = self.model_spec
        task = spec.model.task
        dataset = self.load_dataset()
        model = self.load_model()
        log.info("onnxruntime %s; providers available: %s (parity runs on CPU)", ort.__version__, ", ".join(ort.get_available_providers()))
        onnx_bytes = self.adapter.to_onnx(model, task=task, opset=spec.export.opset, sample=dataset.x_train[:8])
        signature = onnx_export.onnx_signature(onnx_bytes)
        signature.update(opset=spec.export.opset, class_names=list(dataset.class_names), task=task)
        log.info(
            "exported ONNX (opset %d, %d bytes): %s -> %s", spec.export.opset, len(onnx_bytes),
            ", ".join(f"{t['name']}{t['shape']} {t['datatype']}" for t in signature["inputs"]),
            ", ".join(f"{t['name']}{t['shape']} {t['datatype']}" for t in signature["outputs"]),
        )
        fills = tabular.fill_values(model)
        samples = dataset.x_test[: spec.export.parity_samples]
        if dataset.columns:
            samples = with_edge_rows(samples, dataset.columns)
        try:
            max_diff = onnx_export.check_parity(
                # A table classifier's graph answers the class value as label; the trained model its index.
                tabular.served_outputs(model, self.adapter.predict(model, samples, task)),
                onnx_export.onnx_predict(onnx_bytes, model_io.model_inputs(samples, dataset.columns, fills)),
                atol=spec.export.parity_atol, rtol=spec.export.parity_rtol,
            )
        except onnx_export.ParityError as exc:
            raise GateFailed(
                str(exc),
                next_step="nothing was published; try another export.opset, or raise export.parity.atol (or rtol, for large predictions) if the difference is acceptable",
            ) from None
        log.info(
            "ONNX Runtime agrees with the trained %s model on %d samples (max |diff| %.2e; atol %g, rtol %g)",
            spec.model.framework, len(samples), max_diff, spec.export.parity_atol, spec.export.parity_rtol,
        )
        prefix = f"{self.run_prefix(context)}/export"

        def write_json(name: str, value: dict) -> str:
            return self.store.write_bytes(f"{prefix}/{name}", json.dumps(value, indent=2, allow_nan=False).encode())

        return {
            "onnx_uri": self.store.write_bytes(f"{prefix}/model.onnx", onnx_bytes),
            "signature_uri": write_json("signature.json", signature),
            "input_schema_uri": write_json(
                "input_schema.json", io_schema.input_schema(dataset, fills, tabular.categories(model))
            ),
            "output_schema_uri": write_json(
                "output_schema.json", io_schema.output_schema(task, list(dataset.class_names), signature, dataset.label_datatype)
            ),
            "max_abs_diff": float(max_diff),
            "parity_samples": int(len(samples)),
            "opset": spec.export.opset,
        }


# A category value no training set holds: the parity rows' unseen category.
UNSEEN_CATEGORY = "(a value never seen in training)"


def with_edge_rows(samples, columns):
    """The test rows plus the rows an endpoint meets that a clean test split may lack: for each column
    whose gaps the model fills, a row with a gap in it (NaN, or "" for a category), one row with a gap in
    every such column, and for each category a row with a value never seen in training."""
    import pandas as pd  # not at DAG parse time

    if not len(samples):
        return samples
    edges = []
    filled = [column for column in columns if column.filled]
    for index, column in enumerate([*filled, *(c for c in columns if c.type == "category")]):
        row = samples.iloc[[index % len(samples)]].copy()
        if index < len(filled):
            row[column.name] = "" if column.type == "category" else float("nan")
        else:
            row[column.name] = UNSEEN_CATEGORY
        edges.append(row)
    if filled:
        row = samples.iloc[[0]].copy()
        for column in filled:
            row[column.name] = "" if column.type == "category" else float("nan")
        edges.append(row)
    return pd.concat([samples, *edges], ignore_index=True)

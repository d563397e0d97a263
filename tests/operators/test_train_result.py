"""train's result travels as XCom JSON, which has no NaN: a metric that ends undefined (r2 on one validation
row of a tiny table, a loss that blew up) must be recorded as null with a warning, not crash the XCom push
with Airflow's traceback and no mlspec message (the probe's 8-row cars table)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

SPECS = Path(__file__).resolve().parents[2] / "specs"


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_an_undefined_metric_is_recorded_as_null_with_a_warning():
    from mlspec.operators.train import TrainOperator
    from mlspec.spec import load_spec_text

    spec = load_spec_text((SPECS / "iris-forest.yaml").read_text(), "iris-forest.yaml").to_dict()
    operator = TrainOperator(task_id="train", spec=spec, data={})
    report = SimpleNamespace(steps_run=1, stopped_early=False,
                             history={"val_r2": [float("nan")], "val_rmse": [0.25], "loss": [float("inf")]})
    plan = SimpleNamespace(framework="sklearn")
    kept = Kept()  # on the logger itself: a created operator sets up Airflow's logging, which stops propagation
    logging.getLogger("mlspec.operators.train").addHandler(kept)
    try:
        result = operator._result(plan, report, "file:///tmp/model", "")
    finally:
        logging.getLogger("mlspec.operators.train").removeHandler(kept)
    json.dumps(result, allow_nan=False)  # what the XCom push needs
    assert result["final_metrics"] == {"val_r2": None, "val_rmse": 0.25, "loss": None}
    assert result["history"]["val_r2"] == [None]
    assert any("loss, val_r2 ended undefined" in line for line in kept.lines)

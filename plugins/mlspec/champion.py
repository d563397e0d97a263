"""The champion/challenger gate: score the registry's production version (the champion) on the
challenger's test split, and say whether the challenger may replace it.

A retrain must never make production worse: the champion's files are read from the store and
verified against the sha256 the registry recorded, then scored exactly like the challenger. The
challenger replaces it only when better by MORE than evaluation.champion.min_delta: an equal score is
a tie, and the champion holds (an identical retrain never redeploys).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from mlspec.errors import MlspecError, StoreError
from mlspec.ml.frameworks.base import TrainingError
from mlspec.registry import open_registry
from mlspec.storage import sha256_hex

log = logging.getLogger(__name__)

# decision -> whether the challenger goes on to deploy
DECISIONS = {
    "gate_off": True,  # evaluation.champion: null
    "no_champion": True,  # nothing is production yet
    "challenger_wins": True,
    "champion_holds": False,  # the challenger is worse, or better by no more than min_delta
    "tie": False,  # both score the same: the champion holds (the challenger is a candidate, no redeploy)
}
TIE_WORDS = "tie: the champion holds"


def decide(metric: str, challenger: float, champion: float, min_delta: float) -> str:
    """challenger_wins (better by MORE than min_delta), tie (the same score) or champion_holds."""
    from mlspec.ml import metrics as ml_metrics

    if ml_metrics.challenger_wins(metric, challenger, champion, min_delta):
        return "challenger_wins"
    try:
        same = abs(float(challenger) - float(champion)) <= 1e-9
    except (TypeError, ValueError):
        same = False
    return "tie" if same else "champion_holds"


def _outcome_words(decision: str) -> str:
    if decision == "challenger_wins":
        return "the challenger wins"
    if decision == "tie":
        return f"{TIE_WORDS}; the challenger is kept as a candidate (no redeploy)"
    return "the champion holds; the challenger is kept as a candidate"


def compare_with_champion(spec: Any, store: Any, dataset: Any, challenger: dict[str, float]) -> dict[str, Any]:
    """The gate's verdict as plain JSON: decision, metric, both scores, the champion's version."""
    from mlspec.ml import metrics as ml_metrics

    gate = spec.evaluation.champion
    if gate is None:
        log.info("champion gate is off (evaluation.champion: null): the challenger is not compared")
        return {"decision": "gate_off"}
    verdict: dict[str, Any] = {"metric": gate.metric, "min_delta": gate.min_delta, "challenger": challenger[gate.metric]}
    registry = open_registry(spec.registry.backend, spec.registry.connection)
    version = registry.production_version(spec.name)
    if version is None:
        log.info("champion gate: %s has no production version yet, so the challenger passes", spec.name)
        return {**verdict, "decision": "no_champion"}
    record = registry.version_record(spec.name, version)
    if record is None or not record.source_uri:
        raise MlspecError(f"the registry names version {version} of {spec.name} as production but has no record of its files")
    try:
        onnx_bytes = store.read_uri(f"{record.source_uri}/model.onnx")
    except StoreError as exc:
        return _against_recorded_metrics(spec, verdict, version, record, f"cannot be read ({exc})")
    expected = record.files.get("model.onnx")
    if expected and sha256_hex(onnx_bytes) != expected:
        raise MlspecError(
            f"the production version {version} of {spec.name} at {record.source_uri} does not match the sha256 the "
            "registry recorded; its files were changed after publishing. Deploy a known-good version "
            f"(`mlspec deploy {spec.source_file or '<spec>'} --version N`) before retraining"
        )
    try:
        outputs = champion_outputs(store, record.source_uri, onnx_bytes, dataset)
    except ChampionUnfit as exc:
        return _against_recorded_metrics(spec, verdict, version, record, f"cannot take this run's test rows ({exc})")
    scores = ml_metrics.compute_metrics(
        spec.model.task, dataset.y_test, outputs, metrics=list(spec.evaluation.metrics), class_names=list(dataset.class_names)
    )
    champion = {name: round(float(scores[name]), 6) for name in spec.evaluation.metrics}
    log.info(
        "production version %d (the champion), re-scored on this run's test split: test metrics on %d samples: %s",
        version, len(dataset.x_test), ", ".join(f"{k}={v:.4f}" for k, v in champion.items()),
    )
    decision = decide(gate.metric, challenger[gate.metric], champion[gate.metric], gate.min_delta)
    verdict.update(
        decision=decision,
        champion=champion[gate.metric],
        champion_version=version,
        champion_metrics=champion,
        champion_scored_on="this run's test split",
    )
    log.info(
        "champion gate on %s: challenger %.4f vs production version %d %.4f (min_delta %g): %s",
        gate.metric, verdict["challenger"], version, verdict["champion"], gate.min_delta, _outcome_words(decision),
    )
    return verdict


class ChampionUnfit(MlspecError):
    """The production version cannot take this run's test rows (a model of other inputs, or rows its
    endpoint would refuse)."""


def champion_outputs(store: Any, source_uri: str, onnx_bytes: bytes, dataset: Any) -> dict[str, Any]:
    """Production's ONNX answers on this run's test split. For a table data set, production takes the
    split's columns by name (with its own published fills) and its label, the class value, is mapped back
    to an index of this run's class_names by name: a class this run does not know is a wrong answer.
    ChampionUnfit where production cannot take the rows: other inputs, a column it reads differently, or
    a gap where it has no fill (its endpoint refuses such a row, and its graph would answer garbage: it is
    never scored on them). Probabilities stay in production's class order; the metrics read only label."""
    from mlspec.ml import model_io  # numpy: not at DAG parse time
    from mlspec.ml.onnx_export import ModelRunError, onnx_predict

    if not dataset.columns:
        try:
            return onnx_predict(onnx_bytes, dataset.x_test)
        except ModelRunError as exc:
            raise ChampionUnfit(str(exc)) from exc

    def published(name: str) -> dict:
        try:
            return json.loads(store.read_uri(f"{source_uri}/{name}"))
        except (StoreError, ValueError):
            return {}  # published before the schemas existed

    input_schema = published("input_schema.json")
    columns = model_io.schema_columns(input_schema)
    if not columns:
        raise ChampionUnfit("it takes one array of features, this run's table one input per column")
    lacking = [c.name for c in columns if c.name not in dataset.x_test.columns]
    if lacking:
        raise ChampionUnfit(f"it takes the column(s) {', '.join(lacking)}, which this run's data lacks")
    fills = model_io.schema_fills(input_schema)
    refused = {
        column.name: count
        for column in columns
        if column.name not in fills and (count := _gap_count(dataset.x_test[column.name]))
    }
    if refused:
        gaps = ", ".join(f"{name} ({count} rows)" for name, count in refused.items())
        raise ChampionUnfit(
            f"of the {len(dataset.x_test)} test rows, some have gaps in column(s) it does not fill: {gaps}; "
            "its endpoint refuses such rows, so it is not scored on them"
        )
    try:
        outputs = onnx_predict(onnx_bytes, model_io.model_inputs(dataset.x_test, columns, fills))
    except (TrainingError, ValueError, ModelRunError) as exc:  # a column it reads as another type
        raise ChampionUnfit(f"a column it reads another way: {exc}") from exc
    if "label" in outputs:
        label_datatype = published("output_schema.json").get("label_datatype", "")
        outputs["label"] = model_io.class_indices(outputs["label"], dataset.class_names, label_datatype)
    return outputs


def _gap_count(values: Any) -> int:
    """Gaps in a column of the normalized raw table (NaN in a number, "" in a category)."""
    return int((values.isna() | (values == "")).sum())


def _against_recorded_metrics(spec: Any, verdict: dict[str, Any], version: int, record: Any, why: str) -> dict[str, Any]:
    """The champion cannot be scored here (a store that lost its folders; KServe-only stores; a model
    that cannot take this run's test rows): compare with the test metrics the registry recorded for it,
    measured on its own test split. `why`: what the log says of it, after "production version N of M"."""
    gate = spec.evaluation.champion
    if gate.metric not in record.metrics:
        raise MlspecError(
            f"the production version {version} of {spec.name} cannot be scored: it {why}, and the registry has no "
            f"{gate.metric} for it; deploy a known-good version (`mlspec deploy {spec.source_file or '<spec>'} "
            "--version N`) before retraining"
        ) from None
    champion = record.metrics[gate.metric]
    decision = decide(gate.metric, verdict["challenger"], champion, gate.min_delta)
    log.warning(
        "champion gate: production version %d of %s %s; comparing with the %s the registry "
        "recorded for it (%.4f, measured on its own test split): %s", version, spec.name, why, gate.metric, champion,
        _outcome_words(decision),
    )
    return {
        **verdict,
        "decision": decision,
        "champion": champion,
        "champion_version": version,
        "champion_metrics": dict(record.metrics),
        "champion_scored_on": "the metrics the registry recorded",
    }


def verdict_line(name: str, verdict: dict[str, Any]) -> str:
    """One sentence for logs and the run summary."""
    if DECISIONS.get(verdict.get("decision"), True):
        return f"{name}: the challenger goes on ({verdict.get('decision')})"
    return (
        f"{name}: " + (f"{TIE_WORDS}: " if verdict.get("decision") == "tie" else "")
        + f"production version {verdict['champion_version']} keeps serving: its {verdict['metric']} is "
        f"{verdict['champion']:.4f} against the new model's {verdict['challenger']:.4f} (min_delta {verdict['min_delta']:g})"
    )

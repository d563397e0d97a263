"""The champion/challenger gate: score the registry's production version (the champion) on the
challenger's test rows (the holdout, or this run's test split), and say whether the challenger may replace it.

A retrain must never make production worse: the champion's files are read from the store and
verified against the sha256 the registry recorded, then scored exactly like the challenger. The
challenger replaces it only when better by MORE than evaluation.champion.min_delta: an equal score is
a tie, and the champion holds (an identical retrain never redeploys).

Classes are compared by NAME: production's answers are read as class names (its own output_schema.json
class_names for an index label, the value itself for a text or integer label) and renumbered into this
run's classes, so a retrain that learned a new class (penguins: Chinstrap) is not graded on numbers that
changed their meaning. A class production does not know is a wrong answer for it.

Neither is graded on rows production trained on: where its published splits.parquet lists some of this run's
test rows among its training rows (a random split, a changed data.split.key), both models are scored on the
other rows, and the verdict's "left_out" says how many were left out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from mlspec.errors import MlspecError, StoreError
from mlspec.ml.columns import gaps
from mlspec.ml.frameworks.base import TrainingError
from mlspec.ml.splits import read_splits
from mlspec.registry import open_registry
from mlspec.release import PublishedFileChanged, published_file, published_json
from mlspec.vocabulary import SCORED_ON_HOLDOUT as ON_HOLDOUT
from mlspec.vocabulary import SCORED_ON_RECORDED_METRICS as ON_RECORDED_METRICS
from mlspec.vocabulary import SCORED_ON_TEST_SPLIT as ON_TEST_SPLIT
from mlspec.vocabulary import SPLITS_FILE

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
# Scores this close are one score: production is scored through its float32 ONNX graph, the challenger through
# its framework (scikit-learn's float64), so an identical regression retrain differs in the sixth digit.
TIE_TOLERANCE = 1e-5


def evaluated_on(spec: Any) -> str:
    """What evaluate's test rows are: evaluation.holdout's rows when the spec names one, else the test split."""
    return ON_HOLDOUT if spec.evaluation.holdout else ON_TEST_SPLIT


def decide(metric: str, challenger: float, champion: float, min_delta: float) -> str:
    """tie (the same score, within TIE_TOLERANCE of it), challenger_wins (better by MORE than min_delta) or
    champion_holds."""
    import math

    from mlspec.ml import metrics as ml_metrics

    try:
        same = math.isclose(float(challenger), float(champion), rel_tol=TIE_TOLERANCE, abs_tol=1e-9)
    except (TypeError, ValueError):
        same = False
    if same:
        return "tie"
    return "challenger_wins" if ml_metrics.challenger_wins(metric, challenger, champion, min_delta) else "champion_holds"


def _outcome_words(decision: str) -> str:
    if decision == "challenger_wins":
        return "the challenger wins"
    if decision == "tie":
        return f"{TIE_WORDS}; the challenger is kept as a candidate (no redeploy)"
    return "the champion holds; the challenger is kept as a candidate"


def compare_with_champion(
    spec: Any, store: Any, dataset: Any, challenger: dict[str, float], outputs: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The gate's verdict as plain JSON: decision, metric, both scores, the champion's version. `outputs`: the
    challenger's answers on the test rows (evaluate's), by which it is re-scored when production trained on some
    of them (`trained_on`): both are then scored on the rest, and the verdict's "left_out" counts the others."""
    from mlspec.ml import io_schema  # numpy: not at DAG parse time
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
        onnx_bytes = published_file(store, record, "model.onnx")
        unreadable = "" if onnx_bytes is not None else f"has no model.onnx at {record.source_uri}"
    except StoreError as exc:
        onnx_bytes, unreadable = None, f"cannot be read ({exc})"
    except PublishedFileChanged as exc:
        raise MlspecError(
            f"the production version {version} of {spec.name}: {exc}. Deploy a known-good version "
            f"(`mlspec deploy {spec.source_file or '<spec>'} --version N`) before retraining"
        ) from None
    if onnx_bytes is None:  # the recorded metrics decide; production's classes are information there
        try:
            output_schema = published_json(store, record, "output_schema.json")
        except MlspecError:
            output_schema = {}
    else:
        output_schema = published_json(store, record, "output_schema.json")
    changes = io_schema.class_diff(output_schema.get("class_names") or (), dataset.class_names)
    verdict.update(changes)
    classes_changed = io_schema.class_diff_words(changes)
    if classes_changed:
        log.info(
            "%s (this run: %s); production version %d is scored by class name, and a class it does not know counts "
            "as a wrong answer", classes_changed, ", ".join(dataset.class_names), version,
        )
    if onnx_bytes is None:
        return _against_recorded_metrics(spec, verdict, version, record, unreadable)
    scored_on = evaluated_on(spec)
    try:
        trained = trained_on(store, record, dataset)
    except PublishedFileChanged as exc:
        raise MlspecError(
            f"the production version {version} of {spec.name}: {exc}. Deploy a known-good version "
            f"(`mlspec deploy {spec.source_file or '<spec>'} --version N`) before retraining"
        ) from None
    left_out = int(trained.sum()) if trained is not None else 0
    if trained is not None and not left_out:
        log.info("none of the %d rows of %s was production version %d's training rows", len(trained), scored_on,
                 version)
    if left_out and len(dataset.y_test) - left_out < 2:  # no row, or one (whose r2 is not a number), to score on
        return _against_recorded_metrics(
            spec, {**verdict, "left_out": left_out}, version, record,
            f"trained on {left_out} of the {len(dataset.y_test)} rows of {scored_on}, leaving too few to score on",
        )
    if left_out:
        if outputs is None:
            raise MlspecError("the champion gate needs the challenger's outputs to re-score it without those rows")
        log.info(
            "production version %d trained on %d of the %d rows of %s: both are scored on the other %d",
            version, left_out, len(trained), scored_on, len(trained) - left_out,
        )
        dataset = keep_test_rows(dataset, ~trained)
        rescored = ml_metrics.compute_metrics(
            spec.model.task, dataset.y_test, {name: values[~trained] for name, values in outputs.items()},
            metrics=[gate.metric], class_names=list(dataset.class_names),
        )
        verdict.update(challenger=round(float(rescored[gate.metric]), 6), left_out=left_out)
    try:
        production_outputs = champion_outputs(
            onnx_bytes, dataset, published_json(store, record, "input_schema.json"), output_schema
        )
    except ChampionUnfit as exc:
        return _against_recorded_metrics(spec, verdict, version, record, f"cannot take this run's test rows ({exc})")
    scores = ml_metrics.compute_metrics(
        spec.model.task, dataset.y_test, production_outputs, metrics=list(spec.evaluation.metrics),
        class_names=list(dataset.class_names),
    )
    champion = {name: round(float(scores[name]), 6) for name in spec.evaluation.metrics}
    log.info(
        "production version %d (the champion), re-scored on %s: test metrics on %d samples: %s",
        version, scored_on, len(dataset.x_test), ", ".join(f"{k}={v:.4f}" for k, v in champion.items()),
    )
    decision = decide(gate.metric, verdict["challenger"], champion[gate.metric], gate.min_delta)
    verdict.update(
        decision=decision, champion=champion[gate.metric], champion_version=version, champion_metrics=champion, scored_on=scored_on,
    )
    if dataset.class_names and not changes:
        log.info(
            "production version %d publishes no class names (published before output_schema.json): its class "
            "numbers are read as this run's classes", version,
        )
    by_name = ", production scored by class name" if classes_changed else ""
    rows = f" less the {left_out} rows production trained on" if left_out else ""
    log.info(
        "champion gate on %s: challenger %.4f vs production version %d %.4f (min_delta %g; both on %s%s%s): %s",
        gate.metric, verdict["challenger"], version, verdict["champion"], gate.min_delta, scored_on, rows, by_name,
        _outcome_words(decision),
    )
    return verdict


def trained_on(store: Any, record: Any, dataset: Any) -> Any:
    """A bool per test row of this run: True where production trained on it (the row is among the "train" rows
    of production's published splits.parquet: by content id where both sides have them, so a changed
    data.split.key still finds them, else by row id). A hash split with an unchanged key never overlaps; a
    random split, a changed key or feature set can. None where either side has no ids (a version whose manifest
    lists no splits.parquet, an npz from before issue 14)."""
    import numpy as np

    published = published_file(store, record, SPLITS_FILE) if SPLITS_FILE in record.files else None
    if published is None:
        return None
    ids = np.asarray(dataset.ids_test, dtype=np.uint64)
    if not len(ids) or len(ids) != len(dataset.y_test):
        return None
    splits = read_splits(published)
    trained = splits["split"].to_numpy() == "train"
    contents = np.asarray(dataset.content_ids_test, dtype=np.uint64)
    if splits.attrs["content_ids"] and len(contents) == len(ids):
        return np.isin(contents, splits["content_id"].to_numpy()[trained])
    return np.isin(ids, splits["row_id"].to_numpy()[trained])


def keep_test_rows(dataset: Any, keep: Any) -> Any:
    """`dataset` with only the test rows where `keep` is True."""
    from dataclasses import replace

    x_test = dataset.x_test.iloc[keep].reset_index(drop=True) if dataset.columns else dataset.x_test[keep]
    return replace(
        dataset, x_test=x_test, y_test=dataset.y_test[keep], ids_test=dataset.ids_test[keep],
        content_ids_test=dataset.content_ids_test[keep] if len(dataset.content_ids_test) else dataset.content_ids_test,
    )


class ChampionUnfit(MlspecError):
    """The production version cannot take this run's test rows (a model of other inputs, or rows its
    endpoint would refuse)."""


def champion_outputs(
    onnx_bytes: bytes, dataset: Any, input_schema: Mapping[str, Any], output_schema: Mapping[str, Any]
) -> dict[str, Any]:
    """Production's ONNX answers on this run's test rows, in this run's classes (`by_class_name`), given its
    published input_schema.json and output_schema.json ({} where it has none). For a table data set,
    production takes the rows' columns by name (with its own published fills).
    ChampionUnfit where production cannot take the rows: other inputs, a column it reads differently, or
    a gap where it has no fill (its endpoint refuses such a row, and its graph would answer garbage: it is
    never scored on them)."""
    from mlspec.ml import model_io  # numpy: not at DAG parse time
    from mlspec.ml.onnx_export import ModelRunError, onnx_predict

    if not dataset.columns:
        try:
            outputs = onnx_predict(onnx_bytes, dataset.x_test)
        except ModelRunError as exc:
            raise ChampionUnfit(str(exc)) from exc
        return by_class_name(outputs, output_schema, dataset.class_names)
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
        if column.name not in fills and (count := int(gaps(dataset.x_test[column.name]).sum()))
    }
    if refused:
        lacking = ", ".join(f"{name} ({count} rows)" for name, count in refused.items())
        raise ChampionUnfit(
            f"of the {len(dataset.x_test)} test rows, some have gaps in column(s) it does not fill: {lacking}; "
            "its endpoint refuses such rows, so it is not scored on them"
        )
    try:
        outputs = onnx_predict(onnx_bytes, model_io.model_inputs(dataset.x_test, columns, fills))
    except (TrainingError, ValueError, ModelRunError) as exc:  # a column it reads as another type
        raise ChampionUnfit(f"a column it reads another way: {exc}") from exc
    return by_class_name(outputs, output_schema, dataset.class_names)


def by_class_name(outputs: dict[str, Any], output_schema: Mapping[str, Any], class_names: Sequence[str]) -> dict[str, Any]:
    """Production's classifier answers renumbered into this run's `class_names` by name: its label as this
    run's class index (-1, a wrong answer, for a class this run does not know), its probabilities as this
    run's columns (0 for a class it does not know). Its classes are its published output_schema.json
    class_names; a version published before the schemas is read as having this run's classes."""
    from mlspec.ml import model_io  # numpy: not at DAG parse time

    if not class_names:
        return outputs  # regression
    model_classes = [str(name) for name in output_schema.get("class_names") or class_names]
    if "label" in outputs:
        outputs["label"] = model_io.class_indices(
            outputs["label"], class_names, output_schema.get("label_datatype", ""), model_classes
        )
    if "probabilities" in outputs:
        width = outputs["probabilities"].shape[-1]
        if width != len(model_classes):
            whose = "its" if output_schema.get("class_names") else "this run's (it publishes no class names)"
            raise ChampionUnfit(f"it answers {width} class probabilities for {whose} {len(model_classes)} classes")
        outputs["probabilities"] = model_io.class_columns(outputs["probabilities"], model_classes, class_names)
    return outputs


def _against_recorded_metrics(spec: Any, verdict: dict[str, Any], version: int, record: Any, why: str) -> dict[str, Any]:
    """The champion cannot be scored here (a store that lost its folders; KServe-only stores; a model
    that cannot take this run's test rows): compare with the test metrics the registry recorded for it,
    measured on its own test split. `why`: what the log says of it, after "production version N of M"."""
    from mlspec.ml import io_schema  # numpy: not at DAG parse time

    gate = spec.evaluation.champion
    if gate.metric not in record.metrics:
        raise MlspecError(
            f"the production version {version} of {spec.name} cannot be scored: it {why}, and the registry has no "
            f"{gate.metric} for it; deploy a known-good version (`mlspec deploy {spec.source_file or '<spec>'} "
            "--version N`) before retraining"
        ) from None
    champion = record.metrics[gate.metric]
    decision = decide(gate.metric, verdict["challenger"], champion, gate.min_delta)
    changed = io_schema.class_diff_words(verdict)
    own_classes = f" and on its own classes, not this run's: {changed}" if changed else ""
    log.warning(
        "champion gate: production version %d of %s %s; comparing with the %s the registry "
        "recorded for it (%.4f, measured on its own test split%s): %s", version, spec.name, why, gate.metric, champion,
        own_classes, _outcome_words(decision),
    )
    return {
        **verdict,
        "decision": decision,
        "champion": champion,
        "champion_version": version,
        "champion_metrics": dict(record.metrics),
        "scored_on": ON_RECORDED_METRICS,
    }


def verdict_line(name: str, verdict: dict[str, Any]) -> str:
    """One sentence for logs and the run summary (with the class set's change, where it changed)."""
    from mlspec.ml import io_schema  # numpy: not at DAG parse time

    if DECISIONS.get(verdict.get("decision"), True):
        return f"{name}: the challenger goes on ({verdict.get('decision')})"
    changed = io_schema.class_diff_words(verdict)
    left_out = verdict.get("left_out") if verdict.get("scored_on") != ON_RECORDED_METRICS else 0
    return (
        f"{name}: " + (f"{TIE_WORDS}: " if verdict.get("decision") == "tie" else "")
        + f"production version {verdict['champion_version']} keeps serving: its {verdict['metric']} is "
        f"{verdict['champion']:.4f} against the new model's {verdict['challenger']:.4f} (min_delta {verdict['min_delta']:g})"
        + (f"; both scored without the {left_out} test rows production trained on" if left_out else "")
        + (f"; {changed}" if changed else "")
    )

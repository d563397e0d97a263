"""The model card published with every version (`model_card.md`), and the example request it shows.

A short Markdown page a person can read without mlspec: what the model is (framework, estimator or
layers), its test metrics against the spec's thresholds, how the champion comparison went, the data it
was trained on, the spec hash and the DAG run that made it, its input and output (with the training
statistics of the features) and a `curl` that calls the endpoint. `store` renders it from what the run
handed over, so it is checksummed in the manifest with the other files. The Models page in Airflow
(mlspec.ui) uses the same example request.

Rendering is deterministic (no clock): a retried store renders the same bytes and reuses its version.

Every string that comes from the spec, the data or the run (description, owner, data source, class and
feature names, run id, URLs) goes through `_cell`: HTML is escaped (`<script>` and `<img onerror>` in a
description stay text wherever the card is rendered), and backticks, brackets and pipes are escaped so no
code span, link or table cell can be opened or closed. Such strings are never put in code spans, whose
content a renderer shows raw. URLs are percent-encoded (`_url`) before they appear in text or the curl.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from mlspec.inference_protocol import DEFAULT_DATATYPE, curl, infer_request, infer_url, rows_request
from mlspec.ml.frameworks import framework_of
from mlspec.serving.platforms import ENDPOINT_PLACEHOLDER, platform_of
from mlspec.vocabulary import INPUT_NAME

log = logging.getLogger(__name__)

CARD_FILE = "model_card.md"
# The feature table lists at most this many features; the rest are in input_schema.json.
MAX_FEATURE_ROWS = 32
# A category's row shows at most this many of its training values.
MAX_SHOWN_CATEGORIES = 8
DECISIONS = {
    "gate_off": "the champion gate is off (evaluation.champion: null)",
    "no_champion": "there was no production version to compare with; the gate passed",
    "challenger_wins": "it beat the production version",
    "champion_holds": "it did not beat the production version, so its training run kept it as a candidate and did not deploy it (a later deployment, if any, is in the production history)",
    "tie": "it scored the same as the production version (a tie keeps the champion), so its training run kept it as a candidate and did not deploy it (a later deployment, if any, is in the production history)",
}


# -- what the card and the Models page share --------------------------------------------------
def main_metric(spec: Any) -> str:
    """The metric a model is judged by: the champion gate's, else the first of evaluation.metrics."""
    gate = spec.evaluation.champion
    return gate.metric if gate is not None else spec.evaluation.metrics[0]


def endpoint_base(spec: Any) -> str:
    """Where the model answers: the local model server's URL, or ENDPOINT_PLACEHOLDER where the platform
    knows its URL only once deployed (KServe)."""
    return platform_of(spec).endpoint_base(spec)


def example_request(input_schema: Mapping[str, Any]) -> dict:
    """An Open Inference Protocol request: a table model's published example rows (real test rows, raw
    values, null in a gap), one input per column; any other model's one row of every feature's training
    mean (no sample leaks out)."""
    if input_schema.get("columns"):
        return rows_request(input_schema.get("example") or [], input_schema["columns"])
    features = input_schema.get("features") or []
    shape = [int(d) for d in (input_schema.get("shape") or [-1, len(features)])[1:]]
    data = [float(f"{float(f['mean']):.6g}") if f.get("mean") is not None else 0.0 for f in features]
    return infer_request(
        data,
        [1, *shape],
        name=input_schema.get("name", INPUT_NAME),
        datatype=input_schema.get("datatype", DEFAULT_DATATYPE),
    )


def curl_example(url: str, input_schema: Mapping[str, Any]) -> str:
    return curl(url, example_request(input_schema))


def example_words(input_schema: Mapping[str, Any]) -> str:
    """What the example request sends, in words."""
    if input_schema.get("columns"):
        rows = len(input_schema.get("example") or [])
        return f"{rows} test row{'s' if rows != 1 else ''} as they are in the data, null where a value is missing"
    return "one row: each feature's training mean"


def model_summary(spec: Any, run_params: Mapping[str, Any] | None = None) -> str:
    """One line about the model in its framework's words (Keras layers, an estimator with its parameters). `run_params`: what a
    run's trigger form (or `mlspec run --param`) set, which is what that version was trained with."""
    return framework_of(spec).describe(spec.resolved, run_params or {})


def decision_text(verdict: Mapping[str, Any]) -> str:
    """The champion gate's outcome in words, with both scores where there were two."""
    decision = str(verdict.get("decision", ""))
    text = DECISIONS.get(decision, decision or "not recorded")
    if verdict.get("champion_version") not in (None, "") and verdict.get("champion") not in (None, ""):
        text += (
            f": {verdict.get('metric')} {_number(verdict.get('challenger'))} against production version "
            f"{verdict['champion_version']}'s {_number(verdict['champion'])} (min_delta {_number(verdict.get('min_delta', 0))})"
        )
    return text


# -- the card ---------------------------------------------------------------------------------
def render_model_card(
    spec: Any,
    *,
    version: int,
    evaluation: Mapping[str, Any],
    input_schema: Mapping[str, Any],
    output_schema: Mapping[str, Any],
    dag_id: str,
    run_id: str,
    plots: Sequence[str] = (),
    stored_uri: str = "",
    run_params: Mapping[str, Any] | None = None,
) -> str:
    """model_card.md for one version, from the spec, the run's parameters (its trigger form) and what evaluate
    and export_onnx handed over."""
    metrics = dict(evaluation.get("metrics") or {})
    verdict = dict(evaluation.get("champion") or {})
    thresholds = dict(spec.evaluation.thresholds)
    lines = [
        f"# {_cell(spec.name)}, version {int(version)}",
        "",
        _cell(spec.metadata.description) or f"Model {spec.name}.",
        "",
        "| | |",
        "| --- | --- |",
        f"| model | {_cell(model_summary(spec, run_params))} |",
        f"| task | {_cell(spec.model.task)} |",
        f"| owner | {_cell(spec.metadata.owner)} |",
        f"| data source | {_cell(spec.data.source)} |",
        f"| spec hash | `{spec.spec_hash}` |",
        f"| DAG run | {_cell(dag_id)} / {_cell(run_id)} |",
        f"| ONNX opset | {int(spec.export.opset)} |",
    ]
    if stored_uri:
        lines.append(f"| stored at | {_cell(stored_uri)} |")
    lines += ["", f"## Test metrics ({int(evaluation.get('test_samples') or 0)} samples)", "", "| metric | value | threshold |", "| --- | --- | --- |"]
    for name, value in metrics.items():
        lines.append(f"| {_cell(name)} | {_number(value)} | {_threshold(thresholds.get(name))} |")
    lines += ["", "## Champion comparison", "", f"{_cell(decision_text(verdict))}.", ""]
    lines += _io_lines(input_schema, output_schema)
    if plots:
        lines += ["## Plots", ""] + [f"- [{_cell(name)}]({_url(name)})" for name in plots] + [""]
    base = _url(endpoint_base(spec))
    lines += [
        "## Try it",
        "",
        f"Once this version serves, {_cell(infer_url(base, spec.name))} answers with it ({example_words(input_schema)}):",
        "",
        *_fenced("bash", curl_example(infer_url(base, spec.name), input_schema)),
        "",
    ]
    lookup = platform_of(spec).endpoint_lookup
    if base == ENDPOINT_PLACEHOLDER and lookup is not None:
        lines += [f"`{ENDPOINT_PLACEHOLDER}` is the model's URL on {platform_of(spec).title}: `{_code(lookup(spec), also=_COMMAND_CHARS)}`.", ""]
    return "\n".join(lines)


def _io_lines(input_schema: Mapping[str, Any], output_schema: Mapping[str, Any]) -> list[str]:
    lines = _column_lines(input_schema) if input_schema.get("columns") else _feature_lines(input_schema)
    classes = output_schema.get("class_names") or []
    lines += ["", "## Output", "", "| output | datatype | shape |", "| --- | --- | --- |"]
    for output in output_schema.get("outputs") or []:
        lines.append(
            f"| {_cell(str(output.get('name', '')))} | {_cell(output.get('datatype', ''))} | "
            f"{_cell(json.dumps(output.get('shape', [])))} |"
        )
    if classes and output_schema.get("label_datatype"):
        lines += ["", "label answers the class itself; probabilities follow this order: "
                  + ", ".join(_cell(str(c)) for c in classes) + "."]
    elif classes:
        lines += ["", "Classes, in the order of probabilities and the values of label: "
                  + ", ".join(f"{i} = {_cell(str(c))}" for i, c in enumerate(classes)) + "."]
    return lines + [""]


def _feature_lines(input_schema: Mapping[str, Any]) -> list[str]:
    """Any other model's one input and its features' training statistics."""
    features = list(input_schema.get("features") or [])
    lines = [
        "## Input",
        "",
        f"{_cell(str(input_schema.get('name', INPUT_NAME)))}: {_cell(input_schema.get('datatype', DEFAULT_DATATYPE))}, shape "
        f"{_cell(json.dumps(input_schema.get('shape', [])))}, {len(features)} raw features (statistics on the training split):",
        "",
        "| feature | min | max | mean | std | missing |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for feature in features[:MAX_FEATURE_ROWS]:
        stats = " | ".join(_number(feature.get(key)) for key in ("min", "max", "mean", "std"))
        lines.append(f"| {_cell(str(feature.get('name', '')))} | {stats} | {int(feature.get('missing') or 0)} |")
    if len(features) > MAX_FEATURE_ROWS:
        lines.append(f"| … {len(features) - MAX_FEATURE_ROWS} more in input_schema.json | | | | | |")
    return lines


def _column_lines(input_schema: Mapping[str, Any]) -> list[str]:
    """A table model's inputs: one per column, its type, how a gap is filled and its training statistics."""
    columns = list(input_schema["columns"])
    lines = [
        "## Input",
        "",
        f"{len(columns)} columns, one input each (shape [-1, 1], or [-1]); send raw values, null where a value is "
        "missing (accepted where the column has a fill). Statistics on the training split:",
        "",
        "| column | type | datatype | missing values | fill | values seen in training | min | max | mean | std |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for column in columns[:MAX_FEATURE_ROWS]:
        seen = _cell(category_words(column, MAX_SHOWN_CATEGORIES)) or "—"
        fill = "—" if column.get("fill") is None else _cell(str(column["fill"]))
        stats = " | ".join(_number(column.get(key)) for key in ("min", "max", "mean", "std"))
        lines.append(
            f"| {_cell(str(column.get('name', '')))} | {_cell(column.get('type', ''))} | {_cell(column.get('datatype', ''))} "
            f"| {_cell(column.get('missing', ''))} ({int(column.get('missing_count') or 0)} in training) | {fill} | {seen} | {stats} |"
        )
    if len(columns) > MAX_FEATURE_ROWS:
        lines.append(f"| … {len(columns) - MAX_FEATURE_ROWS} more in input_schema.json | | | | | | | | | |")
    return lines


def category_words(column: Mapping[str, Any], shown: int | None = None) -> str:
    """A category column's values seen in training (the first `shown`), with the constant a gap becomes said
    apart: "female, male; a gap becomes 'unknown'". The encoder knows that constant (the training gaps were
    filled with it), so input_schema.json lists it among the categories, but the data need not hold it.
    "" for a column without categories."""
    categories = [str(c) for c in column.get("categories") or []]
    if not categories:
        return ""
    constant = column.get("fill") if column.get("missing") == "constant" else None
    values = [c for c in categories if constant is None or c != str(constant)]
    words = ", ".join(values[:shown]) + (" …" if shown is not None and len(values) > shown else "")
    return f"{words}; a gap becomes '{constant}'" if constant is not None else words


def expected_version(store: Any, name: str, run_id: str, min_version: int) -> int:
    """The version `store.publish_version(name, ..., run_id=run_id, min_version=min_version)` will give:
    the one this run already claimed (a retry), else the next number. The card names its version before
    it is published; store checks afterwards that they agree."""
    found = store.version_claimed_by(name, run_id)
    if found is not None:
        return int(found)
    existing = [int(c) for c in store.list_children(name) if str(c).isdigit()]
    return max(max(existing, default=0) + 1, min_version)


# -- formatting -------------------------------------------------------------------------------
def _number(value: Any) -> str:
    if value is None or value == "":
        return "—"
    try:
        return f"{float(value):.6g}"
    except (TypeError, ValueError):
        return str(value)


def _threshold(threshold: Any) -> str:
    if threshold is None:
        return "—"
    parts = [f"≥ {_number(threshold.min)}" if threshold.min is not None else "", f"≤ {_number(threshold.max)}" if threshold.max is not None else ""]
    return ", ".join(p for p in parts if p) or "—"


def _cell(text: Any) -> str:
    """Safe as Markdown text and inside a table cell: one line; HTML escaped (&, <, >); backslashes,
    backticks, brackets and pipes escaped, so the text opens no tag, code span, link or cell."""
    line = html.escape(" ".join(str(text).split()), quote=False)
    for char in "\\`[]|":  # the backslash first: the others add backslashes
        line = line.replace(char, "\\" + char)
    return line


# What a shell command in a code span may hold besides _code's own characters (never a backtick or a newline).
_COMMAND_CHARS = " '{}="


def _code(text: Any, also: str = "") -> str:
    """Inside a code span (a renderer shows it raw): one line of [A-Za-z0-9._/:-] and the characters in
    `also`, the rest replaced by '?' (used for DNS-1123 names, which never have anything else, and commands)."""
    return "".join(c if c.isalnum() and c.isascii() or c in "._/:-" or c in also else "?" for c in str(text))


def _url(url: str) -> str:
    """A URL with every character that is not legal in one (<, >, quotes, backticks, spaces) percent-encoded."""
    from urllib.parse import quote

    return quote(str(url), safe=":/?#[]@!$&'()*+,;=%~")


def _fenced(language: str, text: str) -> list[str]:
    """A fenced code block whose fence is longer than any run of backticks in text (so text cannot close it)."""
    longest = max((len(run) for run in text.split("\n") for run in _backtick_runs(run)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + language, text, fence]


def _backtick_runs(line: str) -> list[str]:
    import re

    return re.findall(r"`+", line)

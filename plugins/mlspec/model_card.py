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
from mlspec.ml.splits import SPLIT_NAMES
from mlspec.serving.platforms import ENDPOINT_PLACEHOLDER, platform_of
from mlspec.vocabulary import DRIFT_PLOT, INPUT_NAME, MAX_CHECKED_FEATURES, SCORED_ON_RECORDED_METRICS

log = logging.getLogger(__name__)

CARD_FILE = "model_card.md"
# The feature table lists at most this many features; the rest are in input_schema.json.
MAX_FEATURE_ROWS = 32
# A category's row shows at most this many of its training values.
MAX_SHOWN_CATEGORIES = 8
# A version's lineage lists at most this many of the files its data was read from.
MAX_SHOWN_FILES = 5
# validate_data's outcome (drift.json / lineage.json) in words, one entry per VALIDATION_OUTCOMES.
CHECK_OUTCOMES = {
    "no_reference": "no reference: no production profile could be read (none yet, published before profiles, or "
    "lost from the store: see validate_data's log)",
    "passed": "passed: no column drifted and the schema matches the reference",
    "warned": "warned: drift or schema problems were found and training went on (validation says warn)",
    "accepted": "accepted: the checks failed and the run was told to train anyway (accept_drift: the trigger form, or "
    "mlspec run --accept-drift)",
    "failed": "failed: the run stopped before training",
    "skipped": f"skipped: mlspec checks tables and arrays of at most {MAX_CHECKED_FEATURES} flat features, not this data set",
}
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


def champion_notes(verdict: Mapping[str, Any]) -> list[str]:
    """The classes this run has that production had not (and the other way), and what both were scored on,
    from the verdict (lists) or the version's champion tags (comma lists)."""
    notes = [f"{words}: {', '.join(names)}" for key, words in (("classes_added", "classes added"), ("classes_removed", "classes removed"))
             if (names := name_list(verdict.get(key)))]
    if verdict.get("scored_on"):
        notes.append(f"scored on: {verdict['scored_on']}")
    left_out = int(verdict.get("left_out") or 0)
    if left_out and verdict.get("scored_on") == SCORED_ON_RECORDED_METRICS:
        notes.append(f"production had trained on all {left_out} test rows: compared with its recorded metrics")
    elif left_out:
        notes.append(f"left out: {left_out} test rows production had trained on (both scored on the rest)")
    return notes


def name_list(value: Any) -> list[str]:
    """A list of names as the verdict has it (a list) or a registry tag holds it (a comma list)."""
    if isinstance(value, str):
        return [name.strip() for name in value.split(",") if name.strip()]
    return [str(name) for name in value or []]


def lineage_facts(lineage: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, plain text) for each part of a version's lineage (lineage.json) it records."""
    facts = [("source", str(lineage["source"]))] if lineage.get("source") else []
    if lineage.get("query"):
        facts.append(("query", str(lineage["query"])))
    if lineage.get("files"):
        facts.append(("files", files_words(lineage["files"])))
    if lineage.get("digest"):
        facts.append(("digest", str(lineage["digest"])))
    if lineage.get("rows"):
        facts.append(("rows", rows_words(lineage["rows"])))
    if lineage.get("split"):
        facts.append(("split", split_words(lineage["split"])))
    holdout = lineage.get("holdout")
    if holdout:
        query = f" (query {holdout['query']})" if holdout.get("query") else ""
        facts.append(("holdout", f"{holdout.get('source', '')}{query}: {_count(holdout.get('rows'))} rows, the test split"))
    return facts


def files_words(files: Sequence[Mapping[str, Any]]) -> str:
    """The first MAX_SHOWN_FILES files with their ETag, version id and sha256 where recorded, then how many more."""
    listed = [f for f in files if "uri" in f]
    more = sum(int(f.get("more") or 0) for f in files if "uri" not in f) + max(0, len(listed) - MAX_SHOWN_FILES)
    words = []
    for entry in listed[:MAX_SHOWN_FILES]:
        marks = [f"{label} {entry[key]}" for key, label in (("etag", "ETag"), ("version_id", "version id")) if entry.get(key)]
        if entry.get("sha256"):
            marks.append(f"sha256 {str(entry['sha256'])[:12]}…")
        words.append(str(entry["uri"]) + (f" ({', '.join(marks)})" if marks else ""))
    return "; ".join(words) + (f"; and {more} more" if more else "")


def rows_words(rows: Mapping[str, Any]) -> str:
    """"412 read, 6 dropped (no label: 6); train 280, validation 41, test 85"."""
    dropped = dict(rows.get("dropped") or {})
    text = f"{_count(rows.get('read'))} read, {sum(int(n) for n in dropped.values())} dropped"
    if dropped:
        text += " (" + "; ".join(f"{why}: {int(n)}" for why, n in dropped.items()) + ")"
    splits = [f"{name} {_count(rows[name])}" for name in SPLIT_NAMES if name in rows]
    return text + ("; " + ", ".join(splits) if splits else "")


def split_words(split: Mapping[str, Any]) -> str:
    """"hash of Name, Year (validation 0.1, test 0.2)" or "random, seed 42 (...)"."""
    method = str(split.get("method") or "")
    if method == "hash":
        key = name_list(split.get("key"))
        text = "hash of " + (", ".join(key) if key else "each row's feature and label columns")
    else:
        text = method + (f", seed {split['seed']}" if split.get("seed") is not None else "")
    shares = [f"{name} {_number(split[name])}" for name in SPLIT_NAMES if split.get(name) is not None]
    return text + (f" ({', '.join(shares)})" if shares else "")


def check_outcome(lineage: Mapping[str, Any], drift: Mapping[str, Any]) -> tuple[str, str]:
    """(outcome, accepted_by) of validate_data, from drift.json or else lineage.json's validation."""
    validation = dict(lineage.get("validation") or {})
    outcome = str(drift.get("outcome") or validation.get("outcome") or "")
    return outcome, str(drift.get("accepted_by") or validation.get("accepted_by") or "")


def check_facts(lineage: Mapping[str, Any], drift: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, plain text) of a version's data checks: outcome, reference, what was compared, drifted columns."""
    outcome, accepted_by = check_outcome(lineage, drift)
    if not outcome and not drift:
        return []
    words = CHECK_OUTCOMES.get(outcome, outcome or "not recorded")
    if outcome == "accepted" and accepted_by:
        words = words.replace("accepted:", f"accepted by {accepted_by}:", 1)
    facts = [("outcome", words)]
    reference = dict(drift.get("reference") or {})
    version = reference.get("version", lineage.get("reference_version"))
    if version is not None:
        rows = f" ({_count(reference['rows'])} rows)" if reference.get("rows") is not None else ""
        facts.append(("reference", f"production version {version}{rows}"))
    current = dict(drift.get("current") or {})
    if current.get("rows") is not None:
        new = f", {_count(current['new_rows'])} of them new" if current.get("new_rows") is not None else ""
        facts.append(("compared", f"this run's training split: {_count(current['rows'])} rows{new}"))
    drifted = name_list(_recorded(lineage, drift, "drifted_columns"))
    if drifted or drift.get("rows"):
        facts.append(("drifted columns", ", ".join(drifted) or "none"))
    if drift.get("drift_share") is not None:
        share = (drift.get("settings") or {}).get("share")
        words = f"{'yes' if drift.get('dataset_drift') else 'no'}: {_percent(drift['drift_share'])} of the columns drifted"
        facts.append(("dataset drift", words + (f" (it counts from {_percent(share)})" if share is not None else "")))
    return facts


def schema_problems(lineage: Mapping[str, Any], drift: Mapping[str, Any]) -> list[str]:
    return [str(p) for p in _recorded(lineage, drift, "schema_problems")]


def _recorded(lineage: Mapping[str, Any], drift: Mapping[str, Any], key: str) -> Any:
    """drift.json's value of key where it was published, else lineage.json's validation's."""
    return drift[key] if key in drift else (lineage.get("validation") or {}).get(key) or []


def drift_rows(drift: Mapping[str, Any]) -> list[dict[str, str]]:
    """drift.json's table as text: column, check, test, score, threshold, drifted ("yes"/"no")."""
    return [
        {"column": str(row.get("column", "")), "check": str(row.get("check", "")), "test": str(row.get("test") or ""),
         "score": _number(row.get("score")), "threshold": _number(row.get("threshold")), "drifted": "yes" if row.get("drifted") else "no"}
        for row in drift.get("rows") or []
    ]


DRIFT_COLUMNS = ("column", "check", "test", "score", "threshold", "drifted")


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
    lineage: Mapping[str, Any] | None = None,
    drift: Mapping[str, Any] | None = None,
) -> str:
    """model_card.md for one version, from the spec, the run's parameters (its trigger form) and what evaluate
    and export_onnx handed over. `lineage`: the version's lineage.json (prepare_data's lineage with the
    reference version and validate_data's outcome); `drift`: its drift.json. Without them (a version published
    before issue 14) the card has no Data or Data checks section."""
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
    notes = champion_notes(verdict)
    lines += [f"- {_cell(note)}" for note in notes] + ([""] if notes else [])
    lines += _data_lines(lineage or {})
    lines += _check_lines(lineage or {}, drift or {}, DRIFT_PLOT in plots)
    lines += _io_lines(input_schema, output_schema)
    plots = [name for name in plots if name != DRIFT_PLOT]  # shown under Data checks
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


def _data_lines(lineage: Mapping[str, Any]) -> list[str]:
    facts = lineage_facts(lineage)
    if not facts:
        return []
    return ["## Data", "", "| | |", "| --- | --- |", *(f"| {label} | {_cell(text)} |" for label, text in facts), ""]


def _check_lines(lineage: Mapping[str, Any], drift: Mapping[str, Any], plot: bool) -> list[str]:
    facts = check_facts(lineage, drift)
    if not facts:
        return []
    lines = ["## Data checks", "", "| | |", "| --- | --- |", *(f"| {label} | {_cell(text)} |" for label, text in facts), ""]
    problems = schema_problems(lineage, drift)
    if problems:
        lines += ["Schema problems:", "", *(f"- {_cell(p)}" for p in problems), ""]
    rows = drift_rows(drift)
    if rows:
        lines += ["| " + " | ".join(DRIFT_COLUMNS) + " |", "| " + " | ".join("---" for _ in DRIFT_COLUMNS) + " |"]
        lines += ["| " + " | ".join(_cell(row[c]) for c in DRIFT_COLUMNS) + " |" for row in rows]
        lines.append("")
    if plot:
        lines += [f"![drift: reference against this run's training split]({DRIFT_PLOT})", ""]
    return lines


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


def _percent(share: Any) -> str:
    try:
        return f"{float(share) * 100:.0f}%"
    except (TypeError, ValueError):
        return "—"


def _count(value: Any) -> str:
    try:
        return str(int(value))
    except (TypeError, ValueError):
        return "—"


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

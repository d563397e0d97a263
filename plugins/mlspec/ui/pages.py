"""The Models page's HTML: server-rendered, no scripts, every value escaped (`e`).

Numbers carry their exact value in a `data-value` attribute beside the rounded text, so a test (or a
person's browser tools) can compare them with the registry. Pages are shown inside Airflow's UI (an
iframe under its navigation), so links stay inside the app: `base` is the app's mount point.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from mlspec.ui.data import BrokenSpec, Catalog, ModelStatus, VersionCard, VersionInfo

MAX_FEATURE_ROWS = 100
STATE_COLORS = {
    "production": "#188038",
    "candidate": "#1a73e8",
    "archived": "#80868b",
    "undeployed": "#80868b",
    "rolled_back": "#e8710a",
    "failed": "#d93025",
    "": "#bdc1c6",
}
DECISION_WORDS = {
    "gate_off": "gate off",
    "no_champion": "passed (no production yet)",
    "challenger_wins": "beat production",
    "champion_holds": "lost to production",
}

DASH = '<span class="muted">—</span>'
FILES_GONE = '<span class="muted">files gone from the store</span>'

CSS = """
:root { --fg:#202124; --muted:#5f6368; --line:#dadce0; --bg:#fff; --panel:#f8f9fa; --link:#1a73e8; }
* { box-sizing: border-box; }
body { margin: 0; padding: 16px 24px 48px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); background: var(--bg); }
a { color: var(--link); text-decoration: none; } a:hover { text-decoration: underline; }
h1 { font-size: 22px; margin: 4px 0 4px; } h2 { font-size: 17px; margin: 24px 0 8px; } h3 { font-size: 14px; margin: 12px 0 4px; }
.crumbs { color: var(--muted); font-size: 13px; } .crumbs a { color: var(--muted); }
.lead { color: var(--muted); margin: 0 0 12px; }
table { border-collapse: collapse; margin: 4px 0 8px; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 10px; text-align: left; vertical-align: top; }
td.nowrap, td.num, span.nowrap { white-space: nowrap; }
th { font-weight: 600; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .02em; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; margin: 10px 0; }
.panel.warn { background: #fef7e0; border-color: #f9ab00; }
.panel.errors { background: #fce8e6; border-color: #d93025; }
.panel h2 { margin-top: 0; }
ul.problems { margin: 4px 0 8px; padding-left: 20px; }
ul.problems li { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12.5px; white-space: pre-wrap; }
.badge { display: inline-block; padding: 0 8px; border-radius: 10px; font-size: 12px; color: #fff; background: #80868b; }
.badge.drift { background: #d93025; } .badge.ok { background: #188038; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 4px 0; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12.5px; }
pre { background: #202124; color: #e8eaed; padding: 10px 12px; border-radius: 6px; overflow-x: auto; white-space: pre-wrap;
      word-break: break-all; }
figure { display: inline-block; margin: 0 16px 16px 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 12px; }
.muted { color: var(--muted); }
svg text { font: 11px system-ui, sans-serif; fill: var(--muted); }
"""


def e(value: Any) -> str:
    """HTML-escaped text of anything."""
    return html.escape("" if value is None else str(value), quote=True)


def num(value: Any, digits: int = 6) -> str:
    """A number as text (at most `digits` significant digits); '—' when there is none."""
    if value is None or value == "":
        return "—"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return str(number)
    return f"{number:.{digits}g}"


def num_cell(value: Any, **attrs: str) -> str:
    extra = "".join(f' {key.replace("_", "-")}="{e(v)}"' for key, v in attrs.items())
    exact = "" if value is None else f' data-value="{e(repr(float(value)) if isinstance(value, int | float) else value)}"'
    return f'<td class="num"{exact}{extra}>{e(num(value))}</td>'


def page(title: str, crumbs: Sequence[tuple[str, str | None]], body: str) -> str:
    trail = " › ".join(f'<a href="{e(href)}">{e(text)}</a>' if href else e(text) for text, href in crumbs)
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{e(title)}</title><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<style>{CSS}</style></head><body>"
        f"<nav class=\"crumbs\">{trail}</nav>{body}</body></html>"
    )


def badge(state: str, label: str | None = None) -> str:
    color = STATE_COLORS.get(state, "#80868b")
    return f'<span class="badge" data-state="{e(state)}" style="background:{color}">{e(label or state or "not registered")}</span>'


def problems_panel(problems: Iterable[str], heading: str = "Some backends did not answer") -> str:
    items = "".join(f"<li>{e(p)}</li>" for p in problems)
    if not items:
        return ""
    return f'<section class="panel warn" id="backend-problems"><h2>{e(heading)}</h2><ul class="problems">{items}</ul></section>'


def spec_errors_panel(broken: Sequence[BrokenSpec], specs_dir: str) -> str:
    if not broken:
        return ""
    parts = [
        f'<section class="panel errors" id="spec-errors"><h2>Specs with errors ({len(broken)})</h2>'
        f'<p class="lead">These files in {e(specs_dir)} do not compile; each is a paused placeholder DAG tagged '
        "<code>invalid-spec</code>. <code>mlspec lint</code> shows the same problems.</p>"
    ]
    for item in broken:
        lines = "".join(f'<li class="problem">{e(p)}</li>' for p in item.problems)
        parts.append(
            f'<div class="broken-spec" data-file="{e(item.file)}" data-dag-id="{e(item.name)}"><h3>{e(item.file)} '
            f'<span class="muted">(DAG {e(item.name)}, {len(item.problems)} problem{"s" if len(item.problems) != 1 else ""})</span></h3>'
            f'<ul class="problems">{lines}</ul></div>'
        )
    return "".join(parts) + "</section>"


# -- the overview -----------------------------------------------------------------------------
def overview_page(base: str, catalog: Catalog, statuses: Sequence[ModelStatus]) -> str:
    rows = []
    for status in statuses:
        spec = status.spec
        production = status.version(status.production) if status.production is not None else None
        metric = status.main_metric
        value = production.metrics.get(metric) if production is not None else None
        latest = status.latest
        rows.append(
            f'<tr data-model="{e(spec.name)}"><td><a href="{e(base)}/models/{e(spec.name)}">{e(spec.name)}</a>'
            f'<div class="muted">{e(spec.metadata.description)}</div></td>'
            f"<td>{e(spec.model.framework)} · {e(spec.model.task)}</td>"
            f'<td data-field="production">{_production_text(status)}</td>'
            f'<td data-field="serving">{_serving_text(status)}</td>'
            f'<td class="num" data-field="latest">{e(latest.version) if latest else "—"}</td>'
            f"<td>{e(metric)}</td>{num_cell(value, data_field='production-metric')}"
            f'<td class="num">{len(status.versions)}</td>'
            f"<td>{'<br>'.join(e(p) for p in status.problems) or DASH}</td></tr>"
        )
    table = (
        '<table id="models"><thead><tr><th>model</th><th>framework · task</th><th>production</th><th>serving</th>'
        '<th class="num">latest</th><th>main metric</th><th class="num">production value</th><th class="num">versions</th>'
        "<th>notes</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
        if rows else '<p class="muted">No compiled specs yet.</p>'
    )
    count = f"{len(catalog.models)} model{'s' if len(catalog.models) != 1 else ''}"
    errors = f", {len(catalog.broken)} spec{'s' if len(catalog.broken) != 1 else ''} with errors" if catalog.broken else ""
    body = (
        f"<h1>Models</h1><p class=\"lead\">Every spec in <code>{e(catalog.specs_dir)}</code>: {count}{errors}. "
        "Production is what the registry says; serving is what the endpoint answers with.</p>"
        + spec_errors_panel(catalog.broken, str(catalog.specs_dir))
        + table
    )
    return page("Models · mlspec", [("Models", None)], body)


def _production_text(status: ModelStatus) -> str:
    if not status.registry_ok:
        return '<span class="muted">registry unavailable</span>'
    if status.production is None:
        return '<span class="muted">none yet</span>'
    return f'<span class="nowrap" data-value="{e(status.production)}">version {e(status.production)}</span>'


def _serving_text(status: ModelStatus) -> str:
    if not status.serving_ok:
        return '<span class="muted">unknown (serving unavailable)</span>'
    served = "not served" if status.served is None else f"version {status.served}"
    drift = ' <span class="badge drift" data-drift="true">drift</span>' if status.drift else ""
    return f'<span class="nowrap" data-value="{e(status.served if status.served is not None else "")}">{e(served)}</span>{drift}'


# -- one model --------------------------------------------------------------------------------
def model_section(base: str, status: ModelStatus, curl: str | None) -> str:
    spec = status.spec
    metrics = list(spec.evaluation.metrics)
    facts = [
        ("owner", e(spec.metadata.owner)),
        ("framework · task", f"{e(spec.model.framework)} · {e(spec.model.task)}"),
        ("data source", f"<code>{e(spec.data.source)}</code>"),
        ("DAG", f"<code>{e(spec.name)}</code> (from <code>{e(spec.source_file)}</code>)"),
        ("registry", e(_registry_text(spec))),
        ("production (registry)", _production_text(status)),
        ("serving", _serving_text(status) + f' <span class="muted">at {e(status.endpoint())}</span>'),
    ]
    if status.history:
        facts.append(("production history", e(" → ".join(f"v{v}" for v in status.history))))
    if status.drift:
        facts.append((
            "drift",
            f'<span class="badge drift">drift</span> serving answers with {e(_version_word(status.served))} but the registry '
            f"says production is {e(_version_word(status.production))}: <code>mlspec status {e(spec.source_file)}</code> "
            "shows it, <code>mlspec deploy --version N</code> fixes it",
        ))
    elif status.registry_ok and status.serving_ok:
        facts.append(("drift", '<span class="badge ok" data-drift="false">in sync</span> serving follows the registry'))
    head = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in facts)
    rows = []
    for info in reversed(status.versions):
        marks = []
        if info.version == status.production and info.state != "production":
            marks.append(badge("production", "production"))
        if status.serving_ok and info.version == status.served:
            marks.append('<span class="badge ok">serving</span>')
        cells = "".join(num_cell(info.metrics.get(m), data_metric=m) for m in metrics)
        rows.append(
            f'<tr data-version="{info.version}"><td class="nowrap"><a href="{e(base)}/models/{e(spec.name)}/versions/{info.version}">'
            f"version {info.version}</a></td><td>{badge(info.state) if info.registered else badge('', 'not registered')} "
            f"{' '.join(marks)}</td>{cells}<td data-field=\"champion\">{e(champion_short(info.champion))}</td>"
            f"<td><code>{e(info.run_id)}</code></td><td>{e(_when(info.created_ms))}</td>"
            f"<td>{'' if info.in_store else FILES_GONE}</td></tr>"
        )
    versions = (
        '<table id="versions"><thead><tr><th>version</th><th>state</th>'
        + "".join(f'<th class="num">{e(m)}</th>' for m in metrics)
        + "<th>champion gate</th><th>DAG run</th><th>registered</th><th></th></tr></thead><tbody>"
        + "".join(rows) + "</tbody></table>"
        if rows else '<p class="muted">No version yet: trigger the DAG.</p>'
    )
    chart = metric_chart(status, status.main_metric) if status.versions else ""
    try_it = (
        "<h2>Try it</h2><p class=\"lead\">The production version answers at this endpoint (one row: each feature's training mean):</p>"
        f'<pre id="curl">{e(curl)}</pre>'
        if curl else ""
    )
    return (
        f'<h1 data-model="{e(spec.name)}">{e(spec.name)}</h1><p class="lead">{e(spec.metadata.description)}</p>'
        + problems_panel(status.problems)
        + f'<dl class="facts" id="status">{head}</dl>'
        + (f"<h2>{e(status.main_metric)} over versions</h2>{chart}" if chart else "")
        + f"<h2>Versions ({len(status.versions)})</h2>{versions}{try_it}"
    )


def model_page(base: str, status: ModelStatus, curl: str | None) -> str:
    return page(f"{status.name} · Models", [("Models", f"{base}/"), (status.name, None)], model_section(base, status, curl))


def _registry_text(spec: Any) -> str:
    return spec.registry.backend + (f" (connection {spec.registry.connection})" if spec.registry.connection else " (embedded)")


def _version_word(version: int | None) -> str:
    return "nothing" if version is None else f"version {version}"


def _when(created_ms: int | None) -> str:
    if not created_ms:
        return ""
    return datetime.fromtimestamp(created_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def champion_short(champion: Mapping[str, str]) -> str:
    decision = champion.get("decision", "")
    if not decision:
        return "—"
    text = DECISION_WORDS.get(decision, decision)
    if champion.get("champion_version") and champion.get("champion"):
        text += f" ({champion.get('metric', '')} {num(champion.get('challenger'), 4)} vs v{champion['champion_version']} {num(champion['champion'], 4)})"
    return text


# -- the chart --------------------------------------------------------------------------------
def metric_chart(status: ModelStatus, metric: str, width: int = 720, height: int = 240) -> str:
    """An inline SVG of `metric` over the versions: one point per version coloured by its state, production
    ringed, the spec's threshold dashed."""
    points = [(info, info.metrics[metric]) for info in status.versions if isinstance(info.metrics.get(metric), int | float)]
    if not points:
        return f'<p class="muted">No version has a recorded {e(metric)}.</p>'
    left, right, top, bottom = 60, 20, 16, 34
    values = [v for _, v in points]
    threshold = status.spec.evaluation.thresholds.get(metric)
    limits = [t for t in ((threshold.min, threshold.max) if threshold else ()) if t is not None]
    low, high = min(values + limits), max(values + limits)
    pad = (high - low) * 0.15 or max(abs(high) * 0.05, 0.01)
    low, high = low - pad, high + pad
    from mlspec.vocabulary import METRICS

    if metric in METRICS and METRICS[metric].bounded:
        low, high = max(low, 0.0), min(high, 1.0)
    span = high - low or 1.0
    inner_w, inner_h = width - left - right, height - top - bottom
    step = inner_w / max(len(points) - 1, 1)

    def x(i: int) -> float:
        return left + (i * step if len(points) > 1 else inner_w / 2)

    def y(v: float) -> float:
        return top + (high - v) / span * inner_h

    parts = [
        f'<svg id="metric-chart" role="img" aria-label="{e(metric)} over versions" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<rect x="{left}" y="{top}" width="{inner_w}" height="{inner_h}" fill="#fff" stroke="#dadce0"/>',
    ]
    for k in range(5):
        v = low + span * k / 4
        parts.append(f'<line x1="{left}" x2="{left + inner_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#f1f3f4"/>')
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{e(num(v, 4))}</text>')
    for bound, value in (("min", threshold.min if threshold else None), ("max", threshold.max if threshold else None)):
        if value is not None:
            parts.append(
                f'<line x1="{left}" x2="{left + inner_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#d93025" stroke-dasharray="5 4"/>'
                f'<text x="{left + inner_w - 4}" y="{y(value) - 4:.1f}" text-anchor="end">threshold {bound} {e(num(value, 4))}</text>'
            )
    path = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, (_, v) in enumerate(points))
    parts.append(f'<polyline points="{path}" fill="none" stroke="#9aa0a6" stroke-width="1.5"/>')
    label_every = max(1, math.ceil(len(points) / 24))
    for i, (info, v) in enumerate(points):
        color = STATE_COLORS.get(info.state, "#80868b")
        ring = (
            f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="9" fill="none" stroke="{STATE_COLORS["production"]}" stroke-width="2"/>'
            if info.version == status.production else ""
        )
        parts.append(
            f'<g class="point" data-version="{info.version}" data-value="{e(repr(float(v)))}">{ring}'
            f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="5" fill="{color}"><title>version {info.version}: {e(metric)} '
            f"{e(num(v))} ({e(info.state or 'not registered')})</title></circle></g>"
        )
        if i % label_every == 0 or i == len(points) - 1:
            parts.append(f'<text x="{x(i):.1f}" y="{height - 12}" text-anchor="middle">v{info.version}</text>')
    parts.append("</svg>")
    legend = " ".join(badge(state) for state in sorted({info.state for info, _ in points}))
    return "".join(parts) + f'<div class="muted">{legend} — production is ringed.</div>'


# -- one version ------------------------------------------------------------------------------
def card_page(base: str, card: VersionCard, curl: str | None, summary: str | None) -> str:
    status, info, spec = card.status, card.info, card.status.spec
    name, number = spec.name, card.number
    files_base = f"{base}/models/{name}/versions/{number}/files"
    marks = [badge(info.state) if info is not None and info.registered else badge("", "not registered")]
    if number == status.production and (info is None or info.state != "production"):
        marks.append(badge("production", "production"))
    if status.serving_ok and number == status.served:
        marks.append('<span class="badge ok">serving</span>')
    body = [f'<h1 data-model="{e(name)}" data-version="{number}">{e(name)} · version {number}</h1>',
            f'<p class="lead">{" ".join(marks)} {e(spec.metadata.description)}</p>',
            problems_panel(status.problems + card.problems)]
    manifest = card.manifest or {}
    lineage = [
        ("model", e(summary) if summary else '<span class="muted">trained from another revision of the spec (hash below); see the model card</span>'),
        ("framework · task", f"{e(info.framework if info and info.framework else spec.model.framework)} · {e(info.task if info and info.task else spec.model.task)}"),
        ("data source", f"<code>{e((info.data_source if info else '') or manifest.get('data_source', ''))}</code>"),
        ("spec hash", f"<code>{e((info.spec_hash if info else '') or manifest.get('spec_hash', ''))}</code>"),
        ("DAG run", f"<code>{e((info.dag_id if info else '') or manifest.get('dag_id', ''))}</code> / <code data-field=\"run-id\">{e(info.run_id if info else manifest.get('run_id', ''))}</code>"),
        ("registry", e(f"{_registry_text(spec)}, registry version {info.registry_version}" if info and info.registry_version else _registry_text(spec))),
        ("stored at", f"<code>{e(info.source_uri if info and info.source_uri else '')}</code>"),
    ]
    if info is not None and info.created_ms:
        lineage.append(("registered", e(_when(info.created_ms))))
    if card.has_card:
        lineage.append(("model card", f'<a href="{e(files_base)}/model_card.md">model_card.md</a>'))
    body.append('<h2>Lineage</h2><dl class="facts" id="lineage">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in lineage) + "</dl>")
    body.append(_metrics_table(card))
    body.append(_champion_section(info))
    body.append(_evaluation_details(card))
    if card.plots:
        figures = "".join(
            f'<figure><img src="{e(files_base)}/{e(p)}" alt="{e(p)}" data-file="{e(p)}"><figcaption>{e(p)}</figcaption></figure>'
            for p in card.plots
        )
        body.append(f'<h2>Plots</h2><div id="plots">{figures}</div>')
    elif card.manifest is not None:
        body.append('<h2>Plots</h2><p class="muted">This version was published without plots.</p>')
    body.append(_schema_sections(card))
    body.append(_files_table(card, files_base))
    if curl:
        served_now = number == status.served
        where = "It serves now; this" if served_now else f"While version {number} is loaded on the server, this"
        body.append(f'<h2>Try it</h2><p class="lead">{e(where)} calls it (one row: each feature\'s training mean):</p><pre id="curl">{e(curl)}</pre>')
    crumbs = [("Models", f"{base}/"), (name, f"{base}/models/{name}"), (f"version {number}", None)]
    return page(f"{name} version {number} · Models", crumbs, "".join(body))


def _metrics_table(card: VersionCard) -> str:
    info, spec = card.info, card.status.spec
    metrics = dict(info.metrics) if info is not None and info.metrics else {}
    source = info.metrics_from if info is not None and info.metrics else ""
    if not metrics and card.evaluation:
        metrics = {k: v for k, v in card.evaluation.items() if k in spec.evaluation.metrics and isinstance(v, int | float)}
        source = "store (metrics.json)"
    if not metrics:
        return '<h2>Test metrics</h2><p class="muted">No metrics recorded.</p>'
    order = [m for m in spec.evaluation.metrics if m in metrics] + sorted(m for m in metrics if m not in spec.evaluation.metrics)
    rows = []
    for metric, value in ((m, metrics[m]) for m in order):
        threshold = spec.evaluation.thresholds.get(metric)
        limit = ", ".join(
            part for part in (f"≥ {num(threshold.min)}" if threshold and threshold.min is not None else "",
                              f"≤ {num(threshold.max)}" if threshold and threshold.max is not None else "") if part
        ) or "—"
        rows.append(f"<tr><td>{e(metric)}</td>{num_cell(value, data_metric=metric)}<td>{e(limit)}</td></tr>")
    return (
        f'<h2>Test metrics <span class="muted">(from the {e(source)})</span></h2><table id="metrics"><thead><tr><th>metric</th>'
        '<th class="num">value</th><th>threshold (current spec)</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table>"
    )


def _champion_section(info: VersionInfo | None) -> str:
    if info is None or not info.champion:
        return ""
    from mlspec.model_card import decision_text

    text = decision_text(info.champion)
    return f'<h2>Champion gate</h2><p id="champion" data-decision="{e(info.champion.get("decision", ""))}">{e(text[:1].upper() + text[1:])}.</p>'


def _evaluation_details(card: VersionCard) -> str:
    evaluation = card.evaluation or {}
    if "confusion_matrix" in evaluation:
        classes = list((card.output_schema or {}).get("class_names") or [])
        matrix = evaluation["confusion_matrix"]
        if len(classes) != len(matrix):
            classes = [str(i) for i in range(len(matrix))]
        head = "".join(f'<th class="num">{e(c)}</th>' for c in classes)
        rows = "".join(
            f"<tr><th>{e(classes[i])}</th>" + "".join(f'<td class="num">{e(int(n))}</td>' for n in row) + "</tr>"
            for i, row in enumerate(matrix)
        )
        return (
            '<h2>Confusion matrix</h2><p class="lead">Test samples; rows: true class, columns: predicted class.</p>'
            f'<table id="confusion-matrix"><thead><tr><th>true \\ predicted</th>{head}</tr></thead><tbody>{rows}</tbody></table>'
        )
    residuals = evaluation.get("residuals")
    if isinstance(residuals, Mapping):
        facts = "".join(f"<dt>{e(k)}</dt><dd>{e(num(residuals.get(k)))}</dd>" for k in ("mean", "std", "max_abs"))
        return f'<h2>Residuals</h2><p class="lead">true − predicted on the test split.</p><dl class="facts" id="residuals">{facts}</dl>'
    return ""


def _schema_sections(card: VersionCard) -> str:
    parts = []
    schema = card.input_schema
    if schema:
        features = list(schema.get("features") or [])
        rows = "".join(
            f"<tr><td>{e(f.get('name'))}</td><td>{e(f.get('dtype'))}</td>"
            + "".join(num_cell(f.get(k)) for k in ("min", "max", "mean", "std"))
            + f'<td class="num">{e(f.get("missing", 0))}</td></tr>'
            for f in features[:MAX_FEATURE_ROWS]
        )
        more = f'<p class="muted">… and {len(features) - MAX_FEATURE_ROWS} more in input_schema.json.</p>' if len(features) > MAX_FEATURE_ROWS else ""
        parts.append(
            f"<h2>Input</h2><p class=\"lead\"><code>{e(schema.get('name'))}</code>, {e(schema.get('datatype'))}, shape "
            f"<code>{e(json.dumps(schema.get('shape')))}</code>: {len(features)} raw features, statistics on the training split.</p>"
            '<table id="input-schema"><thead><tr><th>feature</th><th>dtype</th><th class="num">min</th><th class="num">max</th>'
            f'<th class="num">mean</th><th class="num">std</th><th class="num">missing</th></tr></thead><tbody>{rows}</tbody></table>{more}'
        )
    output = card.output_schema
    if output:
        rows = "".join(
            f"<tr><td>{e(o.get('name'))}</td><td>{e(o.get('datatype'))}</td><td><code>{e(json.dumps(o.get('shape')))}</code></td></tr>"
            for o in output.get("outputs") or []
        )
        classes = output.get("class_names") or []
        class_list = (
            '<p class="lead">Classes (index = <code>label</code>): '
            + ", ".join(f"{i} = {e(c)}" for i, c in enumerate(classes)) + "</p>" if classes else ""
        )
        parts.append(
            '<h2>Output</h2><table id="output-schema"><thead><tr><th>output</th><th>datatype</th><th>shape</th></tr></thead>'
            f"<tbody>{rows}</tbody></table>{class_list}"
        )
    return "".join(parts)


def _files_table(card: VersionCard, files_base: str) -> str:
    if not card.files:
        return ""
    recorded = card.info.files if card.info is not None else {}
    rows = []
    for name, digest in sorted(card.files.items()):
        agrees = recorded.get(name)
        check = "—" if agrees is None else ("registry agrees" if agrees == digest else "registry differs!")
        rows.append(
            f'<tr><td><a href="{e(files_base)}/{e(name)}">{e(name)}</a></td><td><code data-file="{e(name)}">{e(digest)}</code></td>'
            f"<td>{e(check)}</td></tr>"
        )
    return (
        '<h2>Files</h2><p class="lead">The manifest\'s sha256 of each published file; the app checks it before serving a file.</p>'
        '<table id="files"><thead><tr><th>file</th><th>sha256 (manifest)</th><th>registry</th></tr></thead><tbody>'
        + "".join(rows) + "</tbody></table>"
    )


# -- other pages ------------------------------------------------------------------------------
def message_page(base: str, title: str, message: str, extra: str = "") -> str:
    return page(f"{title} · Models", [("Models", f"{base}/"), (title, None)], f"<h1>{e(title)}</h1><p>{e(message)}</p>{extra}")


def broken_model_page(base: str, broken: BrokenSpec, specs_dir: str) -> str:
    body = (
        f"<h1>{e(broken.name)}</h1><p class=\"lead\">This DAG's spec does not compile, so there is no model to show.</p>"
        + spec_errors_panel([broken], specs_dir)
    )
    return page(f"{broken.name} · Models", [("Models", f"{base}/"), (broken.name, None)], body)

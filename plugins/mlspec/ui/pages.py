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
from urllib.parse import quote, unquote, urlsplit

from mlspec.model_card import (
    DRIFT_COLUMNS,
    MAX_SHOWN_CATEGORIES,
    category_words,
    champion_notes,
    check_facts,
    decision_text,
    drift_rows,
    example_words,
    lineage_facts,
    schema_problems,
)
from mlspec.registry.base import action_words
from mlspec.rollout.gates import is_ceiling
from mlspec.rollout.plan import CANARY, SHADOW
from mlspec.ui.data import BrokenSpec, Catalog, ModelStatus, VersionCard, VersionInfo
from mlspec.ui.mount import URL_PREFIX
from mlspec.vocabulary import DRIFT_PLOT, METRICS, ROLLOUT_FINAL_STATES, ROLLOUT_STATES

# What a model's example request sends when the page is not told (a single-input model's).
MEAN_ROW = example_words({})

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
    "tie": "tied with production (the champion holds)",
}

# A rollout's state as its badge shows it: running, paused, held, awaiting_approval, completed, rolled_back,
# aborted (vocabulary.ROLLOUT_STATES, in that order).
ROLLOUT_COLORS = dict(zip(
    ROLLOUT_STATES, ("#1a73e8", "#b06000", "#b06000", "#9334e6", "#188038", "#e8710a", "#d93025"), strict=True
))

OPERATIONS_DAG = "mlspec_operations"
NOTE_CHARS = 90  # a problem's summary line on the Models list
# Training settings shown first, in this order; the others follow by name.
FIRST_SETTINGS = ("estimator", "epochs", "batch_size", "optimizer.name", "optimizer.learning_rate", "loss", "layers")

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
details.notes summary { cursor: pointer; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; max-width: 46em; }
details.notes ul { margin: 4px 0; padding-left: 18px; font-size: 12.5px; }
tr.this-version td { font-weight: 600; }
td.differs { background: #fef7e0; }
tr.drifted td { color: #d93025; font-weight: 600; }
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


# -- links into Airflow's UI (the page is framed by it: links open at the top) ---------------
def airflow_base(base: str) -> str:
    """Airflow's UI root for an app mounted at `base` (…/mlspec): "" when Airflow is served at /."""
    return base[: -len(URL_PREFIX)] if base.endswith(URL_PREFIX) else ""


def dag_href(base: str, dag_id: str) -> str:
    """The DAG's page in Airflow 3's UI; its Trigger button opens the trigger form (Airflow has no URL that
    opens the form itself)."""
    return f"{airflow_base(base)}/dags/{quote(dag_id, safe='')}"


def run_href(base: str, dag_id: str, run_id: str) -> str:
    return f"{dag_href(base, dag_id)}/runs/{quote(run_id, safe='')}"


def airflow_link(href: str, text: str, **attrs: str) -> str:
    extra = "".join(f' {key.replace("_", "-")}="{e(v)}"' for key, v in attrs.items())
    return f'<a href="{e(href)}" target="_top"{extra}>{e(text)}</a>'


def run_link(base: str, dag_id: str, run_id: str) -> str:
    """A DAG run as a link to its page in Airflow ("—" when unknown)."""
    if not run_id:
        return DASH
    if not dag_id:
        return f"<code>{e(run_id)}</code>"
    return airflow_link(run_href(base, dag_id, run_id), run_id, data_field="run-link")


def _change_run(base: str, run_url: str, run_id: str) -> tuple[str, str]:
    """(href, dag_id) of an audit entry's run: its URL's /dags/<dag>/runs/<run> under this Airflow (the entry's
    own host may be another name of it), else the URL as recorded; ("", "") when there is none."""
    path = urlsplit(run_url).path if run_url else ""
    parts = path.rstrip("/").split("/")
    if len(parts) >= 4 and parts[-4] == "dags" and parts[-2] == "runs":
        dag_id, recorded_run = unquote(parts[-3]), unquote(parts[-1])
        return run_href(base, dag_id, recorded_run or run_id), dag_id
    if run_url.startswith(("http://", "https://")):
        return run_url, ""
    return "", ""


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


def problems_panel(problems: Iterable[str], heading: str = "Some backends did not answer or are not set up here") -> str:
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
            f'<td data-field="serving">{_serving_text(status)}{_rollout_mark(status)}</td>'
            f'<td class="num" data-field="latest">{e(latest.version) if latest else "—"}</td>'
            f"<td>{e(metric)}</td>{num_cell(value, data_field='production-metric')}"
            f'<td class="num">{len(status.versions)}</td>'
            f'<td data-field="last-change">{_last_change(status)}</td>'
            f'<td data-field="notes">{notes(status.problems, _needs(spec))}</td></tr>'
        )
    table = (
        '<table id="models"><thead><tr><th>model</th><th>framework · task</th><th>production</th><th>serving</th>'
        '<th class="num">latest</th><th>main metric</th><th class="num">production value</th><th class="num">versions</th>'
        "<th>last production change</th><th>notes</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
        if rows else '<p class="muted">No compiled specs yet.</p>'
    )
    count = f"{len(catalog.models)} model{'s' if len(catalog.models) != 1 else ''}"
    errors = f", {len(catalog.broken)} spec{'s' if len(catalog.broken) != 1 else ''} with errors" if catalog.broken else ""
    body = (
        f"<h1>Models</h1><p class=\"lead\">Every spec in <code>{e(catalog.specs_dir)}</code>: {count}{errors}. "
        "Production is what the registry says; serving is what the endpoint answers with. "
        f"To deploy, roll back or undeploy a version: {airflow_link(dag_href(base, OPERATIONS_DAG), OPERATIONS_DAG, data_field='operations')} "
        "(Trigger, then pick the model, the action and the version).</p>"
        + spec_errors_panel(catalog.broken, str(catalog.specs_dir))
        + table
    )
    return page("Models · mlspec", [("Models", None)], body)


def _needs(spec: Any) -> str:
    """What the spec's tags say it needs beyond this machine (needs-internet, needs-compose-stack)."""
    return ", ".join(tag for tag in spec.metadata.tags if str(tag).startswith("needs-"))


def notes(problems: Sequence[str], needs: str = "") -> str:
    """A model's problems as one short line (the first, cut; what the spec's tags say it needs first), every
    one of them in full behind it."""
    if not problems:
        return DASH
    first = problems[0]
    short = first if len(first) <= NOTE_CHARS else first[: NOTE_CHARS - 1].rstrip() + "…"
    if needs:
        short = f"{needs}: {short}"
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    items = "".join(f"<li>{e(p)}</li>" for p in problems)
    return f'<details class="notes"><summary title="{e(first)}">{e(short)}{e(more)}</summary><ul>{items}</ul></details>'


def _last_change(status: ModelStatus) -> str:
    moves = _production_moves(status.changes)  # a failed candidate put back on production moved nothing
    if not moves:
        return DASH if status.changes_ok else '<span class="muted">unknown</span>'
    change = status.changes[moves[-1]]
    return (f'<span class="nowrap">{e(_versions_moved(change))}</span> <span class="muted">{e(action_words(change.action))} by '
            f"{e(change.actor)}, {e(_at(change.at))}</span>")


def _production_text(status: ModelStatus) -> str:
    if "registry" in status.unset_connections:
        return '<span class="muted">not set up here</span>'
    if not status.registry_ok:
        return '<span class="muted">registry unavailable</span>'
    if status.production is None:
        return '<span class="muted">none yet</span>'
    return f'<span class="nowrap" data-value="{e(status.production)}">version {e(status.production)}</span>'


def _rollout_mark(status: ModelStatus) -> str:
    """The Models list's mark of a rollout under way: its state and the candidate."""
    info = status.rollout
    return "" if info is None else f' {rollout_badge(info.rollout)} <span class="muted">of version {info.version}</span>'


def _serving_text(status: ModelStatus) -> str:
    if "serving" in status.unset_connections:
        return '<span class="muted">not set up here</span>'
    if not status.serving_ok:
        return '<span class="muted">unknown (serving unavailable)</span>'
    served = "not served" if status.served is None else f"version {status.served}"
    drift = ' <span class="badge drift" data-drift="true">drift</span>' if status.drift else ""
    return f'<span class="nowrap" data-value="{e(status.served if status.served is not None else "")}">{e(served)}</span>{drift}'


# -- one model --------------------------------------------------------------------------------
def model_section(base: str, status: ModelStatus, curl: str | None, curl_words: str = MEAN_ROW) -> str:
    """`curl`: the example request for what serves; `curl_words`: what it sends (model_card.example_words)."""
    spec = status.spec
    metrics = list(spec.evaluation.metrics)
    facts = [
        ("owner", e(spec.metadata.owner)),
        ("framework · task", f"{e(spec.model.framework)} · {e(spec.model.task)}"),
        ("data source", f"<code>{e(spec.data.source)}</code>"),
        ("DAG", f"{airflow_link(dag_href(base, spec.name), spec.name, data_field='dag')} (from <code>{e(spec.source_file)}</code>)"),
        ("run it", run_it(base, spec)),
        ("registry", e(_registry_text(spec))),
        ("production (registry)", _production_text(status)),
        ("serving", _serving_text(status) + f' <span class="muted">at {e(status.endpoint())}</span>'),
    ]
    if status.history:
        facts.append(("production history", e(" → ".join(f"v{v}" for v in status.history)) + ' <span class="muted">(who, when and why: below)</span>'))
    if status.drift:
        facts.append((
            "drift",
            f'<span class="badge drift">drift</span> serving answers with {e(_version_word(status.served))} but the registry '
            f"says production is {e(_version_word(status.production))}: <code>mlspec status {e(spec.source_file)}</code> "
            f"shows it, <code>mlspec deploy {e(spec.source_file)} --version N</code> fixes it",
        ))
    elif status.registry_ok and status.serving_ok:
        facts.append(("drift", '<span class="badge ok" data-drift="false">in sync</span> serving follows the registry'))
    if status.rollout is not None:
        facts.append(("rollout", rollout_fact(base, spec.name, status.rollout)))
    head = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in facts)
    rows = []
    for info in reversed(status.versions):
        marks = []
        if info.version == status.production and info.state != "production":
            marks.append(badge("production", "production"))
        if status.serving_ok and info.version == status.served:
            marks.append('<span class="badge ok">serving</span>')
        if info.version == status.rollout_version:
            marks.append(rollout_badge(info.rollout))
        cells = "".join(num_cell(info.metrics.get(m), data_metric=m) for m in metrics)
        rows.append(
            f'<tr data-version="{info.version}"><td class="nowrap"><a href="{e(base)}/models/{e(spec.name)}/versions/{info.version}">'
            f"version {info.version}</a></td><td>{badge(info.state) if info.registered else badge('', 'not registered')} "
            f"{' '.join(marks)}</td>{cells}<td data-field=\"champion\">{e(champion_short(info.champion))}</td>"
            f"<td data-field=\"data\">{_data_short(info)}</td>"
            f"<td>{run_link(base, info.dag_id or spec.name, info.run_id)}</td><td>{e(_when(info.created_ms))}</td>"
            f"<td>{'' if info.in_store else FILES_GONE}</td></tr>"
        )
    versions = (
        '<table id="versions"><thead><tr><th>version</th><th>state</th>'
        + "".join(f'<th class="num">{e(m)}</th>' for m in metrics)
        + "<th>champion gate</th><th>data (digest · checks)</th><th>DAG run</th><th>registered</th><th></th></tr></thead><tbody>"
        + "".join(rows) + "</tbody></table>"
        if rows else '<p class="muted">No version yet: trigger the DAG.</p>'
    )
    chart = metric_chart(status, status.main_metric) if status.versions else ""
    try_it = (
        f"<h2>Try it</h2><p class=\"lead\">Serving answers with version {e(status.served)} at this endpoint "
        f"({e(curl_words)}):</p>"
        f'<pre id="curl">{e(curl)}</pre>'
        if curl else ""
    )
    return (
        f'<h1 data-model="{e(spec.name)}">{e(spec.name)}</h1><p class="lead">{e(spec.metadata.description)}</p>'
        + problems_panel(status.problems)
        + f'<dl class="facts" id="status">{head}</dl>'
        + (f"<h2>{e(status.main_metric)} over versions</h2>{chart}" if chart else "")
        + f"<h2>Versions ({len(status.versions)})</h2>{versions}"
        + audit_timeline(base, status)
        + try_it
    )


def _data_short(info: VersionInfo) -> str:
    """Which data trained a version, at a glance: the start of its digest and its data checks' outcome, from its
    registry tags (versions with the same digest were trained on the same data)."""
    lineage = info.lineage
    if not lineage.get("digest"):
        return DASH
    digest = str(lineage["digest"])
    text = f'<code title="{e(digest)}">{e(digest.removeprefix("sha256:")[:12])}</code>'
    validation = lineage.get("validation") or {}
    if validation.get("outcome"):
        drifted = ", ".join(validation.get("drifted_columns") or [])
        text += f" · {e(validation['outcome'])}" + (f" ({e(drifted)})" if drifted else "")
    return text


def model_page(base: str, status: ModelStatus, curl: str | None, curl_words: str = MEAN_ROW) -> str:
    return page(f"{status.name} · Models", [("Models", f"{base}/"), (status.name, None)], model_section(base, status, curl, curl_words))


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


# -- the audit trail of production ------------------------------------------------------------
def _v(version: int | None) -> str:
    return "nothing" if version is None else f"v{version}"


def _to(change: Any) -> str:
    """ " to v2" after an action's words; nothing when the change left no version (an undeploy)."""
    return "" if change.to_version is None else f" to {e(_v(change.to_version))}"


def _versions_moved(change: Any) -> str:
    return f"{_v(change.from_version)} → {_v(change.to_version)}"


def _production_moves(changes: list[Any]) -> list[int]:
    """Indexes of the audit entries that changed production: not an automatic rollback whose target already
    was production (the pipeline's candidate failed its smoke test and serving went back; the registry never
    moved), recorded v2 → v2, or v3 → v2 by mlspec versions before that was fixed."""
    moves: list[int] = []
    production: int | None = None
    for i, change in enumerate(changes):
        if change.action == "auto_rollback" and (
            change.from_version == change.to_version or (moves and change.to_version == production)
        ):
            continue
        moves.append(i)
        production = change.to_version
    return moves


def _at(at: str) -> str:
    """An audit time (ISO-8601 UTC) as the page writes times."""
    try:
        when = datetime.fromisoformat(at.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return at
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _via(base: str, change: Any, with_dag: bool = True) -> str:
    """Where a change was made: the run (a link into Airflow), or the CLI."""
    href, dag_id = _change_run(base, change.run_url, change.run_id)
    if href:
        label = f"{dag_id} run {change.run_id}" if dag_id and with_dag else change.run_id or href
        return airflow_link(href, label, data_field="change-run")
    if change.actor.startswith("cli:"):
        return "the mlspec CLI"
    return f"<code>{e(change.run_id)}</code>" if change.run_id else DASH


def audit_timeline(base: str, status: ModelStatus, version: int | None = None) -> str:
    """Every recorded change of production, newest first: time, actor, action, from → to, reason, run. On a
    version's card the rows that involve that version are marked."""
    if not status.registry_ok:
        return ""
    heading = "<h2>Production changes</h2>"
    if not status.changes_ok:
        return heading + '<p class="muted" id="audit-trail">The registry\'s audit trail could not be read (see above).</p>'
    if not status.changes:
        return heading + ('<p class="muted" id="audit-trail">No change of production is recorded yet: the first promotion, '
                          "deploy or rollback will appear here.</p>")
    rows = []
    for change in reversed(status.changes):
        mine = ' class="this-version"' if version is not None and version in (change.from_version, change.to_version) else ""
        rows.append(
            f'<tr data-action="{e(change.action)}" data-from="{e(change.from_version if change.from_version is not None else "")}" '
            f'data-to="{e(change.to_version if change.to_version is not None else "")}"{mine}>'
            f'<td class="nowrap" data-field="at" data-value="{e(change.at)}">{e(_at(change.at))}</td>'
            f'<td data-field="actor">{e(change.actor)}</td><td data-field="action">{e(action_words(change.action))}</td>'
            f'<td class="nowrap" data-field="moved">{e(_versions_moved(change))}</td>'
            f'<td data-field="reason">{e(change.reason)}</td><td data-field="run">{_via(base, change)}</td></tr>'
        )
    return (
        f'{heading}<p class="lead">Who changed production, when, how and why (the registry\'s audit trail), newest first.</p>'
        '<table id="audit-trail"><thead><tr><th>time</th><th>actor</th><th>action</th><th>production</th><th>reason</th>'
        "<th>run</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def production_story(base: str, status: ModelStatus, info: VersionInfo | None, number: int) -> str:
    """How this version reached production (the latest time it did), or that it never was."""
    if not status.registry_ok:
        return "not known: the registry did not answer"
    moves = _production_moves(status.changes)
    made = [i for i in moves if status.changes[i].to_version == number]
    if made:
        position = made[-1]
        change = status.changes[position]
        when = e(_at(change.at))
        actor = e(change.actor)
        if change.action == "promote":
            text = f"promoted by the pipeline run {_via(base, change, with_dag=False)} on {when} (triggered by {actor})"
            text += _gate_words(info, change)
        elif change.action == "rollback":
            text = f"made production again by a rollback (by {actor}, via {_via(base, change)}) on {when}"
            if change.from_version is not None:
                text += f", replacing v{e(change.from_version)}"
        elif change.action == "auto_rollback":
            text = f"restored automatically on {when} after a failed change (by {actor}, {_via(base, change)})"
        else:
            text = f"{e(action_words(change.action))} by {actor} via {_via(base, change)} on {when}"
            if change.from_version is not None:
                text += f", replacing v{e(change.from_version)}"
        if change.reason.strip().rstrip("."):
            text += f". Reason: {e(change.reason.strip().rstrip('.'))}"
        after = [status.changes[i] for i in moves if i > position and status.changes[i].from_version == number]
        if after and status.production != number:
            later = after[0]
            text += (f". It stopped being production on {e(_at(later.at))}: {e(action_words(later.action))}{_to(later)} "
                     f"by {e(later.actor)}")
        if len(made) > 1:
            text += f" (production {len(made)} times; the latest shown)"
        return text
    if status.production == number:
        return ("production, but the audit trail has no record of how it got there (it became production before "
                "mlspec recorded production changes)")
    if not status.changes_ok:
        return "not known: the audit trail could not be read"
    text = "never production"
    decision = (info.champion if info else {}).get("decision", "")
    if decision in ("champion_holds", "tie"):
        text += f": the champion gate kept it as a candidate ({e(champion_short(info.champion))})"
    elif info is not None and info.state == "failed":
        text += ": it failed on its way there (state failed)"
    return text


def _gate_words(info: VersionInfo | None, change: Any) -> str:
    champion = info.champion if info else {}
    decision = champion.get("decision", "")
    if decision == "challenger_wins" and champion.get("champion_version"):
        return (f" after beating v{e(champion['champion_version'])} on {e(champion.get('metric', ''))} "
                f"({e(num(champion.get('challenger'), 4))} vs {e(num(champion.get('champion'), 4))})")
    if decision == "no_champion":
        return ", with nothing in production to beat"
    if decision == "gate_off":
        return ", with the champion gate off"
    return f", replacing v{e(change.from_version)}" if change.from_version is not None else ""


# -- a rollout (issue 16): its state and its timeline ----------------------------------------------
def rollout_badge(record: Mapping[str, Any]) -> str:
    state = str(record.get("state", ""))
    color = ROLLOUT_COLORS.get(state, "#80868b")
    return (f'<span class="badge rollout" data-rollout-state="{e(state)}" style="background:{color}">'
            f"rollout: {e(state.replace('_', ' ') or 'unknown')}</span>")


def rollout_fact(base: str, name: str, info: VersionInfo) -> str:
    """The model's line on a rollout under way: its version, state and current step, and a link to its timeline."""
    record = info.rollout
    steps = list(record.get("steps") or [])
    now = f", now {e(step_words(steps[-1]))}" if steps and isinstance(steps[-1], Mapping) else ""
    against = record.get("production")
    return (f"{rollout_badge(record)} version {e(info.version)} against production "
            f"{e(_version_word(against if isinstance(against, int) else None))}{now} · "
            f'<a href="{e(base)}/models/{e(name)}/versions/{e(info.version)}#rollout" '
            f'data-field="rollout-timeline">timeline</a>')


def step_words(step: Mapping[str, Any]) -> str:
    """A step as words: "shadow copy of 100 %", "canary 10 %", "approval", "command", "rollback"."""
    kind = str(step.get("kind", ""))
    percent = step.get("percent")
    if kind == SHADOW and percent is not None:
        return f"shadow copy of {num(percent)} %"
    if kind == CANARY and percent is not None:
        return f"canary {num(percent)} %"
    return kind or "step"


def _traffic_words(step: Mapping[str, Any]) -> str:
    traffic = step.get("traffic")
    parts = []
    if isinstance(traffic, Mapping):
        parts.append(" · ".join(f"v{e(version)} {e(num(share))} %" for version, share in traffic.items()))
    if step.get("shadow"):
        parts.append(f"shadow copy {e(num(step.get('shadow')))} %")
    return "<br>".join(parts) or DASH


def _at_s(at: Any) -> str:
    """A record's time (ISO-8601 UTC) to the second: steps of a rollout can be seconds apart."""
    try:
        when = datetime.fromisoformat(str(at).replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return str(at or "")
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _gate_items(checks: Any) -> str:
    """Each gate's value against its limit, passed or failed."""
    items = []
    for check in checks if isinstance(checks, list) else []:
        if not isinstance(check, Mapping):
            continue
        gate, passed = str(check.get("gate", "")), bool(check.get("passed"))
        value = "no value" if check.get("value") is None else num(check.get("value"), 4)
        sign = "≤" if is_ceiling(gate) else "≥"  # the limit is a ceiling or a floor
        verdict = '<span class="badge ok">passed</span>' if passed else '<span class="badge drift">failed</span>'
        items.append(
            f'<li data-gate="{e(gate)}" data-passed="{str(passed).lower()}" data-value="{e(check.get("value"))}">'
            f"<code>{e(gate)}</code> {e(value)} {sign} {e(num(check.get('limit'), 4))} {verdict}</li>"
        )
    return f'<ul class="gates">{"".join(items)}</ul>' if items else DASH


def rollout_section(base: str, spec: Any, record: Mapping[str, Any]) -> str:
    """A version's rollout as its registry record keeps it: its state, and each step as a row (traffic, when,
    requests, each gate's value against its limit, outcome, who)."""
    state = str(record.get("state", ""))
    production = record.get("production")
    lead = (f"{rollout_badge(record)} against production {e(_version_word(production if isinstance(production, int) else None))}, "
            f"started {e(_at_s(record.get('started')))}, last recorded {e(_at_s(record.get('updated')))}; a failed gate: "
            f"{e(record.get('on_fail', 'rollback'))}.")
    if state not in ROLLOUT_FINAL_STATES:
        source = e(spec.source_file or "<spec>")
        lead += (f" <code>mlspec rollout {source} --status|--pause|--resume|--abort</code>, or trigger "
                 f"{airflow_link(dag_href(base, OPERATIONS_DAG), OPERATIONS_DAG, data_field='operations')} with a rollout action.")
    rows = []
    for step in record.get("steps") or []:
        if not isinstance(step, Mapping):
            continue
        message = f'<div class="muted" data-field="message">{e(step.get("message"))}</div>' if step.get("message") else ""
        requests = step.get("requests")
        rows.append(
            f'<tr data-kind="{e(step.get("kind", ""))}" data-outcome="{e(step.get("outcome", ""))}">'
            f'<td data-field="step">{e(step_words(step))}{message}</td>'
            f'<td data-field="traffic">{_traffic_words(step)}</td>'
            f'<td class="nowrap" data-field="started">{e(_at_s(step.get("started")))}</td>'
            f'<td class="nowrap" data-field="ended">{e(_at_s(step.get("ended")))}</td>'
            + num_cell(requests if isinstance(requests, int | float) else None, data_field="requests")
            + f'<td data-field="gates">{_gate_items(step.get("checks"))}</td>'
            f'<td data-field="outcome">{e(str(step.get("outcome", "")).replace("_", " "))}</td>'
            f'<td data-field="by">{e(step.get("by", ""))}</td></tr>'
        )
    table = (
        '<table id="rollout-timeline"><thead><tr><th>step</th><th>traffic</th><th>started</th><th>ended</th>'
        '<th class="num">requests</th><th>gates</th><th>outcome</th><th>by</th></tr></thead><tbody>'
        + "".join(rows) + "</tbody></table>"
        if rows else '<p class="muted">No step recorded yet.</p>'
    )
    cut = record.get("steps_cut")
    if isinstance(cut, int) and cut > 0:  # the registry's tag holds 5,000 characters: the oldest steps went first
        table = f'<p class="muted" id="rollout-steps-cut">{cut} older step{"s" if cut != 1 else ""} not kept on the record.</p>' + table
    return f'<h2 id="rollout">Rollout</h2><p class="lead" id="rollout-state" data-state="{e(state)}">{lead}</p>{table}'


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
def card_page(base: str, card: VersionCard, curl: str | None, summary: str | None, curl_words: str = MEAN_ROW) -> str:
    status, info, spec = card.status, card.info, card.status.spec
    name, number = spec.name, card.number
    files_base = f"{base}/models/{name}/versions/{number}/files"
    marks = [badge(info.state) if info is not None and info.registered else badge("", "not registered")]
    if number == status.production and (info is None or info.state != "production"):
        marks.append(badge("production", "production"))
    if status.serving_ok and number == status.served:
        marks.append('<span class="badge ok">serving</span>')
    if info is not None and number == status.rollout_version:
        marks.append(rollout_badge(info.rollout))
    body = [f'<h1 data-model="{e(name)}" data-version="{number}">{e(name)} · version {number}</h1>',
            f'<p class="lead">{" ".join(marks)} {e(spec.metadata.description)}</p>',
            problems_panel(status.problems + card.problems)]
    manifest = card.manifest or {}
    lineage = [
        ("model", e(summary) if summary else '<span class="muted">trained from another revision of the spec (hash below); see the model card</span>'),
        ("framework · task", f"{e(info.framework if info and info.framework else spec.model.framework)} · {e(info.task if info and info.task else spec.model.task)}"),
        ("data source", f"<code>{e((info.data_source if info else '') or manifest.get('data_source', ''))}</code>"),
        ("spec hash", f"<code>{e((info.spec_hash if info else '') or manifest.get('spec_hash', ''))}</code>"),
        ("DAG run", _card_run(base, spec, info, manifest)),
        ("registry", e(f"{_registry_text(spec)}, registry version {info.registry_version}" if info and info.registry_version else _registry_text(spec))),
        ("stored at", f"<code>{e(info.source_uri if info and info.source_uri else '')}</code>"),
    ]
    if info is not None and info.created_ms:
        lineage.append(("registered", e(_when(info.created_ms))))
    lineage.append(("run it", run_it(base, spec)))
    if card.has_card:
        lineage.append(("model card", f'<a href="{e(files_base)}/model_card.md">model_card.md</a>'))
    body.append('<h2>Lineage</h2><dl class="facts" id="lineage">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in lineage) + "</dl>")
    body.append(data_section(card))
    body.append(data_checks_section(card, files_base))
    body.append(f'<h2>Production</h2><p id="production-story">{_capital(production_story(base, status, info, number))}.</p>')
    if info is not None and info.rollout:
        body.append(rollout_section(base, spec, info.rollout))
    body.append(_metrics_table(card))
    body.append(_champion_section(info))
    body.append(settings_section(card))
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
        body.append(f'<h2>Try it</h2><p class="lead">Serving answers with this version; this calls it ({e(curl_words)}):</p>'
                    f'<pre id="curl">{e(curl)}</pre>')
    else:
        body.append(_deploy_hint(base, card))
    body.append(audit_timeline(base, status, number))
    crumbs = [("Models", f"{base}/"), (name, f"{base}/models/{name}"), (f"version {number}", None)]
    return page(f"{name} version {number} · Models", crumbs, "".join(body))


def _capital(html_text: str) -> str:
    return html_text[:1].upper() + html_text[1:]


def run_it(base: str, spec: Any) -> str:
    """Links to the DAG's trigger form and to mlspec_operations' (their pages: Airflow 3 opens a trigger form
    from the page's Trigger button, never from a URL)."""
    return (f"{airflow_link(dag_href(base, spec.name), f'Trigger {spec.name}', data_field='trigger')} "
            "(its page in Airflow: the <b>Trigger</b> button opens the form with the spec's parameters) · "
            f"{airflow_link(dag_href(base, OPERATIONS_DAG), OPERATIONS_DAG, data_field='operations')} "
            f"(Trigger with model {e(spec.name)}: deploy, roll back or undeploy a version)")


def _card_run(base: str, spec: Any, info: VersionInfo | None, manifest: Mapping[str, Any]) -> str:
    dag_id = (info.dag_id if info else "") or str(manifest.get("dag_id", "")) or spec.name
    run_id = (info.run_id if info else "") or str(manifest.get("run_id", ""))
    return f'<code>{e(dag_id)}</code> / <span data-field="run-id">{run_link(base, dag_id, run_id)}</span>'


def _deploy_hint(base: str, card: VersionCard) -> str:
    """For a version serving does not answer with: why there is no request to try, and how to serve it."""
    status, number, spec = card.status, card.number, card.status.spec
    if not status.serving_ok:
        now = "serving did not answer, so this page cannot tell whether it serves this version"
    elif status.served is None:
        now = f"version {number} is not served: nothing is"
    else:
        now = f"version {number} is not served: serving answers with version {status.served}"
    if card.info is not None and not card.info.in_store:
        how = "Its files are gone from the store, so it cannot be deployed again."
    elif card.info is None or not card.info.registered:
        how = "It is not registered, so it cannot be deployed."
    else:
        how = (f"To serve it: <code>mlspec deploy {e(spec.source_file)} --version {number}</code>, or trigger "
               f"{airflow_link(dag_href(base, OPERATIONS_DAG), OPERATIONS_DAG, data_field='operations')} with model "
               f"<code>{e(spec.name)}</code>, action <code>deploy</code>, version <code>{number}</code>. It then becomes "
               "production (the registry moves first, serving follows, a smoke test checks it).")
    return f'<h2>Try it</h2><p id="deploy-hint">{e(_capital(now))}, so there is no request to try. {how}</p>'


def settings_section(card: VersionCard) -> str:
    """What the version was trained with (beside production's, when this is another version), and for a tuned
    run the winning trial's values."""
    mine, theirs = card.settings, card.production_settings
    if mine is None:
        return ""
    parts = ['<h2>Training settings</h2>']
    if not mine.values:
        return parts[0] + f'<p class="muted" id="settings">{e(_capital(mine.where))}.</p>'
    compare = theirs is not None and bool(theirs.values)
    keys = [k for k in FIRST_SETTINGS if k in mine.values or (compare and k in theirs.values)]
    rest = sorted(set(mine.values) | (set(theirs.values) if compare else set()))
    keys += [k for k in rest if k not in keys]
    head = f'<th>setting</th><th>version {card.number}</th>' + (f"<th>production (version {theirs.version})</th>" if compare else "")
    rows = []
    for key in keys:
        value = mine.values.get(key)
        cells = f'<td data-setting="{e(key)}">{e(value) if value is not None else DASH}</td>'
        if compare:
            other = theirs.values.get(key)
            differs = " differs" if other != value else ""
            cells += f'<td class="production{differs}" data-production-setting="{e(key)}">{e(other) if other is not None else DASH}</td>'
        rows.append(f"<tr><td><code>{e(key)}</code></td>{cells}</tr>")
    where = f"Version {card.number}: {mine.where}."
    if compare:
        where += f" Production: {theirs.where}. Differences are marked."
    parts.append(f'<p class="lead">{e(where)}</p><table id="settings"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>')
    info = card.info
    if info is not None and info.best_trial:
        values = ", ".join(f"{path} = {json.dumps(value)}" for path, value in sorted(info.best_params.items()))
        parts.append(f'<p id="tuned">Tuned: trial {e(info.best_trial)} won the run\'s tuning; its values: <code>{e(values or "none")}</code>.</p>')
    return "".join(parts)


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

    text = decision_text(info.champion)
    notes = champion_notes(info.champion)  # champion.classes_added / classes_removed / scored_on tags
    changes = '<ul id="class-changes">' + "".join(f"<li>{e(note)}</li>" for note in notes) + "</ul>" if notes else ""
    return (f'<h2>Champion gate</h2><p id="champion" data-decision="{e(info.champion.get("decision", ""))}">'
            f'{e(text[:1].upper() + text[1:])}.</p>{changes}')


def data_section(card: VersionCard) -> str:
    """The data the version was trained on (its lineage.json): source, files, digest, rows, split, holdout."""
    lineage, where = card.data_lineage
    if not lineage:
        if card.lineage_recorded is None:
            return ""  # neither the manifest nor the registry said: the problems panel says why
        why = ("This version has no lineage recorded (published before mlspec recorded it)." if not card.lineage_recorded
               else "Its lineage.json could not be read (see above).")
        return f'<h2>Data</h2><p class="muted" id="data-lineage">{e(why)}</p>'
    facts = "".join(f'<dt>{e(label)}</dt><dd data-field="{e(label)}">{e(text)}</dd>' for label, text in lineage_facts(lineage))
    note = f'<p class="lead" id="lineage-from">{e(_capital(where))}.</p>' if where else ""
    return f'<h2>Data</h2>{note}<dl class="facts" id="data-lineage">{facts}</dl>'


def data_checks_section(card: VersionCard, files_base: str) -> str:
    """validate_data's outcome, its reference, the drift table and plot (drift.json, drift.png)."""
    lineage, drift = card.data_lineage[0], card.drift or {}
    facts = check_facts(lineage, drift)
    if not facts:
        return ""
    parts = ['<h2>Data checks</h2><dl class="facts" id="data-checks">'
             + "".join(f'<dt>{e(label)}</dt><dd data-field="{e(label)}">{e(text)}</dd>' for label, text in facts) + "</dl>"]
    problems = schema_problems(lineage, drift)
    if problems:
        parts.append('<h3>Schema problems</h3><ul id="schema-problems">' + "".join(f"<li>{e(p)}</li>" for p in problems) + "</ul>")
    rows = drift_rows(drift)
    if rows:
        numbers = ("score", "threshold")
        head = "".join(f'<th class="num">{c}</th>' if c in numbers else f"<th>{c}</th>" for c in DRIFT_COLUMNS)
        body = "".join(
            f'<tr class="{"drifted" if row["drifted"] == "yes" else "steady"}" data-column="{e(row["column"])}" data-check="{e(row["check"])}">'
            + "".join(f'<td class="num">{e(row[c])}</td>' if c in numbers else f"<td>{e(row[c])}</td>" for c in DRIFT_COLUMNS)
            + "</tr>"
            for row in rows
        )
        parts.append(f'<table id="drift"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')
    if card.has_drift_plot:
        parts.append(f'<figure><img id="drift-plot" src="{e(files_base)}/{DRIFT_PLOT}" alt="drift: reference against this run\'s '
                     f'training split" data-file="{DRIFT_PLOT}"><figcaption>{DRIFT_PLOT}</figcaption></figure>')
    return "".join(parts)


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
    if schema and schema.get("columns"):
        parts.append(_column_section(schema))
    elif schema:
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
        if classes and output.get("label_datatype"):  # label answers the class itself
            class_list = ('<p class="lead" id="classes"><code>label</code> answers the class; <code>probabilities</code> '
                          "follow this order: " + ", ".join(e(c) for c in classes) + "</p>")
        else:
            class_list = (
                '<p class="lead">Classes (index = <code>label</code>): '
                + ", ".join(f"{i} = {e(c)}" for i, c in enumerate(classes)) + "</p>" if classes else ""
            )
        parts.append(
            '<h2>Output</h2><table id="output-schema"><thead><tr><th>output</th><th>datatype</th><th>shape</th></tr></thead>'
            f"<tbody>{rows}</tbody></table>{class_list}"
        )
    return "".join(parts)


def _column_section(schema: Mapping[str, Any]) -> str:
    """A table model's inputs: one per column, with its type, how a gap is filled, the categories it
    knows and its training statistics."""
    columns = list(schema["columns"])
    rows = "".join(
        f"<tr><td>{e(c.get('name'))}</td><td>{e(c.get('type'))}</td><td>{e(c.get('datatype'))}</td>"
        f"<td>{e(c.get('missing'))}</td><td>{e('—' if c.get('fill') is None else c['fill'])}</td>"
        f"<td>{e(category_words(c, MAX_SHOWN_CATEGORIES) or '—')}</td>"
        + "".join(num_cell(c.get(k)) for k in ("min", "max", "mean", "std"))
        + f'<td class="num">{e(c.get("missing_count", 0))}</td></tr>'
        for c in columns[:MAX_FEATURE_ROWS]
    )
    more = f'<p class="muted">… and {len(columns) - MAX_FEATURE_ROWS} more in input_schema.json.</p>' if len(columns) > MAX_FEATURE_ROWS else ""
    return (
        f'<h2>Input</h2><p class="lead">{len(columns)} columns, one input each (shape <code>[-1, 1]</code>): raw values, '
        "null where a value is missing (for a column with a fill); statistics on the training split.</p>"
        '<table id="input-schema"><thead><tr><th>column</th><th>type</th><th>datatype</th><th>missing</th><th>fill</th>'
        '<th>categories</th><th class="num">min</th><th class="num">max</th><th class="num">mean</th><th class="num">std</th>'
        f'<th class="num">gaps in training</th></tr></thead><tbody>{rows}</tbody></table>{more}'
    )


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

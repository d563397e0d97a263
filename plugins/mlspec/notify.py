"""Notifications (the spec's ``notify``): a message when a run fails and when the champion holds.

Messages go through Airflow's notifier classes, configured by an Airflow connection id: an ``smtp``
(or ``email``) connection sends with the SMTP provider's ``SmtpNotifier`` (host, port, login and
password of the connection; its extra ``from_email`` is the sender, else ``mlspec@localhost``).

- ``failure``: the DAG's ``on_failure_callback`` (set by the compiler) is a :class:`RunFailedNotifier`;
  Airflow calls it once per failed run (in the DAG processor, or in-process for ``dag.test``), with the
  task instance that failed. The message names the model, the run, the failed task, the version the
  run stored (if it got that far) and what to do.
- ``champion_holds``: deploy calls :func:`notify_champion_holds` as it skips, with the run summary: both
  scores, the candidate and the production version, and how to serve the candidate anyway.
- ``rollback``: a rollout rolled back (a failed gate, a rejected or timed-out approval, an abort): the release
  service calls :func:`notify_rollback` with the candidate, the failed gate and the production version that serves.

Notifying is a report, not a gate: a message that cannot be sent is logged and never changes the run.
Sending has an overall deadline (MLSPEC_NOTIFY_TIMEOUT_S, default 60 s), not just a per-read socket
timeout: an SMTP server that answers one byte at a time is given up on, logged as a warning, and the
task goes on.
Parsing stays light: only ``airflow.sdk`` is imported here; the SMTP provider when a message is sent.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow.sdk import BaseNotifier

from mlspec.env import env_number
from mlspec.operators.publish import publish_run_id
from mlspec.storage import open_store

log = logging.getLogger(__name__)

FAILURE = "failure"
CHAMPION_HOLDS = "champion_holds"
ROLLBACK = "rollback"
EVENTS = (FAILURE, CHAMPION_HOLDS, ROLLBACK)
DEFAULT_SENDER = "mlspec@localhost"
NOTIFY_TIMEOUT_ENV = "MLSPEC_NOTIFY_TIMEOUT_S"
DEFAULT_NOTIFY_TIMEOUT_S = 60.0


def notify_timeout_s() -> float:
    """The overall deadline of one notification: MLSPEC_NOTIFY_TIMEOUT_S, else 60 s."""
    return env_number(NOTIFY_TIMEOUT_ENV, DEFAULT_NOTIFY_TIMEOUT_S)


class RunFailedNotifier(BaseNotifier):
    """The DAG's on_failure_callback: one message per failed run to `to`, through `connection`."""

    template_fields = ()

    def __init__(
        self, *, model: str, spec_file: str, connection: str, to: tuple[str, ...] | list[str],
        storage_uri: str = "", storage_connection: str | None = None,
    ):
        super().__init__()
        self.model = model
        self.spec_file = spec_file
        self.connection = connection
        self.to = list(to)
        self.storage_uri = storage_uri  # where to find the version this run stored, when XCom cannot say
        self.storage_connection = storage_connection

    def render_template_fields(self, context, jinja_env=None) -> None:
        """Nothing to render: the message is built from the context in notify. (Under dag.test the
        callback's context holds the scheduler's DAG, which has no template environment.)"""

    def notify(self, context) -> None:
        stored = _pull(context.get("ti"), "store") or self.stored_by_run(context)
        subject, paragraphs = failure_message(self.model, self.spec_file, context, stored)
        send(self.connection, self.to, subject, paragraphs, context)

    def stored_by_run(self, context) -> dict | None:
        """The version this run published, asked of the store (its claim names the run)."""
        if not self.storage_uri:
            return None
        try:
            dag_id = getattr(context.get("dag"), "dag_id", "") or self.model
            store = open_store(self.storage_uri, self.storage_connection)
            version = store.version_claimed_by(self.model, publish_run_id(dag_id, context.get("run_id", "")))
            if version is None or version not in store.list_versions(self.model):
                return None
            return {"version": version, "uri": store.uri_for(f"{self.model}/{version}")}
        except Exception as exc:  # noqa: BLE001 - the message goes out without the version
            log.info("could not ask the store which version run %s published: %s", context.get("run_id"), exc)
            return None


def failure_callback(spec: Any) -> RunFailedNotifier | None:
    """The notifier for a spec's failed runs, or None when its `notify` does not ask for them."""
    notify = spec.notify
    if notify is None or FAILURE not in notify.events:
        return None
    return RunFailedNotifier(
        model=spec.name, spec_file=spec.source_file or "", connection=notify.connection, to=notify.to,
        storage_uri=spec.storage.uri, storage_connection=spec.storage.connection,
    )


def notify_champion_holds(spec: Any, summary: dict, context: Any) -> bool:
    """Deploy's report that the champion held (`summary`: the run summary deploy writes); True when sent."""
    notify = spec.notify
    if notify is None or CHAMPION_HOLDS not in notify.events:
        return False
    subject, paragraphs = champion_holds_message(summary, spec.source_file or "")
    return send(notify.connection, list(notify.to), subject, paragraphs, context)


def notify_rollback(spec: Any, rollback: dict, context: Any = None) -> bool:
    """A rollout's rollback (`rollback`: model, version, production, reason, gate, by, run_id); True when sent."""
    notify = spec.notify
    if notify is None or ROLLBACK not in notify.events:
        return False
    subject, paragraphs = rollback_message(rollback, spec.source_file or "")
    return send(notify.connection, list(notify.to), subject, paragraphs, context)


# -- the messages --------------------------------------------------------------------------------
def failure_message(model: str, spec_file: str, context: Any, stored: dict | None) -> tuple[str, list[str]]:
    """(subject, paragraphs) for a failed run, from the failure callback's context and the version the
    run stored (store's result: version and uri), if it got that far."""
    ti = context.get("ti")
    run_id = context.get("run_id") or getattr(ti, "run_id", "") or "?"
    dag = context.get("dag")
    dag_id = getattr(dag, "dag_id", "") or getattr(ti, "dag_id", "") or model
    task_id = getattr(ti, "task_id", "") or "a task"
    spec_ref = spec_file or "the spec"
    paragraphs = [
        f"Model {model}: DAG {dag_id}, run {run_id} failed at task {task_id}"
        + (f" (try {ti.try_number})." if getattr(ti, "try_number", None) else "."),
    ]
    if isinstance(stored, dict) and stored.get("version") is not None:
        paragraphs.append(
            f"Version {stored['version']} was stored at {stored.get('uri', '?')} by this run; it is not in "
            "production, which keeps its version and keeps serving."
        )
    else:
        paragraphs.append(
            "No version was published by this run (it stopped before store), so production is unchanged."
        )
    task = getattr(ti, "task", None)
    next_step = getattr(task, "next_step", "") if task is not None else ""
    if not isinstance(next_step, str) or "the cause above" in next_step:
        next_step = ""  # the generic advice points at the log, which the message already does
    log_url = _log_url(ti)
    paragraphs.append(
        f"What to do: read the log of {task_id}"
        + (f" ({log_url})" if log_url else "")
        + ": its last lines say what failed and the next step."
        + (f" For {task_id}: {next_step}." if next_step else "")
        + " Every task is safe to retry (clear it);"
        + f" to change the model, edit {spec_ref} and trigger a new run."
    )
    return f"[mlspec] {model}: run {run_id} failed at {task_id}", paragraphs


def champion_holds_message(summary: dict, spec_file: str) -> tuple[str, list[str]]:
    """(subject, paragraphs) for a challenger that lost the champion comparison or tied with production."""
    model = summary.get("model", "?")
    version = summary.get("version", "?")
    verdict = summary.get("champion") or {}
    production = verdict.get("champion_version", "?")
    spec_ref = spec_file or f"<the spec of {model}>"  # a hand-written DAG may not give the spec's file
    metrics = ", ".join(f"{k}={float(v):.4f}" for k, v in sorted((summary.get("metrics") or {}).items()))
    tie = verdict.get("decision") == "tie"  # the same score (an identical retrain): no redeploy
    outcome = (f"tied with production version {production} (the same score)" if tie
               else f"did not beat production version {production}")
    paragraphs = [f"Model {model}: version {version} {outcome}, which keeps serving."]
    if {"metric", "champion", "challenger"} <= verdict.keys():
        paragraphs.append(
            f"Champion comparison on the same test split: {verdict['metric']} "
            f"{float(verdict['champion']):.4f} (production version {production}) against "
            f"{float(verdict['challenger']):.4f} (version {version}), "
            f"min_delta {float(verdict.get('min_delta', 0)):g}."
        )
    paragraphs += [
        f"Version {version} is stored at {summary.get('stored_uri', '?')} and registered as a candidate "
        f"(DAG {summary.get('dag_id', '?')}, run {summary.get('run_id', '?')}"
        + (f"; its test metrics: {metrics}" if metrics else "")
        + ").",
        f"What to do: nothing, if production should stay version {production}. To serve version {version} "
        f"anyway: `mlspec deploy {spec_ref} --version {version}` (or the mlspec_operations DAG). To make a "
        f"retrain win: improve the model or its data, or change evaluation.champion (metric, min_delta) in "
        f"{spec_ref}, then trigger a new run.",
    ]
    return f"[mlspec] {model}: version {version} {outcome}", paragraphs


def rollback_message(rollback: dict, spec_file: str) -> tuple[str, list[str]]:
    """(subject, paragraphs) for a rollout rolled back: the candidate, what failed (the gate), what serves."""
    model = rollback.get("model", "?")
    version = rollback.get("version", "?")
    production = rollback.get("production")
    serves = f"production version {production} answers every request" if production is not None else "nothing is served"
    why = rollback.get("gate") or "the rollout"
    spec_ref = spec_file or f"<the spec of {model}>"
    paragraphs = [
        f"Model {model}: the rollout of version {version} was rolled back ({why}); {serves}.",
        f"Why: {rollback.get('reason', '?')}",
        f"Rolled back by {rollback.get('by', '?')}" + (f" in run {rollback['run_id']}." if rollback.get("run_id") else "."),
        f"Version {version} is marked rolled_back in the registry; its steps and each gate's value are on its "
        f"rollout record (`mlspec rollout {spec_ref} --status`, the Models page). What to do: fix the model or its "
        f"data, or the rollout gates in {spec_ref}, then trigger a new run.",
    ]
    return f"[mlspec] {model}: version {version} rolled back ({why}); {serves}", paragraphs


# -- the notifiers: one entry per kind of notify.connection ----------------------------------------
@dataclass(frozen=True)
class NotifierKind:
    """One kind of notifier: the Airflow connection types it sends through, and the Airflow notifier it makes."""

    name: str
    title: str  # in sentences: "email (SMTP)"
    conn_types: tuple[str, ...]  # the notify.connection types it serves
    # (connection id, the Airflow connection, to, subject, paragraphs) -> an Airflow notifier; imports its provider
    make: Callable[[str, Any, list[str], str, list[str]], Any]


def _smtp_notifier(connection_id: str, conn: Any, to: list[str], subject: str, paragraphs: list[str]) -> Any:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    sender = (conn.extra_dejson or {}).get("from_email") or DEFAULT_SENDER
    body = "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    return SmtpNotifier(to=to, from_email=sender, subject=subject, html_content=body, smtp_conn_id=connection_id)


NOTIFIERS: dict[str, NotifierKind] = {
    kind.name: kind for kind in (NotifierKind("smtp", "email (SMTP)", ("smtp", "email"), _smtp_notifier),)
}


def notifier_for(conn_type: str) -> NotifierKind | None:
    """The notifier that sends through connections of `conn_type`, or None when mlspec has none."""
    return next((kind for kind in NOTIFIERS.values() if conn_type in kind.conn_types), None)


# -- sending -------------------------------------------------------------------------------------
def send(
    connection_id: str, to: list[str], subject: str, paragraphs: list[str], context: Any,
    *, timeout_s: float | None = None,
) -> bool:
    """Send through the notifier the connection's type calls for, within `timeout_s` in all (default
    notify_timeout_s()); False (logged as a warning) when it could not."""
    deadline_s = notify_timeout_s() if timeout_s is None else timeout_s
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(connection_id)
        conn_type = (conn.conn_type or "").lower()
        kind = notifier_for(conn_type)
        if kind is None:
            known = ", ".join(t for k in NOTIFIERS.values() for t in k.conn_types)
            log.warning("notify.connection %r is a %r connection; mlspec sends through %s connections. Not sent: %s",
                        connection_id, conn_type, known, subject)
            return False
        notifier = kind.make(connection_id, conn, list(to), subject, paragraphs)
        payload = context if isinstance(context, dict) else dict(context or {})
        _within_deadline(lambda: notifier.notify(payload), deadline_s, notifier, f"{conn.host}:{conn.port}")
    except Exception as exc:  # noqa: BLE001 - a notification never changes the run's outcome
        log.warning("could not send the notification %r through Airflow connection %r (the run goes on): %s",
                    subject, connection_id, " ".join(str(exc).split())[:400])
        return False
    log.info("notified %s: %s", ", ".join(to), subject)
    return True


def _within_deadline(work, deadline_s: float, notifier: Any, where: str) -> None:
    """Run `work` in a daemon thread and wait at most `deadline_s` for it: a socket timeout bounds each
    read, not the whole exchange, and a server sending one byte at a time never trips it. At the
    deadline the SMTP socket (when open) is shut down so the thread ends; TimeoutError either way."""
    import threading

    failure: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            failure.append(exc)

    worker = threading.Thread(target=run, name="mlspec-notify", daemon=True)
    worker.start()
    worker.join(deadline_s)
    if worker.is_alive():
        hook = getattr(notifier, "__dict__", {}).get("hook")  # only if already made: never make one here
        client = getattr(hook, "_smtp_client", None)  # SmtpHook keeps its smtplib.SMTP here
        sock = getattr(client, "sock", None)
        if sock is not None:
            import socket

            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        raise TimeoutError(f"the SMTP server at {where} did not finish within {deadline_s:g}s; gave up")
    if failure:
        raise failure[0]


def _pull(ti: Any, task_id: str) -> Any:
    if ti is None:
        return None
    try:
        return ti.xcom_pull(task_ids=task_id)
    except Exception as exc:  # noqa: BLE001 - the message goes out without the version
        log.info("could not read %s's result for the notification: %s", task_id, exc)
        return None


def _log_url(ti: Any) -> str:
    try:
        return str(ti.log_url) if ti is not None else ""
    except Exception:  # noqa: BLE001 - no API base URL configured
        return ""

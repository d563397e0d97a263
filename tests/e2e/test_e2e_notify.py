"""Notifications: `notify:` in a spec sends a message through Airflow's SmtpNotifier when a run fails (the
DAG's on_failure_callback) and when the champion holds (deploy, as it skips), received here by a real
SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import email
import email.policy
import html
import json
import re

import pytest
from tests.e2e.e2e_testkit import task_states, xcom
from tests.fixtures.paths import SPECS
from tests.fixtures.ports import free_port

pytestmark = pytest.mark.e2e

WEAK = "estimator: decision_tree\n  params: {max_depth: 1, random_state: 0}"
TO = "ml-team@example.com"


class Inbox:
    """aiosmtpd handler: keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted for delivery"

    def texts(self) -> list[tuple[str, str]]:
        """(subject, body as plain text) of every message."""
        found = []
        for message in self.messages:
            body = message.get_body(("html", "plain")).get_content()
            found.append((str(message["Subject"]), " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())))
        return found


@pytest.fixture
def smtp_inbox(monkeypatch):
    """An SMTP server on 127.0.0.1:<free port> (a thread of this process) and Airflow connection smtp_test."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    extra = {"from_email": "mlspec@example.com", "disable_tls": True, "disable_ssl": True, "retry_limit": 0, "timeout": 10}
    connection = {"conn_type": "smtp", "host": "127.0.0.1", "port": controller.port, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_TEST", json.dumps(connection))
    try:
        yield inbox
    finally:
        controller.stop()


def forest_spec(name: str, model: str | None = None, events: str = "[failure, champion_holds]") -> str:
    text = (SPECS / "iris-forest.yaml").read_text().replace("name: iris-forest", f"name: {name}")
    if model:
        text = text.replace("estimator: random_forest\n  params: {n_estimators: 100, max_depth: 6, random_state: 0}", model)
    text = text.replace("accuracy: {min: 0.85}", "accuracy: {min: 0.3}").replace("f1: {min: 0.85}", "f1: {min: 0.1}")
    return text + f"notify: {{connection: smtp_test, to: [{TO}], events: {events}}}\n"


def test_a_failed_run_sends_a_message_naming_the_model_version_and_what_to_do(run_spec, model_server, smtp_inbox):
    name = "notify-fail"
    # 1. A gate fails at evaluate: nothing is published.
    strict = forest_spec(name).replace("accuracy: {min: 0.3}", "accuracy: {min: 0.999}")
    _, gated = run_spec(strict, name)
    assert str(gated.state) == "failed" and task_states(gated)["evaluate"] == "failed"
    ((subject, body),) = smtp_inbox.texts()
    assert subject == f"[mlspec] {name}: run {gated.run_id} failed at evaluate"
    assert f"Model {name}" in body and "failed at task evaluate" in body
    assert "No version was published by this run" in body
    assert "What to do: read the log of evaluate" in body and f"/dags/{name}/runs/" in body

    # 2. A good run: no message.
    _, good = run_spec(forest_spec(name), name)
    assert str(good.state) == "success", task_states(good)
    assert len(smtp_inbox.messages) == 1

    # 3. The smoke test fails after store: the message names the version the run stored.
    slow = forest_spec(name).replace("f1: {min: 0.1}", "f1: {min: 0.1}\nsmoke_test: {max_latency_ms: 0.001}")
    slow = slow.replace("evaluation:\n", "evaluation:\n  champion: null\n")  # the same model: a tie would keep v1
    _, failed = run_spec(slow, name)
    assert str(failed.state) == "failed" and task_states(failed)["smoke_test"] == "failed"
    stored = xcom(failed, "store")
    assert stored["version"] == 2
    message = smtp_inbox.messages[1]
    assert message["To"] == TO and message["From"] == "mlspec@example.com"
    subject, body = smtp_inbox.texts()[1]
    assert subject == f"[mlspec] {name}: run {failed.run_id} failed at smoke_test"
    assert f"Version 2 was stored at {stored['uri']} by this run; it is not in production" in body
    assert "What to do: read the log of smoke_test" in body and "clear it" in body


def test_a_champion_that_holds_sends_a_message_and_a_win_sends_none(run_spec, model_server, smtp_inbox):
    name = "notify-champ"
    _, first = run_spec(forest_spec(name, events="[champion_holds]"), name)
    assert str(first.state) == "success", task_states(first)
    assert smtp_inbox.messages == []

    spec, second = run_spec(forest_spec(name, WEAK, events="[champion_holds]"), name)
    assert str(second.state) == "success", task_states(second)
    verdict = xcom(second, "evaluate")["champion"]
    assert verdict["decision"] == "champion_holds"
    ((subject, body),) = smtp_inbox.texts()
    assert subject == f"[mlspec] {name}: version 2 did not beat production version 1"
    assert f"Model {name}: version 2 did not beat production version 1, which keeps serving." in body
    assert f"accuracy {verdict['champion']:.4f} (production version 1) against {verdict['challenger']:.4f}" in body
    assert "What to do: nothing, if production should stay version 1. To serve version 2 anyway: `mlspec deploy" in body
    assert spec.source_file.endswith(f"{name}.yaml")  # a task knows its spec's file: the command is one to paste
    assert f"`mlspec deploy {spec.source_file} --version 2`" in body


def test_no_notify_means_no_callback_and_failure_only_means_no_champion_message():
    from mlspec.compiler import build_dag
    from mlspec.notify import RunFailedNotifier, notify_champion_holds
    from mlspec.spec import load_spec

    plain = build_dag(load_spec(SPECS / "iris-forest.yaml"))
    assert plain.on_failure_callback is None
    spec_text = forest_spec("notify-unit", events="[failure]")
    from mlspec.spec.model import ModelSpec

    base = load_spec(SPECS / "iris-forest.yaml").to_dict()
    import yaml

    base["notify"] = {**yaml.safe_load(spec_text)["notify"]}
    spec = ModelSpec.from_dict(base)
    assert spec.notify.events == ("failure",) and spec.notify.to == (TO,)
    callback = build_dag(spec).on_failure_callback
    assert isinstance(callback, RunFailedNotifier) and callback.to == [TO] and callback.connection == "smtp_test"
    assert notify_champion_holds(spec, {"model": "notify-unit"}, {}) is False

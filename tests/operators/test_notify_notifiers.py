"""Notifiers are a table (mlspec.notify.NOTIFIERS), keyed by the kind of notify.connection; the schema's events
are notify's events."""

from __future__ import annotations

import json
import logging

from mlspec.notify import EVENTS, NOTIFIERS, notifier_for, send
from mlspec.spec.schema import load_schema


def test_the_schema_events_are_notifys_events():
    notify = load_schema()["properties"]["notify"]["properties"]
    assert notify["events"]["items"]["enum"] == list(EVENTS)


def test_a_connection_type_finds_its_notifier():
    assert notifier_for("smtp") is notifier_for("email") is NOTIFIERS["smtp"]
    assert notifier_for("http") is None


def test_a_connection_no_notifier_serves_is_not_sent_and_says_which_would(monkeypatch, caplog):
    monkeypatch.setenv("AIRFLOW_CONN_HOOK_X", json.dumps({"conn_type": "http", "host": "hooks.example.com"}))
    with caplog.at_level(logging.WARNING, logger="mlspec.notify"):
        assert send("hook_x", ["ml-team@example.com"], "subject", ["body"], {}) is False
    assert "is a 'http' connection; mlspec sends through smtp, email connections. Not sent: subject" in caplog.text

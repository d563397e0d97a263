"""README's "Progressive delivery" names what the code names: every /metrics series (mlspec.vocabulary's
METRIC_* names) in its table, every gate, on_fail choice and `mlspec rollout` command."""

from __future__ import annotations

import re

from tests.fixtures.paths import REPO

from mlspec import vocabulary


def progressive_delivery() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("### Progressive delivery\n")
    return text[start : text.index("\n### ", start + 1)]


def test_every_metric_name_is_in_the_metrics_table():
    section = progressive_delivery()
    names = {value for key, value in vars(vocabulary).items() if key.startswith("METRIC_")}
    rows = set(re.findall(r"^\| `(mlspec_[a-z_]+)` \|", section, flags=re.MULTILINE))
    assert names == rows, f"in vocabulary only: {names - rows}; in the README only: {rows - names}"


def test_every_gate_choice_and_command_is_named():
    section = progressive_delivery()
    for gate in vocabulary.ROLLOUT_GATES:
        assert f"`gates.{gate}`" in section, gate
    for choice in vocabulary.ROLLOUT_ON_FAIL:
        assert f"`{choice}`" in section, choice
    for command in vocabulary.ROLLOUT_COMMANDS:
        assert f"--{command}" in section, command
    for outcome in (*vocabulary.SHADOW_OUTCOMES, *vocabulary.SHADOW_RESULTS):
        assert f"`{outcome}`" in section, outcome

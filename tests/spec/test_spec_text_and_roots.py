"""Lint refuses local paths outside the allowed folders, and unprintable text in any field (issue 17).

`data.source: file:///<state-dir>/token` and `storage.uri: file:///etc/cron.d` passed lint; so did an owner
with a newline, a NUL byte or an RTL override (U+202E).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.fixtures.paths import SPECS

from mlspec.cli import lint_file
from mlspec.spec import SpecError, load_spec_text

IRIS = (SPECS / "iris.yaml").read_text()


def lint(tmp_path: Path, text: str) -> list[str]:
    spec = tmp_path / "project" / "specs" / "iris.yaml"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(text)
    return [str(p) for p in lint_file(spec)[1]]


def not_here(messages: list[str]) -> bool:
    """The one finding is the warning that the source file is not on this machine."""
    return len(messages) == 1 and ": warning: data.source: " in messages[0] and "does not exist on this machine" in messages[0]


def with_source(uri: str) -> str:
    return IRIS.replace("source: builtin:iris", f"source: '{uri}'\n  format: csv")


def test_lint_refuses_the_servers_token_as_a_data_source(tmp_path: Path, mlspec_home: Path) -> None:
    token = mlspec_home / "server" / "token"
    token.parent.mkdir(parents=True)
    token.write_text("secret\n")
    (message,) = lint(tmp_path, with_source(token.as_uri()))
    assert f"{tmp_path}/project/specs/iris.yaml:12:" in message
    assert ": data.source: " in message and "model server's state folder" in message


def test_lint_refuses_a_data_source_outside_the_roots_and_names_the_setting(
    tmp_path: Path, mlspec_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = Path("/opt/mlspec-nowhere/iris.csv")  # below no default data root
    (message,) = lint(tmp_path, with_source(elsewhere.as_uri()))
    assert ": data.source: " in message and "outside the allowed data folders" in message
    assert "MLSPEC_DATA_ROOTS" in message
    # Allowed by default: the project folder (the specs folder's parent), MLSPEC_HOME/data, the temp folder
    # (none of these files exists here: the only finding is that warning).
    assert not_here(lint(tmp_path, with_source((tmp_path / "project" / "data" / "iris.csv").as_uri())))
    assert not_here(lint(tmp_path, with_source("file://data/iris.csv")))
    assert not_here(lint(tmp_path, with_source((tmp_path / "elsewhere" / "iris.csv").as_uri())))
    monkeypatch.setenv("MLSPEC_DATA_ROOTS", str(elsewhere.parent))
    assert not_here(lint(tmp_path, with_source(elsewhere.as_uri())))
    (message,) = lint(tmp_path, with_source((tmp_path / "elsewhere" / "iris.csv").as_uri()))  # set: strict
    assert "outside the allowed data folders" in message


def test_lint_refuses_a_system_folder_as_a_store(tmp_path: Path, mlspec_home: Path) -> None:
    messages = lint(tmp_path, IRIS + "storage: {uri: 'file:///etc/cron.d'}\n")
    assert any(": storage.uri: " in m and "system folder /etc" in m for m in messages), messages
    messages = lint(tmp_path, IRIS + "storage: {uri: 'file://server'}\n")
    assert any(": storage.uri: " in m and "state folder" in m for m in messages), messages
    assert lint(tmp_path, IRIS + "storage: {uri: 'file://models'}\n") == []


@pytest.mark.parametrize(
    "owner, char",
    [
        ('"ml-team\\nINFO - deployed"', "U+000A"),
        ('"ml\\x00team"', "U+0000"),
        ('"ml-team\\u202egnp.exe"', "U+202E"),
        ('"ml\\tteam"', "U+0009"),
        ('"\\e[31mred"', "U+001B"),
        ('"ml\\u2066team"', "U+2066"),
        ('"ml\\u200b-team"', "U+200B"),
        ('"\\ufeffml-team"', "U+FEFF"),
    ],
)
def test_owner_with_a_control_or_bidi_character_is_refused(owner: str, char: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec_text(IRIS.replace("owner: ml-team", f"owner: {owner}"), "s.yaml")
    messages = [str(p) for p in caught.value.problems]
    assert any(m.startswith("s.yaml:8:") and ": metadata.owner: " in m and char in m for m in messages), messages


@pytest.mark.parametrize(
    "before, after, field",
    [
        ("description: Iris species from four flower measurements", 'description: "Iris\\u202e species"', "metadata.description"),
        ("tags: [tabular, demo]", 'tags: [tabular, "de\\nmo"]', "metadata.tags[1]"),
        ("source: builtin:iris", 'source: "file://data/iris\\u202ecsv.npz"', "data.source"),
    ],
)
def test_every_free_text_field_is_checked(before: str, after: str, field: str) -> None:
    assert before in IRIS
    with pytest.raises(SpecError) as caught:
        load_spec_text(IRIS.replace(before, after), "s.yaml")
    messages = [str(p) for p in caught.value.problems]
    assert any(f": {field}: " in m and ("control" in m) for m in messages), messages


def test_a_label_key_with_a_control_character_is_refused() -> None:
    text = IRIS.replace("source: builtin:iris", "source: 'file://data/t.csv'\n  label: \"spe\\x07cies\"")
    with pytest.raises(SpecError) as caught:
        load_spec_text(text, "s.yaml")
    assert any(": data.label: " in str(p) and "U+0007" in str(p) for p in caught.value.problems)


def test_printable_unicode_still_passes() -> None:
    load_spec_text(IRIS.replace("owner: ml-team", "owner: 'Équipe ML — 機械学習 😀'"), "s.yaml")

"""The content-hash cache of validated specs: unchanged specs skip parsing and validation, edits never do."""

from __future__ import annotations

import shutil

import pytest
from tests.fixtures.paths import SPECS

import mlspec.dagbag as dagbag
from mlspec.compiler import TASK_ORDER
from mlspec.spec import cache as spec_cache


class Validations:
    """The spec files validated so far (specs are checked in a forked process: recorded on disk)."""

    def __init__(self, log) -> None:
        self.log = log

    def record(self, file: str) -> None:
        with open(self.log, "a") as handle:
            handle.write(file + "\n")

    @property
    def files(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def __eq__(self, other) -> bool:
        return self.files == other

    def __len__(self) -> int:
        return len(self.files)


@pytest.fixture
def validations(tmp_path, monkeypatch):
    monkeypatch.setenv("MLSPEC_SPEC_CACHE", str(tmp_path / "cache"))
    seen = Validations(tmp_path / "validated.txt")
    real = dagbag.resolve_spec

    def resolve(doc):
        seen.record(doc.file)
        return real(doc)

    monkeypatch.setattr(dagbag, "resolve_spec", resolve)
    return seen


def test_unchanged_specs_are_validated_once(tmp_path, validations):
    specs = tmp_path / "specs"
    specs.mkdir()
    shutil.copy(SPECS / "digits.yaml", specs)
    first = dagbag.compile_specs(specs)
    second = dagbag.compile_specs(specs)
    assert validations == [str(specs / "digits.yaml")]
    assert [t.task_id for t in second["digits"].tasks] == list(TASK_ORDER)
    assert second["digits"].doc_md == first["digits"].doc_md
    assert second["digits"].get_task("train").spec == first["digits"].get_task("train").spec


def test_an_edit_is_validated_again_and_errors_are_never_cached(tmp_path, validations):
    specs = tmp_path / "specs"
    specs.mkdir()
    path = specs / "iris.yaml"
    path.write_text((SPECS / "iris.yaml").read_text())
    dagbag.compile_specs(specs)
    path.write_text(path.read_text().replace("epochs: 60", "epochs: -1"))
    for _ in range(2):
        broken = dagbag.compile_specs(specs)["iris"]
        assert [t.task_id for t in broken.tasks] == ["spec_error"]
    assert len(validations) == 3


def test_a_corrupt_entry_falls_back_to_full_validation(tmp_path, validations):
    specs = tmp_path / "specs"
    specs.mkdir()
    shutil.copy(SPECS / "digits.yaml", specs)
    dagbag.compile_specs(specs)
    for entry in (tmp_path / "cache").iterdir():
        entry.write_text("{not json")
    assert "digits" in dagbag.compile_specs(specs)
    assert len(validations) == 2


def test_the_cache_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("MLSPEC_SPEC_CACHE", "off")
    text = (SPECS / "digits.yaml").read_text()
    spec_cache.put(text, {"metadata": {"name": "digits"}})
    assert spec_cache.get(text) is None

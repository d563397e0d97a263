"""The content-hash cache of validated specs: unchanged specs skip parsing and validation, edits never do."""

from __future__ import annotations

import copy
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


@pytest.fixture
def fresh_salt():
    """The cache key's salt computed again for the test and after it (it is computed once per process)."""
    spec_cache._salt.cache_clear()
    yield
    spec_cache._salt.cache_clear()


def test_a_regenerated_parameter_table_validates_again(tmp_path, monkeypatch, fresh_salt):
    monkeypatch.setenv("MLSPEC_SPEC_CACHE", str(tmp_path / "cache"))
    text = (SPECS / "digits.yaml").read_text()
    tables = tmp_path / "frameworks"
    shutil.copytree(spec_cache.FRAMEWORK_TABLES, tables, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    assert {t.name for t in tables.glob("*.json")} >= {"sklearn_estimators.json", "xgboost_params.json"}
    monkeypatch.setattr(spec_cache, "FRAMEWORK_TABLES", tables)
    spec_cache.put(text, {"metadata": {"name": "digits"}})
    assert spec_cache.get(text) == {"metadata": {"name": "digits"}}

    table = tables / "xgboost_params.json"
    table.write_text(table.read_text().replace("n_estimators", "n_estimators_renamed"))
    spec_cache._salt.cache_clear()

    assert spec_cache.get(text) is None


def test_a_new_framework_validates_again(tmp_path, monkeypatch, fresh_salt):
    monkeypatch.setenv("MLSPEC_SPEC_CACHE", str(tmp_path / "cache"))
    text = (SPECS / "digits.yaml").read_text()
    spec_cache.put(text, {"metadata": {"name": "digits"}})
    schema = copy.deepcopy(spec_cache.load_schema())
    schema["properties"]["model"]["properties"]["framework"]["enum"].append("catboost")
    monkeypatch.setattr(spec_cache, "load_schema", lambda: schema)
    spec_cache._salt.cache_clear()

    assert spec_cache.get(text) is None

"""The framework table is the one place that knows a framework by name: nothing outside
mlspec.ml.frameworks compares `model.framework` with a word, the table is cheap to import first, and
a framework nobody special-cased is described in its own words."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from types import SimpleNamespace

from tests.conftest import REPO

from mlspec.ml import frameworks
from mlspec.ml.frameworks import FRAMEWORKS, framework_of
from mlspec.model_card import model_summary

PACKAGE = REPO / "plugins" / "mlspec"


def test_no_code_outside_the_frameworks_package_names_a_framework() -> None:
    names = "|".join(map(re.escape, FRAMEWORKS))
    word = re.compile(rf"""["']({names})["']""")
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if PACKAGE / "ml" / "frameworks" not in path.parents
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if word.search(line)
    ]
    assert found == []


def test_the_table_imports_first_and_nothing_heavy() -> None:
    code = (
        "import sys, mlspec.ml.frameworks as f; print(sorted(f.FRAMEWORKS)); "
        "print(sorted(m for m in ('numpy', 'sklearn', 'keras', 'tensorflow', 'xgboost', 'lightgbm', 'jsonschema', 'onnx') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == [str(sorted(FRAMEWORKS)), "[]"]


def test_a_framework_is_described_by_its_descriptor_not_as_keras(monkeypatch) -> None:
    # Before the table, any framework but sklearn read "TensorFlow/Keras, 0 layers" on its model card.
    toy = dataclasses.replace(FRAMEWORKS["sklearn"], name="toy", describe=lambda spec, run_params: "Toy, 3 rounds")
    monkeypatch.setitem(frameworks.FRAMEWORKS, "toy", toy)
    spec = SimpleNamespace(model=SimpleNamespace(framework="toy"), resolved={"model": {"framework": "toy"}})
    assert framework_of(spec) is toy
    assert model_summary(spec) == "Toy, 3 rounds"

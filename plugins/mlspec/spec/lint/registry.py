"""registry: what each backend needs to be reached (its rules live in its mlspec.registry.backends entry)."""

from __future__ import annotations

from collections.abc import Iterator

from mlspec.registry.backends import backend_of
from mlspec.spec.errors import SpecProblem
from mlspec.spec.yaml_loader import LoadedYaml


def check_registry(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    backend = backend_of(spec)
    if backend.lint is not None:
        yield from backend.lint(spec["registry"], doc.problem)

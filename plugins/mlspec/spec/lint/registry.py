"""registry: what each backend needs to be reached."""

from __future__ import annotations

from collections.abc import Iterator

from mlspec.spec.errors import SpecProblem
from mlspec.spec.yaml_loader import LoadedYaml


def check_registry(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    if spec["registry"]["backend"] == "kubeflow" and not spec["registry"]["connection"]:
        yield doc.problem(("registry", "connection"), "the kubeflow backend needs a connection id (host, port, token)")

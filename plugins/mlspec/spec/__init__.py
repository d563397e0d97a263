"""Spec loading: YAML with positions -> JSON Schema -> semantic checks -> typed, immutable ModelSpec.

No Airflow import here: the spec layer is testable on its own and cheap to import.
"""

from __future__ import annotations

from pathlib import Path

from mlspec.serving.platforms import with_settings_moved
from mlspec.spec.errors import SpecError, SpecProblem
from mlspec.spec.lint import check, check_credentials
from mlspec.spec.model import ModelSpec
from mlspec.spec.schema import fill_defaults, fill_task_defaults, load_schema, validate
from mlspec.spec.yaml_loader import LoadedYaml, load_yaml

__all__ = ["ModelSpec", "SpecError", "SpecProblem", "load_schema", "load_spec", "load_spec_text", "resolve_spec"]


def load_spec_text(text: str | bytes, file: str = "<spec>") -> ModelSpec:
    """Parse, validate and resolve a spec; raise SpecError listing every problem with its location."""
    return resolve_spec(load_yaml(text, file))


def resolve_spec(doc: LoadedYaml) -> ModelSpec:
    """Validate and resolve an already parsed spec (callers that parsed it once need not parse it again)."""
    file = doc.file
    credential_problems = check_credentials(doc)
    flagged = {p.path for p in credential_problems}
    problems = credential_problems + [p for p in validate(doc) if p.path not in flagged]
    if problems:
        raise SpecError(problems)
    resolved = fill_task_defaults(fill_defaults(with_settings_moved(doc.data)))
    problems = [p for p in check(doc, resolved) if p.severity == "error"]
    if problems:
        raise SpecError(problems)
    return ModelSpec.from_dict(resolved, source_file=file)


def load_spec(path: str | Path) -> ModelSpec:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SpecError([SpecProblem(str(path), 0, 0, "", f"cannot read the spec: {exc.strerror or exc}")]) from None
    return load_spec_text(data, str(path))

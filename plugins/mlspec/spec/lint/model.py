"""model and training: data that fits the task, no setting that belongs to another framework, and then
the spec's framework's own rules (its descriptor's `lint`, in mlspec.ml.frameworks: Keras' layers, loss
and early stopping; scikit-learn's estimator and params; ...)."""

from __future__ import annotations

from collections.abc import Iterator

from mlspec.ml.frameworks import FRAMEWORKS, Framework, framework_of
from mlspec.spec.errors import SpecProblem
from mlspec.spec.schema import fill_defaults, fill_task_defaults
from mlspec.spec.yaml_loader import LoadedYaml
from mlspec.vocabulary import DATA_SOURCES


def check_framework(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    """What the spec's framework needs and refuses, and data that fits the task."""
    task = spec["model"]["task"]
    known = DATA_SOURCES.get(spec["data"]["source"])
    if known is not None and known.task != task:
        yield doc.problem(
            ("data", "source"), f"{spec['data']['source']} is a {known.task} data set but model.task is {task}"
        )
    framework = framework_of(spec)
    yield from _foreign_settings(doc, spec, framework)
    yield from framework.lint(doc, spec)


def owners_of(path: str, besides: Framework) -> str:
    """"scikit-learn, XGBoost or LightGBM": the frameworks whose own fields hold `path`, if `besides` does
    not read it ("" when it does, or when none does)."""
    if besides.owns(path):
        return ""
    libraries = [other.library for other in FRAMEWORKS.values() if other.owns(path)]
    return ", ".join(libraries[:-1]) + " or " + libraries[-1] if len(libraries) > 1 else "".join(libraries)


def _foreign_settings(doc: LoadedYaml, spec: dict, framework: Framework) -> Iterator[SpecProblem]:
    """Fields only other frameworks read, set to anything but their defaults (a resolved spec's own dump
    carries the defaults: null, {}, [] and the default training)."""
    baseline = fill_task_defaults(fill_defaults({"model": {"task": spec["model"]["task"]}, "training": {}, "evaluation": {}}))
    seen = set()
    for other in FRAMEWORKS.values():
        for path in other.fields:
            if path in seen or framework.owns(path):
                continue
            seen.add(path)
            keys = tuple(path.split("."))
            if keys[0] in doc.data and _at(spec, keys) != _at(baseline, keys):
                # A whole section (training) holds settings; a field in one (model.estimator) is a setting.
                owners = owners_of(path, besides=framework)
                what = f"holds {owners} settings" if len(keys) == 1 else f"is a {owners} setting"
                yield doc.problem(
                    keys,
                    f"{path} {what}; with framework {framework.name} describe the model in {framework.settings}",
                    at_key=True,
                )


def _at(spec: dict, keys: tuple[str, ...]) -> object:
    for key in keys:
        spec = spec.get(key) if isinstance(spec, dict) else None
    return spec

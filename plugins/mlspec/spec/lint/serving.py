"""serving: a runtime and a store the platform can serve from, the platform's own settings (its rules live in
its entry in mlspec.serving.platforms), and settings written where they used to be or for another platform."""

from __future__ import annotations

from collections.abc import Iterator

from mlspec.serving.platforms import PLATFORMS, moved_keys_written, platform_named
from mlspec.spec.errors import SpecProblem
from mlspec.spec.lint.uris import uri_scheme
from mlspec.spec.yaml_loader import LoadedYaml


def check_serving(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    serving = spec["serving"]
    platform = platform_named(serving["platform"])
    written = doc.data.get("serving") or {}
    yield from _moved_keys(doc, written)
    runtime = serving["runtime"]
    if runtime not in platform.runtimes:
        yield doc.problem(("serving", "runtime"), f"platform {platform.name} needs runtime {' or '.join(platform.runtimes)}, not {runtime}")
    scheme = uri_scheme(spec["storage"]["uri"])
    if platform.store_schemes and scheme not in platform.store_schemes:
        wanted = " or ".join(f"{s}://" for s in platform.store_schemes)
        yield doc.problem(("storage", "uri"), f"platform {platform.name} cannot load a model from a {scheme}:// store: use an {wanted} storage.uri")
    for other in PLATFORMS.values():
        if other is not platform and other.name in written:
            yield doc.problem(("serving", other.name), f"ignored: serving.platform is {platform.name}, not {other.name}", severity="warning")
    for each in PLATFORMS.values():  # every platform's settings: one written for another platform is still checked
        if each.lint is not None:
            yield from each.lint(serving[each.name], _reporter(doc, written, each.name))


def _moved_keys(doc: LoadedYaml, written: dict) -> Iterator[SpecProblem]:
    for key, name in moved_keys_written(written):
        if key in (written.get(name) or {}):
            yield doc.problem(("serving", key), f"written twice: serving.{name}.{key} is read, this one is not; delete it")
        else:
            yield doc.problem(("serving", key), f"serving.{key} is now serving.{name}.{key}: move it there", severity="warning")


def _reporter(doc: LoadedYaml, written: dict, name: str):
    """problem(path, message) for a platform's lint rules: its path relative to serving.<name>."""

    def problem(path: tuple, message: str, severity: str = "error") -> SpecProblem:
        return doc.problem(_written_at(written, name, path), message, severity=severity)

    return problem


def _written_at(written: dict, name: str, path: tuple) -> tuple:
    """Where a platform setting was written: serving.<name>.<path>, or serving.<path> where it used to be."""
    return ("serving", *path) if path[0] in written and path[0] not in (written.get(name) or {}) else ("serving", name, *path)

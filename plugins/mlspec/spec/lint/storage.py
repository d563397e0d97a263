"""storage: the store is a file:// folder or an s3:// prefix; `mlspec lint` also checks a local file://
store (check_local_store)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from mlspec.errors import StoreError
from mlspec.serving.platforms import platform_named
from mlspec.spec.errors import SpecProblem, quote
from mlspec.spec.lint.uris import uri_problem
from mlspec.spec.yaml_loader import LoadedYaml
from mlspec.storage import STORE_KINDS, check_store_path, store_kind


def check_storage_uri(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    uri = spec["storage"]["uri"]
    if store_kind(uri) is None:
        examples = " or ".join(kind.example for kind in STORE_KINDS.values())
        yield doc.problem(("storage", "uri"), f"unsupported storage URI {quote(uri)}; use {examples}")
    problem = uri_problem(uri, names_an_object=False)
    if problem:
        yield doc.problem(("storage", "uri"), problem)


def check_local_store(doc: LoadedYaml, spec: dict, home: Callable[[], Path], specs_dir: Path | None) -> list[SpecProblem]:
    """A store on this machine (a file:// store) within the allowed store folders (`mlspec lint` only)."""
    uri = spec["storage"]["uri"]
    kind = store_kind(uri)
    if kind is None or kind.local_path is None:
        return []
    try:
        store = check_store_path(kind.local_path(uri, home), what=quote(uri), specs_dir=specs_dir)
    except StoreError as exc:
        return [doc.problem(("storage", "uri"), str(exc))]
    return _served_store_warning(doc, spec, uri, store, home)


def _served_store_warning(doc: LoadedYaml, spec: dict, uri: str, store: Path, home) -> list[SpecProblem]:
    """A warning when the local model server, as started by default (`mlspec serve`, `make serve`), would
    refuse to load from this file:// store: it loads only from MLSPEC_HOME/models without --allow-root."""
    if not platform_named(spec["serving"]["platform"]).on_this_machine:
        return []
    served = Path(os.path.realpath(home() / "models"))
    if store == served or served in store.parents:
        return []
    return [
        doc.problem(
            ("storage", "uri"),
            f"the local model server loads only from {served} by default, so deploying from {quote(uri)} "
            f"would be refused (403); start it with --allow-root {store.as_uri()} (or use file://models)",
            severity="warning",
        )
    ]

"""data: the source is of a known kind (mlspec.sources: a known data set, or a file of a known format), and the
split leaves data to train on; `mlspec lint` also checks a local file source (check_local_source)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from mlspec.errors import StoreError
from mlspec.sources import schemes_text, source_kind
from mlspec.spec.errors import SpecProblem, quote
from mlspec.spec.lint.uris import uri_problem
from mlspec.spec.model import parse_bytes
from mlspec.spec.yaml_loader import LoadedYaml
from mlspec.storage import check_data_path, max_source_bytes, source_cap_hint
from mlspec.storage.file import file_kind


def check_data_source(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    """The source's kind (mlspec.sources) must be known; then its own rules, then the URI's form."""
    source = spec["data"]["source"]
    kind = source_kind(source)
    if kind is None:
        yield doc.problem(("data", "source"), f"unsupported source {quote(source)}; use {schemes_text()}")
    else:
        for field, message in kind.problems(source, quote, spec["data"]):
            yield doc.problem(("data", field), message)
    problem = uri_problem(source, names_an_object=True)
    if problem:
        yield doc.problem(("data", "source"), problem)


def check_split(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    if spec["data"]["split"]["validation"] + spec["data"]["split"]["test"] >= 0.9:
        yield doc.problem(("data", "split"), "validation + test leave less than 10% of the data for training")


def check_local_source(doc: LoadedYaml, spec: dict, home: Callable[[], Path], specs_dir: Path | None) -> list[SpecProblem]:
    """A data source on this machine (a file:// source) within the allowed data folders and, when it exists
    here, a regular file within the size cap (`mlspec lint` only)."""
    source = spec["data"]["source"]
    kind = source_kind(source)
    if kind is None or kind.local_path is None:
        return []
    try:
        path = kind.local_path(source, home)
        check_data_path(path, what=quote(source), specs_dir=specs_dir)
    except StoreError as exc:
        return [doc.problem(("data", "source"), str(exc))]
    try:
        info = os.stat(path)  # follows symlinks: a link to /dev/zero is a device
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        return [doc.problem(("data", "source"), f"cannot check {quote(source)} ({path}): {exc.strerror or exc}")]
    if not stat.S_ISREG(info.st_mode):
        return [
            doc.problem(
                ("data", "source"),
                f"{quote(source)} ({path}) is a {file_kind(info.st_mode)}, not a regular file; a data source must "
                "be a file (a device or a pipe would be read without end)",
            ),
        ]
    limit = max_source_bytes(parse_bytes(spec["data"].get("limits", {}).get("max_bytes", 0)))
    if info.st_size > limit:
        return [
            doc.problem(
                ("data", "source"),
                f"{quote(source)} is {info.st_size} bytes; data sources are limited to {limit} bytes: "
                f"{source_cap_hint()}",
            ),
        ]
    return []

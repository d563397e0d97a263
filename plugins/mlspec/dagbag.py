"""Compile a folder of specs into DAGs without ever letting one bad file take the others down.

* A valid spec becomes its DAG.
* An invalid spec becomes a placeholder DAG under the same dag_id (or `mlspec-invalid-<file>` when it
  has no usable name): paused on creation, never scheduled, its doc and its only task carry the
  `file:line:col` errors. The dag_id stays visible, so run history stays reachable after a bad edit.
* Two specs with the same metadata.name both get reported in one placeholder; neither silently wins.
* A worker that runs one task only compiles that DAG's spec (Airflow's parsing context).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from mlspec.spec import ModelSpec, SpecError, SpecProblem, resolve_spec
from mlspec.spec import cache as spec_cache
from mlspec.spec.yaml_loader import LoadedYaml, load_yaml

log = logging.getLogger(__name__)

SPEC_SUFFIXES = (".yaml", ".yml")


def spec_files(specs_dir: Path) -> list[Path]:
    return sorted(p for p in specs_dir.iterdir() if p.suffix in SPEC_SUFFIXES and p.is_file()) if specs_dir.is_dir() else []


_DAG_ID = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def fallback_name(path: Path) -> str:
    """The dag_id of a spec that names no usable dag_id itself."""
    return "mlspec-invalid-" + re.sub(r"[^a-z0-9]+", "-", path.stem.lower())[:40].strip("-")


def claimed_name(data: object, path: Path) -> str:
    """The dag_id a (possibly invalid) spec claims, else one made from its file name."""
    name = data.get("metadata", {}).get("name") if isinstance(data, dict) and isinstance(data.get("metadata"), dict) else None
    return name if isinstance(name, str) and len(name) <= 63 and _DAG_ID.fullmatch(name) else fallback_name(path)


def declared_name(path: Path, text: str) -> str:
    """The dag_id a spec claims, read leniently (the spec may be invalid)."""
    try:
        return claimed_name(load_yaml(text, str(path)).data, path)
    except SpecError:
        return fallback_name(path)


def _problems_text(problems: list[SpecProblem]) -> str:
    return "\n".join(str(p) for p in problems)


def build_error_dag(dag_id: str, problems: list[SpecProblem]):
    """A runnable-looking but failing DAG that shows a spec's errors where users look in the UI."""
    from airflow.sdk import DAG

    from mlspec.compiler import START_DATE
    from mlspec.operators.spec_error import SpecErrorOperator

    text = _problems_text(problems)
    dag = DAG(
        dag_id=dag_id,
        description=f"INVALID SPEC: {problems[0]}"[:500],
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        is_paused_upon_creation=True,
        tags=["mlspec", "invalid-spec"],
        doc_md=f"### This spec does not compile\n\nFix these problems (`mlspec lint` shows the same):\n\n```\n{text}\n```\n",
    )
    SpecErrorOperator(task_id="spec_error", errors=text, dag=dag, doc_md=f"```\n{text}\n```")
    return dag


def _parsing_dag_id() -> str | None:
    from airflow.sdk import get_parsing_context

    return get_parsing_context().dag_id


def compile_specs(specs_dir: Path | str | None = None) -> dict:
    """dag_id -> DAG for every spec file in MLSPEC_SPECS_DIR when set, else specs_dir (default ./specs)."""
    from mlspec.compiler import build_dag

    specs_dir = Path(os.environ.get("MLSPEC_SPECS_DIR") or specs_dir or "specs")
    only = _parsing_dag_id()
    # Each file is read and parsed once; a YAML error is kept and reported under the file's fallback name.
    parsed: dict[Path, tuple[str, LoadedYaml | SpecError | dict]] = {}
    claimed: dict[str, list[Path]] = {}
    for path in spec_files(specs_dir):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            log.error("cannot read spec %s: %s", path, exc)
            continue
        resolved = spec_cache.get(text)
        if resolved is not None:  # validated before: unchanged text, schema and mlspec version
            doc: LoadedYaml | SpecError | dict = resolved
            name = resolved["metadata"]["name"]
        else:
            try:
                doc = load_yaml(text, str(path))
                name = claimed_name(doc.data, path)
            except SpecError as exc:
                doc, name = exc, fallback_name(path)
        if only is not None and name != only:
            continue  # a worker running one task compiles that DAG's spec only
        parsed[path] = (text, doc)
        claimed.setdefault(name, []).append(path)

    dags: dict = {}
    for name, paths in claimed.items():
        if len(paths) > 1:
            problems = [
                SpecProblem(str(p), 1, 1, "metadata.name", f"dag_id `{name}` is also claimed by {', '.join(str(o) for o in paths if o != p)}")
                for p in paths
            ]
            log.error("duplicate dag_id %s:\n%s", name, _problems_text(problems))
            dags[name] = build_error_dag(name, problems)
            continue
        (path,) = paths
        text, doc = parsed[path]
        try:
            if isinstance(doc, SpecError):
                raise doc
            if isinstance(doc, dict):
                spec = ModelSpec.from_dict(doc, source_file=str(path))
            else:
                spec = resolve_spec(doc)
                spec_cache.put(text, spec.to_dict())
            dags[name] = build_dag(spec, spec_text=text)
        except SpecError as exc:
            log.error("invalid spec %s; its DAG %s shows the errors:\n%s", path, name, exc)
            dags[name] = build_error_dag(name, exc.problems)
        except Exception as exc:  # noqa: BLE001 - one broken spec must never take the other DAGs down
            log.exception("could not compile %s", path)
            dags[name] = build_error_dag(name, [SpecProblem(str(path), 1, 1, "", f"could not compile: {type(exc).__name__}: {exc}")])
    return dags

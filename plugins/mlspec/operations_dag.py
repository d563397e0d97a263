"""The `mlspec_operations` DAG: deploy, roll back, undeploy or check any model, or act on its rollout, from the
Airflow UI.

One DAG whose trigger form offers the model (a list of the specs), the action and the version;
its one task runs `mlspec.operations` (the release service) exactly as the CLI does.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

from mlspec.compiler import START_DATE
from mlspec.dagbag import declared_name, spec_files
from mlspec.deadlines import OPERATION_DEADLINE
from mlspec.errors import MlspecError
from mlspec.operations import ACTIONS, run_action
from mlspec.registry.backends import backend_named
from mlspec.release import Trigger
from mlspec.serving import platform_named
from mlspec.sources import source_kind
from mlspec.spec import cache as spec_cache
from mlspec.spec import load_spec
from mlspec.spec.yaml_loader import read_spec_file
from mlspec.storage import store_kind

log = logging.getLogger(__name__)

DAG_ID = "mlspec_operations"


class ModelOperationOperator(BaseOperator):
    """Runs the action chosen in the trigger form (params model, action, version) on that model's spec."""

    template_fields = ("model", "action", "version")
    ui_color = "#fde293"

    def __init__(self, *, specs_dir: str, model: str, action: str, version: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.specs_dir = specs_dir
        self.model = model
        self.action = action
        self.version = version

    def execute(self, context) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        version = int(self.version) if str(self.version or "").strip().isdigit() else None
        try:
            spec = spec_named(Path(self.specs_dir), self.model)
            log.info("%s %s%s", self.action, self.model, f" version {version}" if version is not None else "")
            # The audit trail names who triggered this run (or "schedule") and links to it.
            result = run_action(spec, self.action, version, trigger=Trigger.from_context(context))
        except MlspecError as exc:
            raise AirflowFailException(f"{self.action} of {self.model} failed: {exc}") from None
        log.info("done: %s", result)
        return result


def spec_named(specs_dir: Path, name: str):
    """The valid spec whose metadata.name is `name`."""
    for path in spec_files(specs_dir):
        if declared_name(path, path.read_text(encoding="utf-8", errors="replace")) == name:
            return load_spec(path)
    raise MlspecError(f"no spec in {specs_dir} is named {name!r}")


def runs_here(resolved: Any) -> bool:
    """Whether a (resolved) spec needs nothing but this machine: built-in or local data, a file:// store, the
    embedded MLflow registry and tracking, and the local model server at its configured address."""
    storage, registry, serving = resolved["storage"], resolved["registry"], resolved["serving"]
    source, store = source_kind(str(resolved["data"]["source"])), store_kind(str(storage["uri"]))
    return (
        source is not None and source.runs_here
        and store is not None and store.runs_here and not storage.get("connection")
        and backend_named(registry["backend"]).embedded and not registry.get("connection")
        and not resolved["tracking"].get("connection")
        and platform_named(serving["platform"]).on_this_machine and not serving.get("url")
    )


def default_model(specs_dir: Path, names: list[str]) -> str:
    """The form's preselected model: the first, by name, that runs here (`runs_here`), else the first name.
    Read from the spec cache compile_specs has just filled, so no spec is parsed again (with the cache off,
    MLSPEC_SPEC_CACHE=off, it is the first name)."""
    local = set()
    for path in spec_files(specs_dir):
        try:
            resolved = spec_cache.get(read_spec_file(path).decode("utf-8", errors="replace"))
            if resolved is not None and runs_here(resolved):
                local.add(resolved["metadata"]["name"])
        except Exception:  # noqa: BLE001 - only the default is at stake
            continue
    return next((name for name in names if name in local), names[0] if names else "")


def build_operations_dag(specs_dir: Path | str, model_names: list[str] | None = None):
    """`model_names`: the dag ids compile_specs made (one per spec file), so the specs are not read a
    second time; left out (a worker running this DAG's task alone), they are read from the files."""
    from airflow.sdk import DAG, Param

    specs_dir = Path(os.environ.get("MLSPEC_SPECS_DIR") or specs_dir)
    if model_names is None:
        model_names = [declared_name(p, p.read_text(encoding="utf-8", errors="replace")) for p in spec_files(specs_dir)]
    names = sorted(set(model_names))
    with DAG(
        dag_id=DAG_ID,
        description="Deploy, roll back or undeploy a model version, or pause, resume or abort its rollout; the registry "
        "moves first, serving follows",
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=["mlspec", "operations"],
        doc_md=(
            "### Model operations\n\nTrigger with a model, an action and (for deploy, or rollback to a given "
            "version) a version. Every action moves the registry first, then serving, then smoke-tests the "
            "endpoint; a failure restores both. `status` only reports. The rollout actions act on the rollout "
            "under way, as you (the run's user). The CLI does the same: "
            "`mlspec deploy|rollback|undeploy|status <spec>`, `mlspec rollout <spec> --status|--pause|--resume|--abort`."
        ),
        params={
            "model": Param(default_model(specs_dir, names), type="string", enum=names or [""], title="Model", description="The spec's metadata.name"),
            "action": Param("status", type="string", enum=list(ACTIONS), title="Action",
                            description="status: report; deploy: serve version N; rollback: the previous production version (or N); "
                            "undeploy: stop serving; rollout_status: the rollout under way; rollout_pause / rollout_resume: "
                            "stop its step / run it again; rollout_abort: production takes all traffic back now"),
            "version": Param(None, type=["null", "integer"], minimum=1, title="Version",
                             description="deploy: the store version to serve (required); rollback: optional target"),
        },
    ) as dag:
        ModelOperationOperator(
            task_id="run_operation",
            execution_timeout=OPERATION_DEADLINE,  # a hung endpoint or store never holds the operations
            specs_dir=str(specs_dir),
            model="{{ params.model }}",
            action="{{ params.action }}",
            version="{{ params.version }}",
        )
    return dag

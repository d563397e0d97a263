"""A model under rollout for the rollout operations' tests (CLI and mlspec_operations DAG): version 1 production
and serving on a real model server, version 2 loaded beside it answering 10 % of live requests as a canary step
leaves it, and its rollout record written through the embedded MLflow registry as the rollout task writes it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from tests.fixtures.server_testkit import TEST_TOKEN
from tests.operators.operations_testkit import Published, publish_versions, spec_text, start_server

ROLLOUT = "rollout:\n  canary: {steps: [10, 100], bake: 1s}\n  gates: {agreement: 0.95, min_requests: 20}\n"
CHECKS = [{"gate": "min_requests", "value": 40, "limit": 20, "passed": True},
          {"gate": "agreement", "value": 0.99, "limit": 0.95, "passed": True}]


@contextmanager
def served_home(folder: Path) -> Iterator[Path]:
    """MLSPEC_HOME at `folder` (the test token, no MLflow or lock overrides from outside) with a real model server
    there, for a module's tests; the server stops after them."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLSPEC_HOME", str(folder))
        patch.setenv("MLSPEC_SERVER_TOKEN", TEST_TOKEN)
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLSPEC_LOCK_TIMEOUT_S"):
            patch.delenv(name, raising=False)
        server = start_server(folder, patch)
        try:
            yield folder
        finally:
            server.stop()


def running_record(state: str = "running") -> dict[str, Any]:
    return {"version": 2, "production": 1, "state": state, "started": "2026-12-07T14:00:00Z",
            "updated": "2026-12-07T14:00:03Z", "on_fail": "rollback",
            "steps": [{"kind": "canary", "percent": 10, "traffic": {"1": 90, "2": 10}, "shadow": 100,
                       "started": "2026-12-07T14:00:01Z", "ended": None, "outcome": "waiting", "requests": 40,
                       "checks": CHECKS}]}


def under_rollout(folder: Path, name: str) -> tuple[Published, str]:
    """The model `name` under rollout (see the module); its spec written to `folder`. Returns (the published
    model, the spec file's path). MLSPEC_HOME, MLSPEC_SERVER_URL and the server's token are set by the caller."""
    from mlspec.operations import deploy_version
    from mlspec.release import Release

    model = publish_versions(name, 2, extra=ROLLOUT)
    deploy_version(model.spec, 1)
    serving = Release.open(model.spec).serving
    serving.await_ready(serving.apply(name, 2, model.uris[2], serve=False))
    serving.set_traffic(name, {"weights": {"1": 90, "2": 10}, "shadow": {"version": "2", "percent": 100}})
    model.registry().record_rollout(name, 2, running_record())
    path = folder / f"{name}.yaml"
    path.write_text(spec_text(name, ROLLOUT))
    return model, str(path)

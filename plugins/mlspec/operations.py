"""Operations on a model's production version: deploy N, roll back, undeploy, status.

The registry is the record of production and serving follows it. Every change moves the registry
first, then applies to serving, then smoke-tests the endpoint; a failure restores both to where
they were. Used by the `mlspec deploy|rollback|undeploy|status` commands and the
`mlspec_operations` DAG.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from mlspec.errors import MlspecError, ServingError

log = logging.getLogger(__name__)

ACTIONS = ("status", "deploy", "rollback", "undeploy")


class OperationFailed(MlspecError):
    """The operation did not complete; the message says what was restored."""


@dataclass
class Backends:
    """The spec's registry, serving backend and store, opened once per operation."""

    spec: Any
    registry: Any
    serving: Any
    store: Any

    @classmethod
    def open(cls, spec: Any) -> Backends:
        from mlspec.registry import open_registry
        from mlspec.serving import open_serving
        from mlspec.storage import open_store

        store = open_store(spec.storage.uri, spec.storage.connection)
        return cls(spec, open_registry(spec.registry.backend, spec.registry.connection), open_serving(spec, store), store)


def status(spec: Any) -> dict[str, Any]:
    """The registry's production version, what serving answers with, and any drift between them."""
    backends = Backends.open(spec)
    production = backends.registry.production_version(spec.name)
    try:
        serving: int | None | str = backends.serving.served_version(spec.name)
    except ServingError as exc:
        serving = f"unreachable: {exc}"
    reachable = not isinstance(serving, str)
    drift = reachable and serving != production
    report = {
        "model": spec.name,
        "production": production,
        "serving": serving,
        "reachable": reachable,
        "drift": drift,
        "history": backends.registry.production_history(spec.name),
        "latest": backends.registry.latest_version(spec.name),
    }
    if drift:
        report["advice"] = (
            f"serving does not follow the registry; `mlspec deploy {spec.source_file or '<spec>'} --version {production}` "
            "puts the registry's production version back" if production is not None
            else f"nothing is production in the registry; `mlspec undeploy {spec.source_file or '<spec>'}` stops serving"
        )
    return report


def deploy_version(spec: Any, version: int, *, reason: str = "deployed on request") -> dict[str, Any]:
    """Make store version `version` production and serve it; restore both if it fails its smoke test."""
    backends = Backends.open(spec)
    record = backends.registry.version_record(spec.name, version)
    if record is None:
        known = backends.registry.latest_version(spec.name)
        raise OperationFailed(
            f"{spec.name} version {version} is not registered (latest registered: {known}); nothing changed"
        )
    onnx_bytes = _verified_model(backends, record)
    previous = backends.registry.production_version(spec.name)
    served_before = _served_or_none(backends)
    if served_before != previous:
        log.warning("drift: serving had %s version %s, the registry says %s; this deploy corrects it",
                    spec.name, served_before, previous)
    log.info("deploying %s version %d (production before: %s): registry first, then serving", spec.name, version, previous)
    backends.registry.set_production(spec.name, version, reason=reason)
    try:
        deployment = backends.serving.deploy(spec.name, version, record.source_uri)
        report = _smoke_test(backends, deployment, onnx_bytes, record)
    except MlspecError as exc:
        restored = _restore(backends, previous)
        backends.registry.set_state(spec.name, version, "failed", {"failure": str(exc)[:2000]})
        raise OperationFailed(f"deploying {spec.name} version {version} failed: {exc}; {restored}") from None
    served = backends.serving.served_version(spec.name)
    if served != version:
        restored = _restore(backends, previous)
        raise OperationFailed(f"after deploying, serving answers with version {served}, not {version}; {restored}")
    log.info("%s version %d is production and serving (smoke test agreement %.3f)", spec.name, version, report["agreement"])
    return {"model": spec.name, "action": "deploy", "version": version, "previous": previous,
            "endpoint_url": deployment.endpoint_url, "smoke_test": report}


def rollback(spec: Any, to_version: int | None = None) -> dict[str, Any]:
    """Serve `to_version`, by default the version that was production before the current one."""
    backends = Backends.open(spec)
    current = backends.registry.production_version(spec.name)
    if to_version is None:
        earlier = [v for v in backends.registry.production_history(spec.name) if v != current]
        if not earlier:
            raise OperationFailed(
                f"{spec.name} has no earlier production version to roll back to (production: {current}); "
                "name one with --to-version, or undeploy"
            )
        to_version = earlier[-1]
    result = deploy_version(spec, to_version, reason=f"rollback from version {current}")
    return {**result, "action": "rollback", "rolled_back_from": current}


def undeploy(spec: Any) -> dict[str, Any]:
    """Nothing is production and nothing serves; if serving refuses, the registry is restored."""
    backends = Backends.open(spec)
    previous = backends.registry.production_version(spec.name)
    backends.registry.set_production(spec.name, None, reason="undeployed on request")
    try:
        backends.serving.undeploy(spec.name)
    except MlspecError as exc:
        if previous is not None:
            backends.registry.set_production(spec.name, previous, reason="restored: undeploy failed")
        raise OperationFailed(f"undeploying {spec.name} failed: {exc}; the registry still names version {previous}") from None
    return {"model": spec.name, "action": "undeploy", "previous": previous}


def run_action(spec: Any, action: str, version: int | None = None) -> dict[str, Any]:
    if action == "status":
        return status(spec)
    if action == "deploy":
        if version is None:
            raise OperationFailed("deploy needs a version")
        return deploy_version(spec, int(version))
    if action == "rollback":
        return rollback(spec, None if version is None else int(version))
    if action == "undeploy":
        return undeploy(spec)
    raise OperationFailed(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")


# -- helpers ------------------------------------------------------------------------------------


def _served_or_none(backends: Backends) -> int | None:
    try:
        return backends.serving.served_version(backends.spec.name)
    except ServingError:
        return None


def _verified_model(backends: Backends, record: Any) -> bytes:
    from mlspec.storage import sha256_hex

    try:
        onnx_bytes = backends.store.read_uri(f"{record.source_uri}/model.onnx")
    except MlspecError as exc:
        raise OperationFailed(f"{record.model_name} version {record.version} cannot be read from {record.source_uri}: {exc}; nothing changed") from None
    expected = record.files.get("model.onnx")
    if expected and sha256_hex(onnx_bytes) != expected:
        raise OperationFailed(
            f"{record.model_name} version {record.version}: model.onnx at {record.source_uri} does not match the sha256 "
            "the registry recorded (changed after publishing); nothing changed"
        )
    return onnx_bytes


def _smoke_test(backends: Backends, deployment: Any, onnx_bytes: bytes, record: Any) -> dict[str, Any]:
    """The endpoint must answer like the offline model, on rows drawn around each feature's training
    statistics (input_schema.json): an operation has no test split at hand."""
    import json

    import numpy as np

    from mlspec.ml.onnx_export import onnx_predict, onnx_signature
    from mlspec.serving.smoke_test import run_smoke_test, spec_settings

    spec = backends.spec
    signature = onnx_signature(onnx_bytes)
    try:
        schema = json.loads(backends.store.read_uri(f"{record.source_uri}/input_schema.json"))
    except MlspecError:
        schema = {}
    shape = [int(d) for d in signature["inputs"][0]["shape"][1:]]
    rng = np.random.default_rng(0)
    samples = spec.smoke_test.samples
    features = schema.get("features") or []
    if features and len(features) == int(np.prod(shape)):
        mean = np.array([f.get("mean") or 0.0 for f in features], dtype=np.float32)
        std = np.array([f.get("std") or 0.0 for f in features], dtype=np.float32)
        x = (mean + std * rng.standard_normal((samples, len(features))).astype(np.float32)).reshape(samples, *shape)
    else:
        x = rng.standard_normal((samples, *shape)).astype(np.float32)
    return run_smoke_test(
        endpoint_url=deployment.endpoint_url,
        model_name=deployment.served_model_name,
        version=deployment.version if deployment.platform == "local" else None,
        x=x,
        expected=onnx_predict(onnx_bytes, x),
        signature=signature,
        **spec_settings(spec),
    )


def _restore(backends: Backends, previous: int | None) -> str:
    """Put the registry and serving back to `previous`; a sentence saying what was done."""
    spec = backends.spec
    backends.registry.set_production(spec.name, previous, reason="restored after a failed operation")
    try:
        if previous is None:
            backends.serving.undeploy(spec.name)
            return "the registry and serving were restored: nothing is production and nothing serves"
        record = backends.registry.version_record(spec.name, previous)
        backends.serving.deploy(spec.name, previous, record.source_uri if record else "")
    except MlspecError as exc:
        return f"the registry names version {previous} again, but serving could not be restored ({exc}); serve it by hand"
    return f"version {previous} is production and serving again"

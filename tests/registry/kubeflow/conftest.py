"""Fixtures for the Kubeflow Model Registry backend: the vendored contract and a fake server held to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fake_model_registry import CONTRACT_FILES, FakeModelRegistry
from kubeflow_testkit import TOKEN
from tests.fixtures.paths import contracts_root, require_contract

from mlspec.registry.base import RegistrationRequest


@pytest.fixture(scope="session")
def contracts_dir() -> Path:
    """The contracts folder, once every Model Registry contract the fake serves is in it (else skip)."""
    for name in CONTRACT_FILES.values():
        require_contract(f"model-registry/{name}")
    return contracts_root()


@pytest.fixture(autouse=True)
def _own_mlspec_home(mlspec_home: Path) -> None:
    """Every test here gets its own MLSPEC_HOME."""


@pytest.fixture
def fake_registry(contracts_dir: Path) -> Iterator[Callable[..., object]]:
    """fake_registry(versions=("v1",), token=TOKEN) -> a started FakeModelRegistry.

    Every fake is stopped at the end, and the test fails if any request or response broke the contract.
    """
    started: list[FakeModelRegistry] = []

    def start(versions: tuple[str, ...] = ("v1",), token: str | None = TOKEN) -> FakeModelRegistry:
        fake = FakeModelRegistry(contracts_dir, versions=versions, token=token).start()
        started.append(fake)
        return fake

    yield start
    violations = [v for fake in started for v in fake.violations]
    for fake in started:
        fake.stop()
    if violations:
        pytest.fail("the fake Model Registry saw contract violations:\n" + "\n".join(violations))


@pytest.fixture
def fake(fake_registry: Callable[..., object]) -> object:
    """A fake serving API v1 that wants TOKEN."""
    return fake_registry()


@pytest.fixture
def make_request() -> Callable[..., RegistrationRequest]:
    base = RegistrationRequest(
        model_name="digits",
        version=3,
        source_uri="s3://models-bucket/team/digits/3",
        model_uri="s3://models-bucket/team/digits/3/model.onnx",
        metrics={"accuracy": 0.975, "f1": 0.9712},
        data_source="builtin:digits",
        spec_hash="sha256:5f2a9c",
        dag_id="digits",
        run_id="manual__2026-11-20T10:00:00+00:00",
        onnx_opset=17,
        description="Handwritten digits (8x8) classifier",
        owner="ml-team",
        storage_connection="aws_default",
        files={"model.onnx": "ab" * 32},
    )

    def make(**changes: object) -> RegistrationRequest:
        return replace(base, **changes)

    return make

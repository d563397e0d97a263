"""The store primitives and the publishing protocol, run against every backend (file:// and s3://)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import pytest

from mlspec.errors import StoreError
from mlspec.storage import ModelStore
from mlspec.storage.base import CLAIM, MANIFEST

MODEL = b"\x08\x07onnx-model-bytes" * 100
LABELS = b'["zero", "one", "two"]'


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def crash_on_manifest(monkeypatch: pytest.MonkeyPatch, store: ModelStore) -> None:
    """Make the next manifest write fail, as if the worker died right before it."""
    original = store.write_bytes

    def write(key: str, data: bytes) -> str:
        if key.endswith(MANIFEST):
            raise StoreError("simulated crash before the manifest")
        return original(key, data)

    monkeypatch.setattr(store, "write_bytes", write)


# -- primitives ---------------------------------------------------------------------------------


def test_round_trip_bytes(store: ModelStore) -> None:
    data = bytes(range(256)) * 3
    uri = store.write_bytes("digits/runs/r1/data.npz", data)
    assert uri == f"{store.root_uri}/digits/runs/r1/data.npz"
    assert store.exists("digits/runs/r1/data.npz")
    assert store.read_bytes("digits/runs/r1/data.npz") == data
    assert store.object_sha256("digits/runs/r1/data.npz") == sha(data)
    # Overwrite replaces the whole object.
    store.write_bytes("digits/runs/r1/data.npz", b"new")
    assert store.read_bytes("digits/runs/r1/data.npz") == b"new"
    assert store.object_sha256("digits/runs/r1/data.npz") == sha(b"new")


def test_empty_object_round_trip(store: ModelStore) -> None:
    store.write_bytes("a/empty.bin", b"")
    assert store.exists("a/empty.bin")
    assert store.read_bytes("a/empty.bin") == b""


def test_json_round_trip(store: ModelStore) -> None:
    store.write_json("digits/runs/r1/metrics.json", {"accuracy": 0.97, "f1": 0.96})
    assert store.read_json("digits/runs/r1/metrics.json") == {"accuracy": 0.97, "f1": 0.96}


def test_list_children_are_immediate_and_sorted(store: ModelStore) -> None:
    for key in ("m/2/model.onnx", "m/10/model.onnx", "m/1/model.onnx", "m/1/manifest.json", "m/notes.txt"):
        store.write_bytes(key, b"x")
    assert store.list_children("m") == sorted(["1", "10", "2", "notes.txt"])
    assert store.list_children("m/1") == ["manifest.json", "model.onnx"]
    assert store.list_children("") == ["m"]
    assert store.list_children("nothing-here") == []


def test_exists(store: ModelStore) -> None:
    assert not store.exists("m/1/model.onnx")
    store.write_bytes("m/1/model.onnx", b"x")
    assert store.exists("m/1/model.onnx")
    assert store.exists("m/1")  # a "folder" with something in it
    assert not store.exists("m/1/model")  # a prefix of a name is not an object
    assert store.object_sha256("m/1/other.onnx") is None


def test_missing_object_error_names_the_uri(store: ModelStore) -> None:
    with pytest.raises(StoreError) as info:
        store.read_bytes("digits/7/model.onnx")
    assert f"{store.root_uri}/digits/7/model.onnx" in str(info.value)
    assert "does not exist" in str(info.value)


@pytest.mark.parametrize("key", ["../escape.bin", "digits/../../escape.bin", "a/../b"])
def test_dotdot_in_a_key_is_refused(store: ModelStore, key: str) -> None:
    with pytest.raises(StoreError, match="escapes its prefix"):
        store.write_bytes(key, b"x")
    with pytest.raises(StoreError, match="escapes its prefix"):
        store.read_bytes(key)
    with pytest.raises(StoreError, match="escapes its prefix"):
        store.exists(key)
    with pytest.raises(StoreError, match="escapes its prefix"):
        store.list_children(key)
    assert store.list_children("") == []  # nothing was written anywhere


def test_dotdot_in_a_model_name_is_refused(store: ModelStore) -> None:
    with pytest.raises(StoreError, match="escapes its prefix"):
        store.publish_version("../digits", {"model.onnx": MODEL}, run_id="r1")
    assert store.list_children("") == []


def test_run_prefix_is_one_safe_segment(store: ModelStore) -> None:
    prefix = store.run_prefix("digits", "manual__2024-05-01T10:00:00+00:00")
    assert prefix.startswith("digits/runs/")
    segment = prefix.removeprefix("digits/runs/")
    assert "/" not in segment and ":" not in segment and "+" not in segment
    store.write_bytes(f"{prefix}/model.keras", b"k")
    assert store.list_children("digits/runs") == [segment]


# -- publishing ---------------------------------------------------------------------------------


def test_publish_version_writes_files_and_manifest(store: ModelStore) -> None:
    published = store.publish_version(
        "digits",
        {"model.onnx": MODEL, "labels.json": LABELS},
        run_id="run-a",
        metadata={"metrics": {"f1": 0.9}},
    )
    assert published.version == 1
    assert published.uri == f"{store.root_uri}/digits/1"
    assert published.files == {"model.onnx": sha(MODEL), "labels.json": sha(LABELS)}
    assert published.reused is False
    assert store.read_bytes("digits/1/model.onnx") == MODEL
    assert store.read_bytes("digits/1/labels.json") == LABELS
    manifest = store.read_manifest("digits", 1)
    assert manifest["files"] == {"model.onnx": sha(MODEL), "labels.json": sha(LABELS)}
    assert manifest["run_id"] == "run-a"
    assert manifest["version"] == 1
    assert manifest["metrics"] == {"f1": 0.9}
    assert json.loads(store.read_bytes(f"digits/1/{CLAIM}"))["run_id"] == "run-a"
    assert store.list_versions("digits") == [1]
    for name, digest in manifest["files"].items():
        assert store.object_sha256(f"digits/1/{name}") == digest


def test_publish_nothing_is_refused(store: ModelStore) -> None:
    with pytest.raises(StoreError, match="nothing to publish"):
        store.publish_version("digits", {}, run_id="run-a")


def test_interrupted_publish_is_invisible_and_the_retry_completes_that_version(
    store: ModelStore, monkeypatch: pytest.MonkeyPatch, count_writes: Callable[[ModelStore], list[str]]
) -> None:
    store.publish_version("digits", {"model.onnx": b"v1"}, run_id="run-a")
    with monkeypatch.context() as patch:
        crash_on_manifest(patch, store)
        with pytest.raises(StoreError, match="simulated crash"):
            store.publish_version("digits", {"model.onnx": MODEL}, run_id="run-b")
    # The claim and the model are there, the manifest is not: readers must not see version 2.
    assert store.list_children("digits/2") == sorted([CLAIM, "model.onnx"])
    assert store.list_versions("digits") == [1]

    written = count_writes(store)
    retried = store.publish_version("digits", {"model.onnx": MODEL}, run_id="run-b")
    assert retried.version == 2
    assert retried.reused is True
    assert written == ["digits/2/manifest.json"]  # model.onnx was already in place
    assert store.list_versions("digits") == [1, 2]
    assert store.read_manifest("digits", 2)["files"] == {"model.onnx": sha(MODEL)}


def test_retry_of_an_interrupted_publish_replaces_a_file_that_differs(
    store: ModelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        crash_on_manifest(patch, store)
        with pytest.raises(StoreError):
            store.publish_version("digits", {"model.onnx": b"first try"}, run_id="run-a")
    retried = store.publish_version("digits", {"model.onnx": MODEL}, run_id="run-a")
    assert retried.version == 1
    assert store.read_bytes("digits/1/model.onnx") == MODEL
    assert store.read_manifest("digits", 1)["files"] == {"model.onnx": sha(MODEL)}


def test_retry_of_a_completed_publish_is_idempotent(
    store: ModelStore, count_writes: Callable[[ModelStore], list[str]]
) -> None:
    files = {"model.onnx": MODEL, "labels.json": LABELS}
    first = store.publish_version("digits", files, run_id="run-a")
    before = {name: store.list_children(f"digits/{name}") for name in store.list_children("digits")}

    written = count_writes(store)
    again = store.publish_version("digits", files, run_id="run-a")
    assert (again.version, again.uri, again.files) == (first.version, first.uri, first.files)
    assert again.reused is True
    assert written == []  # nothing uploaded again, not even the manifest
    after = {name: store.list_children(f"digits/{name}") for name in store.list_children("digits")}
    assert after == before == {"1": sorted([CLAIM, MANIFEST, "labels.json", "model.onnx"])}
    assert store.list_versions("digits") == [1]


def test_retry_with_different_files_refuses_to_overwrite(store: ModelStore) -> None:
    store.publish_version("digits", {"model.onnx": MODEL}, run_id="run-a")
    with pytest.raises(StoreError, match="refusing to overwrite a published version"):
        store.publish_version("digits", {"model.onnx": b"other"}, run_id="run-a")
    assert store.read_bytes("digits/1/model.onnx") == MODEL


def test_a_different_run_gets_the_next_version(store: ModelStore) -> None:
    assert store.publish_version("digits", {"model.onnx": b"1"}, run_id="run-a").version == 1
    assert store.publish_version("digits", {"model.onnx": b"2"}, run_id="run-b").version == 2
    # Same bytes from another run still make a new version: a version belongs to a run.
    assert store.publish_version("digits", {"model.onnx": b"2"}, run_id="run-c").version == 3
    assert store.list_versions("digits") == [1, 2, 3]
    assert store.read_bytes("digits/2/model.onnx") == b"2"
    # Models do not share version numbers.
    assert store.publish_version("iris", {"model.onnx": b"i"}, run_id="run-a").version == 1


def test_a_claimed_but_unfinished_version_is_not_taken_by_another_run(
    store: ModelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        crash_on_manifest(patch, store)
        with pytest.raises(StoreError):
            store.publish_version("digits", {"model.onnx": b"a"}, run_id="run-a")
    other = store.publish_version("digits", {"model.onnx": b"b"}, run_id="run-b")
    assert other.version == 2
    assert store.list_versions("digits") == [2]
    assert store.publish_version("digits", {"model.onnx": b"a"}, run_id="run-a").version == 1
    assert store.list_versions("digits") == [1, 2]


def test_file_names_are_flattened_into_the_version_folder(store: ModelStore) -> None:
    store.publish_version("digits", {"export/model.onnx": MODEL}, run_id="run-a")
    assert store.read_bytes("digits/1/model.onnx") == MODEL
    assert store.list_children("digits/1") == sorted([CLAIM, MANIFEST, "model.onnx"])


def test_two_runs_racing_for_a_version_get_different_folders(store):
    """Both runs saw the same latest version; the atomic claim sends the second to the next number."""
    assert store.create_exclusive("race/1/.mlspec-claim.json", b'{"run_id": "a"}') is True
    assert store.create_exclusive("race/1/.mlspec-claim.json", b'{"run_id": "b"}') is False
    assert store.read_json("race/1/.mlspec-claim.json") == {"run_id": "a"}
    published = store.publish_version("race", {"model.onnx": b"b"}, run_id="b")
    assert published.version == 2

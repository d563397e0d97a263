"""Store faults from issue 9: broken claims, file modes, `..` in file:// URIs, pruning old run folders.

Every test here failed on the store before the fix it names.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from mlspec.errors import StoreError
from mlspec.storage import ModelStore, open_store, resolve_file_uri
from mlspec.storage.base import CLAIM, DEFAULT_KEEP_RUNS, MANIFEST
from mlspec.storage.file import FileStore

MODEL = b"onnx" * 64


# -- a claim that cannot be read (issue 9, broken 4) ---------------------------------------------


@pytest.mark.parametrize("content", [b"", b"{", b"\x00\x00", b"[1, 2]", b'{"run": 1}'])
def test_an_unreadable_claim_never_fails_a_later_store(store: ModelStore, content: bytes) -> None:
    """An empty `.mlspec-claim.json` (a crash or a full disk between create and write) made every later
    store of the model fail with a bare JSONDecodeError, forever."""
    store.write_bytes(f"digits/1/{CLAIM}", content)
    published = store.publish_version("digits", {"model.onnx": MODEL}, run_id="run-b")
    assert published.version in (1, 2)
    assert store.list_versions("digits") == [published.version]
    # ...and the next one too, and a retry of either.
    assert store.publish_version("digits", {"model.onnx": b"c"}, run_id="run-c").version == published.version + 1
    assert store.publish_version("digits", {"model.onnx": MODEL}, run_id="run-b").reused is True


def test_a_young_unreadable_claim_is_left_to_its_writer(store: ModelStore) -> None:
    """Within the grace period the claim may still be being written: its version is skipped, not taken."""
    store.claim_grace_seconds = 3600
    store.write_bytes(f"digits/1/{CLAIM}", b"")
    assert store.publish_version("digits", {"model.onnx": MODEL}, run_id="run-b").version == 2
    assert store.read_bytes(f"digits/1/{CLAIM}") == b""


def test_an_unreadable_claim_past_the_grace_period_is_abandoned_and_taken_over(store: ModelStore) -> None:
    store.claim_grace_seconds = 0
    store.write_bytes(f"digits/1/{CLAIM}", b"")
    published = store.publish_version("digits", {"model.onnx": MODEL}, run_id="run-b")
    assert published.version == 1
    assert json.loads(store.read_bytes(f"digits/1/{CLAIM}"))["run_id"] == "run-b"
    assert store.list_versions("digits") == [1]
    # A retry of the run that took it over finds its version.
    assert store.publish_version("digits", {"model.onnx": MODEL}, run_id="run-b").version == 1
    # Another run does not take the same version over again: its claim is readable now.
    assert store.publish_version("digits", {"model.onnx": b"x"}, run_id="run-c").version == 2


def test_an_abandoned_claim_is_taken_over_by_one_run_only(store: ModelStore) -> None:
    """Two runs that both find the abandoned claim: the takeover is itself an exclusive create."""
    store.claim_grace_seconds = 0
    store.write_bytes(f"digits/1/{CLAIM}", b"")
    assert store._take_over_abandoned_claim("digits", 1, "run-a") is True
    assert store._take_over_abandoned_claim("digits", 1, "run-b") is False
    assert store.publish_version("digits", {"model.onnx": MODEL}, run_id="run-a").version == 1
    assert store.publish_version("digits", {"model.onnx": MODEL}, run_id="run-b").version == 2


def test_a_published_version_with_an_unreadable_claim_is_never_taken_over(store: ModelStore) -> None:
    store.claim_grace_seconds = 0
    store.publish_version("digits", {"model.onnx": MODEL}, run_id="run-a")
    store.write_bytes(f"digits/1/{CLAIM}", b"")
    assert store.publish_version("digits", {"model.onnx": b"other"}, run_id="run-b").version == 2
    assert store.read_bytes("digits/1/model.onnx") == MODEL


def test_a_claim_is_written_whole_or_not_at_all(mlspec_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The claim is written to a temporary file and then linked into place: a crash while writing it (here:
    the disk is full) leaves no claim at all, never an empty one."""
    store = open_store("file://models")
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, handle) -> None:
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.handle.close()

        def write(self, data: bytes) -> int:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: FullDisk(real_fdopen(fd, *a, **k)))
    with pytest.raises(OSError, match="No space left"):
        store.create_exclusive(f"digits/1/{CLAIM}", b'{"run_id": "a"}')
    monkeypatch.undo()
    folder = mlspec_home / "models" / "digits" / "1"
    assert not (folder / CLAIM).exists()
    assert [p.name for p in folder.iterdir()] == []  # no temporary file left behind either
    published = store.publish_version("digits", {"model.onnx": MODEL}, run_id="a")
    assert store.list_versions("digits") == [published.version]


# -- published files are readable by the model server's user (issue 9, weak) --------------------------


def test_published_files_are_readable_by_other_users(mlspec_home: Path) -> None:
    """mkstemp creates 0600 files: a model server running as another user could not read a published model."""
    old = os.umask(0o022)
    try:
        store = open_store("file://models")
        store.publish_version("digits", {"model.onnx": MODEL, "signature.json": b"{}"}, run_id="run-a")
        store.write_bytes("digits/runs/r1/data/dataset.npz", b"npz")
    finally:
        os.umask(old)
    folder = mlspec_home / "models" / "digits" / "1"
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    assert modes == {name: 0o644 for name in (CLAIM, MANIFEST, "model.onnx", "signature.json")}
    assert stat.S_IMODE((mlspec_home / "models/digits/runs/r1/data/dataset.npz").stat().st_mode) == 0o644


# -- file:// URIs that climb out of MLSPEC_HOME (issue 9, weak) -----------------------------------------


@pytest.mark.parametrize("uri", ["file://..", "file://../outside.csv", "file://models/../../etc", "file:///srv/../etc"])
def test_file_uris_with_dotdot_are_refused(mlspec_home: Path, uri: str) -> None:
    with pytest.raises(StoreError, match=r"\.\."):
        resolve_file_uri(uri)
    with pytest.raises(StoreError, match=r"\.\."):
        open_store(uri)


@pytest.mark.parametrize("uri", ["file://models\n", "file://mod\x00els", "file://models\r/x"])
def test_file_uris_with_control_characters_are_refused(mlspec_home: Path, uri: str) -> None:
    with pytest.raises(StoreError, match="control character"):
        resolve_file_uri(uri)


# -- old run folders are pruned (issue 9, weak: an every-minute cron filled the store) ---------------


def _make_runs(store: ModelStore, name: str, keys: list[str]) -> None:
    """Run folders, oldest first (the file store's times are set; S3 times come from the upload order)."""
    for index, key in enumerate(keys):
        store.write_bytes(f"{name}/runs/{key}/data/dataset.npz", b"npz")
        store.write_bytes(f"{name}/runs/{key}/train/model.keras", b"keras")
        if isinstance(store, FileStore):
            stamp = time.time() - 1000 + index
            for path in (store.root_path / name / "runs" / key).rglob("*"):
                os.utime(path, (stamp, stamp))
        else:
            time.sleep(1.05)  # S3 keeps LastModified in whole seconds


def test_prune_runs_keeps_the_newest_and_never_the_published_versions(store: ModelStore) -> None:
    store.publish_version("digits", {"model.onnx": MODEL}, run_id="run-1")
    _make_runs(store, "digits", ["r1", "r2", "r3", "r4"])
    deleted = store.prune_runs("digits", keep=2, current_run_id="r4")
    assert deleted == ["r1", "r2"]
    assert store.list_children("digits/runs") == ["r3", "r4"]
    assert store.list_versions("digits") == [1]
    assert store.read_bytes("digits/1/model.onnx") == MODEL
    assert not store.exists("digits/runs/r1/data/dataset.npz")


def test_prune_runs_never_deletes_the_current_run(store: ModelStore) -> None:
    _make_runs(store, "digits", ["old", "b", "c"])
    # The current run is the oldest folder (a retried run from long ago): it stays, and so do the newest.
    deleted = store.prune_runs("digits", keep=1, current_run_id="old")
    assert deleted == ["b"]
    assert store.list_children("digits/runs") == ["c", "old"]


def test_prune_runs_uses_the_run_key_of_an_airflow_run_id(store: ModelStore) -> None:
    run_id = "manual__2024-06-01T10:00:00+00:00"
    key = store.run_prefix("digits", run_id).rsplit("/", 1)[1]
    _make_runs(store, "digits", [key, "newer"])
    assert store.prune_runs("digits", keep=1, current_run_id=run_id) == []
    assert store.list_children("digits/runs") == sorted([key, "newer"])


def test_prune_runs_with_nothing_to_prune(store: ModelStore) -> None:
    assert store.prune_runs("digits", keep=DEFAULT_KEEP_RUNS, current_run_id="r") == []
    _make_runs(store, "digits", ["r1"])
    assert store.prune_runs("digits", keep=1, current_run_id="r1") == []
    with pytest.raises(StoreError, match="keep"):
        store.prune_runs("digits", keep=0, current_run_id="r1")


def test_prune_runs_only_touches_its_own_model(store: ModelStore) -> None:
    _make_runs(store, "digits", ["d1", "d2"])
    _make_runs(store, "iris", ["i1"])
    assert store.prune_runs("digits", keep=1, current_run_id="d2") == ["d1"]
    assert store.list_children("iris/runs") == ["i1"]


def test_publishing_prunes_old_runs_when_asked(store: ModelStore) -> None:
    _make_runs(store, "digits", ["r1", "r2", "r3"])
    store.publish_version("digits", {"model.onnx": MODEL}, run_id="digits/r3", keep_runs=1, current_run_id="r3")
    assert store.list_children("digits/runs") == ["r3"]
    assert store.list_versions("digits") == [1]


def test_a_failing_prune_never_fails_the_publish(store: ModelStore, monkeypatch: pytest.MonkeyPatch) -> None:
    _make_runs(store, "digits", ["r1", "r2"])

    def broken(key: str) -> None:
        raise StoreError("simulated: delete denied")

    monkeypatch.setattr(store, "delete_tree", broken)
    published = store.publish_version("digits", {"model.onnx": MODEL}, run_id="x", keep_runs=1, current_run_id="r2")
    assert published.version == 1

"""The object-store interface every backend implements, and the publishing protocol on top of it.

A published model lives at ``<root>/<name>/<version>/`` (the layout OVMS and Triton serve) and a
run's intermediate artifacts at ``<root>/<name>/runs/<run_key>/``. Backends only implement four
primitives (read, write, exists, list); publishing is shared so that ``file://`` and ``s3://``
behave the same way:

* a version folder is claimed first by writing ``.mlspec-claim.json`` carrying the run id, so a
  retried task finds the version its earlier try took instead of taking a new one. The claim is
  created whole or not at all (written aside, then linked into place; a conditional PUT on S3). A
  claim that cannot be read (left by a crash or a full disk) is never an error: while it is young
  its version is skipped, and once it is older than ``claim_grace_seconds`` the version counts as
  abandoned and the next run takes it over (through one more exclusive create, so only one does);
* files are uploaded (skipped when an identical object is already there), then ``manifest.json``
  with a sha256 of every file is written last. Readers only list versions that have a manifest,
  so a half-published version is never visible.

A run's scratch folders (``<name>/runs/<run_key>/``) are pruned by ``prune_runs``: the newest
``keep`` stay, the current run's always stays, and published versions are never touched.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from mlspec.errors import StoreError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
CLAIM = ".mlspec-claim.json"
# Created (exclusively) by the one run that takes over an abandoned, unreadable claim.
CLAIM_TAKEOVER = ".mlspec-claim.json.takeover"
DEFAULT_KEEP_RUNS = 20  # the schema's default of storage.keep_runs
DEFAULT_CLAIM_GRACE_SECONDS = 300.0
_SAFE_SEGMENT = re.compile(r"[^A-Za-z0-9._-]+")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run_key(run_id: str) -> str:
    """Airflow run ids hold ':' and '+'; make them one safe path segment."""
    key = _SAFE_SEGMENT.sub("_", run_id).strip("._")
    return key or "run"


def safe_join(*parts: str) -> str:
    """Join relative key parts, refusing anything that could escape the store's prefix."""
    cleaned = []
    for part in parts:
        for seg in str(part).split("/"):
            if seg in ("", "."):
                continue
            if seg == "..":
                raise StoreError(f"refusing a store path that escapes its prefix: {'/'.join(parts)!r}")
            cleaned.append(seg)
    return "/".join(cleaned)


@dataclass(frozen=True)
class PublishedVersion:
    name: str
    version: int
    uri: str  # the version folder, e.g. file:///.../models/digits/3 or s3://bucket/prefix/digits/3
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256
    run_id: str = ""
    reused: bool = False  # True when a retried publish found its earlier version


class ModelStore(ABC):
    """A prefix in an object store. Keys are relative, '/'-separated, never absolute."""

    # How old an unreadable claim must be before its version counts as abandoned (clocks of hosts sharing
    # a store may differ a little; a claim is written in one go, so anything older is not being written).
    claim_grace_seconds: float = DEFAULT_CLAIM_GRACE_SECONDS

    def __init__(self, root_uri: str) -> None:
        self.root_uri = root_uri.rstrip("/")

    # -- primitives each backend implements -------------------------------------------------
    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """Return the object's bytes; raise StoreError (with the URI) when it is missing."""

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> str:
        """Write atomically (a reader sees the old object or the new one, never part) and return its URI."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list_children(self, key: str) -> list[str]:
        """Names of the immediate children (objects and 'folders') under key, sorted."""

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Write only if nothing is there yet; False when another writer got there first.

        Backends override this with an atomic create (O_EXCL, S3 If-None-Match); this fallback is
        only as safe as the DAG's max_active_runs=1.
        """
        if self.exists(key):
            return False
        self.write_bytes(key, data)
        return True

    def modified_time(self, key: str) -> float | None:
        """When the object was last written (seconds since the epoch), or None when unknown or missing."""
        return None

    def tree_times(self, key: str) -> dict[str, float]:
        """For each immediate child of key: the newest modification time of anything under it."""
        raise StoreError(f"{type(self).__name__} cannot list modification times under {self.uri_for(key)}")

    def delete_tree(self, key: str) -> None:
        """Delete the object or every object under the 'folder' key (never the store's root)."""
        raise StoreError(f"{type(self).__name__} cannot delete {self.uri_for(key)}")

    def object_sha256(self, key: str) -> str | None:
        """sha256 of an existing object, or None. Backends may override with a cheaper lookup."""
        if not self.exists(key):
            return None
        return sha256_hex(self.read_bytes(key))

    # -- shared behaviour ---------------------------------------------------------------------
    def uri_for(self, key: str) -> str:
        key = safe_join(key)
        return f"{self.root_uri}/{key}" if key else self.root_uri

    def key_for_uri(self, uri: str) -> str:
        """The relative key of a URI inside this store (tasks pass URIs through XCom, never paths)."""
        if uri == self.root_uri:
            return ""
        if not uri.startswith(self.root_uri + "/"):
            raise StoreError(f"{uri} is not inside the store {self.root_uri}")
        return safe_join(uri[len(self.root_uri) + 1 :])

    def read_uri(self, uri: str) -> bytes:
        return self.read_bytes(self.key_for_uri(uri))

    def run_prefix(self, name: str, run_id: str) -> str:
        return safe_join(name, "runs", run_key(run_id))

    def read_json(self, key: str) -> dict:
        return json.loads(self.read_bytes(key))

    def write_json(self, key: str, payload: dict) -> str:
        return self.write_bytes(key, json.dumps(payload, indent=2, sort_keys=True).encode())

    def _numeric_children(self, name: str) -> list[int]:
        return sorted(int(c) for c in self.list_children(safe_join(name)) if c.isdigit())

    def list_versions(self, name: str) -> list[int]:
        """Published (complete) versions only, ascending."""
        return [v for v in self._numeric_children(name) if self.exists(safe_join(name, str(v), MANIFEST))]

    def read_manifest(self, name: str, version: int) -> dict:
        return self.read_json(safe_join(name, str(version), MANIFEST))

    def _claim_owner(self, name: str, version: int) -> str | None:
        """The run id a version folder is claimed by; None when there is no claim or it cannot be read.

        An unreadable claim that was taken over names its new owner in the takeover marker.
        """
        prefix = safe_join(name, str(version))
        for key in (safe_join(prefix, CLAIM), safe_join(prefix, CLAIM_TAKEOVER)):
            if not self.exists(key):
                return None
            owner = _claim_run_id(self.read_bytes(key))
            if owner is not None:
                return owner
        return None

    def version_claimed_by(self, name: str, run_id: str) -> int | None:
        """The version folder run `run_id` claimed (published or not), or None: what a retry of that run
        finishes, and which version a failed run was making."""
        for version in reversed(self._numeric_children(name)):
            if self._claim_owner(name, version) == run_id:
                return version
        return None

    def _take_over_abandoned_claim(self, name: str, version: int, run_id: str) -> bool:
        """Claim `version` for run_id when its claim is unreadable, older than the grace period and the
        version was never published. The takeover marker is created exclusively, so one run wins."""
        prefix = safe_join(name, str(version))
        claim_key = safe_join(prefix, CLAIM)
        if self.exists(safe_join(prefix, MANIFEST)) or not self.exists(claim_key):
            return False
        content = self.read_bytes(claim_key)
        if _claim_run_id(content) is not None:
            return False
        written = self.modified_time(claim_key)
        age = None if written is None else time.time() - written
        if age is None or age < self.claim_grace_seconds:
            log.warning(
                "model %s version %d has an unreadable claim (%d bytes) written %s ago; leaving it to its "
                "writer for now (abandoned after %.0f s)",
                name, version, len(content), "an unknown time" if age is None else f"{age:.0f} s", self.claim_grace_seconds,
            )
            return False
        claim = json.dumps({"run_id": run_id}, sort_keys=True).encode()
        if not self.create_exclusive(safe_join(prefix, CLAIM_TAKEOVER), claim):
            return False
        self.write_bytes(claim_key, claim)
        log.warning(
            "model %s version %d had an unreadable claim (%d bytes, %.0f s old, no manifest): abandoned; "
            "run %s takes the version over",
            name, version, len(content), age, run_id,
        )
        return True

    def prune_runs(self, name: str, keep: int, *, current_run_id: str) -> list[str]:
        """Delete the run folders of `name` but the `keep` newest and the current run's; return their keys.

        Only `<name>/runs/<run_key>/` folders are ever deleted, never a published version.
        """
        if not isinstance(keep, int) or isinstance(keep, bool) or keep < 1:
            raise StoreError(f"keep must be a positive number of runs, not {keep!r}")
        runs = safe_join(name, "runs")
        times = self.tree_times(runs)
        newest_first = sorted(times, key=lambda key: (times[key], key), reverse=True)
        kept = set(newest_first[:keep]) | {run_key(current_run_id)}
        doomed = sorted(key for key in newest_first if key not in kept)
        for key in doomed:
            self.delete_tree(safe_join(runs, key))
        if doomed:
            log.info("pruned %d old run folder(s) of model %s under %s (keeping %d)", len(doomed), name, self.uri_for(runs), keep)
        return doomed

    def publish_version(
        self,
        name: str,
        files: dict[str, bytes],
        *,
        run_id: str,
        metadata: dict | None = None,
        min_version: int = 1,
        keep_runs: int | None = None,
        current_run_id: str | None = None,
    ) -> PublishedVersion:
        """Publish files as the next version of `name`; a retry by the same run reuses its version.

        `min_version`: the lowest number a new version may get (the registry's latest + 1), so a
        number the registry knows is never reused, even when the store lost its folders.
        With `keep_runs` (and `current_run_id`, the Airflow run id of this run's scratch folder), old
        run folders are pruned once the version is published; a failure to prune is logged, not raised.
        """
        published = self._publish_version(name, files, run_id=run_id, metadata=metadata, min_version=min_version)
        if keep_runs is not None and current_run_id is not None:
            try:
                self.prune_runs(name, keep_runs, current_run_id=current_run_id)
            except StoreError as exc:
                log.warning("could not prune old run folders of model %s: %s", name, exc)
        return published

    def _publish_version(
        self, name: str, files: dict[str, bytes], *, run_id: str, metadata: dict | None, min_version: int
    ) -> PublishedVersion:
        if not files:
            raise StoreError(f"nothing to publish for model {name!r}")
        version = self.version_claimed_by(name, run_id)
        reused = version is not None
        if version is None:
            existing = self._numeric_children(name)
            version = max((existing[-1] + 1) if existing else 1, min_version)
            if existing and existing[-1] >= min_version and self._take_over_abandoned_claim(name, existing[-1], run_id):
                version = existing[-1]
            else:
                claim = json.dumps({"run_id": run_id}, sort_keys=True).encode()
                # Two runs publishing at once must not share a folder: the loser takes the next number.
                while not self.create_exclusive(safe_join(name, str(version), CLAIM), claim):
                    log.info("model %s version %d was just claimed by another run; trying the next", name, version)
                    version += 1
        prefix = safe_join(name, str(version))
        manifest_key = safe_join(prefix, MANIFEST)
        hashes = {file_name: sha256_hex(data) for file_name, data in sorted(files.items())}
        if reused and self.exists(manifest_key):
            manifest = self.read_json(manifest_key)
            if manifest.get("files") != hashes:
                raise StoreError(
                    f"model {name} version {version} was already published by run {run_id} with different "
                    "files; refusing to overwrite a published version"
                )
            log.info("model %s version %d already published by this run; reusing it", name, version)
            return PublishedVersion(name, version, self.uri_for(prefix), hashes, run_id, reused=True)
        for file_name, data in sorted(files.items()):
            key = safe_join(prefix, posixpath.basename(file_name))
            if self.object_sha256(key) == hashes[file_name]:
                log.info("%s already in place (sha256 matches); not uploading again", self.uri_for(key))
                continue
            self.write_bytes(key, data)
            if self.object_sha256(key) != hashes[file_name]:
                raise StoreError(f"checksum mismatch after writing {self.uri_for(key)}")
            log.info("wrote %s (%d bytes, sha256 %s)", self.uri_for(key), len(data), hashes[file_name][:12])
        manifest = {"name": name, "version": version, "run_id": run_id, "files": hashes, **(metadata or {})}
        self.write_json(manifest_key, manifest)
        log.info("published model %s version %d at %s", name, version, self.uri_for(prefix))
        return PublishedVersion(name, version, self.uri_for(prefix), hashes, run_id, reused=reused)


def _claim_run_id(content: bytes) -> str | None:
    """The run id in a claim's bytes, or None when they are not a claim (empty, cut short, not JSON)."""
    try:
        claim = json.loads(content)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return None
    run_id = claim.get("run_id") if isinstance(claim, dict) else None
    return run_id if isinstance(run_id, str) and run_id else None

"""`file://` object store: a folder on a local or shared filesystem."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mlspec.errors import StoreError
from mlspec.storage.base import ModelStore, safe_join


class FileStore(ModelStore):
    def __init__(self, root_uri: str, root_path: Path) -> None:
        super().__init__(root_uri)
        self.root_path = root_path

    def _path(self, key: str) -> Path:
        return self.root_path / safe_join(key)

    def read_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise StoreError(f"{self.uri_for(key)} does not exist") from None

    def write_bytes(self, key: str, data: bytes) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write beside the target and rename: readers never see a partly written file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.uri_for(key)

    def create_exclusive(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return True

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def list_children(self, key: str) -> list[str]:
        path = self._path(key)
        if not path.is_dir():
            return []
        return sorted(p.name for p in path.iterdir() if not p.name.startswith(".") or p.name == ".mlspec-claim.json")

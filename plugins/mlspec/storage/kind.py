"""What one kind of store declares: the entry of `mlspec.storage.STORE_KINDS` for a `storage.uri` scheme.

A new kind of store is one module beside `file.py` and `s3.py` that implements `ModelStore` and ends with a
`KIND = StoreKind(...)`, plus its line in `STORE_KINDS`: lint, the workers (`open_store`), the model
server and the operations DAG all read the table instead of comparing schemes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlspec.storage.base import ModelStore

Quote = Callable[[object], str]  # how a message shows a value the spec gave (mlspec.spec.errors.quote)


def _well_formed(uri: str, quote: Quote, names_an_object: bool) -> str | None:
    return None


@dataclass(frozen=True)
class StoreKind:
    scheme: str  # storage.uri is "<scheme>://..."
    title: str  # in words, for people: "a folder on this machine"
    example: str  # a storage.uri of this kind
    runs_here: bool  # True: needs no Airflow connection and no network
    # (storage.uri, storage.connection) -> the store; heavy clients are imported when it is called.
    open: Callable[[str, str | None], ModelStore]
    # What is wrong in a URI of this kind, for lint (data sources of this kind name an object, stores a prefix).
    uri_problem: Callable[[str, Quote, bool], str | None] = _well_formed
    # Where a URI of this kind is on this machine (home(): MLSPEC_HOME); None for a remote kind.
    local_path: Callable[[str, Callable[[], Path]], Path] | None = None

    @property
    def prefix(self) -> str:
        return f"{self.scheme}://"

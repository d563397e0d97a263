"""Local paths of file:// URIs and the folders a spec may name: one parser of file:// URIs (read by the
workers, lint and the model server alike) and the allowed data and store folders, with the folders that are
never data nor a store (system folders, the model server's state, Airflow's home)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlspec.errors import StoreError
from mlspec.home import mlspec_home

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def check_uri_text(uri: str) -> None:
    """Refuse control characters (a newline, NUL, ...) and a `..` segment anywhere in a URI."""
    found = _CONTROL.search(uri)
    if found:
        raise StoreError(f"URI {uri[:80]!r} contains the control character {found.group()!r}")
    rest = uri.split("://", 1)[-1]
    if ".." in rest.replace("\\", "/").split("/"):
        raise StoreError(f"URI {uri[:80]!r} contains '..'; store and data paths may not climb out of their prefix")


def resolve_file_uri(uri: str) -> Path:
    """`file:///abs/path` is absolute; `file://models` is relative to MLSPEC_HOME (and stays under it)."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise StoreError(f"not a file:// URI: {uri[:80]!r}")
    check_uri_text(uri)
    return file_uri_path(uri, mlspec_home)


def file_uri_path(uri: str, home) -> Path:
    """The path of a file:// URI, percent-decoded (`my%20file.csv` is `my file.csv`) and then checked: a
    decoded `..` segment (`%2e%2e`) or control character is refused (StoreError). `home()` gives the folder
    relative URIs (`file://models/...`) live under; it is called only for them. The one parser of file://
    URIs: the workers, lint and the model server (server.sources.local_path) all read a URI through it."""
    parsed = urlparse(uri)
    decoded = unquote((parsed.netloc + parsed.path) if parsed.netloc else parsed.path)
    found = _CONTROL.search(decoded)
    if found:
        raise StoreError(f"URI {uri[:80]!r} decodes to the control character {found.group()!r}")
    if ".." in decoded.replace("\\", "/").split("/"):
        raise StoreError(
            f"URI {uri[:80]!r} contains '..' (once decoded); store and data paths may not climb out of their "
            "prefix"
        )
    if parsed.netloc:
        return home() / decoded.lstrip("/")
    return Path(decoded)


# --------------------------------------------------------------------------- allowed local folders
# A spec names local paths (data.source, storage.uri); whoever may write a spec must not reach the server's
# token, Airflow's passwords or system folders through them. Both are confined to allowed roots.
DATA_ROOTS_ENV = "MLSPEC_DATA_ROOTS"
STORE_ROOTS_ENV = "MLSPEC_STORE_ROOTS"
# Never a data source or a store, whatever the roots say (/var/tmp excepted).
SYSTEM_FOLDERS = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/root", "/run", "/sbin",
    "/sys", "/usr", "/var",
)  # fmt: skip
_SYSTEM_EXCEPTIONS = ("/var/tmp",)
# MLSPEC_HOME's own state (embedded MLflow, tuning studies, the model server's token); never a store.
_HOME_STATE = ("server", "mlflow", "tuning")
# Inside MLSPEC_HOME a data source may be read only from these folders (data files, the default store).
_HOME_READABLE = ("data", "models")


def _under(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _real(path: Path | str) -> Path:
    """The path with symlinks and '..' resolved (what would really be opened)."""
    return Path(os.path.realpath(os.path.expanduser(str(path))))


def _env_roots(name: str) -> list[Path] | None:
    raw = os.environ.get(name, "")
    if not raw.strip():
        return None
    roots = []
    for part in (p.strip() for p in raw.split(":")):
        if not part:
            continue
        if not os.path.isabs(os.path.expanduser(part)):
            raise StoreError(f"{name}: {part[:80]!r} is not an absolute path; list absolute folders separated by ':'")
        roots.append(_real(part))
    return roots


def _home_folder() -> Path:
    return _real(os.environ.get("MLSPEC_HOME") or Path.home() / ".mlspec")


def _airflow_home() -> Path:
    return _real(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")


def project_folder(specs_dir: Path | str | None = None) -> Path:
    """The folder above the specs folder: MLSPEC_SPECS_DIR's parent, else specs_dir's, else the working folder."""
    specs = os.environ.get("MLSPEC_SPECS_DIR") or specs_dir
    return _real(specs).parent if specs else _real(Path.cwd())


def _shared_roots(specs_dir: Path | str | None) -> list[Path | str]:
    """The folders both defaults allow: the project folder, home, the temporary folder, /srv, /mnt, /data."""
    import tempfile

    return [project_folder(specs_dir), Path.home(), tempfile.gettempdir(), "/srv", "/mnt", "/data"]


def data_roots(specs_dir: Path | str | None = None) -> list[Path]:
    """Where a local data source may be: MLSPEC_DATA_ROOTS (':'-separated absolute folders) when set, else
    MLSPEC_HOME/data, the project folder (the specs folder's parent), the user's home folder, the temporary
    folder, /srv, /mnt and /data (as broad as the store roots; the guarded folders are refused whatever the
    roots, see check_data_path)."""
    configured = _env_roots(DATA_ROOTS_ENV)
    if configured is not None:
        return configured
    return list(dict.fromkeys(_real(p) for p in [_home_folder() / "data", *_shared_roots(specs_dir)]))


def store_roots(specs_dir: Path | str | None = None) -> list[Path]:
    """Where a file:// store may be: MLSPEC_STORE_ROOTS (':'-separated absolute folders) when set, else
    MLSPEC_HOME, the project folder, the user's home folder, the temporary folder, /srv, /mnt and /data."""
    configured = _env_roots(STORE_ROOTS_ENV)
    if configured is not None:
        return configured
    return list(dict.fromkeys(_real(p) for p in [_home_folder(), *_shared_roots(specs_dir)]))


def _system_folder(path: Path) -> str | None:
    if path == Path("/"):
        return "/"
    import tempfile

    # The running user's home (root's is /root) and MLSPEC_HOME are theirs, not the system's.
    exceptions = (*_SYSTEM_EXCEPTIONS, tempfile.gettempdir(), Path.home(), _home_folder())
    if any(_under(path, _real(e)) for e in exceptions):
        return None
    return next((f for f in SYSTEM_FOLDERS if _under(path, _real(f)) or _under(path, Path(f))), None)


def _within_roots(path: Path, roots: list[Path]) -> bool:
    """Under one of the roots, with no hidden (dot) folder or file below it (~/.ssh, .airflow, .env)."""
    for root in roots:
        if _under(path, root) and not any(part.startswith(".") for part in path.relative_to(root).parts):
            return True
    return False


def _state_folders() -> list[tuple[Path, str]]:
    home = _home_folder()  # the model server's state is MLSPEC_HOME/server (home.server_state_dir)
    return [
        (home / "server", "the model server's state folder (its admin token)"),
        (_airflow_home(), "AIRFLOW_HOME (Airflow's configuration, logs and generated passwords)"),
    ]


# Files that mark a folder as the model server's state (mlspec serve --state-dir anywhere) or an Airflow home
# (whatever AIRFLOW_HOME the worker's environment names): nothing in such a folder, or below it, is data.
_GUARD_MARKERS = (
    (("token",), "the model server's state folder (it holds its admin token file)"),
    (("state.json", "token"), "the model server's state folder (state.json and its token file)"),
    (("simple_auth_manager_passwords.json.generated",), "an Airflow home (it holds Airflow's passwords)"),
    (("airflow.cfg",), "an Airflow home (it holds airflow.cfg)"),
)


def _guarded_by_markers(path: Path, *, is_folder: bool = False) -> tuple[Path, str] | None:
    """The nearest folder at or above path's folder (path itself when `is_folder`) that holds a state folder's
    or an Airflow home's files."""
    for folder in (path, *path.parents) if is_folder else path.parents:
        for names, what in _GUARD_MARKERS:
            if all(os.path.isfile(folder / name) for name in names):
                return folder, what
    return None


def _shown(what: str, path: Path | str, real: Path) -> str:
    text = str(path)[:160]
    return f"{what} ({text}" + (f", really {str(real)[:160]}" if str(real) != str(path) else "") + ")"


def check_data_path(path: Path | str, *, what: str = "data.source", specs_dir: Path | str | None = None) -> Path:
    """The resolved path of a local data source, or StoreError when it is outside the allowed data roots
    (symlinks and '..' resolved first) or inside a folder that is never data: a system folder, the model
    server's state, AIRFLOW_HOME, MLSPEC_HOME outside its data/ and models/ folders, or any folder (the
    file's own or one above it) holding a model server's token file or an Airflow home's airflow.cfg or
    generated passwords file, wherever it is."""
    real = _real(path)
    shown = _shown(what, path, real)
    home = _home_folder()
    readable_in_home = any(_under(real, home / f) for f in _HOME_READABLE)
    system = _system_folder(real)
    if system:
        raise StoreError(f"{shown} is in the system folder {system}; data sources are never read from there")
    if not readable_in_home:
        for folder, name in _state_folders():
            if _under(real, folder):
                raise StoreError(f"{shown} is inside {name}; data sources are never read from there")
        if _under(real, home):
            raise StoreError(
                f"{shown} is inside MLSPEC_HOME ({home}) but outside its data/ and models/ folders; "
                f"put data files under {home / 'data'}"
            )
    guarded = _guarded_by_markers(real)
    if guarded:
        folder, name = guarded
        where = str(folder)[:160]
        raise StoreError(f"{shown} is inside {where}, {name}; data sources are never read from there")
    roots = data_roots(specs_dir)
    if not _within_roots(real, roots):
        raise StoreError(
            f"{shown} is outside the allowed data folders ({', '.join(str(r) for r in roots)}; hidden folders "
            f"below them excluded); move the file under one of them, or list its folder in {DATA_ROOTS_ENV} "
            "(absolute folders separated by ':')"
        )
    return real


def check_store_path(path: Path | str, *, what: str = "storage.uri", specs_dir: Path | str | None = None) -> Path:
    """The resolved folder of a file:// store, or StoreError when it is a system folder, the model server's
    state, AIRFLOW_HOME, MLSPEC_HOME itself or its state folders, a folder holding (or below one holding) a
    model server's token or an Airflow home's files wherever it is, or outside the allowed store roots."""
    real = _real(path)
    shown = _shown(what, path, real)
    system = _system_folder(real)
    if system:
        raise StoreError(f"{shown} is in the system folder {system}; a store never writes there")
    for folder, name in _state_folders():
        if _under(real, folder):
            raise StoreError(f"{shown} is inside {name}; a store never writes there")
    guarded = _guarded_by_markers(real, is_folder=True)
    if guarded:
        folder, name = guarded
        raise StoreError(f"{shown} is inside {str(folder)[:160]}, {name}; a store never writes there")
    home = _home_folder()
    if real == home or any(_under(real, home / f) for f in _HOME_STATE):
        raise StoreError(
            f"{shown} is MLSPEC_HOME itself or one of its state folders ({', '.join(_HOME_STATE)}); "
            f"use a folder of its own, e.g. file://models ({home / 'models'})"
        )
    roots = store_roots(specs_dir)
    if not _within_roots(real, roots):
        raise StoreError(
            f"{shown} is outside the allowed store folders ({', '.join(str(r) for r in roots)}; hidden folders "
            f"below them excluded); use one of them, or list the folder in {STORE_ROOTS_ENV} "
            "(absolute folders separated by ':')"
        )
    return real

"""Reading docker-compose.yaml the way Docker Compose does, for tests that have no Docker engine.

Only what the tests need: `${VAR}` interpolation (with the file's own defaults, never the
caller's environment, so a developer's .env cannot change a test's outcome), list and mapping
forms of `environment`, `volumes` and `depends_on`, and mapping container paths back to the
repository through bind mounts.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from tests.fixtures.paths import REPO

COMPOSE_FILE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "docker" / "Dockerfile"
SPECS_DIR = REPO / "specs"
PRODUCTION_DOC = REPO / "docs" / "production.md"

# Compose's interpolation grammar: $$ escapes, ${NAME}, ${NAME:-default}, ${NAME-default},
# ${NAME:?error}, ${NAME?error}, ${NAME:+alt}, ${NAME+alt} and bare $NAME.
_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


@dataclass(frozen=True)
class Variable:
    name: str
    has_default: bool


def variables_in(value: Any) -> list[Variable]:
    """Every variable a compose value refers to (recursively), with whether it has a default."""
    found: list[Variable] = []
    if isinstance(value, str):
        for match in _VARIABLE.finditer(value):
            if match.group(0) == "$$":
                continue
            name = match.group("braced") or match.group("bare")
            found.append(Variable(name, (match.group("op") or "").lstrip(":") == "-"))
    elif isinstance(value, dict):
        for item in value.values():
            found.extend(variables_in(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(variables_in(item))
    return found


def interpolate(value: Any, env: dict[str, str] | None = None) -> Any:
    """`value` with variables replaced as `docker compose` would with `env` (default: none set)."""
    env = env or {}
    if isinstance(value, str):

        def replace(match: re.Match) -> str:
            if match.group(0) == "$$":
                return "$"
            name = match.group("braced") or match.group("bare")
            op, arg = match.group("op") or "", match.group("arg") or ""
            is_set = name in env
            is_empty = not env.get(name)
            if op in (":-", "-"):
                return arg if (is_empty if op == ":-" else not is_set) else env[name]
            if op in (":?", "?"):
                if is_empty if op == ":?" else not is_set:
                    raise ValueError(f"required variable {name} is not set: {arg}")
                return env[name]
            if op in (":+", "+"):
                return arg if not (is_empty if op == ":+" else not is_set) else ""
            return env.get(name, "")

        return _VARIABLE.sub(replace, value)
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    return value


def load_raw() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def load() -> dict:
    """The compose file, merge keys applied by PyYAML, variables resolved with their defaults."""
    return interpolate(load_raw())


def environment(service: dict) -> dict[str, str]:
    """A service's environment as a mapping (compose accepts a list of NAME=value too)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def command(service: dict) -> list[str]:
    """A service's command as argv (compose accepts a string, split like a shell would)."""
    cmd = service.get("command")
    if cmd is None:
        return []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def option(argv: list[str], name: str) -> str | None:
    """The value of `--name value` or `--name=value` in argv, None when absent."""
    for index, part in enumerate(argv):
        if part == name and index + 1 < len(argv):
            return argv[index + 1]
        if part.startswith(f"{name}="):
            return part.split("=", 1)[1]
    return None


def depends_on(service: dict) -> dict[str, dict]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: {"condition": "service_started"} for name in deps}
    return {name: (spec or {"condition": "service_started"}) for name, spec in deps.items()}


@dataclass(frozen=True)
class Mount:
    kind: str  # "bind" or "volume"
    source: str
    target: PurePosixPath
    read_only: bool

    def host_path(self) -> Path:
        assert self.kind == "bind"
        return (REPO / self.source).resolve() if not self.source.startswith("/") else Path(self.source)


def mounts(service: dict) -> list[Mount]:
    """A service's volumes (short `src:dst[:mode]` or long form) as Mounts."""
    found = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, str):
            parts = entry.split(":")
            if len(parts) == 1:  # an anonymous volume
                found.append(Mount("volume", "", PurePosixPath(parts[0]), False))
                continue
            source, target = parts[0], parts[1]
            mode = parts[2] if len(parts) > 2 else "rw"
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
            found.append(Mount(kind, source, PurePosixPath(target), "ro" in mode.split(",")))
        else:
            found.append(
                Mount(
                    entry.get("type", "volume"),
                    str(entry.get("source", "")),
                    PurePosixPath(entry["target"]),
                    bool(entry.get("read_only", False)),
                )
            )
    return found


def host_path_for(service: dict, container_path: str | PurePosixPath) -> Path | None:
    """Where `container_path` of this service lives in the repository, through its bind mounts."""
    path = PurePosixPath(container_path)
    best: Mount | None = None
    for mount in mounts(service):
        if mount.kind != "bind":
            continue
        if path == mount.target or mount.target in path.parents:
            if best is None or len(mount.target.parts) > len(best.target.parts):
                best = mount
    if best is None:
        return None
    return best.host_path().joinpath(*path.relative_to(best.target).parts)


def airflow_connections(service: dict) -> dict[str, str]:
    """conn_id -> value of every AIRFLOW_CONN_* variable of a service (the id is the lower-cased suffix)."""
    prefix = "AIRFLOW_CONN_"
    return {
        name[len(prefix) :].lower(): value
        for name, value in environment(service).items()
        if name.startswith(prefix)
    }


def to_connection(conn_id: str, value: str):
    """An airflow Connection from an AIRFLOW_CONN_* value, JSON or URI, as Airflow itself reads it."""
    from airflow.models.connection import Connection

    if value.lstrip().startswith("{"):
        json.loads(value)  # a clear JSON error first, rather than Airflow's
        return Connection.from_json(value, conn_id=conn_id)
    return Connection(conn_id=conn_id, uri=value)


def dockerfile_from_image() -> str:
    """The FROM image of docker/Dockerfile with ARG defaults substituted."""
    args: dict[str, str] = {}
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if line.startswith("ARG ") and "=" in line:
            name, _, default = line[4:].partition("=")
            args[name.strip()] = default.strip().strip('"')
        elif line.startswith("FROM "):
            image = line.split()[1]
            return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: args[m.group(1)], image)
    raise AssertionError(f"{DOCKERFILE} has no FROM line")


def dockerfile_copy_sources() -> list[str]:
    """The build-context paths every COPY of docker/Dockerfile reads (not COPY --from=stage)."""
    sources = []
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line.startswith("COPY ") or "--from=" in line:
            continue
        parts = [p for p in line.split()[1:] if not p.startswith("--")]
        sources.extend(parts[:-1])
    return sources


def locked_version(package: str) -> str:
    for line in (REPO / "requirements.lock").read_text().splitlines():
        name, sep, version = line.strip().partition("==")
        if sep and name.lower() == package.lower():
            return version.strip()
    raise AssertionError(f"{package} is not pinned in requirements.lock")

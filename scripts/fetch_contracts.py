"""`make contracts`: download the pinned published contracts into .contracts/ and check their sha256.

    python scripts/fetch_contracts.py [--dest .contracts] [--base-url URL] [--manifest scripts/contracts.json]

Each file in scripts/contracts.json (KServe's CRDs and Open Inference Protocol, the Kubeflow Model
Registry OpenAPI) comes from its upstream URL at a pinned commit and is kept only when its size and
sha256 are the pinned ones; files already there and intact are not downloaded again. --base-url (or
MLSPEC_CONTRACTS_BASE_URL) fetches `<base-url>/<path>` instead: a mirror, or a local copy such as
file:///path/to/shared/contracts. Standard library only: it runs before `make install`.
Exit status: 0 when every file is in place, 1 when any is missing or does not match, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "scripts" / "contracts.json"
DEST = REPO / ".contracts"
TIMEOUT_S = 60
CHUNK = 1 << 16


class ContractError(Exception):
    """One file could not be fetched or is not the pinned one."""


def load_manifest(path: Path = MANIFEST) -> list[dict]:
    files = json.loads(path.read_text())["files"]
    for entry in files:
        relative = Path(entry["path"])
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"{path}: {entry['path']} is not a relative path inside the contracts folder")
        if len(entry["sha256"]) != 64:
            raise ValueError(f"{path}: {entry['path']} has no sha256 pin")
    return files


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_intact(path: Path, entry: dict) -> bool:
    return path.is_file() and path.stat().st_size == entry["bytes"] and sha256_of(path) == entry["sha256"]


def source_url(entry: dict, base_url: str | None) -> str:
    return f"{base_url.rstrip('/')}/{entry['path']}" if base_url else entry["url"]


def fetch(entry: dict, dest: Path, base_url: str | None = None) -> str:
    """Put the pinned file `entry` at dest/<path>; what was done ("present" or "downloaded from ...")."""
    target = dest / entry["path"]
    if is_intact(target, entry):
        return "present"
    url = source_url(entry, base_url)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest, size = hashlib.sha256(), 0
        limit = entry["bytes"]
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "mlspec-contracts"})
            with (
                urllib.request.urlopen(request, timeout=TIMEOUT_S) as response,
                os.fdopen(handle, "wb") as out,
            ):
                handle = None
                while chunk := response.read(CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise ContractError(f"{url}: more than the pinned {limit} bytes")
                    digest.update(chunk)
                    out.write(chunk)
        except urllib.error.HTTPError as error:
            raise ContractError(f"{url}: HTTP {error.code} {error.reason}") from error
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise ContractError(f"{url}: {reason}") from error
        if size != limit or digest.hexdigest() != entry["sha256"]:
            raise ContractError(
                f"{url}: not the pinned file ({size} bytes, sha256 {digest.hexdigest()}; "
                f"pinned {limit} bytes, sha256 {entry['sha256']}); not kept"
            )
        tmp.replace(target)
        return f"downloaded from {url}"
    finally:
        if handle is not None:
            os.close(handle)
        tmp.unlink(missing_ok=True)


def fetch_all(dest: Path, base_url: str | None = None, manifest: Path = MANIFEST) -> list[str]:
    """Fetch every pinned file; the problems (empty when all are in place). Prints one line per file."""
    problems = []
    for entry in load_manifest(manifest):
        try:
            print(f"{entry['path']}: {fetch(entry, dest, base_url)}")
        except ContractError as error:
            problems.append(f"{entry['path']}: {error}")
            print(f"{entry['path']}: FAILED: {error}", file=sys.stderr)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEST, help="where the files go (default: .contracts)")
    parser.add_argument(
        "--base-url",
        default=os.environ.get("MLSPEC_CONTRACTS_BASE_URL") or None,
        help="fetch <base-url>/<path> instead of the pinned upstream URLs (a mirror, file:///...)",
    )
    parser.add_argument("--manifest", type=Path, default=MANIFEST, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        problems = fetch_all(args.dest, args.base_url, args.manifest)
    except (OSError, ValueError, KeyError) as error:
        print(f"cannot read the manifest {args.manifest}: {error}", file=sys.stderr)
        return 2
    if problems:
        print(
            f"\n{len(problems)} contract file(s) are not in {args.dest}. Where GitHub cannot be reached,"
            " fetch from a copy: MLSPEC_CONTRACTS_BASE_URL=file:///path/to/contracts make contracts (each"
            " file is still checked against its pin), or point the tests at a folder with MLSPEC_CONTRACTS.",
            file=sys.stderr,
        )
        return 1
    print(f"all {len(load_manifest(args.manifest))} contract files in {args.dest} match their pinned sha256")
    return 0


if __name__ == "__main__":
    sys.exit(main())

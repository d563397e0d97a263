"""`make contracts` (scripts/fetch_contracts.py) and where the tests look for the published contracts.

GitHub may be out of reach where the tests run, so the download is exercised against a local HTTP server
on 127.0.0.1 and file:// URLs: what matters is that only a file whose size and sha256 are the pinned ones
is kept, that failures say what went wrong, and that intact files are not fetched again.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import importlib.util
import json
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fixtures import paths
from tests.fixtures.paths import REPO
from tests.fixtures.ports import free_port

SHARED = REPO.parent / "shared" / "contracts"
USED_BY_TESTS = {
    "kserve/serving.kserve.io_inferenceservices.yaml",
    "kserve/rest_predict_v2.yaml",
    "model-registry/model-registry-v1.yaml",
    "model-registry/model-registry-v1alpha3.yaml",
}


@pytest.fixture(scope="module")
def fetcher():
    spec = importlib.util.spec_from_file_location("fetch_contracts", REPO / "scripts" / "fetch_contracts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[Path, str, list[str]]]:
    """A folder served on http://127.0.0.1:<port>; yields (folder, base URL, requested paths)."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    requested: list[str] = []

    class Handler(_Handler):
        def do_GET(self):
            requested.append(self.path)
            super().do_GET()

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", free_port()), functools.partial(Handler, directory=str(folder))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}", requested
    finally:
        server.shutdown()
        server.server_close()


def _manifest(tmp_path: Path, files: dict[str, bytes]) -> Path:
    entries = [
        {
            "path": name,
            "url": f"https://example.invalid/{name}",
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
        }
        for name, data in files.items()
    ]
    path = tmp_path / "contracts.json"
    path.write_text(json.dumps({"files": entries}))
    return path


FILES = {"kserve/a.yaml": b"openapi: 3.0.0\n", "model-registry/b.yaml": b"x" * 5000}


def _publish(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


def test_downloads_every_pinned_file_and_keeps_it(fetcher, mirror, tmp_path):
    folder, base, requested = mirror
    _publish(folder, FILES)
    manifest, dest = _manifest(tmp_path, FILES), tmp_path / "dest"
    assert fetcher.fetch_all(dest, base, manifest) == []
    assert {name: (dest / name).read_bytes() for name in FILES} == FILES
    assert sorted(requested) == sorted(f"/{name}" for name in FILES)
    # Intact files are not fetched again.
    requested.clear()
    assert fetcher.fetch_all(dest, base, manifest) == []
    assert requested == []


def test_a_file_that_is_not_the_pinned_one_is_refused_and_not_kept(fetcher, mirror, tmp_path, capsys):
    folder, base, _ = mirror
    _publish(folder, {**FILES, "kserve/a.yaml": b"openapi: 3.1.0\n"})  # same size, other bytes
    manifest, dest = _manifest(tmp_path, FILES), tmp_path / "dest"
    problems = fetcher.fetch_all(dest, base, manifest)
    assert len(problems) == 1 and problems[0].startswith("kserve/a.yaml: ")
    assert (
        "not the pinned file" in problems[0]
        and hashlib.sha256(FILES["kserve/a.yaml"]).hexdigest() in problems[0]
    )
    assert not (dest / "kserve" / "a.yaml").exists()
    assert (dest / "model-registry" / "b.yaml").read_bytes() == FILES["model-registry/b.yaml"]
    assert not list(dest.rglob("*.part")), "no partial download is left behind"


def test_a_longer_file_is_cut_off_at_the_pinned_size(fetcher, mirror, tmp_path):
    folder, base, _ = mirror
    _publish(folder, {**FILES, "model-registry/b.yaml": b"x" * 50_000})
    problems = fetcher.fetch_all(tmp_path / "dest", base, _manifest(tmp_path, FILES))
    assert problems == [problems[0]] and "more than the pinned 5000 bytes" in problems[0]


def test_a_corrupted_local_copy_is_replaced(fetcher, mirror, tmp_path):
    folder, base, requested = mirror
    _publish(folder, FILES)
    dest = tmp_path / "dest"
    _publish(dest, {"kserve/a.yaml": b"edited by hand\n"})
    assert fetcher.fetch_all(dest, base, _manifest(tmp_path, FILES)) == []
    assert (dest / "kserve" / "a.yaml").read_bytes() == FILES["kserve/a.yaml"]
    assert "/kserve/a.yaml" in requested


def test_unreachable_and_missing_sources_say_which_url_failed(fetcher, mirror, tmp_path):
    folder, base, _ = mirror
    _publish(folder, {"kserve/a.yaml": FILES["kserve/a.yaml"]})  # b.yaml is not on the mirror
    problems = fetcher.fetch_all(tmp_path / "dest", base, _manifest(tmp_path, FILES))
    assert problems == [f"model-registry/b.yaml: {base}/model-registry/b.yaml: HTTP 404 File not found"]
    closed = f"http://127.0.0.1:{free_port()}"
    problems = fetcher.fetch_all(tmp_path / "other", closed, _manifest(tmp_path, FILES))
    assert len(problems) == 2 and all(f"{closed}/" in p for p in problems), problems


def test_file_urls_work_and_the_command_exits_1_naming_the_way_out(fetcher, tmp_path, capsys):
    folder = tmp_path / "copy"
    _publish(folder, FILES)
    manifest = _manifest(tmp_path, FILES)
    dest = tmp_path / "dest"
    assert (
        fetcher.main(["--dest", str(dest), "--base-url", folder.as_uri(), "--manifest", str(manifest)]) == 0
    )
    assert "match their pinned sha256" in capsys.readouterr().out
    (folder / "kserve" / "a.yaml").write_bytes(b"tampered\n")
    (dest / "kserve" / "a.yaml").unlink()
    assert (
        fetcher.main(["--dest", str(dest), "--base-url", folder.as_uri(), "--manifest", str(manifest)]) == 1
    )
    err = capsys.readouterr().err
    assert "MLSPEC_CONTRACTS_BASE_URL" in err and "MLSPEC_CONTRACTS" in err


def test_paths_that_climb_out_of_the_folder_are_refused(fetcher, tmp_path):
    manifest = tmp_path / "contracts.json"
    manifest.write_text(json.dumps({"files": [{"path": "../x", "url": "u", "sha256": "0" * 64, "bytes": 1}]}))
    with pytest.raises(ValueError, match="not a relative path"):
        fetcher.load_manifest(manifest)


def test_the_pins_cover_what_the_tests_read_at_pinned_upstream_commits(fetcher):
    entries = fetcher.load_manifest()
    assert USED_BY_TESTS <= {entry["path"] for entry in entries}
    for entry in entries:
        assert re.fullmatch(
            r"https://raw\.githubusercontent\.com/[\w.-]+/[\w.-]+/[0-9a-f]{40}/\S+", entry["url"]
        )
        assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]) and entry["bytes"] > 0


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent (the pins were taken from it)")
def test_the_pins_are_the_files_in_shared_contracts(fetcher):
    for entry in fetcher.load_manifest():
        assert fetcher.is_intact(SHARED / entry["path"], entry), entry["path"]


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent")
def test_make_contracts_fetches_into_a_git_ignored_folder(mirror, tmp_path):
    folder, base, _ = mirror
    for entry in json.loads((REPO / "scripts" / "contracts.json").read_text())["files"]:
        _publish(folder, {entry["path"]: (SHARED / entry["path"]).read_bytes()})
    dest = tmp_path / "fetched"
    env = {**os.environ, "MLSPEC_CONTRACTS_BASE_URL": base}
    result = subprocess.run(
        ["make", "--no-print-directory", "contracts", f"CONTRACTS_DIR={dest}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all 6 contract files" in result.stdout
    ignored = subprocess.run(["git", "check-ignore", "-q", ".contracts/kserve/x.yaml"], cwd=REPO)
    assert ignored.returncode == 0, ".contracts/ must be git-ignored"


def test_the_lookup_order(monkeypatch, tmp_path):
    shared, downloaded = tmp_path / "shared" / "contracts", tmp_path / "repo" / ".contracts"
    monkeypatch.setattr(paths, "REPO", tmp_path / "repo")
    monkeypatch.setattr(paths, "DOWNLOADED_CONTRACTS", downloaded)
    monkeypatch.setattr(paths, "pinned_contracts", lambda: ["kserve/a.yaml"])
    monkeypatch.delenv("MLSPEC_CONTRACTS", raising=False)
    assert paths.contract_roots() == [shared, downloaded]
    assert paths.contracts_root() == downloaded  # nothing anywhere: where `make contracts` puts them
    _publish(downloaded, {"kserve/a.yaml": b"a"})
    assert paths.contracts_root() == downloaded
    shared.mkdir(parents=True)  # present but incomplete: the complete folder wins
    assert paths.contracts_root() == downloaded
    _publish(shared, {"kserve/a.yaml": b"a"})
    assert paths.contracts_root() == shared
    monkeypatch.setenv("MLSPEC_CONTRACTS", str(tmp_path / "elsewhere"))
    assert paths.contract_roots() == [tmp_path / "elsewhere"]


def test_a_missing_contract_skip_names_the_command(monkeypatch, tmp_path):
    monkeypatch.setenv("MLSPEC_CONTRACTS", str(tmp_path / "none"))
    with pytest.raises(pytest.skip.Exception, match=r"make contracts"):
        paths.require_contract("kserve/rest_predict_v2.yaml")

"""The default data roots are as broad as the store roots, and the guarded folders stay guarded wherever they
are (issue 17, lead's follow-up to adversarial finding 2; review items 11 and 14).

A CSV in a temporary folder beside a spec written elsewhere failed prepare_data (the default data roots were
only MLSPEC_HOME/data and the project folder). Broadening them must not reopen finding 2: a model server
started with --state-dir in the temporary folder, or an AIRFLOW_HOME the worker's environment does not name,
is recognised by the files it holds.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from tests.fixtures.paths import SPECS

from mlspec import storage
from mlspec.errors import StoreError
from mlspec.operators.data import PrepareDataOperator
from mlspec.spec import load_spec_text
from mlspec.storage import source_limits

TOKEN = "s3cr3t-admin-token-0123456789abcdef0123456789"
CSV = "a,b,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(60))


def operator(source: str, **kwargs) -> PrepareDataOperator:
    text = (
        (SPECS / "iris.yaml")
        .read_text()
        .replace("source: builtin:iris", f"source: '{source}'\n  format: csv")
    )
    return PrepareDataOperator(spec=load_spec_text(text).to_dict(), task_id="prepare_data", **kwargs)


def test_default_data_roots_are_the_store_roots_breadth(
    mlspec_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLSPEC_DATA_ROOTS", raising=False)
    roots = storage.data_roots()
    for expected in (Path(tempfile.gettempdir()), Path.home(), Path("/srv"), Path("/mnt"), Path("/data")):
        assert Path(os.path.realpath(expected)) in roots, roots
    assert mlspec_home.resolve() / "data" in roots


def test_a_csv_in_the_temporary_folder_beside_nothing_runs_through_prepare_data(
    mlspec_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLSPEC_SPECS_DIR", raising=False)
    with tempfile.TemporaryDirectory() as spec_folder, tempfile.TemporaryDirectory() as data_folder:
        data = Path(data_folder) / "rows.csv"
        data.write_text(CSV)
        spec_file = Path(spec_folder) / "iris.yaml"
        spec_file.write_text((SPECS / "iris.yaml").read_text())
        result = operator(data.as_uri(), spec_file=str(spec_file)).run({"run_id": "r1"})
    assert sum(result["samples"].values()) == 60


@pytest.mark.parametrize(
    "markers, target",
    [
        ({"state.json": "{}", "token": TOKEN}, "token"),
        ({"state.json": "{}", "token": TOKEN}, "state.json"),
        ({"token": TOKEN}, "token"),
        ({"airflow.cfg": f"[core]\nfernet_key = {TOKEN}\n"}, "airflow.cfg"),
        (
            {"simple_auth_manager_passwords.json.generated": f'{{"admin": "{TOKEN}"}}'},
            "simple_auth_manager_passwords.json.generated",
        ),
        ({"airflow.cfg": "[core]\n", "logs/dag/run.log": TOKEN}, "logs/dag/run.log"),
    ],
)
def test_a_state_folder_at_a_non_default_place_in_the_temporary_folder_is_never_data(
    mlspec_home: Path, monkeypatch: pytest.MonkeyPatch, markers: dict[str, str], target: str
) -> None:
    monkeypatch.delenv("MLSPEC_DATA_ROOTS", raising=False)
    with (
        tempfile.TemporaryDirectory() as state
    ):  # mlspec serve --state-dir /tmp/x, or an unnamed AIRFLOW_HOME
        for name, text in markers.items():
            (Path(state) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(state) / name).write_text(text)
        uri = (Path(state) / target).as_uri()
        with pytest.raises(StoreError, match="never read from there") as caught:
            operator(uri).run({"run_id": "r1"})
        assert TOKEN not in str(caught.value)
        monkeypatch.setenv("MLSPEC_DATA_ROOTS", state)  # even when an admin lists the folder
        with pytest.raises(StoreError, match="never read from there"):
            storage.check_data_path(Path(state) / target)


def test_configured_data_roots_still_confine_strictly(
    mlspec_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "rows.csv").write_text(CSV)
    monkeypatch.setenv("MLSPEC_DATA_ROOTS", str(tmp_path / "allowed"))
    with pytest.raises(StoreError, match="outside the allowed data folders"):
        operator((tmp_path / "rows.csv").as_uri()).run({"run_id": "r1"})


def test_the_project_folder_at_run_time_is_the_spec_files_folders_parent(
    mlspec_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review item 12: lint used the spec's folder, the run the worker's working folder."""
    monkeypatch.delenv("MLSPEC_SPECS_DIR", raising=False)
    monkeypatch.delenv("MLSPEC_DATA_ROOTS", raising=False)
    # Only the project folder can allow tmp_path here: the temporary folder and home are elsewhere.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "other-tmp"))
    monkeypatch.setenv("HOME", str(tmp_path / "other-home"))
    project = tmp_path / "project"
    (project / "specs").mkdir(parents=True)
    spec_file = project / "specs" / "iris.yaml"
    spec_file.write_text((SPECS / "iris.yaml").read_text())
    (project / "data").mkdir()
    (project / "data" / "rows.csv").write_text(CSV)
    uri = (project / "data" / "rows.csv").as_uri()
    with pytest.raises(StoreError, match="outside the allowed data folders"):
        operator(uri).read_source_bytes(uri)  # no spec file: the working folder is the project folder
    assert operator(uri, spec_file=str(spec_file)).read_source_bytes(uri) == CSV.encode()


def test_one_file_uri_parser_decodes_then_checks(mlspec_home: Path) -> None:
    """Review item 11: file:///data/my%20file.csv was read as a literal %20 by the workers."""
    from mlspec.server.sources import local_path

    for uri, path in (
        ("file:///data/my%20file.csv", Path("/data/my file.csv")),
        ("file://data/a%20b.csv", mlspec_home / "data" / "a b.csv"),
    ):
        assert storage.resolve_file_uri(uri) == path
        assert local_path(uri) == path
    for uri in ("file:///srv/x/%2e%2e/%2E%2E/etc/passwd", "file://models/%2e%2e/server/token"):
        with pytest.raises(StoreError, match="'..'"):
            storage.resolve_file_uri(uri)
        with pytest.raises(StoreError, match="'..'"):
            local_path(uri)
    with pytest.raises(StoreError, match="control character"):
        storage.resolve_file_uri("file:///srv/x%0aINFO.csv")


def test_the_spec_max_bytes_raises_the_raw_file_cap(
    mlspec_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review item 14: a plain CSV over 1 GiB was refused by the raw-file cap whatever max_bytes said."""
    monkeypatch.setattr(source_limits, "DEFAULT_MAX_SOURCE_BYTES", 1000)  # stands for 1 GiB
    monkeypatch.delenv("MLSPEC_MAX_SOURCE_BYTES", raising=False)
    data = tmp_path / "rows.csv"
    data.write_text(CSV * 4)  # about 2.5 kB

    def prepare(max_bytes: int) -> PrepareDataOperator:
        text = (
            (SPECS / "iris.yaml")
            .read_text()
            .replace(
                "source: builtin:iris",
                f"source: '{data.as_uri()}'\n  format: csv\n  limits: {{max_bytes: {max_bytes}}}",
            )
        )
        return PrepareDataOperator(spec=load_spec_text(text).to_dict(), task_id="prepare_data")

    assert prepare(100_000).read_source_bytes(data.as_uri()) == data.read_bytes()
    with pytest.raises(StoreError) as caught:
        prepare(500).read_source_bytes(data.as_uri())
    assert "data.limits.max_bytes" in str(caught.value) and "MLSPEC_MAX_SOURCE_BYTES" in str(caught.value)
    monkeypatch.setenv(
        "MLSPEC_MAX_SOURCE_BYTES", "1000"
    )  # an admin's cap wins, and the error says how to raise each
    with pytest.raises(StoreError) as caught:
        prepare(100_000).read_source_bytes(data.as_uri())
    assert "MLSPEC_MAX_SOURCE_BYTES" in str(caught.value) and "data.limits.max_bytes" in str(caught.value)

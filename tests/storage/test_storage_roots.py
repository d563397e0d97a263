"""Local data sources and file:// stores stay within allowed folders (issue 17, adversarial broken 2 and weak).

`data.source: file:///<state-dir>/token` was read, and the run's error ("columns are: <token>") printed the
model server's admin token into the task log; Airflow's generated passwords file the same. `file:///etc/cron.d`
was accepted as a store.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.fixtures.paths import SPECS

from mlspec import storage
from mlspec.errors import StoreError
from mlspec.operators.data import PrepareDataOperator
from mlspec.spec import load_spec_text
from mlspec.storage import open_store

TOKEN = "s3cr3t-admin-token-0123456789abcdef0123456789"


def operator(source: str) -> PrepareDataOperator:
    text = (SPECS / "iris.yaml").read_text().replace("source: builtin:iris", f"source: '{source}'\n  format: csv")
    return PrepareDataOperator(spec=load_spec_text(text).to_dict(), task_id="prepare_data")


@pytest.fixture
def token_file(mlspec_home: Path) -> Path:
    state = mlspec_home / "server"
    state.mkdir(parents=True)
    token = state / "token"
    token.write_text(TOKEN + "\n")
    return token


def test_the_servers_token_is_never_read_as_data(token_file: Path) -> None:
    prepare = operator(token_file.as_uri())
    with pytest.raises(StoreError, match="model server's state folder") as caught:
        prepare.run({"run_id": "r1"})
    assert TOKEN not in str(caught.value)


def test_the_state_folder_is_refused_even_inside_configured_roots(
    token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSPEC_DATA_ROOTS", "/")
    with pytest.raises(StoreError, match="model server's state folder"):
        operator(token_file.as_uri()).read_source_bytes(token_file.as_uri())


def test_airflows_passwords_file_is_never_read_as_data(
    mlspec_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    airflow_home = tmp_path / "airflow"
    airflow_home.mkdir()
    passwords = airflow_home / "simple_auth_manager_passwords.json.generated"
    passwords.write_text('{"admin": "hunter2hunter2"}')
    monkeypatch.setenv("AIRFLOW_HOME", str(airflow_home))
    monkeypatch.setenv("MLSPEC_DATA_ROOTS", str(tmp_path))
    with pytest.raises(StoreError, match="AIRFLOW_HOME") as caught:
        operator(passwords.as_uri()).run({"run_id": "r1"})
    assert "hunter2" not in str(caught.value)


def test_symlinks_and_dotdot_are_resolved_before_the_check(
    token_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed = tmp_path / "project"
    allowed.mkdir()
    monkeypatch.setenv("MLSPEC_DATA_ROOTS", str(allowed))
    link = allowed / "data.csv"
    link.symlink_to(token_file)
    with pytest.raises(StoreError, match="state folder"):
        storage.check_data_path(link)
    with pytest.raises(StoreError, match="outside the allowed data folders"):
        storage.check_data_path(allowed / ".." / "elsewhere.csv")


def test_mlspec_home_is_readable_only_in_its_data_and_models_folders(mlspec_home: Path) -> None:
    (mlspec_home / "data").mkdir(parents=True)
    (mlspec_home / "data" / "iris.csv").write_text("a,label\n" + "1,0\n2,1\n" * 20)
    assert operator("file://data/iris.csv").read_source_bytes("file://data/iris.csv").startswith(b"a,label")
    for inside in ("mlflow/mlflow.db", "tuning/study.db", "iris.csv"):
        with pytest.raises(StoreError, match="MLSPEC_HOME|state folder"):
            storage.check_data_path(mlspec_home / inside)


def test_data_roots_are_configurable_and_hidden_folders_below_them_excluded(
    mlspec_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSPEC_SPECS_DIR", str(tmp_path / "project" / "specs"))
    # By default as broad as the store roots (tests/storage/test_storage_data_roots_defaults.py has the rest).
    assert storage.data_roots()[:2] == [mlspec_home.resolve() / "data", (tmp_path / "project").resolve()]
    assert storage.check_data_path(tmp_path / "project" / "data" / "x.csv")
    for hidden in (".env", ".airflow/passwords", "data/.secret/x.csv"):
        with pytest.raises(StoreError, match="hidden folders"):
            storage.check_data_path(tmp_path / "project" / hidden)
    with pytest.raises(StoreError, match="MLSPEC_DATA_ROOTS"):
        storage.check_data_path("/opt/mlspec-nowhere/x.csv")  # below no default root
    monkeypatch.setenv("MLSPEC_DATA_ROOTS", f"{tmp_path / 'a'}:{tmp_path / 'elsewhere'}")
    assert storage.check_data_path(tmp_path / "elsewhere" / "x.csv") == (tmp_path / "elsewhere" / "x.csv").resolve()
    with pytest.raises(StoreError, match="outside the allowed data folders"):
        storage.check_data_path(tmp_path / "project" / "data" / "x.csv")
    monkeypatch.setenv("MLSPEC_DATA_ROOTS", "relative/folder")
    with pytest.raises(StoreError, match="not an absolute path"):
        storage.check_data_path(tmp_path / "a" / "x.csv")


@pytest.mark.parametrize("uri", ["file:///etc/cron.d", "file:///usr/local/lib/models", "file:///var/spool/cron", "file:///"])
def test_a_system_folder_is_never_a_store(mlspec_home: Path, uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSPEC_STORE_ROOTS", "/")  # even when every folder is allowed
    with pytest.raises(StoreError, match="system folder"):
        open_store(uri)


def test_mlspec_home_state_and_airflow_home_are_never_a_store(mlspec_home: Path) -> None:
    for uri in ("file://server", "file://mlflow/x", "file://tuning", f"file://{mlspec_home}"):
        with pytest.raises(StoreError, match="MLSPEC_HOME itself or one of its state folders|state folder"):
            open_store(uri)
    import os

    with pytest.raises(StoreError, match="AIRFLOW_HOME"):
        open_store(Path(os.environ["AIRFLOW_HOME"], "dags").as_uri())
    assert open_store("file://models").root_path == mlspec_home.resolve() / "models"


def test_store_roots_are_configurable(mlspec_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert open_store((tmp_path / "models").as_uri())  # the temporary folder is a default root
    monkeypatch.setenv("MLSPEC_STORE_ROOTS", str(tmp_path / "stores"))
    assert open_store((tmp_path / "stores" / "team").as_uri())
    with pytest.raises(StoreError, match="outside the allowed store folders.*MLSPEC_STORE_ROOTS"):
        open_store((tmp_path / "models").as_uri())
    with pytest.raises(StoreError, match="hidden folders"):
        storage.check_store_path(tmp_path / "stores" / ".ssh")


def test_the_users_own_home_is_not_a_system_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run as root with no MLSPEC_HOME, the default store is /root/.mlspec/models: lint refused every example
    spec ("is in the system folder /root"). The running user's home is theirs; /root stays refused for others."""
    monkeypatch.delenv("MLSPEC_HOME", raising=False)
    monkeypatch.delenv("MLSPEC_STORE_ROOTS", raising=False)
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: Path("/root")))
    assert storage.check_store_path("/root/.mlspec/models") == Path("/root/.mlspec/models")
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: Path("/home/alice")))
    monkeypatch.setenv("MLSPEC_HOME", "/home/alice/.mlspec")
    with pytest.raises(StoreError, match="system folder /root"):
        storage.check_store_path("/root/models")


def test_a_store_is_never_a_server_state_folder_or_an_airflow_home_wherever_they_are(tmp_path: Path) -> None:
    """`mlspec serve --state-dir /tmp/x` and an AIRFLOW_HOME the worker's environment does not name: refused as
    data already, and now as a store too (their folders are found by the files they hold)."""
    state, airflow_home = tmp_path / "state", tmp_path / "otheraf"
    state.mkdir()
    airflow_home.mkdir()
    (state / "token").write_text("x" * 43)
    (airflow_home / "airflow.cfg").write_text("[core]\n")
    for folder, why in ((state, "token file"), (airflow_home / "models", "airflow.cfg")):
        with pytest.raises(StoreError, match=why):
            storage.check_store_path(folder)
    assert storage.check_store_path(tmp_path / "models") == (tmp_path / "models").resolve()

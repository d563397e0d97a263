"""`make up` keeps Airflow's generated passwords file private (issue 17: it was 0644, readable by every
user of the machine). scripts/local_stack.py creates it 0600 before the api-server starts; Airflow's
SimpleAuthManager then writes the admin password into it in place, and the mode stays 0600.
"""

from __future__ import annotations

import os
import stat

import pytest


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_airflow_writes_the_admin_password_into_a_file_that_stays_0600(local_stack, tmp_path, monkeypatch):
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    home = tmp_path / "airflow"
    monkeypatch.delenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", raising=False)
    path = local_stack.protect_passwords_file(home)
    assert path == home / "simple_auth_manager_passwords.json.generated"
    assert _mode(path) == 0o600
    # The api-server's own start-up step, with its settings as `make up` leaves them (one admin user).
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(path))
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    old_umask = os.umask(0o022)  # a usual shell's: files Airflow creates itself are 0644
    try:
        SimpleAuthManager().init()
    finally:
        os.umask(old_umask)
    user, password = local_stack.admin_credentials(home)
    assert user == "admin" and len(password) >= 8
    assert _mode(path) == 0o600


def test_an_existing_readable_passwords_file_is_made_0600(local_stack, tmp_path, monkeypatch):
    monkeypatch.delenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", raising=False)
    home = tmp_path / "airflow"
    home.mkdir()
    existing = home / "simple_auth_manager_passwords.json.generated"
    existing.write_text('{"admin": "s3cret-generated"}\n')
    existing.chmod(0o644)
    local_stack.protect_passwords_file(home)
    assert _mode(existing) == 0o600
    assert local_stack.admin_credentials(home) == ("admin", "s3cret-generated")


def test_up_protects_the_file_before_airflow_starts(local_stack, tmp_path, monkeypatch):
    """`up` makes the file 0600 before the migration and the api-server: stop it at the migration."""
    home = tmp_path / "airflow"
    monkeypatch.setenv("AIRFLOW_HOME", str(home))
    monkeypatch.setenv("MLSPEC_HOME", str(tmp_path / "mlspec-home"))
    monkeypatch.delenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", raising=False)

    def stop_here(env):
        raise SystemExit("stopped at the migration")

    monkeypatch.setattr(local_stack, "migrate", stop_here)
    monkeypatch.setattr(local_stack, "stop_server", lambda *a, **k: True)
    from tests.fixtures.ports import free_port

    with pytest.raises(SystemExit, match="stopped at the migration"):
        local_stack.up(free_port(), free_port(), timeout_s=5, with_server=False)
    assert _mode(home / "simple_auth_manager_passwords.json.generated") == 0o600

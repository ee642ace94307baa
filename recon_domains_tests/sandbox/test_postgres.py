"""The embedded-or-system PostgreSQL helper."""

from __future__ import annotations

import subprocess
import uuid

import psycopg2
import pytest

from recon_domains.sandbox import postgres


def test_create_and_drop_database(pg_admin_dsn):
    name = f"rd_helper_{uuid.uuid4().hex[:10]}"
    dsn = postgres.create_database(pg_admin_dsn, name)
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        cur.execute("SELECT current_database()")
        assert cur.fetchone()[0] == name
    # An open session does not stop the drop.
    postgres.drop_database(pg_admin_dsn, name)
    assert not postgres.can_connect(dsn)
    postgres.drop_database(pg_admin_dsn, name)  # idempotent
    conn.close()


def test_database_names_are_checked(pg_admin_dsn):
    with pytest.raises(ValueError, match="identifier"):
        postgres.create_database(pg_admin_dsn, 'x"; DROP DATABASE postgres; --')
    admin_db = psycopg2.extensions.parse_dsn(pg_admin_dsn).get("dbname", "postgres")
    with pytest.raises(ValueError, match="admin connection"):
        postgres.drop_database(pg_admin_dsn, admin_db)


def test_pg_bin_dir_has_a_working_pg_dump(pg_dsn):
    bin_dir = postgres.pg_bin_dir()
    assert bin_dir is not None
    assert (bin_dir / "pg_restore").exists()
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE video (id serial PRIMARY KEY, category integer)")
    conn.close()
    out = subprocess.run(
        [str(bin_dir / "pg_dump"), "--schema-only", "--dbname", pg_dsn],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "CREATE TABLE public.video" in out


def test_env_dsn_that_does_not_answer_is_an_error(monkeypatch):
    monkeypatch.setenv(postgres.ENV_TEST_DSN, "postgresql://u:hidden@127.0.0.1:1/x")
    with (
        pytest.raises(postgres.PostgresUnavailableError) as info,
        postgres.embedded_or_system_postgres(),
    ):
        pass
    assert "hidden" not in str(info.value)


def test_env_dsn_is_preferred(monkeypatch, pg_admin_dsn):
    monkeypatch.setenv(postgres.ENV_TEST_DSN, pg_admin_dsn)
    with postgres.embedded_or_system_postgres() as info:
        assert (info.kind, info.admin_dsn) == ("env", pg_admin_dsn)


def test_embedded_server_serves_a_sandbox_database(tmp_path):
    # What a machine without PostgreSQL gets: pgserver's own server, removed afterwards.
    from recon_domains.sandbox.peertube_store import SandboxStore

    with postgres.embedded_postgres(tmp_path) as admin_dsn:
        dsn = postgres.create_database(admin_dsn, "peertube_embedded")
        store = SandboxStore(dsn, max_connections=2)
        try:
            video = store.add_video("embedded", category=15)
            assert store.find_video(uuid=video["uuid"])["category"] == 15
        finally:
            store.close()
    assert not postgres.can_connect(admin_dsn)
    assert not any(tmp_path.iterdir())

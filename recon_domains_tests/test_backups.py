"""Pre-deploy backups against real SQLite files, a real PostgreSQL and real folders."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
import pytest

from recon_domains import backups
from recon_domains.backups import (
    BackupError,
    backup_recon_db,
    choose_pg_dump,
    dump_peertube_db,
    offsite_freshness,
    verify_dump,
    verify_recon_backup,
)
from recon_domains.sandbox.postgres import pg_bin_dir

NOW = datetime(2026, 11, 27, 1, 2, 3, tzinfo=UTC)
# The embedded server's pg_dump / pg_restore, passed in as the rehearsal and the tests pass
# them (a PostgreSQL newer than the machine's client tools, usually).
PG_BIN_DIR = pg_bin_dir()


def _make_db(path: Path, docs: int = 50) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE catalogue (hash TEXT PRIMARY KEY, source TEXT)")
    conn.execute("CREATE TABLE documents (hash TEXT PRIMARY KEY, status TEXT)")
    conn.executemany(
        "INSERT INTO catalogue VALUES (?, 'stream.echo6.co')", [(f"h{i}",) for i in range(docs)]
    )
    conn.executemany(
        "INSERT INTO documents VALUES (?, 'complete')", [(f"h{i}",) for i in range(docs - 5)]
    )
    conn.commit()
    conn.close()


def test_backup_copies_a_live_wal_database_and_verifies(tmp_path: Path) -> None:
    db = tmp_path / "recon.db"
    _make_db(db)
    # A writer keeps its connection open, so committed rows may sit only in the WAL file.
    writer = sqlite3.connect(db)
    writer.execute("INSERT INTO documents VALUES ('late', 'queued')")
    writer.commit()
    try:
        result = backup_recon_db(db, tmp_path / "backups", now=NOW)
    finally:
        writer.close()
    assert result.path == tmp_path / "backups" / "recon.db.pre-domain-feature.20261127_010203.bak"
    assert result.table_counts == {"catalogue": 50, "documents": 46}
    assert result.size_bytes == result.path.stat().st_size > 0
    check = verify_recon_backup(db, result.path)
    assert check.ok, check.problems
    assert check.integrity == "ok"
    assert {(t.table, t.expected, t.actual) for t in check.tables} == {
        ("catalogue", 50, 50),
        ("documents", 46, 46),
    }
    # No temporary files are left behind.
    assert [p.name for p in (tmp_path / "backups").iterdir()] == [result.path.name]


def test_backup_never_overwrites(tmp_path: Path) -> None:
    db = tmp_path / "recon.db"
    _make_db(db)
    first = backup_recon_db(db, tmp_path, now=NOW)
    before = first.path.read_bytes()
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM documents")
    with pytest.raises(BackupError, match="never overwritten"):
        backup_recon_db(db, tmp_path, now=NOW)
    assert first.path.read_bytes() == before


def test_backup_of_missing_database_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="RECON_DB_PATH"):
        backup_recon_db(tmp_path / "nope.db", tmp_path / "b", now=NOW)
    assert not (tmp_path / "nope.db").exists()


def test_verify_reports_count_mismatch_and_live_drift(tmp_path: Path) -> None:
    db = tmp_path / "recon.db"
    _make_db(db)
    result = backup_recon_db(db, tmp_path / "b", now=NOW)
    # RECON keeps writing after the backup: the live comparison sees drift, the recorded
    # snapshot counts still match the file.
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO documents VALUES ('new', 'queued')")
    live = verify_recon_backup(db, result.path)
    assert not live.ok
    assert any("documents: 46 rows in the source, 45 in the backup" in p for p in live.problems)
    assert verify_recon_backup(db, result.path, expected_counts=result.table_counts).ok
    # A damaged backup (rows lost) fails against its own recorded counts.
    with sqlite3.connect(result.path) as conn:
        conn.execute("DELETE FROM catalogue WHERE hash = 'h1'")
    check = verify_recon_backup(db, result.path, expected_counts=result.table_counts)
    assert not check.ok
    assert "catalogue: 50 rows in the source, 49 in the backup" in check.problems[0]


def test_verify_rejects_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "recon.db"
    _make_db(db)
    bogus = tmp_path / "bogus.bak"
    bogus.write_bytes(b"this is not a database" * 100)
    check = verify_recon_backup(db, bogus)
    assert not check.ok
    assert "not a readable SQLite database" in check.problems[0]


# --- PostgreSQL ------------------------------------------------------------------------------

ADMIN_DSN = os.environ.get("PEERTUBE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture()
def peertube_like_db() -> str:
    """A throwaway database with a PeerTube-shaped `video` table on the machine's PostgreSQL."""
    name = f"rd_backup_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg2.connect(ADMIN_DSN, connect_timeout=5)
    except psycopg2.OperationalError as exc:  # pragma: no cover - environment without PG
        pytest.skip(f"no PostgreSQL at {ADMIN_DSN}: {exc}")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE video (id serial PRIMARY KEY, uuid uuid NOT NULL, category int)")
        cur.execute(
            "INSERT INTO video (uuid, category) SELECT gen_random_uuid(), NULL "
            "FROM generate_series(1, 30)"
        )
    conn.close()
    yield dsn
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def test_pg_dump_custom_format_is_verified_by_pg_restore(
    tmp_path: Path, peertube_like_db: str
) -> None:
    result = dump_peertube_db(peertube_like_db, tmp_path, now=NOW, pg_bin_dir=PG_BIN_DIR)
    assert result.path.name.endswith(".pre-domain-feature.20261127_010203.dump")
    assert result.path.read_bytes()[:5] == b"PGDMP"
    assert result.server_version_num and result.server_version_num >= 90000
    # The chosen pg_dump is the closest one at least as new as the server.
    tool = choose_pg_dump(result.server_version_num, PG_BIN_DIR)
    assert tool.major >= result.server_version_num // 10000
    assert tool.path in result.method
    check = verify_dump(result.path, PG_BIN_DIR)
    assert check.ok, check.problems
    assert check.entries >= 2  # at least the table and its data
    assert [p.name for p in tmp_path.iterdir()] == [result.path.name]


def test_dump_through_an_operator_command(tmp_path: Path, peertube_like_db: str) -> None:
    tool = choose_pg_dump(backups.server_version_num(peertube_like_db), PG_BIN_DIR)
    cmd = f"{tool.path} -Fc '{peertube_like_db}'"
    result = dump_peertube_db(None, tmp_path, dump_command=cmd, now=NOW)
    assert result.method == "PEERTUBE_DB_DUMP_COMMAND"
    assert verify_dump(result.path, PG_BIN_DIR).ok


def test_failing_dump_command_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="exited with code 3: boom"):
        dump_peertube_db(None, tmp_path, dump_command="echo boom >&2; exit 3", now=NOW)
    with pytest.raises(BackupError, match="empty dump"):
        dump_peertube_db(None, tmp_path, dump_command="true", now=NOW)
    assert list(tmp_path.iterdir()) == []


def test_plain_sql_dump_is_not_accepted(tmp_path: Path) -> None:
    result = dump_peertube_db(
        None, tmp_path, dump_command="echo '-- PostgreSQL database dump'", now=NOW
    )
    check = verify_dump(result.path)
    assert not check.ok
    assert "pg_dump -Fc" in check.problems[0]


def test_dsn_password_never_appears_in_errors(tmp_path: Path) -> None:
    secret = "s3cret-Pa55word"
    dsn = f"postgresql://nobody_here:{secret}@127.0.0.1:5432/no_such_db"
    with pytest.raises(BackupError) as info:
        dump_peertube_db(dsn, tmp_path, now=NOW)
    assert secret not in str(info.value)
    assert "PEERTUBE_DB_DSN" in str(info.value)


def test_pg_dump_choice_follows_the_server_version() -> None:
    tools = backups.find_pg_tools("pg_dump", PG_BIN_DIR)
    newest = max(t.major for t in tools)
    assert choose_pg_dump(newest * 10000, PG_BIN_DIR).major == newest
    oldest = min(t.major for t in tools)
    assert choose_pg_dump(oldest * 10000, PG_BIN_DIR).major == oldest
    with pytest.raises(BackupError, match=r"no pg_dump at least as new.*RECON_PG_BIN_DIR"):
        choose_pg_dump((newest + 1) * 10000, PG_BIN_DIR)


def test_pg_tools_come_from_the_given_folder_and_the_machine_only() -> None:
    """The embedded server's binaries are used only when their folder is passed in."""
    bundled = os.path.realpath(PG_BIN_DIR / "pg_restore")
    found = {os.path.realpath(t.path) for t in backups.find_pg_tools("pg_restore", PG_BIN_DIR)}
    assert bundled in found
    on_path = shutil.which("pg_restore")
    if on_path is None or os.path.realpath(on_path) != bundled:  # pgserver's are not on PATH
        default = {os.path.realpath(t.path) for t in backups.find_pg_tools("pg_restore")}
        assert bundled not in default


# --- off-site freshness ----------------------------------------------------------------------


def _tree(root: Path, names: list[str], mtime: float) -> None:
    for n in names:
        d = root / n
        d.mkdir(parents=True)
        for i in (1, 2):
            f = d / f"window_{i:04d}.json"
            f.write_text("[]")
            os.utime(f, (mtime, mtime))


def test_offsite_fresh_and_complete(tmp_path: Path) -> None:
    now = time.time()
    names = [f"hash{i:03d}" for i in range(40)]
    _tree(tmp_path / "local", names, now)
    _tree(tmp_path / "offsite", names, now - 5 * 3600)
    r = offsite_freshness(tmp_path / "local", tmp_path / "offsite", sample=10, seed=1)
    assert r.ok, r.problems
    assert r.local_folders == r.offsite_folders == 40
    assert len(r.sampled) == 10 and r.missing == []
    assert r.lag_hours == pytest.approx(5, abs=0.01)


def test_offsite_stale_or_incomplete_fails(tmp_path: Path) -> None:
    now = time.time()
    names = [f"hash{i:03d}" for i in range(30)]
    _tree(tmp_path / "local", names, now)
    _tree(tmp_path / "offsite", names[:10], now - 7 * 3600)
    r = offsite_freshness(tmp_path / "local", tmp_path / "offsite", sample=30, seed=2)
    assert not r.ok
    assert any("7.0 h behind" in p for p in r.problems)
    assert sorted(r.missing) == names[10:]
    assert any("20 of 30 sampled concept folders are missing" in p for p in r.problems)


def test_offsite_missing_folder_names_the_variable(tmp_path: Path) -> None:
    (tmp_path / "local").mkdir()
    r = offsite_freshness(tmp_path / "local", tmp_path / "nowhere")
    assert not r.ok
    assert "RECON_OFFSITE_CONCEPTS_DIR" in r.problems[0]

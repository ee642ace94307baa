"""A PostgreSQL server for the sandbox and the tests: the configured one, the machine's, or
an embedded one.

Order of preference (DESIGN.md §5):

1. ``$PEERTUBE_TEST_PG_DSN`` when set (it must answer; a set but dead DSN is an error, not a
   reason to silently test against something else);
2. the machine's server at ``postgresql://postgres@127.0.0.1:5432/postgres`` when it answers
   within a second;
3. an embedded server from the ``pgserver`` package (its own data folder, removed on exit).

``pg_bin_dir()`` names a folder holding ``pg_dump``/``pg_restore`` (pgserver ships them).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import make_dsn, parse_dsn

from recon_domains.peertube.database import mask_dsn

ENV_TEST_DSN = "PEERTUBE_TEST_PG_DSN"
SYSTEM_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"

_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresUnavailableError(RuntimeError):
    """No PostgreSQL server could be found or started."""


@dataclass(frozen=True)
class PostgresServerInfo:
    """Where the admin connection goes and where it came from."""

    admin_dsn: str
    kind: str  # "env", "system" or "embedded"


def can_connect(dsn: str, timeout_s: int = 1) -> bool:
    """True when a connection to ``dsn`` succeeds within ``timeout_s`` seconds."""
    try:
        conn = psycopg2.connect(dsn, connect_timeout=max(1, int(timeout_s)))
    except psycopg2.Error:
        return False
    conn.close()
    return True


def pg_bin_dir() -> Path | None:
    """A folder with ``pg_dump`` and ``pg_restore``: pgserver's bundled binaries when the
    package is installed, else the folder of ``pg_dump`` on PATH, else None.

    pgserver's binaries are PostgreSQL 16: they dump servers of version <= 16.
    """
    try:
        from pgserver._commands import POSTGRES_BIN_PATH
    except ImportError:  # pragma: no cover - pgserver is a dependency
        POSTGRES_BIN_PATH = None
    if POSTGRES_BIN_PATH is not None and (Path(POSTGRES_BIN_PATH) / "pg_dump").exists():
        return Path(POSTGRES_BIN_PATH)
    found = shutil.which("pg_dump")
    return Path(found).parent if found else None


@contextmanager
def embedded_or_system_postgres(workdir: str | Path | None = None) -> Iterator[PostgresServerInfo]:
    """Yield an admin DSN for a PostgreSQL server (see the module docstring for the order).

    An embedded server is stopped and its data folder removed when the block exits.
    ``workdir`` is where the embedded server's data folder goes (default: a temp folder).
    """
    env_dsn = os.environ.get(ENV_TEST_DSN)
    if env_dsn:
        if not can_connect(env_dsn, timeout_s=5):
            raise PostgresUnavailableError(
                f"${ENV_TEST_DSN} is set to {mask_dsn(env_dsn)} but no PostgreSQL answers "
                f"there; start that server or unset ${ENV_TEST_DSN}"
            )
        yield PostgresServerInfo(env_dsn, "env")
        return
    if can_connect(SYSTEM_DSN, timeout_s=1):
        yield PostgresServerInfo(SYSTEM_DSN, "system")
        return
    with embedded_postgres(workdir) as dsn:
        yield PostgresServerInfo(dsn, "embedded")


@contextmanager
def embedded_postgres(workdir: str | Path | None = None) -> Iterator[str]:
    """Start an embedded PostgreSQL (pgserver) and yield its admin DSN; stopped and deleted
    when the block exits. ``workdir``: where its data folder goes (default: a temp folder)."""
    try:
        import pgserver
    except ImportError as exc:  # pragma: no cover - pgserver is a dependency
        raise PostgresUnavailableError(
            f"no PostgreSQL at {SYSTEM_DSN} and the pgserver package is missing; set "
            f"${ENV_TEST_DSN} or `pip install pgserver`"
        ) from exc
    parent = Path(workdir) if workdir else None
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="recon-pg-", dir=parent))
    # pgserver stops the server and deletes the folder when its last handle is cleaned up.
    pgdata = base / "pgdata"
    try:
        server = pgserver.get_server(pgdata, cleanup_mode="delete")
    except subprocess.TimeoutExpired:
        # pgserver gives `pg_ctl start` 10 s; a loaded machine can need more. The postmaster
        # keeps starting: forget the failed handle and attach to it again.
        pgserver.PostgresServer._instances.pop(pgdata.resolve(), None)
        time.sleep(2)
        server = pgserver.get_server(pgdata, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def persistent_postgres(pgdata: str | Path) -> Iterator[str]:
    """Start an embedded PostgreSQL (pgserver) on the data folder `pgdata` (created when
    new) and yield its admin DSN; stopped when the block exits, its data kept, so the next
    call starts it again on the same data."""
    import pgserver

    pgdata = Path(pgdata)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    except subprocess.TimeoutExpired:  # a loaded machine: see embedded_postgres
        pgserver.PostgresServer._instances.pop(pgdata.resolve(), None)
        time.sleep(2)
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def dsn_for_database(admin_dsn: str, name: str) -> str:
    """The admin DSN pointed at database ``name`` (same host, port, user, password)."""
    return make_dsn(admin_dsn, dbname=name)


def _check_name(name: str) -> None:
    if not _DB_NAME.match(name):
        raise ValueError(
            f"database name {name!r} is not a plain lower-case identifier "
            "(letters, digits, underscore; at most 63 characters)"
        )


@contextmanager
def autocommit_cursor(dsn: str) -> Iterator[psycopg2.extensions.cursor]:
    """A cursor on its own autocommit connection (CREATE/DROP/ALTER DATABASE cannot run in
    a transaction); the connection is closed when the block exits."""
    conn = psycopg2.connect(dsn, connect_timeout=5)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def create_database(admin_dsn: str, name: str) -> str:
    """Create database ``name`` (dropping any leftover of the same name) and return its DSN."""
    _check_name(name)
    drop_database(admin_dsn, name)
    with autocommit_cursor(admin_dsn) as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return dsn_for_database(admin_dsn, name)


def drop_database(admin_dsn: str, name: str) -> None:
    """Drop database ``name`` if it exists, disconnecting its sessions first."""
    _check_name(name)
    if parse_dsn(admin_dsn).get("dbname") == name:
        raise ValueError(f"refusing to drop {name!r}: it is the admin connection's database")
    with autocommit_cursor(admin_dsn) as cur:
        # FORCE (PostgreSQL >= 13) ends sessions a test left open.
        cur.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def ensure_database(admin_dsn: str, name: str) -> str:
    """Create database ``name`` unless it exists (keeping its data); return its DSN."""
    _check_name(name)
    with autocommit_cursor(admin_dsn) as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cur.fetchone() is None:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return dsn_for_database(admin_dsn, name)

"""Copies of recon.db through SQLite's online backup API, and what proves a copy good: its
integrity check and the row count of every table.

The copy is consistent while RECON keeps writing (WAL included): the pages and the row
counts come from one read transaction, so the counts are the copied snapshot's.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def _open(path: Path, *, read_only: bool) -> sqlite3.Connection:
    """An existing file, never created (mode=ro/rw URI), with RECON's busy timeout."""
    conn = sqlite3.connect(f"file:{path}?mode={'ro' if read_only else 'rw'}", uri=True, timeout=30)
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


def _table_counts(conn: sqlite3.Connection) -> dict[str, int]:
    tables = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name"
    ).fetchall()
    return {
        t: conn.execute(f'SELECT count(*) FROM "{t.replace(chr(34), chr(34) * 2)}"').fetchone()[0]
        for (t,) in tables
    }


def copy_database(source: Path, destination: Path, *, read_only: bool = False) -> dict[str, int]:
    """Copy `source` into the (new or empty) file `destination`; return the row count of
    every table of the copied snapshot. `read_only` opens the source with mode=ro (a copy
    of an operator's database that must never be written). The copy is a standalone file:
    rollback journal mode, nothing pending in a WAL."""
    src = _open(source, read_only=read_only)
    try:
        dst = sqlite3.connect(destination)
        try:
            # One read transaction: the counts and the copied pages are the same snapshot.
            src.execute("BEGIN")
            counts = _table_counts(src)
            src.backup(dst)  # pages=-1: the whole database in one step, under our read lock
            src.execute("COMMIT")
            dst.execute("PRAGMA journal_mode = DELETE")
        finally:
            dst.close()
    finally:
        src.close()
    return counts


def table_counts(path: Path) -> dict[str, int]:
    """The row count of every table of the database at `path` (opened, not created)."""
    conn = _open(path, read_only=False)
    try:
        return _table_counts(conn)
    finally:
        conn.close()


def inspect_copy(path: Path) -> tuple[str, dict[str, int]]:
    """(integrity, row counts) of a copy, read-only: integrity is "ok" or the first problems
    `PRAGMA integrity_check` reported. Raises sqlite3.DatabaseError for a file that is not
    a readable SQLite database."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
        return ("ok" if rows == ["ok"] else "; ".join(rows[:5])), _table_counts(conn)
    finally:
        conn.close()

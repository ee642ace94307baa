"""Exact before/after snapshots for dry-run and rollback tests: a SQLite database's schema and
every row, a folder tree's files and contents, PeerTube's `video` categories."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import psycopg2


def db_snapshot(path: str | os.PathLike[str]) -> dict[str, object]:
    """Schema (sqlite_master) and every row of every table, order-independent."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        schema = sorted(
            tuple(r)
            for r in conn.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
            )
        )
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        rows = {
            t: sorted((tuple(r) for r in conn.execute(f'SELECT * FROM "{t}"')), key=repr)
            for t in tables
        }
        columns = {t: [c[1] for c in conn.execute(f'PRAGMA table_info("{t}")')] for t in tables}
    finally:
        conn.close()
    return {"schema": schema, "columns": columns, "rows": rows}


def tree_snapshot(root: str | os.PathLike[str]) -> dict[str, str]:
    """{relative path: sha256 of contents} for every file under root ({} if absent)."""
    out: dict[str, str] = {}
    base = Path(root)
    if not base.exists():
        return out
    for dirpath, _dirs, files in os.walk(base):
        for name in files:
            p = Path(dirpath) / name
            out[str(p.relative_to(base))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def video_snapshot(dsn: str) -> dict[str, int | None]:
    """{uuid: category} of every row of PeerTube's `video` table."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT uuid::text, category FROM video")
            return {u: c for u, c in cur.fetchall()}
    finally:
        conn.close()

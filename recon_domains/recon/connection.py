"""The store's connection to recon.db and what every query module shares.

RECON's service writes this file concurrently (WAL mode), so every connection has a busy
timeout and writes go in short `BEGIN IMMEDIATE` transactions, in batches: one transaction
per few hundred rows, never one commit per row and never one giant lock.

A connection is bound to one stream source (`catalogue.source` of the PeerTube videos):
every stream query reads that source, so no caller passes it around.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

# documents joined with its catalogue row: the stream documents of the bound source.
STREAM_FROM = "FROM documents d JOIN catalogue c ON c.hash = d.hash WHERE c.source = ?"
BATCH_SIZE = 500  # rows per statement or transaction (SQLite's variable limit is far above)


class ReconStoreError(RuntimeError):
    """A problem with RECON's database an operator can act on (the message says how)."""


def utc_now() -> str:
    """ISO-8601 UTC timestamp, second precision (what recon_domain_assigned_at holds)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def chunks(items: Iterable, size: int = BATCH_SIZE) -> Iterator[list]:
    """`items` in lists of at most `size`."""
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def marks(n: int) -> str:
    """`?, ?, …` for an IN list of n values."""
    return ",".join("?" * n)


class StoreConnection:
    """One connection to recon.db, bound to a stream source. Not shared across threads."""

    def __init__(self, path: Path, conn: sqlite3.Connection, source: str) -> None:
        self.path = path
        self.conn = conn
        self.source = source

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction. IMMEDIATE takes the write lock up front, so a busy
        RECON writer makes us wait (busy timeout) instead of failing half-way."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- what the database holds (works migrated or not) -----------------------------------
    def table_names(self) -> set[str]:
        rows = self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {r[0] for r in rows}

    def column_names(self, table: str = "documents") -> list[str]:
        return [r[1] for r in self.conn.execute(f"PRAGMA table_info({table})")]

    def index_names(self, table: str = "documents") -> set[str]:
        return {r[1] for r in self.conn.execute(f"PRAGMA index_list({table})")}

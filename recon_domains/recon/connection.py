"""The store's connection to recon.db and what every query module shares.

RECON's service writes this file concurrently (WAL mode), so writes go in short
`BEGIN IMMEDIATE` transactions, in batches: one transaction per few hundred rows, never one
commit per row and never one giant lock. Reads never wait for RECON's writer (WAL), and no
query leaves a read transaction open once it returns (every result is fetched at once), so
RECON's checkpoints are never held back by us between statements.

Taking the write lock next to a RECON writer that re-takes it within milliseconds is our own
loop, not SQLite's busy handler: the handler backs off to one attempt per 100 ms, so against
a writer holding the lock 0.5 s with 10 ms gaps it hits a gap about once in ten cycles
(measured: median wait 3.5 s, some over 10 s). Short attempts with jittered pauses of a
few milliseconds catch the next gap instead (measured: every wait shorter than one hold),
until the deadline (RECON_LOCK_TIMEOUT_S); then the step ends with `ReconLocked`.

A connection is bound to one stream source (`catalogue.source` of the PeerTube videos):
every stream query reads that source, so no caller passes it around.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

# documents joined with its catalogue row: the stream documents of the bound source.
STREAM_FROM = "FROM documents d JOIN catalogue c ON c.hash = d.hash WHERE c.source = ?"
BATCH_SIZE = 500  # rows per statement or transaction (SQLite's variable limit is far above)

# One attempt at the write lock: SQLite's busy handler tries at 0, 1, 3 and 5 ms, then we
# pause 0-2 ms (jittered, so two of our processes never poll in step) and try again. Never
# longer: a pause longer than RECON's gap between transactions misses the gap.
LOCK_ATTEMPT_MS = 5
LOCK_PAUSE_S = 0.002


class ReconStoreError(RuntimeError):
    """A problem with RECON's database an operator can act on (the message says how)."""


class ReconLocked(ReconStoreError):
    """recon.db's write lock could not be had within the deadline: RECON writes without
    pause. Raised before the transaction starts, so nothing of it was written."""

    def __init__(
        self, path: Path, waited_s: float, progress: str = "nothing of it was written"
    ) -> None:
        self.path = path
        self.waited_s = waited_s
        super().__init__(
            f"recon.db stayed locked for {waited_s:g} s: a RECON process is writing "
            f"continuously — our write waited for a gap between RECON's transactions on "
            f"{path} and found none; {progress}. What to do: run the step again when RECON "
            "is less busy (or pause RECON's service while it runs): it resumes where it "
            "stopped. If RECON holds its lock this long by design, raise "
            f"RECON_LOCK_TIMEOUT_S (now {waited_s:g} s)."
        )

    def after(self, progress: str) -> ReconLocked:
        """The same failure, saying what the step had done when it stopped."""
        return ReconLocked(self.path, self.waited_s, progress)


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
    """One connection to recon.db, bound to a stream source. Not shared across threads.

    lock_timeout_s: how long a write waits for RECON's write lock before `ReconLocked`;
    the connection's own busy timeout (for reads) is left as it was opened.
    """

    def __init__(
        self, path: Path, conn: sqlite3.Connection, source: str, lock_timeout_s: float
    ) -> None:
        self.path = path
        self.conn = conn
        self.source = source
        self.lock_timeout_s = lock_timeout_s

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self, *, wait: bool = True) -> Iterator[sqlite3.Connection]:
        """A short write transaction. IMMEDIATE takes the write lock up front, so a busy
        RECON writer makes us wait for it (or fail with ReconLocked before anything is
        written) instead of failing half-way. wait=False: one attempt, ReconLocked at once
        if RECON holds the lock (for a write that can as well be made at the next gap)."""
        self._take_write_lock(self.lock_timeout_s if wait else None)
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _take_write_lock(self, timeout_s: float | None) -> None:
        """BEGIN IMMEDIATE in short attempts until `timeout_s` has passed (see the module's
        doc); None: a single attempt that does not wait at all."""
        deadline = time.monotonic() + (timeout_s or 0.0)
        (reads_timeout_ms,) = self.conn.execute("PRAGMA busy_timeout").fetchone()
        attempt_ms = 0 if timeout_s is None else LOCK_ATTEMPT_MS
        self.conn.execute(f"PRAGMA busy_timeout = {attempt_ms}")
        try:
            while True:
                try:
                    self.conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                        raise
                if time.monotonic() >= deadline:
                    raise ReconLocked(self.path, timeout_s or 0.0)
                time.sleep(random.uniform(0, LOCK_PAUSE_S))
        finally:
            self.conn.execute(f"PRAGMA busy_timeout = {reads_timeout_ms}")

    # -- what the database holds (works migrated or not) -----------------------------------
    def table_names(self) -> set[str]:
        rows = self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {r[0] for r in rows}

    def column_names(self, table: str = "documents") -> list[str]:
        return [r[1] for r in self.conn.execute(f"PRAGMA table_info({table})")]

    def index_names(self, table: str = "documents") -> set[str]:
        return {r[1] for r in self.conn.execute(f"PRAGMA index_list({table})")}

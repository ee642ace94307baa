"""What each decision was made from: one row per decided document holding the fingerprint
of the concept files it was decided from (recon_domains.recon.concepts), written in the same
transaction as the decision. The scheduled re-assignment compares it with the files now.

The table is created by the migration and dropped by its revert (recon/schema.py); a
recon.db migrated before it existed has none until `schema_job` runs again (the migration is
idempotent): until then decisions are written without it and the re-assignment refuses,
saying so.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable

from recon_domains.recon.connection import StoreConnection, chunks, marks, utc_now
from recon_domains.recon.schema import SOURCES_TABLE

# Who recorded a fingerprint (recorded_by).
BY_DECISION = "decision"  # pass 1, the tiebreaker, the steady state, the re-assignment
BY_BASELINE = "baseline"  # a document decided before fingerprints existed, as of then

# One fingerprint, kept only when the document still holds the decision written with it
# (a guarded write that did not happen leaves the old row). An upsert.
_UPSERT = (
    f"INSERT INTO {SOURCES_TABLE} (hash, fingerprint, recorded_at, recorded_by) "
    "SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM documents WHERE hash = ? "
    "AND recon_domain_status IS ? AND recon_domain IS ?) "
    "ON CONFLICT(hash) DO UPDATE SET fingerprint = excluded.fingerprint, "
    "recorded_at = excluded.recorded_at, recorded_by = excluded.recorded_by"
)


class SourceQueries(StoreConnection):
    """The decisions' sources table."""

    def has_sources(self) -> bool:
        """False before the migration (or a migration older than this table) and after the
        schema rollback."""
        return SOURCES_TABLE in self.table_names()

    def record_sources(
        self,
        conn: sqlite3.Connection,
        rows: Iterable[tuple[str, str, str | None, str | None]],
        *,
        by: str = BY_DECISION,
        stamp: str | None = None,
    ) -> None:
        """Inside a write transaction: (hash, fingerprint, status, domain) for each document
        whose row now holds that status and domain."""
        when = stamp or utc_now()
        conn.executemany(
            _UPSERT, [(h, fp, when, by, h, status, domain) for h, fp, status, domain in rows]
        )

    def record_baselines(self, rows: Iterable[tuple[str, str]]) -> int:
        """(hash, fingerprint) of documents decided before fingerprints existed: recorded
        as of now, never replacing a row. Returns the rows added."""
        stamp = utc_now()
        added = 0
        for batch in chunks(rows):
            with self.transaction() as conn:
                cur = conn.executemany(
                    f"INSERT OR IGNORE INTO {SOURCES_TABLE} "
                    "(hash, fingerprint, recorded_at, recorded_by) VALUES (?, ?, ?, ?)",
                    [(h, fp, stamp, BY_BASELINE) for h, fp in batch],
                )
                added += cur.rowcount
        return added

    def sources_of(self, hashes: Iterable[str]) -> dict[str, str]:
        """hash -> recorded fingerprint, for those of `hashes` that have one."""
        found: dict[str, str] = {}
        for batch in chunks(hashes):
            rows = self.conn.execute(
                f"SELECT hash, fingerprint FROM {SOURCES_TABLE} "
                f"WHERE hash IN ({marks(len(batch))})",
                batch,
            )
            found.update((h, fp) for h, fp in rows)
        return found

    def decided_stream_documents(
        self, statuses: Collection[str]
    ) -> list[tuple[str, str | None, str | None, str, str | None, str | None]]:
        """(hash, channel, watch URL, status, domain, recorded fingerprint or None) of every
        stream document with one of `statuses`, by hash: one query, the sources joined."""
        wanted = sorted(statuses)
        rows = self.conn.execute(
            "SELECT d.hash, c.category, c.path, d.recon_domain_status, d.recon_domain, "
            "s.fingerprint FROM documents d JOIN catalogue c ON c.hash = d.hash "
            f"LEFT JOIN {SOURCES_TABLE} s ON s.hash = d.hash WHERE c.source = ? "
            f"AND d.recon_domain_status IN ({marks(len(wanted))}) ORDER BY d.hash",
            (self.source, *wanted),
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]

    def forget_sources(self, conn: sqlite3.Connection, where: str, params: tuple) -> None:
        """Inside a write transaction: drop the sources of the documents `where` selects
        (their decisions are being cleared)."""
        if SOURCES_TABLE in self.table_names():
            conn.execute(
                f"DELETE FROM {SOURCES_TABLE} WHERE hash IN "
                f"(SELECT hash FROM documents WHERE {where})",
                params,
            )

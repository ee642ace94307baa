"""What the reprocess (runbook Step 7, SPEC §7) and its undo write and read in recon.db: row
snapshots, the reset + re-queue of a document, and the reprocess audit table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from recon_domains.recon.connection import StoreConnection, utc_now
from recon_domains.recon.schema import AUDIT_TABLE, DOMAIN_COLUMNS
from recon_domains.taxonomy import Status

# Columns the reset writes (SPEC §7): RECON's pipeline columns and our four domain columns.
_RESET_SET = (
    "status = 'queued', concepts_extracted = 0, vectors_inserted = 0, extracted_at = NULL, "
    "enriched_at = NULL, embedded_at = NULL, error_message = NULL, "
    + ", ".join(f"{col} = NULL" for col in DOMAIN_COLUMNS)
)


@dataclass(frozen=True)
class AuditRow:
    """The newest reprocess audit row of a document."""

    quarantine_path: str | None
    file_count: int
    restored_at: str | None


class ReprocessQueries(StoreConnection):
    """Row snapshots, the reset, and the reprocess audit table."""

    def row_snapshot(self, table: str, doc_hash: str) -> dict[str, Any] | None:
        """Every column of `table`'s row for `doc_hash` ("documents" or "catalogue")."""
        cur = self.conn.execute(f"SELECT * FROM {table} WHERE hash = ?", (doc_hash,))
        row = cur.fetchone()
        if row is None:
            return None
        return {d[0]: row[i] for i, d in enumerate(cur.description)}

    def reset_and_requeue(
        self,
        doc_hash: str,
        original_path: str,
        quarantine_path: str,
        file_count: int,
        reason: str,
    ) -> bool:
        """One transaction: reset + queue the document, its catalogue row queued, and the
        audit row. False (nothing written) when the document is no longer needs_reprocess.

        The caller checked the migration first, so the four domain columns exist.
        """
        with self.transaction() as conn:
            cur = conn.execute(
                f"UPDATE documents SET {_RESET_SET} WHERE hash = ? AND recon_domain_status = ?",
                (doc_hash, Status.NEEDS_REPROCESS),
            )
            if cur.rowcount != 1:
                return False
            conn.execute("UPDATE catalogue SET status = 'queued' WHERE hash = ?", (doc_hash,))
            conn.execute(
                f"INSERT INTO {AUDIT_TABLE} (hash, original_path, quarantine_path, file_count, "
                "reason, quarantined_at) VALUES (?, ?, ?, ?, ?, ?)",
                (doc_hash, original_path, quarantine_path, file_count, reason, utc_now()),
            )
        return True

    def put_rows_back(
        self, doc_hash: str, snapshot: Mapping[str, Mapping[str, Any] | None]
    ) -> None:
        """Write back the documents/catalogue values saved before the reset (only columns that
        still exist: the domain columns may have been dropped meanwhile). Runs inside the
        caller's transaction()."""
        for table in ("documents", "catalogue"):
            saved = snapshot.get(table) or {}
            cols = [c for c in self.column_names(table) if c in saved and c != "hash"]
            if cols:
                self.conn.execute(
                    f"UPDATE {table} SET {', '.join(f'{c} = ?' for c in cols)} WHERE hash = ?",
                    [*(saved[c] for c in cols), doc_hash],
                )

    # -- the reprocess audit table ---------------------------------------------------------
    def audit_counts(self) -> tuple[int, int]:
        """(reprocess audit rows, how many of them are restored): folders quarantined by
        runbook Step 7 and folders put back since. Needs the migration (the audit table)."""
        rows, restored = self.conn.execute(
            f"SELECT count(*), count(restored_at) FROM {AUDIT_TABLE}"
        ).fetchone()
        return int(rows), int(restored)

    def audited_quarantine_paths(self, doc_hash: str) -> list[str]:
        """The quarantine paths every audit row of one document names."""
        rows = self.conn.execute(
            f"SELECT quarantine_path FROM {AUDIT_TABLE} WHERE hash = ?", (doc_hash,)
        )
        return [qpath for (qpath,) in rows if qpath]

    def latest_audit(self, doc_hash: str) -> AuditRow | None:
        row = self.conn.execute(
            f"SELECT quarantine_path, file_count, restored_at FROM {AUDIT_TABLE} WHERE hash = ? "
            "ORDER BY id DESC LIMIT 1",
            (doc_hash,),
        ).fetchone()
        return None if row is None else AuditRow(*row)

    def restored_quarantine_paths(self) -> set[str]:
        """Quarantine paths of audit rows already restored (none without the audit table)."""
        if not self.has_audit_table():
            return set()
        rows = self.conn.execute(
            f"SELECT quarantine_path FROM {AUDIT_TABLE} WHERE restored_at IS NOT NULL"
        )
        return {r[0] for r in rows}

    def unrestored_quarantined_hashes(self) -> set[str]:
        """Documents with an audited, unrestored quarantined folder (none without the table)."""
        if not self.has_audit_table():
            return set()
        rows = self.conn.execute(
            f"SELECT DISTINCT hash FROM {AUDIT_TABLE} WHERE restored_at IS NULL AND file_count > 0"
        )
        return {r[0] for r in rows}

    def mark_audit_restored(self, doc_hash: str, quarantine_path: str) -> None:
        """The audit row of this quarantined folder is restored now (no-op without the audit
        table). Runs inside the caller's transaction()."""
        if self.has_audit_table():
            self.conn.execute(
                f"UPDATE {AUDIT_TABLE} SET restored_at = ? WHERE hash = ? AND restored_at IS NULL "
                "AND quarantine_path = ?",
                (utc_now(), doc_hash, quarantine_path),
            )

    def has_audit_table(self) -> bool:
        return AUDIT_TABLE in self.table_names()

"""The schema migration of SPEC §4 (runbook Step 3) and its revert: four nullable columns
on documents, a status index, and our three tables (the push ledger, the reprocess audit,
the decisions' sources: what each decision was made from)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from recon_domains.recon.connection import ReconStoreError, StoreConnection

DOMAIN_COLUMNS: tuple[str, ...] = (
    "recon_domain",
    "recon_domain_status",
    "recon_domain_assigned_at",
    "peertube_category_pushed_at",
)
STATUS_INDEX = "idx_documents_recon_domain_status"
LEDGER_TABLE = "recon_domains_push_ledger"
AUDIT_TABLE = "recon_domains_reprocess_audit"
SOURCES_TABLE = "recon_domains_decision_sources"
OUR_TABLES: tuple[str, ...] = (LEDGER_TABLE, AUDIT_TABLE, SOURCES_TABLE)
# What a revert copies into the audit trail first: the ledger (the originals) and the
# reprocess audit. The decisions' sources are not: they are re-made from the files.
EXPORTED_TABLES: tuple[str, ...] = (LEDGER_TABLE, AUDIT_TABLE)
REQUIRED_RECON_TABLES: tuple[str, ...] = ("documents", "catalogue")
DROP_COLUMN_MIN_SQLITE = (3, 35, 0)

# Plain INTEGER PRIMARY KEY, not AUTOINCREMENT: AUTOINCREMENT creates sqlite_sequence,
# which SQLite never lets us drop, so the revert would not give back RECON's exact schema.
_OUR_DDL: tuple[str, ...] = (
    f"""CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (
        id INTEGER PRIMARY KEY,
        hash TEXT NOT NULL,
        video_id TEXT NOT NULL,
        stage TEXT NOT NULL,
        category_before INTEGER,
        category_after INTEGER,
        intended_at TEXT NOT NULL,
        pushed_at TEXT,
        restored_at TEXT
    )""",
    f"CREATE INDEX IF NOT EXISTS idx_{LEDGER_TABLE}_hash ON {LEDGER_TABLE}(hash)",
    f"CREATE INDEX IF NOT EXISTS idx_{LEDGER_TABLE}_video ON {LEDGER_TABLE}(video_id)",
    f"""CREATE TABLE IF NOT EXISTS {AUDIT_TABLE} (
        id INTEGER PRIMARY KEY,
        hash TEXT NOT NULL,
        original_path TEXT NOT NULL,
        quarantine_path TEXT NOT NULL,
        file_count INTEGER NOT NULL,
        reason TEXT NOT NULL,
        quarantined_at TEXT NOT NULL,
        restored_at TEXT
    )""",
    f"CREATE INDEX IF NOT EXISTS idx_{AUDIT_TABLE}_hash ON {AUDIT_TABLE}(hash)",
    # One row per decided document: the fingerprint of the concept files its decision was
    # made from (recon_domains.recon.concepts.fingerprint), for the scheduled re-assignment.
    f"""CREATE TABLE IF NOT EXISTS {SOURCES_TABLE} (
        hash TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        recorded_by TEXT NOT NULL
    )""",
)


@dataclass(frozen=True)
class MigrationReport:
    added_columns: tuple[str, ...]
    created: tuple[str, ...]  # index and tables created by this call

    @property
    def changed(self) -> bool:
        return bool(self.added_columns or self.created)


@dataclass(frozen=True)
class MigrationCheck:
    ok: bool
    problems: tuple[str, ...] = ()
    columns: tuple[str, ...] = field(default=())


def sqlite_version() -> tuple[int, int, int]:
    major, minor, patch = (int(p) for p in sqlite3.sqlite_version.split(".")[:3])
    return major, minor, patch


class SchemaMigration(StoreConnection):
    """Runbook Step 3 and "Schema migration revert" on the store's connection."""

    # RECON's own columns as the first migrate() found them: verify_migration proves we
    # left them alone.
    _original_columns: tuple[tuple, ...] | None = None

    def _columns(self) -> list[sqlite3.Row]:
        return self.conn.execute("PRAGMA table_info(documents)").fetchall()

    def is_migrated(self) -> bool:
        """True when every column, the index and our tables exist."""
        return self.verify_migration().ok

    def has_domain_columns(self) -> bool:
        """True when documents has our four columns (whatever else is missing)."""
        return set(DOMAIN_COLUMNS) <= set(self.column_names())

    def migrate(self) -> MigrationReport:
        """Add the four nullable columns, the status index and our tables. Idempotent."""
        before = [tuple(r) for r in self._columns()]
        if self._original_columns is None:
            self._original_columns = tuple(c for c in before if c[1] not in DOMAIN_COLUMNS)
        existing = {r[1] for r in before}
        added: list[str] = []
        created: list[str] = []
        with self.transaction() as conn:
            for col in DOMAIN_COLUMNS:
                if col not in existing:
                    conn.execute(f"ALTER TABLE documents ADD COLUMN {col} TEXT")
                    added.append(col)
            if STATUS_INDEX not in self.index_names():
                conn.execute(f"CREATE INDEX {STATUS_INDEX} ON documents(recon_domain_status)")
                created.append(STATUS_INDEX)
            tables = self.table_names()
            for ddl in _OUR_DDL:
                conn.execute(ddl)
            created.extend(t for t in OUR_TABLES if t not in tables)
        after = [tuple(r) for r in self._columns()]
        # No pre-existing column may have been dropped or changed by us.
        if after[: len(before)] != before:
            raise ReconStoreError(
                "schema migration changed existing columns of documents; restore the "
                "pre-deploy backup (runbook Pre-Deploy 1) and report this."
            )
        return MigrationReport(tuple(added), tuple(created))

    def verify_migration(
        self, expected_existing: Iterable[str] = ("hash", "status", "filename", "discovered_at")
    ) -> MigrationCheck:
        """Runbook Step 3's verification: our columns and index exist, RECON's are intact."""
        columns = self._columns()
        names = [r["name"] for r in columns]
        problems: list[str] = []
        for col in DOMAIN_COLUMNS:
            if col not in names:
                problems.append(f"missing column documents.{col}")
            else:
                info = next(r for r in columns if r["name"] == col)
                if info["type"].upper() != "TEXT" or info["notnull"]:
                    problems.append(f"documents.{col} should be nullable TEXT")
        if STATUS_INDEX not in self.index_names():
            problems.append(f"missing index {STATUS_INDEX}")
        tables = self.table_names()
        problems.extend(f"missing table {t}" for t in OUR_TABLES if t not in tables)
        for col in expected_existing:
            if col not in names:
                problems.append(f"ALERT: existing column documents.{col} is missing")
        if self._original_columns is not None:
            now = {r[1]: tuple(r) for r in columns}
            for orig in self._original_columns:
                if now.get(orig[1]) != orig:
                    problems.append(f"ALERT: existing column documents.{orig[1]} changed")
        return MigrationCheck(not problems, tuple(problems), tuple(names))

    def require_migrated(self) -> None:
        """Refuse unless migrated. A recon.db migrated before the decisions' sources table
        existed passes: every step works without it (decisions are written without their
        fingerprint) except the re-assignment, which says to run schema_job again."""
        check = self.verify_migration()
        problems = [p for p in check.problems if p != f"missing table {SOURCES_TABLE}"]
        if problems:
            raise ReconStoreError(
                "RECON's database is not migrated for domain assignment ("
                + "; ".join(problems)
                + "). Run runbook Step 3 (asset recon_schema) first."
            )

    # -- the revert (rollback) -------------------------------------------------------------
    def schema_artifacts(self) -> dict[str, list[str]]:
        """What of ours is in recon.db now: {"columns": […], "index": […], "tables": […]}."""
        cols = set(self.column_names())
        tables = self.table_names()
        return {
            "columns": [c for c in DOMAIN_COLUMNS if c in cols],
            "index": [STATUS_INDEX] if STATUS_INDEX in self.index_names() else [],
            "tables": [t for t in OUR_TABLES if t in tables],
        }

    def our_table_rows(self) -> dict[str, list[dict[str, Any]]]:
        """Every row of our exported tables that exist (copied into the audit trail before a
        revert): the ledger and the reprocess audit."""
        tables = self.table_names()
        return {
            table: [dict(r) for r in self.conn.execute(f"SELECT * FROM {table}")]
            for table in EXPORTED_TABLES
            if table in tables
        }

    def revert_migration(self) -> list[str]:
        """Drop our columns, index and tables (rollback). Needs SQLite >= 3.35."""
        if sqlite_version() < DROP_COLUMN_MIN_SQLITE:
            raise ReconStoreError(
                f"SQLite {sqlite3.sqlite_version} cannot DROP COLUMN (needs 3.35.0+). Upgrade "
                "SQLite (Ubuntu 24.04 ships 3.45) or restore the pre-deploy backup instead."
            )
        actions: list[str] = []
        with self.transaction() as conn:
            if STATUS_INDEX in self.index_names():
                conn.execute(f"DROP INDEX {STATUS_INDEX}")
                actions.append(f"dropped index {STATUS_INDEX}")
            names = set(self.column_names())
            for col in DOMAIN_COLUMNS:
                if col in names:
                    conn.execute(f"ALTER TABLE documents DROP COLUMN {col}")
                    actions.append(f"dropped column documents.{col}")
            tables = self.table_names()
            for table in OUR_TABLES:
                if table in tables:
                    conn.execute(f"DROP TABLE {table}")
                    actions.append(f"dropped table {table}")
        return actions

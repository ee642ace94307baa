"""Runbook "Schema migration revert": drop the four columns, the index and our tables,
after copying the push ledger and the reprocess audit into the audit trail."""

from __future__ import annotations

import sqlite3

from recon_domains.peertube.categories import PeerTubeCategories
from recon_domains.peertube.urls import canonical_video_id
from recon_domains.recon.quarantine import QuarantineEntry, entry_of
from recon_domains.recon.store import (
    AUDIT_TABLE,
    DROP_COLUMN_MIN_SQLITE,
    ReconStore,
    sqlite_version,
)
from recon_domains.rollback.audit import (
    SAMPLE_SIZE,
    AuditLog,
    RollbackRefused,
    RollbackReport,
    recorded,
)


def _still_carrying(
    store: ReconStore, categories: PeerTubeCategories | None
) -> tuple[int, list[str]]:
    """(documents marked pushed, ledger videos whose PeerTube category is still ours)."""
    pushed = store.marked_pushed_count() if store.has_domain_columns() else 0
    carrying: list[str] = []
    if categories is not None and store.has_ledger():
        latest: dict[str, int | None] = {}
        for r in store.ledger():
            if r.pushed_at is not None and r.restored_at is None:
                latest[canonical_video_id(r.video_id)] = r.category_after
        if latest:
            # Ours are RECON categories: one read of the videos carrying one.
            now = categories.recon_videos()
            carrying = sorted(v for v, c in latest.items() if now.get(v) == c)
    return pushed, carrying


def _export_our_tables(store: ReconStore, audit: AuditLog | None, report: RollbackReport) -> None:
    """Copy the push ledger and the reprocess audit rows into the audit trail, and mark each
    audited quarantine entry, before the tables are dropped."""
    exported = store.our_table_rows()
    for row in exported.get(AUDIT_TABLE, []):
        if not row.get("quarantine_path"):
            continue
        entry = entry_of(row["quarantine_path"])
        if entry.is_dir():
            QuarantineEntry(entry, row["hash"]).mark_audited(row)
    recorded(
        audit,
        RollbackReport(
            "rollback_schema:export", False, counts={t: len(v) for t, v in exported.items()}
        ),
        tables=exported,
    )
    report.steps.append(
        "copied "
        + ", ".join(f"{len(v)} rows of {t}" for t, v in exported.items())
        + " into the audit trail"
    )


def rollback_schema(
    store: ReconStore,
    categories: PeerTubeCategories | None = None,
    force: bool = False,
    *,
    dry_run: bool = True,
    audit: AuditLog | None = None,
) -> RollbackReport:
    """Drop the four columns, the index and our tables (runbook "Schema migration revert").

    Refuses while PeerTube still carries pushed categories (documents marked pushed, or —
    given `categories`, PeerTube's database or API — ledger videos still showing the
    category we pushed) unless `force`: dropping the ledger would lose the originals the
    category rollback needs. Needs SQLite >= 3.35 for DROP COLUMN; checked first.
    """
    report = RollbackReport("rollback_schema", dry_run)
    present = store.schema_artifacts()
    report.counts = {k: len(v) for k, v in present.items()}
    report.sample = [{"kind": k, "name": n} for k, names in present.items() for n in names]
    if not any(present.values()):
        report.steps.append("nothing of ours in recon.db: schema already reverted")
        return recorded(audit, report)
    if sqlite_version() < DROP_COLUMN_MIN_SQLITE:
        msg = (
            f"SQLite {sqlite3.sqlite_version} cannot DROP COLUMN (needs 3.35.0 or newer): "
            "upgrade SQLite (Ubuntu 24.04 ships 3.45), or restore the pre-deploy backup "
            "recon.db.pre-domain-feature.*.bak instead. The columns are nullable and inert."
        )
        report.problems.append(msg)
        if not dry_run:
            recorded(audit, report)
            raise RollbackRefused(msg)
        return recorded(audit, report)
    # force drops anyway: PeerTube is not even asked (it may be what is broken).
    asked = None if force else categories
    pushed, carrying = _still_carrying(store, asked)
    report.counts["documents_marked_pushed"] = pushed
    if asked is not None:
        report.counts["videos_still_carrying_our_category"] = len(carrying)
    if (pushed or carrying) and not force:
        msg = (
            f"PeerTube still carries pushed categories ({pushed} documents marked pushed, "
            f"{len(carrying)} videos still showing our category): dropping the push ledger "
            "would lose their original categories. Run rollback_peertube_categories first, "
            "or set force: true to drop anyway"
        )
        report.problems.append(msg)
        if not dry_run:
            recorded(audit, report, carrying_sample=carrying[:SAMPLE_SIZE])
            raise RollbackRefused(msg)
        return recorded(audit, report, carrying_sample=carrying[:SAMPLE_SIZE])
    if dry_run:
        report.steps.append(
            "would copy the push ledger and reprocess audit into the audit trail, then drop "
            + ", ".join(n for names in present.values() for n in names)
        )
        return recorded(audit, report)
    _export_our_tables(store, audit, report)
    actions = store.revert_migration()
    report.acted = bool(actions)
    report.steps.extend(actions)
    left = store.schema_artifacts()
    if any(left.values()):
        report.problems.append(f"still present after the revert: {left}")
    return recorded(audit, report, actions=actions)

"""Runbook "Clear wrong backfill assignments": every domain column NULL, or only the
tiebreaker's decisions back to tied_pass_1 for a re-run."""

from __future__ import annotations

from typing import Literal

from recon_domains.recon.store import ReconStore
from recon_domains.rollback.audit import (
    SAMPLE_SIZE,
    AuditLog,
    RollbackConfigError,
    RollbackReport,
    recorded,
)
from recon_domains.taxonomy import Status

# tiebreaker_only: the statuses the tiebreaker (and the review page) decided.
_TIEBREAKER_STATUSES = (Status.TIED_PASS_2, Status.TIED_MANUAL)


def rollback_assignments(
    store: ReconStore,
    mode: Literal["all", "tiebreaker_only"] = "all",
    *,
    dry_run: bool = True,
    audit: AuditLog | None = None,
) -> RollbackReport:
    """Clear wrong assignments (runbook "Clear wrong backfill assignments").

    `all`: every domain column NULL (push timestamps too). `tiebreaker_only`: `tied_pass_2`
    and `tied_manual` back to `tied_pass_1` (domain, time and push timestamp NULL) for a
    tiebreaker re-run. PeerTube keeps what was pushed; the push ledger still holds each
    video's original category for rollback_peertube_categories. The cleared rows are written
    to the audit trail, so even manual decisions can be recovered from it.
    """
    if mode not in ("all", "tiebreaker_only"):
        raise RollbackConfigError(f"mode must be 'all' or 'tiebreaker_only', got {mode!r}")
    report = RollbackReport(f"rollback_assignments[{mode}]", dry_run)
    if not store.has_domain_columns():
        report.steps.append(
            "recon.db has no domain columns (schema not migrated): nothing to clear"
        )
        return recorded(audit, report, mode=mode)
    statuses = None if mode == "all" else _TIEBREAKER_STATUSES
    rows = store.assignment_rows(statuses)
    by_status: dict[str, int] = {}
    for r in rows:
        key = r["recon_domain_status"] or "unassigned"
        by_status[key] = by_status.get(key, 0) + 1
    pushed = sum(1 for r in rows if r["peertube_category_pushed_at"])
    report.counts = {"documents": len(rows), "pushed": pushed}
    report.counts.update({f"status:{k}": v for k, v in sorted(by_status.items())})
    report.sample = [dict(r) for r in rows[:SAMPLE_SIZE]]
    target = "NULL" if mode == "all" else Status.TIED_PASS_1
    if pushed:
        report.steps.append(
            f"{pushed} of them were pushed: PeerTube keeps those categories until "
            "rollback_peertube_categories restores them from the push ledger"
        )
    if by_status.get(Status.MANUAL_ASSIGNED):
        report.steps.append(
            f"{by_status[Status.MANUAL_ASSIGNED]} manual decisions are cleared too (recorded "
            "in the audit trail)"
        )
    if dry_run or not rows:
        report.steps.insert(
            0,
            f"would set {len(rows)} documents' status to {target}"
            if rows
            else "no document to clear: nothing to do",
        )
        return recorded(audit, report, mode=mode)
    cleared = store.clear_assignments(
        statuses, status_after=None if mode == "all" else Status.TIED_PASS_1
    )
    report.acted = True
    report.counts["cleared"] = cleared
    report.steps.insert(0, f"set {cleared} documents' status to {target}")
    return recorded(audit, report, mode=mode, cleared=[dict(r) for r in rows])

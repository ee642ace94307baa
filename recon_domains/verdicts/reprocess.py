"""Runbook Step 7's gate: what a reprocess partition did is verified (requeued)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recon_domains.recon.store import ReconStore
from recon_domains.reprocess import verify_requeued
from recon_domains.verdicts import Verdict


def dry_run_wrote_nothing(materialization: Mapping[str, Any]) -> Verdict:
    """The dry run, from its materialization's metadata: its audit row count unchanged."""
    if not materialization:
        return Verdict(False, "Materialize reprocess_batch dry-run first.")
    wrote = materialization.get("audit_rows_before") != materialization.get("audit_rows_after")
    return Verdict(
        not wrote,
        f"Dry run wrote nothing; {materialization.get('stale')} stale document(s) listed, "
        f"{materialization.get('folders_to_quarantine')} folder(s) would be quarantined. "
        "Review the plan before batch-10."
        if not wrote
        else "The dry run's audit row count changed while it ran: another writer was active. "
        "Re-run the dry run when RECON is idle.",
        {"stale": int(materialization.get("stale") or 0)},
    )


def requeued(
    store: ReconStore, partition: str, materialization: Mapping[str, Any], quarantine_root: Path
) -> Verdict:
    """A real batch, from its materialization's metadata (requeued_hashes, errors): every
    document it processed queued with its domain columns reset, every removed folder in
    quarantine with its audit row, no document failed."""
    if not materialization:
        return Verdict(False, f"Materialize reprocess_batch {partition} first.")
    hashes = materialization.get("requeued_hashes") or []
    check = verify_requeued(store, hashes, quarantine_root)
    problems = list(check.problems)
    errors = int(materialization.get("errors") or 0)
    if errors:
        problems.append(f"{errors} document(s) failed in the batch (see error_list)")
    return Verdict(
        not problems,
        f"{check.checked} document(s) re-queued ({check.queued} queued, {check.in_pipeline} "
        f"already further in RECON's pipeline), {check.quarantined_folders} folder(s) in "
        "quarantine with audit rows."
        if not problems
        else f"{len(problems)} problem(s): "
        + "; ".join(problems[:5])
        + f". Re-run reprocess_job for {partition} (a re-run is safe); restore a folder from "
        "quarantine if needed (Rollback).",
        {
            "checked": check.checked,
            "queued": check.queued,
            "in_pipeline": check.in_pipeline,
            "quarantined_folders": check.quarantined_folders,
            "problems": problems[:50],
        },
    )

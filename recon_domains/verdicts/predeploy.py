"""Pre-Deploy 1–4's gates: the backups verified, the off-site mirror fresh, RECON idle."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from recon_domains.backups import verify_dump, verify_recon_backup
from recon_domains.verdicts import Table, Verdict, human_size


def backup_verified(
    db_path: str | Path, backup_path: str | None, expected_counts: Mapping[str, int] | None
) -> Verdict:
    """Pre-Deploy 1: the backup passes integrity_check and has the snapshot's row counts."""
    if not backup_path:
        return Verdict(False, "No backup path recorded: materialize recon_db_backup first.")
    v = verify_recon_backup(db_path, backup_path, expected_counts=expected_counts or None)
    return Verdict(
        v.ok,
        f"Backup {backup_path} verified: integrity ok, row counts equal."
        if v.ok
        else "Backup NOT verified: "
        + "; ".join(v.problems)
        + ". Do not proceed: take the backup again (materialize recon_db_backup).",
        {
            "path": Path(backup_path),
            "integrity": v.integrity,
            "row_counts": Table.of(
                ["table", "snapshot rows", "backup rows", "ok"],
                [(t.table, t.expected, t.actual, "yes" if t.ok else "NO") for t in v.tables],
            ),
        },
    )


def dump_verified(dump_path: str | None, pg_bin_dir: str | None) -> Verdict:
    """Pre-Deploy 2: the dump is non-empty and pg_restore --list reads it."""
    if not dump_path:
        return Verdict(False, "No dump recorded: materialize peertube_db_backup first.")
    c = verify_dump(dump_path, pg_bin_dir)
    return Verdict(
        c.ok,
        f"Dump {dump_path} readable by pg_restore ({c.entries} entries)."
        if c.ok
        else "Dump NOT verified: "
        + "; ".join(c.problems)
        + ". Do not proceed: dump again (materialize peertube_db_backup).",
        {"path": Path(dump_path), "size": human_size(c.size_bytes), "toc_entries": c.entries},
    )


def backup_fresh(freshness: Mapping[str, Any] | None) -> Verdict:
    """Pre-Deploy 3, from the off-site observation's summary (offsite_concept_backup)."""
    if not isinstance(freshness, Mapping):
        return Verdict(False, "No observation: materialize offsite_concept_backup.")
    problems = list(freshness.get("problems") or [])
    lag = freshness.get("lag_hours")
    return Verdict(
        not problems,
        f"Off-site mirror fresh: {lag} h behind (limit {freshness.get('max_lag_hours')} h), "
        f"{freshness.get('sampled')} sampled folders present."
        if not problems
        else "Off-site backup NOT fresh: "
        + "; ".join(problems)
        + ". Do not proceed: run the off-site rsync, then materialize offsite_concept_backup "
        "again.",
        {
            "lag_hours": lag if lag is not None else -1,
            "missing_folders": list(freshness.get("missing") or []),
        },
    )


def no_active_workers(
    mid_pipeline: int | None, documents: Sequence[Mapping[str, str]], *, is_copy: bool
) -> Verdict:
    """Pre-Deploy 4, from recon_idle's observation: no document mid-pipeline (`documents`:
    the busy ones, hash and status). On a copy (no workers) stale statuses are reported."""
    if mid_pipeline is None:
        return Verdict(False, "Materialize recon_idle first.")
    listing = Table.of(["hash", "status"], [(d["hash"], d["status"]) for d in documents[:20]])
    if mid_pipeline and is_copy:
        # A rehearsal copy has no workers: these statuses are stale snapshots, not activity.
        return Verdict(
            True,
            f"RECON_IS_COPY: this is a copy without workers; {mid_pipeline} stale "
            "mid-pipeline status(es) reported, not treated as activity.",
            {"mid_pipeline": mid_pipeline, "stale_statuses": listing},
        )
    return Verdict(
        mid_pipeline == 0,
        "RECON idle: no document mid-pipeline."
        if mid_pipeline == 0
        else f"{mid_pipeline} document(s) mid-pipeline (a worker is active). Do not proceed: "
        "wait for RECON's workers to finish (or stop the service), then materialize "
        "recon_idle again. On a rehearsal copy of recon.db, where no worker runs, these "
        "statuses are stale snapshots: set RECON_IS_COPY=1 and they are reported instead.",
        {"mid_pipeline": mid_pipeline, "documents": listing},
    )

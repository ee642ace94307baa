"""Runbook Step 7: reprocess `needs_reprocess` documents — the only destructive step.

Partitions follow the runbook: `dry-run` (lists, writes nothing), then `batch-10`,
`batch-100`, `all`; each real batch refuses until the previous partition is materialized and
its `requeued` check passed, the rollout is verified, the off-site concept backup is fresh
and RECON is idle (SPEC §7) — read from the instance *and* re-measured right before writing.
The gate, `requeued`, is in checks.py.
"""

from collections import Counter
from typing import TYPE_CHECKING

import dagster as dg

from recon_domains.defs.common import operator_errors, step_asset, table
from recon_domains.defs.gates import require_gates
from recon_domains.defs.resources import ProgressResource, ReconResource
from recon_domains.runbook import step as runbook_step
from recon_domains.verdicts import Table

if TYPE_CHECKING:
    from recon_domains.recon.store import ReconStore


def _live_preconditions(recon: ReconResource, store: "ReconStore") -> list[str]:
    """SPEC §7 preconditions measured now (the gates only say what was true when observed)."""
    from recon_domains.backups import offsite_freshness
    from recon_domains.reprocess import batch_preconditions

    busy = store.mid_pipeline_documents()
    offsite_problems = None
    if recon.offsite_concepts_dir:
        offsite_problems = offsite_freshness(
            recon.concepts_dir,
            recon.offsite_concepts_dir,
            max_lag_hours=recon.offsite_max_lag_hours,
        ).problems
    return batch_preconditions(busy, offsite_problems, is_copy=recon.is_copy)


@step_asset(
    "reprocess_batch",
    kinds={"sqlite"},
    description="Runbook Step 7, `--reprocess-missing`: `dry-run` lists every needs_reprocess "
    "document with its concept-folder state (exists, file count, why stale) and writes "
    "nothing; `batch-10`, `batch-100`, `all` move each stale concept folder into quarantine "
    "(RECON_QUARANTINE_DIR, with an audit row; never deleted) and reset + re-queue the "
    "document in one transaction. DESTRUCTIVE for the concept folders (restorable from "
    "quarantine). A batch refuses unless the previous partition passed `requeued`, the "
    "rollout is verified, the off-site backup is fresh and RECON is idle.",
)
def reprocess_batch(
    context: dg.AssetExecutionContext, recon: ReconResource, progress: ProgressResource
) -> dg.MaterializeResult:
    from recon_domains.recon.quarantine import interrupted_writes
    from recon_domains.reprocess import (
        item_dict,
        plan_reprocess,
        resume_interrupted,
        run_reprocess_batch,
    )

    partition = context.partition_key
    this = runbook_step("reprocess_batch")
    step = this.refusal_name(partition)

    if this.partition(partition).dry_run:
        with operator_errors(step), recon.store() as store:
            before, _ = store.audit_counts()
            tracker = progress.track(context.log, f"reprocess {partition}", "documents")
            plan = plan_reprocess(
                store, recon.concepts_root, max_window_file_mb=recon.max_window_file_mb,
                on_progress=tracker.callback,
            )
            tracker.finish()
            after, _ = store.audit_counts()
            unsettled = interrupted_writes(
                recon.quarantine_root, recon.concepts_root, recon.offsite_concepts_dir or None
            )
        stale = [i for i in plan if i.stale]
        reasons = Counter(i.why for i in plan)
        listing = Table.of(
            [
                "hash",
                "channel",
                "folder exists",
                "files",
                "window files",
                "stale",
                "why",
                "PeerTube",
            ],
            [
                (
                    i.hash[:12],
                    i.channel,
                    "yes" if i.folder_exists else "no",
                    i.file_count,
                    i.window_files,
                    "yes" if i.stale else "no (error: unsafe)" if i.unsafe else "no (skipped)",
                    i.why,
                    i.path,
                )
                for i in plan[:50]
            ],
        )
        return dg.MaterializeResult(
            metadata={
                "needs_reprocess": len(plan),
                "stale": len(stale),
                "skipped_not_stale": len(plan) - len(stale),
                "unsafe_folders": sum(1 for i in plan if i.unsafe),
                "folders_to_quarantine": sum(1 for i in stale if i.folder_exists),
                "files_to_quarantine": sum(i.file_count for i in stale),
                "why": dg.MetadataValue.json(dict(reasons)),
                "plan": table(listing),
                "plan_items": dg.MetadataValue.json([item_dict(i) for i in plan[:200]]),
                # What the next real batch settles first (killed runs' `.partial` copies).
                "interrupted_writes": dg.MetadataValue.json([w.as_dict() for w in unsettled]),
                "audit_rows_before": before,
                "audit_rows_after": after,
                "written": 0,
            }
        )

    # A real batch: the previous partition and every upstream gate, then live checks.
    require_gates(context, "reprocess_batch")
    with operator_errors(step), recon.store() as store:
        problems = _live_preconditions(recon, store)
        if problems:
            raise dg.Failure(
                description=f"Refusing {step}: "
                + "; ".join(problems)
                + ". Then materialize offsite_concept_backup and recon_idle again and retry.",
                allow_retries=False,
            )
        reason = f"runbook Step 7 {partition} (dagster run {context.run.run_id[:8]})"
        cap = recon.max_window_file_mb
        resumed = resume_interrupted(
            store, recon.concepts_root, recon.quarantine_root, reason,
            offsite_dir=recon.offsite_concepts_dir or None, max_window_file_mb=cap,
        )
        plan = plan_reprocess(
            store, recon.concepts_root, this.partition(partition).limit, max_window_file_mb=cap
        )
        tracker = progress.track(context.log, f"reprocess {partition}", "documents")
        result = run_reprocess_batch(
            store, recon.concepts_root, recon.quarantine_root, plan, reason,
            max_window_file_mb=cap, on_progress=tracker.callback,
        )
        tracker.finish()
    requeued = [*resumed.requeued, *result.requeued]
    quarantined = [*resumed.quarantined, *result.quarantined]
    errors = [*resumed.errors, *result.errors]
    context.log.info(
        f"{partition}: {len(requeued)} re-queued, {len(quarantined)} folder(s) quarantined, "
        f"{len(result.skipped)} skipped, {len(errors)} error(s)"
    )
    return dg.MaterializeResult(
        metadata={
            "requeued": len(requeued),
            "folders_quarantined": len(quarantined),
            "files_quarantined": sum(int(q["file_count"]) for q in quarantined),
            "resumed": len(resumed.requeued),
            "skipped": len(result.skipped),
            "errors": len(errors),
            "quarantine_dir": dg.MetadataValue.path(str(recon.quarantine_root)),
            "requeued_hashes": dg.MetadataValue.json(requeued),
            "quarantined_folders": table(
                Table.of(
                    ["hash", "quarantine path", "files"],
                    [
                        (q["hash"][:12], q["quarantine_path"], q["file_count"])
                        for q in quarantined[:50]
                    ],
                )
            ),
            "interrupted_writes": dg.MetadataValue.json(resumed.interrupted),
            "error_list": dg.MetadataValue.json([{"hash": h, "error": e} for h, e in errors[:50]]),
        }
    )

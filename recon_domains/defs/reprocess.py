"""Runbook Step 7: reprocess `needs_reprocess` documents — the only destructive step.

Partitions follow the runbook: `dry-run` (lists, writes nothing), then `batch-10`,
`batch-100`, `all`; each real batch refuses until the previous partition is materialized and
its `requeued` check passed, the rollout is verified, the off-site concept backup is fresh
and RECON is idle (SPEC §7) — read from the instance *and* re-measured right before writing.
"""

from collections import Counter
from typing import TYPE_CHECKING

import dagster as dg

from recon_domains.defs.common import (
    DESTRUCTIVE,
    WRITES_POOL,
    link,
    md_table,
    operator_errors,
    tier,
)
from recon_domains.defs.gates import (
    Gate,
    materialization_metadata,
    require_gates,
    require_partition_materialized,
)
from recon_domains.defs.predeploy import IDLE_GATE, OFFSITE_GATE
from recon_domains.defs.resources import ReconResource
from recon_domains.defs.verify import ROLLOUT_GATE

if TYPE_CHECKING:
    from recon_domains.recon.store import ReconStore

GROUP = "reprocess"
BATCHES = ("dry-run", "batch-10", "batch-100", "all")
batch_partitions = dg.StaticPartitionsDefinition(list(BATCHES))
BATCH_LIMITS: dict[str, int | None] = {
    "dry-run": None,
    "batch-10": 10,
    "batch-100": 100,
    "all": None,
}


def batch_gate(partition: str) -> Gate:
    return Gate(
        "reprocess_batch",
        "requeued",
        partition=partition,
        remedy=f"run reprocess_job for {partition} and let its requeued check pass (for a "
        "batch: wait until RECON has picked the documents up)",
    )


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


@dg.asset(
    group_name=GROUP,
    deps=["rollout_verification", "offsite_concept_backup", "recon_idle"],
    partitions_def=batch_partitions,
    tags=tier(DESTRUCTIVE),
    pool=WRITES_POOL,
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
    context: dg.AssetExecutionContext, recon: ReconResource
) -> dg.MaterializeResult:
    from recon_domains.reprocess import (
        item_dict,
        plan_reprocess,
        resume_interrupted,
        run_reprocess_batch,
    )

    partition = context.partition_key
    step = f"reprocess_batch {partition} (runbook Step 7)"

    if partition == "dry-run":
        with operator_errors(step), recon.store() as store:
            store.require_migrated()
            before, _ = store.audit_counts()
            plan = plan_reprocess(
                store, recon.concepts_root, max_window_file_mb=recon.max_window_file_mb
            )
            after, _ = store.audit_counts()
        stale = [i for i in plan if i.stale]
        reasons = Counter(i.why for i in plan)
        table = md_table(
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
                    "yes" if i.stale else "no (skipped)",
                    i.why,
                    link(i.path, "watch"),
                )
                for i in plan[:50]
            ],
        )
        return dg.MaterializeResult(
            metadata={
                "needs_reprocess": len(plan),
                "stale": len(stale),
                "skipped_not_stale": len(plan) - len(stale),
                "folders_to_quarantine": sum(1 for i in stale if i.folder_exists),
                "files_to_quarantine": sum(i.file_count for i in stale),
                "why": dg.MetadataValue.json(dict(reasons)),
                "plan": dg.MetadataValue.md(table),
                "plan_items": dg.MetadataValue.json([item_dict(i) for i in plan[:200]]),
                "audit_rows_before": before,
                "audit_rows_after": after,
                "written": 0,
            }
        )

    # A real batch: the previous partition first, then every upstream gate, then live checks.
    prev = BATCHES[BATCHES.index(partition) - 1]
    require_partition_materialized(
        context,
        "reprocess_batch",
        batch_partitions,
        prev,
        step=step,
        remedy=f"run reprocess_job for {prev} first and review it",
    )
    require_gates(context, (batch_gate(prev), ROLLOUT_GATE, OFFSITE_GATE, IDLE_GATE), step=step)
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
            store, recon.concepts_root, recon.quarantine_root, reason, max_window_file_mb=cap
        )
        plan = plan_reprocess(
            store, recon.concepts_root, BATCH_LIMITS[partition], max_window_file_mb=cap
        )
        result = run_reprocess_batch(
            store, recon.concepts_root, recon.quarantine_root, plan, reason,
            max_window_file_mb=cap,
        )
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
            "quarantined_folders": dg.MetadataValue.md(
                md_table(
                    ["hash", "quarantine path", "files"],
                    [
                        (q["hash"][:12], q["quarantine_path"], q["file_count"])
                        for q in quarantined[:50]
                    ],
                )
                if quarantined
                else "none"
            ),
            "error_list": dg.MetadataValue.json([{"hash": h, "error": e} for h, e in errors[:50]]),
        }
    )


@dg.asset_check(
    asset=reprocess_batch,
    partitions_def=batch_partitions,
    blocking=True,
    description="Every document the batch processed is queued (or already further in RECON's "
    "pipeline) with its domain columns reset, none stranded at 'catalogued', every removed "
    "folder in quarantine with its audit row. For the dry run: nothing was written.",
)
def requeued(context: dg.AssetCheckExecutionContext, recon: ReconResource) -> dg.AssetCheckResult:
    from recon_domains.reprocess import verify_requeued

    partition = context.partition_key
    meta = materialization_metadata(context.instance, "reprocess_batch", partition)
    if not meta:
        return dg.AssetCheckResult(
            passed=False, description=f"Materialize reprocess_batch {partition} first."
        )
    if partition == "dry-run":
        wrote = meta.get("audit_rows_before") != meta.get("audit_rows_after")
        return dg.AssetCheckResult(
            passed=not wrote,
            description=(
                f"Dry run wrote nothing; {meta.get('stale')} stale document(s) listed, "
                f"{meta.get('folders_to_quarantine')} folder(s) would be quarantined. Review "
                "the plan before batch-10."
                if not wrote
                else "The dry run's audit row count changed while it ran: another writer was "
                "active. Re-run the dry run when RECON is idle."
            ),
            metadata={"stale": int(meta.get("stale") or 0)},
        )
    hashes = meta.get("requeued_hashes") or []
    with operator_errors(f"requeued {partition}"), recon.store() as store:
        check = verify_requeued(store, hashes, recon.quarantine_root)
    problems = list(check.problems)
    if int(meta.get("errors") or 0):
        problems.append(f"{meta.get('errors')} document(s) failed in the batch (see error_list)")
    return dg.AssetCheckResult(
        passed=not problems,
        description=(
            f"{check.checked} document(s) re-queued ({check.queued} queued, {check.in_pipeline} "
            f"already further in RECON's pipeline), {check.quarantined_folders} folder(s) in "
            "quarantine with audit rows."
            if not problems
            else f"{len(problems)} problem(s): "
            + "; ".join(problems[:5])
            + f". Re-run reprocess_job for {partition} (a re-run is safe); restore a folder "
            "from quarantine if needed (Rollback)."
        ),
        metadata={
            "checked": check.checked,
            "queued": check.queued,
            "in_pipeline": check.in_pipeline,
            "quarantined_folders": check.quarantined_folders,
            "problems": dg.MetadataValue.json(problems[:50]),
        },
    )


assets = [reprocess_batch]
asset_checks = [requeued]

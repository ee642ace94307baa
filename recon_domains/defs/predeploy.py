"""Runbook "Pre-Deploy Backups" 1–4: must all pass before any state-changing step."""

import json

import dagster as dg

from recon_domains.defs.common import READ_ONLY, human_size, md_table, operator_errors, tier
from recon_domains.defs.gates import Gate, materialization_metadata
from recon_domains.defs.resources import PeerTubeDbResource, ReconResource, loaded_settings

GROUP = "predeploy"
_max_lag_hours = loaded_settings().offsite_max_lag_hours  # the value a description states

# Off-site backup and idle RECON also guard the reprocess step (Step 7).
OFFSITE_GATE = Gate(
    "offsite_concept_backup",
    "backup_fresh",
    remedy="rsync the concepts off-site, then materialize offsite_concept_backup again",
)
IDLE_GATE = Gate(
    "recon_idle",
    "no_active_workers",
    remedy="wait until RECON's workers are idle (no extracting/enriching/embedding "
    "documents), then materialize recon_idle again",
)
# The four pre-deploy gates, for the steps that must not run before them.
PREDEPLOY_GATES: tuple[Gate, ...] = (
    Gate(
        "recon_db_backup",
        "backup_verified",
        remedy="run predeploy_job (or materialize recon_db_backup) and fix what backup_verified "
        "reports",
    ),
    Gate(
        "peertube_db_backup",
        "dump_verified",
        remedy="run predeploy_job (or materialize peertube_db_backup); check PEERTUBE_DB_DSN / "
        "PEERTUBE_DB_DUMP_COMMAND",
    ),
    OFFSITE_GATE,
    IDLE_GATE,
)


@dg.asset(
    group_name=GROUP,
    tags=tier(READ_ONLY),
    kinds={"sqlite"},
    description="Runbook Pre-Deploy 1: snapshot the RECON database with SQLite's online backup "
    "API to RECON_BACKUP_DIR/recon.db.pre-domain-feature.<UTC timestamp>.bak. RECON's "
    "database is only read.",
)
def recon_db_backup(
    context: dg.AssetExecutionContext, recon: ReconResource
) -> dg.MaterializeResult:
    from recon_domains.backups import backup_recon_db

    with operator_errors("recon_db_backup (Pre-Deploy 1)"):
        result = backup_recon_db(recon.db_path, recon.backup_root)
    context.log.info(f"RECON backup written: {result.path} ({human_size(result.size_bytes)})")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(result.path)),
            "size_bytes": result.size_bytes,
            "size": human_size(result.size_bytes),
            "created_at": result.created_at,
            "table_counts": dg.MetadataValue.json(result.table_counts),
            "documents": result.table_counts.get("documents", 0),
        }
    )


@dg.asset_check(
    asset=recon_db_backup,
    blocking=True,
    description="The backup passes PRAGMA integrity_check and has the same row count in every "
    "table as the snapshot that was copied.",
)
def backup_verified(
    context: dg.AssetCheckExecutionContext, recon: ReconResource
) -> dg.AssetCheckResult:
    from recon_domains.backups import verify_recon_backup

    meta = materialization_metadata(context.instance, "recon_db_backup")
    path = meta.get("path")
    if not path:
        return dg.AssetCheckResult(
            passed=False,
            description="No backup path recorded: materialize recon_db_backup first.",
        )
    v = verify_recon_backup(recon.db_path, path, expected_counts=meta.get("table_counts") or None)
    table = md_table(
        ["table", "snapshot rows", "backup rows", "ok"],
        [(t.table, t.expected, t.actual, "yes" if t.ok else "NO") for t in v.tables],
    )
    return dg.AssetCheckResult(
        passed=v.ok,
        description=(
            f"Backup {path} verified: integrity ok, row counts equal."
            if v.ok
            else "Backup NOT verified: "
            + "; ".join(v.problems)
            + ". Do not proceed: take the backup again (materialize recon_db_backup)."
        ),
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "integrity": v.integrity,
            "row_counts": dg.MetadataValue.md(table),
        },
    )


@dg.asset(
    group_name=GROUP,
    tags=tier(READ_ONLY),
    kinds={"postgres"},
    description="Runbook Pre-Deploy 2: pg_dump -Fc of PeerTube's database (PEERTUBE_DB_DSN, or "
    "the stdout of PEERTUBE_DB_DUMP_COMMAND for a database reachable only over SSH) into "
    "RECON_BACKUP_DIR. PeerTube is only read.",
)
def peertube_db_backup(
    context: dg.AssetExecutionContext, recon: ReconResource, peertube_db: PeerTubeDbResource
) -> dg.MaterializeResult:
    from recon_domains.backups import dump_peertube_db

    with operator_errors("peertube_db_backup (Pre-Deploy 2)"):
        result = dump_peertube_db(
            peertube_db.dsn or None,
            recon.backup_root,
            peertube_db.dump_command or None,
            pg_bin_dir=peertube_db.pg_bin_dir or None,
        )
    context.log.info(f"PeerTube dump written: {result.path} ({human_size(result.size_bytes)})")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(result.path)),
            "size_bytes": result.size_bytes,
            "size": human_size(result.size_bytes),
            "created_at": result.created_at,
            "method": result.method,
        }
    )


@dg.asset_check(
    asset=peertube_db_backup,
    blocking=True,
    description="The dump is non-empty and pg_restore --list reads its table of contents.",
)
def dump_verified(
    context: dg.AssetCheckExecutionContext, peertube_db: PeerTubeDbResource
) -> dg.AssetCheckResult:
    from recon_domains.backups import verify_dump

    path = materialization_metadata(context.instance, "peertube_db_backup").get("path")
    if not path:
        return dg.AssetCheckResult(
            passed=False, description="No dump recorded: materialize peertube_db_backup first."
        )
    c = verify_dump(path, peertube_db.pg_bin_dir or None)
    return dg.AssetCheckResult(
        passed=c.ok,
        description=(
            f"Dump {path} readable by pg_restore ({c.entries} entries)."
            if c.ok
            else "Dump NOT verified: "
            + "; ".join(c.problems)
            + ". Do not proceed: dump again (materialize peertube_db_backup)."
        ),
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "size": human_size(c.size_bytes),
            "toc_entries": c.entries,
        },
    )


@dg.asset(
    group_name=GROUP,
    tags=tier(READ_ONLY),
    description="Runbook Pre-Deploy 3: observe the off-site concept mirror "
    "(RECON_OFFSITE_CONCEPTS_DIR) against the local concepts: newest file on each side and a "
    "sample of concept folders. Nothing is written.",
)
def offsite_concept_backup(
    context: dg.AssetExecutionContext, recon: ReconResource
) -> dg.MaterializeResult:
    from recon_domains.backups import offsite_freshness

    if not recon.offsite_concepts_dir:
        raise dg.Failure(
            description="RECON_OFFSITE_CONCEPTS_DIR is not set: point it at the off-site concept "
            "mirror (e.g. a mount of the Contabo backup) so its freshness can be checked.",
            allow_retries=False,
        )
    r = offsite_freshness(
        recon.concepts_dir, recon.offsite_concepts_dir, max_lag_hours=recon.offsite_max_lag_hours
    )
    summary = {
        "local_newest": r.local_newest,
        "offsite_newest": r.offsite_newest,
        "lag_hours": r.lag_hours,
        "max_lag_hours": r.max_lag_hours,
        "local_folders": r.local_folders,
        "offsite_folders": r.offsite_folders,
        "sampled": len(r.sampled),
        "missing": r.missing,
        "problems": r.problems,
    }
    context.log.info(f"off-site freshness: {json.dumps(summary)}")
    return dg.MaterializeResult(
        metadata={
            "local_dir": dg.MetadataValue.path(recon.concepts_dir),
            "offsite_dir": dg.MetadataValue.path(recon.offsite_concepts_dir),
            "local_newest": r.local_newest or "none",
            "offsite_newest": r.offsite_newest or "none",
            "lag_hours": r.lag_hours if r.lag_hours is not None else -1.0,
            "local_folders": r.local_folders,
            "offsite_folders": r.offsite_folders,
            "freshness": dg.MetadataValue.json(summary),
        }
    )


@dg.asset_check(
    asset=offsite_concept_backup,
    blocking=True,
    description=f"Newest off-site file within {_max_lag_hours:g} h (RECON_OFFSITE_MAX_LAG_HOURS) "
    "of the local newest, and every sampled concept folder present off-site.",
)
def backup_fresh(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    summary = materialization_metadata(context.instance, "offsite_concept_backup").get("freshness")
    if not isinstance(summary, dict):
        return dg.AssetCheckResult(
            passed=False, description="No observation: materialize offsite_concept_backup."
        )
    problems = list(summary.get("problems") or [])
    return dg.AssetCheckResult(
        passed=not problems,
        description=(
            f"Off-site mirror fresh: {summary.get('lag_hours')} h behind (limit "
            f"{summary.get('max_lag_hours')} h), {summary.get('sampled')} sampled folders present."
            if not problems
            else "Off-site backup NOT fresh: "
            + "; ".join(problems)
            + ". Do not proceed: run the off-site rsync, then materialize "
            "offsite_concept_backup again."
        ),
        metadata={
            "lag_hours": summary.get("lag_hours") if summary.get("lag_hours") is not None else -1,
            "missing_folders": dg.MetadataValue.json(summary.get("missing") or []),
        },
    )


@dg.asset(
    group_name=GROUP,
    tags=tier(READ_ONLY),
    kinds={"sqlite"},
    description="Runbook Pre-Deploy 4: RECON's service state, i.e. the documents a worker holds "
    "right now (status extracting / enriching / embedding). Nothing is written.",
)
def recon_idle(context: dg.AssetExecutionContext, recon: ReconResource) -> dg.MaterializeResult:
    with operator_errors("recon_idle (Pre-Deploy 4)"), recon.store() as store:
        busy = store.mid_pipeline_documents()
        pipeline = store.pipeline_status_counts(every_source=True)
    context.log.info(f"{len(busy)} document(s) mid-pipeline")
    return dg.MaterializeResult(
        metadata={
            "mid_pipeline": len(busy),
            "mid_pipeline_documents": dg.MetadataValue.json(
                [{"hash": h, "status": s} for h, s in busy[:100]]
            ),
            "pipeline_status_counts": dg.MetadataValue.json(pipeline),
            "is_copy": recon.is_copy,
        }
    )


@dg.asset_check(
    asset=recon_idle,
    blocking=True,
    description="No document mid-pipeline (extracting/enriching/embedding); lists any found.",
)
def no_active_workers(
    context: dg.AssetCheckExecutionContext, recon: ReconResource
) -> dg.AssetCheckResult:
    meta = materialization_metadata(context.instance, "recon_idle")
    if "mid_pipeline" not in meta:
        return dg.AssetCheckResult(passed=False, description="Materialize recon_idle first.")
    n = int(meta["mid_pipeline"])
    busy = meta.get("mid_pipeline_documents") or []
    listing = md_table(["hash", "status"], [(b["hash"], b["status"]) for b in busy[:20]])
    if n and bool(meta.get("is_copy")):
        # A rehearsal copy has no workers: these statuses are stale snapshots, not activity.
        return dg.AssetCheckResult(
            passed=True,
            description=f"RECON_IS_COPY: this is a copy without workers; {n} stale "
            "mid-pipeline status(es) reported, not treated as activity.",
            metadata={"mid_pipeline": n, "stale_statuses": dg.MetadataValue.md(listing)},
        )
    return dg.AssetCheckResult(
        passed=n == 0,
        description=(
            "RECON idle: no document mid-pipeline."
            if n == 0
            else f"{n} document(s) mid-pipeline (a worker is active). Do not proceed: wait for "
            "RECON's workers to finish (or stop the service), then materialize recon_idle again."
        ),
        metadata={"mid_pipeline": n, "documents": dg.MetadataValue.md(listing)},
    )


assets = [recon_db_backup, peertube_db_backup, offsite_concept_backup, recon_idle]
asset_checks = [backup_verified, dump_verified, backup_fresh, no_active_workers]

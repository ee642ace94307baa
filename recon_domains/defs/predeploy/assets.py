"""Runbook "Pre-Deploy Backups" 1–4: must all pass before any state-changing step."""

import json

import dagster as dg

from recon_domains.defs.common import operator_errors, step_asset
from recon_domains.defs.resources import PeerTubeDbResource, ReconResource
from recon_domains.verdicts import human_size


@step_asset(
    "recon_db_backup",
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


@step_asset(
    "peertube_db_backup",
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


@step_asset(
    "offsite_concept_backup",
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


@step_asset(
    "recon_idle",
    kinds={"sqlite"},
    description="Runbook Pre-Deploy 4: RECON's service state, i.e. the documents a worker holds "
    "right now (status extracting / enriching / embedding). Nothing is written.",
)
def recon_idle(context: dg.AssetExecutionContext, recon: ReconResource) -> dg.MaterializeResult:
    with operator_errors("recon_idle (Pre-Deploy 4)"), recon.store(migrated=False) as store:
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

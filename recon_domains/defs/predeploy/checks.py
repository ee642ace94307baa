"""Pre-Deploy 1–4's gates: adapters over recon_domains.verdicts.predeploy."""

import dagster as dg

from recon_domains.defs.common import check_result, step_check
from recon_domains.defs.gates import materialization_metadata
from recon_domains.defs.resources import PeerTubeDbResource, ReconResource, loaded_settings
from recon_domains.verdicts import predeploy as verdicts

_max_lag_hours = loaded_settings().offsite_max_lag_hours  # the value a description states


@step_check(
    "recon_db_backup",
    description="The backup passes PRAGMA integrity_check and has the same row count in every "
    "table as the snapshot that was copied.",
)
def backup_verified(
    context: dg.AssetCheckExecutionContext, recon: ReconResource
) -> dg.AssetCheckResult:
    meta = materialization_metadata(context.instance, "recon_db_backup")
    return check_result(
        verdicts.backup_verified(recon.db_path, meta.get("path"), meta.get("table_counts"))
    )


@step_check(
    "peertube_db_backup",
    description="The dump is non-empty and pg_restore --list reads its table of contents.",
)
def dump_verified(
    context: dg.AssetCheckExecutionContext, peertube_db: PeerTubeDbResource
) -> dg.AssetCheckResult:
    path = materialization_metadata(context.instance, "peertube_db_backup").get("path")
    return check_result(verdicts.dump_verified(path, peertube_db.pg_bin_dir or None))


@step_check(
    "offsite_concept_backup",
    description=f"Newest off-site file within {_max_lag_hours:g} h (RECON_OFFSITE_MAX_LAG_HOURS) "
    "of the local newest, and every sampled concept folder present off-site.",
)
def backup_fresh(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    meta = materialization_metadata(context.instance, "offsite_concept_backup")
    return check_result(verdicts.backup_fresh(meta.get("freshness")))


@step_check(
    "recon_idle",
    description="No document mid-pipeline (extracting/enriching/embedding); lists any found.",
)
def no_active_workers(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    meta = materialization_metadata(context.instance, "recon_idle")
    return check_result(
        verdicts.no_active_workers(
            int(meta["mid_pipeline"]) if "mid_pipeline" in meta else None,
            meta.get("mid_pipeline_documents") or [],
            is_copy=bool(meta.get("is_copy")),
        )
    )

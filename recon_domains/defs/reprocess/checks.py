"""Runbook Step 7's gate: an adapter over recon_domains.verdicts.reprocess."""

import dagster as dg

from recon_domains.defs.common import check_result, operator_errors, step_check
from recon_domains.defs.gates import materialization_metadata
from recon_domains.defs.resources import ReconResource
from recon_domains.runbook import step
from recon_domains.verdicts import reprocess as verdicts


@step_check(
    "reprocess_batch",
    description="Every document the batch processed is queued (or already further in RECON's "
    "pipeline) with its domain columns reset, none stranded at 'catalogued', every removed "
    "folder in quarantine with its audit row. For the dry run: nothing was written.",
)
def requeued(context: dg.AssetCheckExecutionContext, recon: ReconResource) -> dg.AssetCheckResult:
    partition = context.partition_key
    meta = materialization_metadata(context.instance, "reprocess_batch", partition)
    if step("reprocess_batch").partition(partition).dry_run:
        return check_result(verdicts.dry_run_wrote_nothing(meta))
    with operator_errors(f"requeued {partition}"), recon.store() as store:
        return check_result(verdicts.requeued(store, partition, meta, recon.quarantine_root))

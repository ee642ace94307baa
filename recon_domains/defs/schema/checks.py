"""Runbook Step 3's gate: an adapter over recon_domains.verdicts.schema."""

import dagster as dg

from recon_domains.defs.common import check_result, operator_errors, step_check
from recon_domains.defs.resources import ReconResource
from recon_domains.verdicts import schema as verdicts


@step_check(
    "recon_schema",
    description="Step 3's verification: the four columns (nullable TEXT), the index and our "
    "tables exist; RECON's existing columns (hash, status, filename, discovered_at) intact.",
)
def schema_verified(
    context: dg.AssetCheckExecutionContext, recon: ReconResource
) -> dg.AssetCheckResult:
    with operator_errors("schema_verified"), recon.store(migrated=False) as store:
        check = store.verify_migration()
    return check_result(verdicts.schema_verified(check))

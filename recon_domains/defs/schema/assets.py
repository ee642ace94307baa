"""Runbook Step 3: the schema migration of RECON's documents table."""

import dagster as dg

from recon_domains.defs.common import operator_errors, step_asset
from recon_domains.defs.gates import require_gates
from recon_domains.defs.resources import ReconResource
from recon_domains.runbook import step


@step_asset(
    "recon_schema",
    kinds={"sqlite"},
    description="Runbook Step 3: add recon_domain, recon_domain_status, recon_domain_assigned_at, "
    "peertube_category_pushed_at (nullable TEXT), index idx_documents_recon_domain_status and "
    "our ledger/audit tables to recon.db. Idempotent; never touches existing columns. "
    "Refuses before every pre-deploy gate and categories_registered passed. Reversible "
    "(revert_migration).",
)
def recon_schema(context: dg.AssetExecutionContext, recon: ReconResource) -> dg.MaterializeResult:
    require_gates(context, "recon_schema")
    with operator_errors(step("recon_schema").refusal_name()), recon.store(migrated=False) as store:
        report = store.migrate()
        columns = store.verify_migration().columns
    return dg.MaterializeResult(
        metadata={
            "added_columns": dg.MetadataValue.json(list(report.added_columns)),
            "created": dg.MetadataValue.json(list(report.created)),
            "changed": report.changed,
            "documents_columns": len(columns),
        }
    )

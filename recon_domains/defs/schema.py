"""Runbook Step 3: the schema migration of RECON's documents table."""

import dagster as dg

from recon_domains.defs.common import (
    RECON_DB_REVERSIBLE,
    WRITES_POOL,
    md_table,
    operator_errors,
    tier,
)
from recon_domains.defs.gates import Gate, require_gates
from recon_domains.defs.plugin import PLUGIN_GATE
from recon_domains.defs.predeploy import PREDEPLOY_GATES
from recon_domains.defs.resources import ReconResource

GROUP = "schema"

SCHEMA_GATE = Gate(
    "recon_schema",
    "schema_verified",
    remedy="run schema_job and fix what schema_verified reports (Rollback: 'Schema migration "
    "revert', or restore the pre-deploy backup)",
)


@dg.asset(
    group_name=GROUP,
    deps=["peertube_plugin"],
    tags=tier(RECON_DB_REVERSIBLE),
    pool=WRITES_POOL,
    kinds={"sqlite"},
    description="Runbook Step 3: add recon_domain, recon_domain_status, recon_domain_assigned_at, "
    "peertube_category_pushed_at (nullable TEXT), index idx_documents_recon_domain_status and "
    "our ledger/audit tables to recon.db. Idempotent; never touches existing columns. "
    "Refuses before every pre-deploy gate and categories_registered passed. Reversible "
    "(revert_migration).",
)
def recon_schema(context: dg.AssetExecutionContext, recon: ReconResource) -> dg.MaterializeResult:
    step = "recon_schema (runbook Step 3)"
    require_gates(context, (*PREDEPLOY_GATES, PLUGIN_GATE), step=step)
    with operator_errors(step), recon.store() as store:
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


@dg.asset_check(
    asset=recon_schema,
    blocking=True,
    description="Step 3's verification: the four columns (nullable TEXT), the index and our "
    "tables exist; RECON's existing columns (hash, status, filename, discovered_at) intact.",
)
def schema_verified(
    context: dg.AssetCheckExecutionContext, recon: ReconResource
) -> dg.AssetCheckResult:
    with operator_errors("schema_verified"), recon.store() as store:
        check = store.verify_migration()
    return dg.AssetCheckResult(
        passed=check.ok,
        description=(
            "Migration verified: all columns present, no existing column dropped."
            if check.ok
            else "Migration NOT verified: "
            + "; ".join(check.problems)
            + ". Do not proceed: if an existing column is missing, restore the pre-deploy "
            "backup; otherwise run schema_job again."
        ),
        metadata={
            "problems": dg.MetadataValue.md(
                md_table(["problem"], [(p,) for p in check.problems]) if check.problems else "none"
            )
        },
    )


assets = [recon_schema]
asset_checks = [schema_verified]

"""Runbook Step 6: verify the rollout against PeerTube's database."""

import dagster as dg

from recon_domains.defs.common import READ_ONLY, counts_table, operator_errors, tier
from recon_domains.defs.gates import Gate, require_gates, require_partition_materialized
from recon_domains.defs.push import (
    STAGES,
    category_table,
    stage_gate,
    stage_partitions,
)
from recon_domains.defs.resources import PeerTubeDbResource, ReconResource
from recon_domains.taxonomy import FIRST_CATEGORY_ID

GROUP = "verify"

ROLLOUT_GATE = Gate(
    "rollout_verification",
    "peertube_matches_recon",
    remedy="run verify_job after stage-3 and fix what peertube_matches_recon reports",
)


def _measure(recon: ReconResource, peertube_db: PeerTubeDbResource) -> dict:
    with recon.store() as store:
        recon_hist = store.pushed_category_histogram()
        status = store.status_counts()
        unpushed = len(store.unpushed_categorized())
    db = peertube_db.database()
    return {
        "recon": recon_hist,
        "peertube": db.category_histogram(),
        "uncategorized": db.uncategorized_count(),
        "status": status,
        "unpushed": unpushed,
    }


@dg.asset(
    group_name=GROUP,
    deps=["peertube_category_push"],
    tags=tier(READ_ONLY),
    kinds={"postgres"},
    description="Runbook Step 6: PeerTube's per-category counts (SELECT category, count(*) FROM "
    f"video WHERE category >= {FIRST_CATEGORY_ID} …), the uncategorized count, and RECON's "
    "status breakdown, after stage-3 was pushed and verified. Reads only.",
)
def rollout_verification(
    context: dg.AssetExecutionContext, recon: ReconResource, peertube_db: PeerTubeDbResource
) -> dg.MaterializeResult:
    last = STAGES[-1]
    step = "rollout_verification (runbook Step 6)"
    require_partition_materialized(
        context,
        "peertube_category_push",
        stage_partitions,
        last,
        step=step,
        remedy=f"finish the staged push ({last}) first",
    )
    require_gates(context, (stage_gate(last),), step=step)
    with operator_errors(step):
        m = _measure(recon, peertube_db)
    return dg.MaterializeResult(
        metadata={
            "peertube_recon_videos": sum(m["peertube"].values()),
            "recon_pushed": sum(m["recon"].values()),
            "uncategorized_in_peertube": m["uncategorized"],
            "categorized_not_yet_pushed": m["unpushed"],
            "categories": dg.MetadataValue.md(category_table(m["peertube"], m["recon"])),
            "recon_status_breakdown": dg.MetadataValue.md(counts_table(m["status"])),
        }
    )


@dg.asset_check(
    asset=rollout_verification,
    blocking=True,
    description="Per-category counts in PeerTube's DB equal RECON's pushed distribution; the "
    "uncategorized count is reported.",
)
def peertube_matches_recon(
    context: dg.AssetCheckExecutionContext, recon: ReconResource, peertube_db: PeerTubeDbResource
) -> dg.AssetCheckResult:
    with operator_errors("peertube_matches_recon"):
        m = _measure(recon, peertube_db)
    diff = {
        i: (m["peertube"].get(i, 0), m["recon"].get(i, 0))
        for i in set(m["peertube"]) | set(m["recon"])
        if m["peertube"].get(i, 0) != m["recon"].get(i, 0)
    }
    passed = not diff
    return dg.AssetCheckResult(
        passed=passed,
        description=(
            f"PeerTube matches RECON: {sum(m['recon'].values())} videos over "
            f"{len(m['recon'])} categories; {m['uncategorized']} PeerTube videos uncategorized."
            if passed
            else f"{len(diff)} categor(ies) differ between PeerTube and RECON (e.g. "
            + ", ".join(f"{i}: PeerTube {a} vs RECON {b}" for i, (a, b) in sorted(diff.items())[:4])
            + "). Investigate before the reprocess step: re-run the affected push stage, or "
            "restore categories from the ledger (Rollback)."
        ),
        metadata={
            "categories": dg.MetadataValue.md(category_table(m["peertube"], m["recon"])),
            "uncategorized_in_peertube": m["uncategorized"],
            "differing_categories": len(diff),
        },
    )


assets = [rollout_verification]
asset_checks = [peertube_matches_recon]

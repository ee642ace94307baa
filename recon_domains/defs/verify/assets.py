"""Runbook Step 6: verify the rollout against PeerTube's database (its gate,
peertube_matches_recon, is in checks.py)."""

import dagster as dg

from recon_domains.defs.common import operator_errors, step_asset, table
from recon_domains.defs.gates import require_gates
from recon_domains.defs.resources import PeerTubeDbResource, ReconResource
from recon_domains.runbook import step
from recon_domains.taxonomy import FIRST_CATEGORY_ID
from recon_domains.verdicts import counts_table
from recon_domains.verdicts.push import category_table
from recon_domains.verdicts.verify import measure_rollout


@step_asset(
    "rollout_verification",
    kinds={"postgres"},
    description="Runbook Step 6: PeerTube's per-category counts (SELECT category, count(*) FROM "
    f"video WHERE category >= {FIRST_CATEGORY_ID} …), the uncategorized count, and RECON's "
    "status breakdown, after stage-3 was pushed and verified. Reads only.",
)
def rollout_verification(
    context: dg.AssetExecutionContext, recon: ReconResource, peertube_db: PeerTubeDbResource
) -> dg.MaterializeResult:
    require_gates(context, "rollout_verification")
    with operator_errors(step("rollout_verification").refusal_name()), recon.store() as store:
        m = measure_rollout(store, peertube_db.database())
    return dg.MaterializeResult(
        metadata={
            "peertube_recon_videos": sum(m.peertube.values()),
            "recon_pushed": sum(m.recon.values()),
            "uncategorized_in_peertube": m.uncategorized,
            "categorized_not_yet_pushed": m.unpushed,
            "categories": table(category_table(m.peertube, m.recon)),
            "recon_status_breakdown": table(counts_table(m.status)),
        }
    )

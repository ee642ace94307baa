"""Runbook Step 6: verify the rollout against PeerTube (its gate, peertube_matches_recon, is
in checks.py)."""

import dagster as dg

from recon_domains.defs.common import metadata, operator_errors, step_asset, table
from recon_domains.defs.gates import require_gates
from recon_domains.defs.resources import PeerTubeDbResource, PeerTubeResource, ReconResource
from recon_domains.runbook import step
from recon_domains.taxonomy import CATEGORY_ID_RANGE
from recon_domains.verdicts import counts_table
from recon_domains.verdicts.push import category_table, comparison_metadata
from recon_domains.verdicts.verify import measure_rollout


@step_asset(
    "rollout_verification",
    kinds={"peertube"},
    description=f"Runbook Step 6: PeerTube's per-category counts ({CATEGORY_ID_RANGE}), every "
    "video in the push ledger against the category PeerTube shows, the videos RECON did not "
    "push that carry a RECON category, the uncategorized count, and RECON's status "
    "breakdown, after stage-3 was pushed and verified. Read from PeerTube's database, or its "
    "API without PEERTUBE_DB_DSN. Reads only.",
)
def rollout_verification(
    context: dg.AssetExecutionContext,
    recon: ReconResource,
    peertube: PeerTubeResource,
    peertube_db: PeerTubeDbResource,
) -> dg.MaterializeResult:
    require_gates(context, "rollout_verification")
    with (
        operator_errors(step("rollout_verification").refusal_name()),
        recon.store() as store,
        peertube.client() as client,
    ):
        m = measure_rollout(store, peertube_db.categories(client))
    return dg.MaterializeResult(
        metadata={
            "peertube_recon_videos": sum(m.peertube.values()),
            "recon_pushed": len(m.comparison.pushed),
            "uncategorized_in_peertube": m.uncategorized.count,
            "uncategorized_counted_as": m.uncategorized.counted_as,
            "categorized_not_yet_pushed": m.unpushed,
            "categories": table(category_table(m.comparison, m.peertube)),
            "recon_status_breakdown": table(counts_table(m.status)),
            **metadata(comparison_metadata(m.comparison)),
        }
    )

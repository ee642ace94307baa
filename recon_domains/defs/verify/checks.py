"""Runbook Step 6's gate: an adapter over recon_domains.verdicts.verify."""

import dagster as dg

from recon_domains.defs.common import check_result, operator_errors, step_check
from recon_domains.defs.resources import PeerTubeDbResource, ReconResource
from recon_domains.verdicts import verify as verdicts


@step_check(
    "rollout_verification",
    description="Per-category counts in PeerTube's DB equal RECON's pushed distribution; the "
    "uncategorized count is reported.",
)
def peertube_matches_recon(
    context: dg.AssetCheckExecutionContext, recon: ReconResource, peertube_db: PeerTubeDbResource
) -> dg.AssetCheckResult:
    with operator_errors("peertube_matches_recon"), recon.store() as store:
        m = verdicts.measure_rollout(store, peertube_db.database())
    return check_result(verdicts.peertube_matches_recon(m))

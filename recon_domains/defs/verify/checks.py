"""Runbook Step 6's gate: an adapter over recon_domains.verdicts.verify."""

import dagster as dg

from recon_domains.defs.common import check_result, operator_errors, step_check
from recon_domains.defs.resources import PeerTubeDbResource, PeerTubeResource, ReconResource
from recon_domains.verdicts import verify as verdicts


@step_check(
    "rollout_verification",
    description="Every video in the push ledger shows the category we pushed (PeerTube's "
    "database, or its API without PEERTUBE_DB_DSN); videos RECON did not push that carry a "
    "RECON category and the uncategorized count are reported.",
)
def peertube_matches_recon(
    context: dg.AssetCheckExecutionContext,
    recon: ReconResource,
    peertube: PeerTubeResource,
    peertube_db: PeerTubeDbResource,
) -> dg.AssetCheckResult:
    with (
        operator_errors("peertube_matches_recon"),
        recon.store() as store,
        peertube.client() as client,
    ):
        m = verdicts.measure_rollout(store, peertube_db.categories(client))
    return check_result(verdicts.peertube_matches_recon(m))

"""Runbook Step 5's STOP point: an adapter over recon_domains.verdicts.push."""

import dagster as dg

from recon_domains.defs.common import check_result, operator_errors, step_check
from recon_domains.defs.resources import PeerTubeDbResource, PeerTubeResource, ReconResource
from recon_domains.verdicts import push as verdicts


@step_check(
    "peertube_category_push",
    description="Runbook Step 5 STOP: stage-1 — every pushed video read back through the API; "
    "later stages — a sample through the API. Then every video in the push ledger must show "
    "the category we pushed (PeerTube's database, or its API without PEERTUBE_DB_DSN); videos "
    "RECON did not push that carry a RECON category are reported, not failed. Fails while "
    "items of the stage are left unpushed.",
)
def stage_verified(
    context: dg.AssetCheckExecutionContext,
    recon: ReconResource,
    peertube: PeerTubeResource,
    peertube_db: PeerTubeDbResource,
) -> dg.AssetCheckResult:
    stage = context.partition_key
    with (
        operator_errors(f"stage_verified {stage}"),
        recon.store() as store,
        peertube.client() as client,
    ):
        return check_result(
            verdicts.stage_verified(
                store,
                client,
                stage,
                recon.push_stage_sizes,
                peertube_db.categories(client),
                max_in_flight=peertube.push_max_in_flight,
                max_rate=peertube.push_max_rate,
            )
        )

"""Runbook Step 2's gate: an adapter over recon_domains.verdicts.plugin."""

import dagster as dg

from recon_domains.defs.common import check_result, operator_errors, step_check
from recon_domains.defs.resources import PeerTubeResource
from recon_domains.taxonomy import CATEGORY_ID_RANGE, DOMAIN_BY_ID
from recon_domains.verdicts import plugin as verdicts


@step_check(
    "peertube_plugin",
    description=f"Runbook Step 2: GET /api/v1/videos/categories shows all {len(DOMAIN_BY_ID)} ids "
    f"{CATEGORY_ID_RANGE} with exactly the taxonomy's labels.",
)
def categories_registered(
    context: dg.AssetCheckExecutionContext, peertube: PeerTubeResource
) -> dg.AssetCheckResult:
    with operator_errors("categories_registered"), peertube.client() as client:
        categories = client.categories()
    return check_result(verdicts.categories_registered(categories))

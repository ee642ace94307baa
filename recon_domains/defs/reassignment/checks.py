"""The re-assignment's gates: adapters over recon_domains.verdicts.reassignment and the
drift report."""

import dagster as dg

from recon_domains.defs.common import check_result, operator_errors, step_check
from recon_domains.defs.gates import materialization_metadata
from recon_domains.defs.resources import (
    PeerTubeDbResource,
    PeerTubeResource,
    ReconResource,
    loaded_settings,
)
from recon_domains.verdicts import Verdict
from recon_domains.verdicts import reassignment as verdicts

_max_pct = loaded_settings().reassign_max_change_pct  # the configured value, for the text


@step_check(
    "reassignment_dry_run",
    description=f"STOP: the re-assignment applies only when at most {_max_pct:g} % of the "
    "categorized documents would change (RECON_REASSIGN_MAX_CHANGE_PCT); more means "
    "something upstream changed (RECON's model or taxonomy) and a human looks first.",
)
def reassignment_within_threshold(
    context: dg.AssetCheckExecutionContext, recon: ReconResource
) -> dg.AssetCheckResult:
    meta = materialization_metadata(context.instance, "reassignment_dry_run")
    if "changes" not in meta:
        return check_result(Verdict(False, "reassignment_dry_run has not been materialized"))
    return check_result(
        verdicts.within_threshold(
            int(meta["changes"]), int(meta["categorized"]), recon.reassign_max_change_pct
        )
    )


@step_check(
    "reassignment",
    description="Every video the re-assignment pushed shows its new category in PeerTube "
    "(its database, or its API); earlier pushed videos that no longer show ours are counted "
    "as known drift, never overwritten.",
)
def reassignment_verified(
    context: dg.AssetCheckExecutionContext,
    recon: ReconResource,
    peertube: PeerTubeResource,
    peertube_db: PeerTubeDbResource,
) -> dg.AssetCheckResult:
    from recon_domains.steady_state import drift_report

    pushed = set(materialization_metadata(context.instance, "reassignment").get(
        "pushed_hashes", []
    ))
    with (
        operator_errors("reassignment_verified"),
        recon.store() as store,
        peertube.client() as client,
    ):
        report = drift_report(store, peertube_db.categories(client), base_url=peertube.url)
    return check_result(verdicts.reassignment_verified(report, pushed))

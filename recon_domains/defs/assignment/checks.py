"""Runbook Step 4's STOP points: adapters over recon_domains.verdicts.assignment."""

import dagster as dg

from recon_domains.defs.common import check_result, operator_errors, step_check
from recon_domains.defs.gates import materialization_metadata
from recon_domains.defs.resources import ReconResource, loaded_settings
from recon_domains.runbook import step
from recon_domains.taxonomy import Status
from recon_domains.verdicts import assignment as verdicts

_benchmarks = loaded_settings().benchmarks  # the configured values a description states


@step_check(
    "pass1_dry_run",
    description=f"Runbook Step 4 STOP: assigned ≈ {_benchmarks.assigned:g} % and tied ≈ "
    f"{_benchmarks.tied:g} % of documents with valid concepts, needs_reprocess ≈ "
    f"{_benchmarks.needs_reprocess:g} % of candidates; more than {_benchmarks.tolerance:g} "
    "points off on any halts the rollout (RECON_BENCHMARK_* configure it).",
)
def distribution_within_benchmarks(
    context: dg.AssetCheckExecutionContext, recon: ReconResource
) -> dg.AssetCheckResult:
    meta = materialization_metadata(context.instance, "pass1_dry_run")
    candidates = int(meta["candidates"]) if "candidates" in meta else None
    return check_result(
        verdicts.distribution_within_benchmarks(
            candidates, meta.get("percentages"), recon.benchmarks()
        )
    )


def _spot_check(recon: ReconResource, asset: str, status: str, sample: int) -> dg.AssetCheckResult:
    gate = step(asset)
    with operator_errors(str(gate.check)), recon.store() as store:
        verdict = verdicts.spot_check_verdict(
            store,
            recon.concepts_root,
            status,
            sample,
            recon.skip_channel_set,
            gate.gate().remedy,
            max_window_file_mb=recon.max_window_file_mb,
        )
    return check_result(verdict)


@step_check(
    "pass1_assignments",
    description=f"Runbook Step 4 STOP: {verdicts.PASS1_SPOT_SAMPLE} random assigned documents, "
    "each decision re-derived independently from its window files; any disagreement fails. "
    "The sample (hash, channel, domain, top counts, PeerTube link) is shown for a "
    "plausibility check.",
)
def assigned_spot_check(
    context: dg.AssetCheckExecutionContext, recon: ReconResource
) -> dg.AssetCheckResult:
    return _spot_check(recon, "pass1_assignments", Status.ASSIGNED, verdicts.PASS1_SPOT_SAMPLE)


@step_check(
    "tiebreaker_assignments",
    description=f"Runbook Step 4 STOP: {verdicts.TIEBREAK_SPOT_SAMPLE} random tied_pass_2 "
    "documents re-derived from their own and their channel's files; any disagreement fails. "
    "Shows the status breakdown (tied_pass_2 resolved, tied_manual awaiting review).",
)
def tiebreaker_spot_check(
    context: dg.AssetCheckExecutionContext, recon: ReconResource
) -> dg.AssetCheckResult:
    return _spot_check(
        recon, "tiebreaker_assignments", Status.TIED_PASS_2, verdicts.TIEBREAK_SPOT_SAMPLE
    )

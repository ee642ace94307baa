"""Runbook Step 4: backfill dry run, pass 1 and the tiebreaker (their gates are in
checks.py)."""

import dagster as dg

from recon_domains.defs.common import operator_errors, review_metadata, step_asset, table
from recon_domains.defs.gates import require_gates
from recon_domains.defs.resources import ProgressResource, ReconResource
from recon_domains.runbook import step
from recon_domains.taxonomy import Status
from recon_domains.verdicts import counts_table
from recon_domains.verdicts.assignment import distribution_table


@step_asset(
    "pass1_dry_run",
    kinds={"sqlite"},
    description="Runbook Step 4, `assign-categories --backfill --dry-run`: pass 1 over every "
    "complete stream document without a domain, deciding but writing nothing. Metadata: the "
    "status counts and the distribution against the investigation's benchmarks.",
)
def pass1_dry_run(
    context: dg.AssetExecutionContext, recon: ReconResource, progress: ProgressResource
) -> dg.MaterializeResult:
    from recon_domains.assignment import benchmark_deviation, run_pass1

    require_gates(context, "pass1_dry_run")
    tracker = progress.track(context.log, "pass 1 (dry run)", "documents")
    with operator_errors(step("pass1_dry_run").refusal_name()), recon.store() as store:
        result = run_pass1(
            store, recon.concepts_root, dry_run=True, max_window_file_mb=recon.max_window_file_mb,
            on_progress=tracker.callback,
        )
    tracker.finish()
    pct = result.percentages()
    checks = benchmark_deviation(pct, recon.benchmarks())
    return dg.MaterializeResult(
        metadata={
            "candidates": result.candidates,
            "decided": len(result.decisions),
            "errors": len(result.errors),
            "files_read": result.files_read,
            "status_counts": dg.MetadataValue.json(result.status_counts),
            "percentages": dg.MetadataValue.json(pct),
            "distribution": table(distribution_table(checks, recon.benchmark_tolerance_pp)),
            "folder_states": dg.MetadataValue.json(result.states),
            "skipped_files": dg.MetadataValue.json(result.skipped_files),
            "skip_examples": dg.MetadataValue.json(result.skip_examples),
            "error_sample": dg.MetadataValue.json(
                [{"hash": e.hash, "reason": e.reason} for e in result.errors[:20]]
            ),
        }
    )


@step_asset(
    "pass1_assignments",
    kinds={"sqlite"},
    description="Runbook Step 4, `assign-categories --backfill`: pass 1 writes each candidate's "
    "status (assigned / tied_pass_1 / needs_reprocess) and domain. Refuses unless "
    "distribution_within_benchmarks passed on the current dry run. Reversible (Rollback: "
    "'Clear wrong backfill assignments').",
)
def pass1_assignments(
    context: dg.AssetExecutionContext, recon: ReconResource, progress: ProgressResource
) -> dg.MaterializeResult:
    from recon_domains.assignment import run_pass1

    require_gates(context, "pass1_assignments")
    tracker = progress.track(context.log, "pass 1", "documents")
    with operator_errors(step("pass1_assignments").refusal_name()), recon.store() as store:
        result = run_pass1(
            store, recon.concepts_root, dry_run=False, max_window_file_mb=recon.max_window_file_mb,
            on_progress=tracker.callback,
        )
        tracker.finish()
        breakdown = store.status_counts()
        distribution = store.domain_distribution()
    context.log.info(f"pass 1 wrote {result.written} decisions, {len(result.errors)} errors")
    return dg.MaterializeResult(
        metadata={
            "candidates": result.candidates,
            "written": result.written,
            "errors": len(result.errors),
            "files_read": result.files_read,
            "status_counts": dg.MetadataValue.json(result.status_counts),
            "status_breakdown": table(counts_table(breakdown)),
            "domain_distribution": table(counts_table(distribution, "domain")),
            "error_sample": dg.MetadataValue.json(
                [{"hash": e.hash, "reason": e.reason} for e in result.errors[:20]]
            ),
        }
    )


@step_asset(
    "tiebreaker_assignments",
    kinds={"sqlite"},
    description="Runbook Step 4, `assign-categories --tiebreaker-pass`: pass 2 (channel context) "
    "and pass 3 (recount) over every tied_pass_1 document → assigned / tied_pass_2 / "
    "tied_manual / needs_reprocess. Channels on RECON_SKIP_CHANNELS go to tied_manual. Refuses "
    "unless assigned_spot_check passed. Reversible (reset to tied_pass_1). Metadata: "
    "awaiting_review (tied_manual videos) and review_url, where `recon-domains review` serves "
    "the page to assign them (RECON_REVIEW_URL).",
)
def tiebreaker_assignments(
    context: dg.AssetExecutionContext, recon: ReconResource, progress: ProgressResource
) -> dg.MaterializeResult:
    from recon_domains.assignment import run_tiebreaker

    require_gates(context, "tiebreaker_assignments")
    tracker = progress.track(context.log, "tiebreaker", "tied documents")
    with operator_errors(step("tiebreaker_assignments").refusal_name()), recon.store() as store:
        result = run_tiebreaker(
            store,
            recon.concepts_root,
            recon.skip_channel_set,
            dry_run=False,
            max_window_file_mb=recon.max_window_file_mb,
            on_progress=tracker.callback,
        )
        tracker.finish()
        breakdown = store.status_counts()
    review = review_metadata(breakdown, recon.review_url)
    context.log.info(review["review_next_step"])
    return dg.MaterializeResult(
        metadata={
            "tied_documents": result.tied_documents,
            "written": result.written,
            "errors": len(result.errors),
            "channels_counted": result.channels_counted,
            "channels_recounted": result.channels_recounted,
            "files_read": result.files_read,
            "tied_pass_2": breakdown.get(Status.TIED_PASS_2, 0),
            "tied_manual": breakdown.get(Status.TIED_MANUAL, 0),
            "decisions": dg.MetadataValue.json(result.status_counts),
            "status_breakdown": table(counts_table(breakdown)),
            "skip_channels": ", ".join(sorted(recon.skip_channel_set)),
            **review,
        }
    )

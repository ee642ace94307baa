"""Runbook Step 4: backfill dry run, pass 1, the tiebreaker, and their STOP points."""

from typing import Any

import dagster as dg

from recon_domains.defs.common import (
    READ_ONLY,
    RECON_DB_REVERSIBLE,
    WRITES_POOL,
    counts_table,
    fmt_top,
    link,
    md_table,
    operator_errors,
    review_metadata,
    tier,
)
from recon_domains.defs.gates import Gate, materialization_metadata, require_gates
from recon_domains.defs.resources import ReconResource, loaded_settings
from recon_domains.defs.schema import SCHEMA_GATE
from recon_domains.taxonomy import Status

GROUP = "assignment"
PASS1_SPOT_SAMPLE = 20
TIEBREAK_SPOT_SAMPLE = 5
_benchmarks = loaded_settings().benchmarks  # the configured values a description states

DISTRIBUTION_GATE = Gate(
    "pass1_dry_run",
    "distribution_within_benchmarks",
    remedy="halt and investigate the deviation (see the check's expected-vs-actual table); "
    "re-run pass1_dry_run_job once it is explained (benchmarks: RECON_BENCHMARK_*)",
)
PASS1_GATE = Gate(
    "pass1_assignments",
    "assigned_spot_check",
    remedy="inspect the disagreeing samples; if assignments are wrong, clear them (Rollback: "
    "'Clear wrong backfill assignments') and re-run pass1_job",
)
TIEBREAK_GATE = Gate(
    "tiebreaker_assignments",
    "tiebreaker_spot_check",
    remedy="inspect the disagreeing samples; if wrong, reset tiebreaker results to "
    "tied_pass_1 (Rollback) and re-run tiebreaker_job",
)


def distribution_table(
    percentages: dict[str, float], checks: list[Any] | None, tolerance: float
) -> str:
    """Expected vs actual, per benchmark (Markdown)."""
    rows = []
    for c in checks or []:
        rows.append(
            (
                c.name,
                f"{c.expected:.1f} %",
                f"{c.actual:.2f} %",
                f"{c.deviation:+.2f} pp",
                f"±{tolerance:g} pp",
                "ok" if c.ok else "DEVIATES",
            )
        )
    if not rows:
        rows = [(k, "", f"{v:.2f} %", "", "", "") for k, v in percentages.items()]
    return md_table(["measure", "expected", "actual", "deviation", "tolerance", "verdict"], rows)


def _spot_check_result(
    recon: ReconResource,
    status: str,
    sample: int,
    what: str,
    remedy: str,
) -> dg.AssetCheckResult:
    from recon_domains.assignment import spot_check

    with operator_errors(what), recon.store() as store:
        rows = spot_check(
            store,
            recon.concepts_root,
            status,
            sample,
            recon.skip_channel_set,
            max_window_file_mb=recon.max_window_file_mb,
        )
        breakdown = store.status_counts()
    bad = [r for r in rows if not r.agrees]
    table = md_table(
        [
            "hash",
            "channel",
            "stored",
            "re-derived",
            "top counts",
            "channel counts",
            "PeerTube",
            "agrees",
        ],
        [
            (
                r.hash[:12],
                r.channel,
                f"{r.stored_status}: {r.stored_domain}",
                f"{r.expected_status}: {r.expected_domain}" if not r.problem else r.problem,
                fmt_top(r.top_counts),
                fmt_top(r.channel_counts),
                link(r.path, "watch"),
                "yes" if r.agrees else "NO",
            )
            for r in rows
        ],
    )
    if not rows:
        passed = breakdown.get(status, 0) == 0
        desc = (
            f"No {status} documents to sample."
            if passed
            else f"Could not sample {status} documents: {remedy}"
        )
    else:
        passed = not bad
        desc = (
            f"{len(rows)} random {status} documents re-derived from their files: all agree. "
            "Judge plausibility from the sample table."
            if passed
            else f"{len(bad)} of {len(rows)} sampled {status} documents disagree with their "
            f"files (e.g. {bad[0].hash[:12]}: stored {bad[0].stored_domain}, files say "
            f"{bad[0].expected_domain or bad[0].problem}). Halt: {remedy}"
        )
    return dg.AssetCheckResult(
        passed=passed,
        description=desc,
        metadata={
            "sampled": len(rows),
            "disagreeing": len(bad),
            "sample": dg.MetadataValue.md(table),
            "status_breakdown": dg.MetadataValue.md(counts_table(breakdown)),
        },
    )


@dg.asset(
    group_name=GROUP,
    deps=["recon_schema"],
    tags=tier(READ_ONLY),
    kinds={"sqlite"},
    description="Runbook Step 4, `assign-categories --backfill --dry-run`: pass 1 over every "
    "complete stream document without a domain, deciding but writing nothing. Metadata: the "
    "status counts and the distribution against the investigation's benchmarks.",
)
def pass1_dry_run(context: dg.AssetExecutionContext, recon: ReconResource) -> dg.MaterializeResult:
    from recon_domains.assignment import benchmark_deviation, run_pass1

    step = "pass1_dry_run (runbook Step 4)"
    require_gates(context, (SCHEMA_GATE,), step=step)
    with operator_errors(step), recon.store() as store:
        result = run_pass1(
            store, recon.concepts_root, dry_run=True,
            max_window_file_mb=recon.max_window_file_mb,
        )
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
            "distribution": dg.MetadataValue.md(
                distribution_table(pct, checks, recon.benchmark_tolerance_pp)
            ),
            "folder_states": dg.MetadataValue.json(result.states),
            "skipped_files": dg.MetadataValue.json(result.skipped_files),
            "skip_examples": dg.MetadataValue.json(result.skip_examples),
            "error_sample": dg.MetadataValue.json(
                [{"hash": e.hash, "reason": e.reason} for e in result.errors[:20]]
            ),
        }
    )


@dg.asset_check(
    asset=pass1_dry_run,
    blocking=True,
    description=f"Runbook Step 4 STOP: assigned ≈ {_benchmarks.assigned:g} % and tied ≈ "
    f"{_benchmarks.tied:g} % of documents with valid concepts, needs_reprocess ≈ "
    f"{_benchmarks.needs_reprocess:g} % of candidates; more than {_benchmarks.tolerance:g} "
    "points off on any halts the rollout (RECON_BENCHMARK_* configure it).",
)
def distribution_within_benchmarks(
    context: dg.AssetCheckExecutionContext, recon: ReconResource
) -> dg.AssetCheckResult:
    from recon_domains.assignment import benchmark_deviation

    meta = materialization_metadata(context.instance, "pass1_dry_run")
    pct = meta.get("percentages")
    if not isinstance(pct, dict) or "candidates" not in meta:
        return dg.AssetCheckResult(passed=False, description="Materialize pass1_dry_run first.")
    if int(meta["candidates"]) == 0:
        return dg.AssetCheckResult(
            passed=True,
            description="No backfill candidates: nothing to assign, nothing to compare.",
            metadata={"candidates": 0},
        )
    tol = recon.benchmark_tolerance_pp
    checks = benchmark_deviation(pct, recon.benchmarks())
    bad = [c for c in checks if not c.ok]
    table = distribution_table(pct, checks, tol)
    return dg.AssetCheckResult(
        passed=not bad,
        description=(
            "Distribution within the benchmarks: "
            + ", ".join(f"{c.name} {c.actual:.1f} %" for c in checks)
            if not bad
            else "Distribution deviates more than "
            f"{tol:g} points: "
            + "; ".join(
                f"{c.name} {c.actual:.1f} % vs {c.expected:.1f} % ({c.deviation:+.1f} pp)"
                for c in bad
            )
            + ". Halt: investigate (legacy domains? missing concept folders? wrong "
            "RECON_STREAM_SOURCE?) and do not run pass 1 until the deviation is explained."
        ),
        metadata={
            "distribution": dg.MetadataValue.md(table),
            **{f"{c.name}_pct": c.actual for c in checks},
            "deviating": ", ".join(c.name for c in bad) or "none",
        },
    )


@dg.asset(
    group_name=GROUP,
    deps=[pass1_dry_run],
    tags=tier(RECON_DB_REVERSIBLE),
    pool=WRITES_POOL,
    kinds={"sqlite"},
    description="Runbook Step 4, `assign-categories --backfill`: pass 1 writes each candidate's "
    "status (assigned / tied_pass_1 / needs_reprocess) and domain. Refuses unless "
    "distribution_within_benchmarks passed on the current dry run. Reversible (Rollback: "
    "'Clear wrong backfill assignments').",
)
def pass1_assignments(
    context: dg.AssetExecutionContext, recon: ReconResource
) -> dg.MaterializeResult:
    from recon_domains.assignment import run_pass1

    step = "pass1_assignments (runbook Step 4)"
    require_gates(context, (SCHEMA_GATE, DISTRIBUTION_GATE), step=step)
    with operator_errors(step), recon.store() as store:
        result = run_pass1(
            store, recon.concepts_root, dry_run=False,
            max_window_file_mb=recon.max_window_file_mb,
        )
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
            "status_breakdown": dg.MetadataValue.md(counts_table(breakdown)),
            "domain_distribution": dg.MetadataValue.md(counts_table(distribution, "domain")),
            "error_sample": dg.MetadataValue.json(
                [{"hash": e.hash, "reason": e.reason} for e in result.errors[:20]]
            ),
        }
    )


@dg.asset_check(
    asset=pass1_assignments,
    blocking=True,
    description="Runbook Step 4 STOP: 20 random assigned documents, each decision re-derived "
    "independently from its window files; any disagreement fails. The sample (hash, channel, "
    "domain, top counts, PeerTube link) is shown for a plausibility check.",
)
def assigned_spot_check(
    context: dg.AssetCheckExecutionContext, recon: ReconResource
) -> dg.AssetCheckResult:
    return _spot_check_result(
        recon, Status.ASSIGNED, PASS1_SPOT_SAMPLE, "assigned_spot_check", PASS1_GATE.remedy
    )


@dg.asset(
    group_name=GROUP,
    deps=[pass1_assignments],
    tags=tier(RECON_DB_REVERSIBLE),
    pool=WRITES_POOL,
    kinds={"sqlite"},
    description="Runbook Step 4, `assign-categories --tiebreaker-pass`: pass 2 (channel context) "
    "and pass 3 (recount) over every tied_pass_1 document → assigned / tied_pass_2 / "
    "tied_manual / needs_reprocess. Channels on RECON_SKIP_CHANNELS go to tied_manual. Refuses "
    "unless assigned_spot_check passed. Reversible (reset to tied_pass_1). Metadata: "
    "awaiting_review (tied_manual videos) and review_url, where `recon-domains review` serves "
    "the page to assign them (RECON_REVIEW_URL).",
)
def tiebreaker_assignments(
    context: dg.AssetExecutionContext, recon: ReconResource
) -> dg.MaterializeResult:
    from recon_domains.assignment import run_tiebreaker

    step = "tiebreaker_assignments (runbook Step 4)"
    require_gates(context, (SCHEMA_GATE, PASS1_GATE), step=step)
    with operator_errors(step), recon.store() as store:
        result = run_tiebreaker(
            store, recon.concepts_root, recon.skip_channel_set, dry_run=False,
            max_window_file_mb=recon.max_window_file_mb,
        )
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
            "status_breakdown": dg.MetadataValue.md(counts_table(breakdown)),
            "skip_channels": ", ".join(sorted(recon.skip_channel_set)),
            **review,
        }
    )


@dg.asset_check(
    asset=tiebreaker_assignments,
    blocking=True,
    description="Runbook Step 4 STOP: 5 random tied_pass_2 documents re-derived from their own "
    "and their channel's files; any disagreement fails. Shows the status breakdown "
    "(tied_pass_2 resolved, tied_manual awaiting review).",
)
def tiebreaker_spot_check(
    context: dg.AssetCheckExecutionContext, recon: ReconResource
) -> dg.AssetCheckResult:
    return _spot_check_result(
        recon,
        Status.TIED_PASS_2,
        TIEBREAK_SPOT_SAMPLE,
        "tiebreaker_spot_check",
        TIEBREAK_GATE.remedy,
    )


assets = [pass1_dry_run, pass1_assignments, tiebreaker_assignments]
asset_checks = [distribution_within_benchmarks, assigned_spot_check, tiebreaker_spot_check]

"""Runbook Step 4's gates: the dry run's distribution, and the spot checks of pass 1 and
the tiebreaker (a sample re-derived from its files)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from recon_domains.assignment import BenchmarkCheck, benchmark_deviation, spot_check
from recon_domains.recon.store import ReconStore
from recon_domains.settings import DEFAULTS, Benchmarks
from recon_domains.verdicts import Table, Verdict, counts_table, fmt_top

# The runbook's sample sizes: 20 assigned after pass 1, 5 tied_pass_2 after the tiebreaker.
PASS1_SPOT_SAMPLE = 20
TIEBREAK_SPOT_SAMPLE = 5


def distribution_table(checks: Sequence[BenchmarkCheck], tolerance: float) -> Table:
    """Expected vs actual, per benchmark."""
    return Table.of(
        ["measure", "expected (%)", "actual (%)", "deviation (pp)", "tolerance (pp)", "verdict"],
        [
            (c.name, c.expected, round(c.actual, 2), c.deviation, tolerance,
             "ok" if c.ok else "DEVIATES")
            for c in checks
        ],
    )


def distribution_within_benchmarks(
    candidates: int | None, percentages: Mapping[str, float] | None, benchmarks: Benchmarks
) -> Verdict:
    """Runbook Step 4 STOP, from the dry run's candidates and percentages."""
    if candidates is None or not isinstance(percentages, Mapping):
        return Verdict(False, "Materialize pass1_dry_run first.")
    if candidates == 0:
        return Verdict(
            True,
            "No backfill candidates: nothing to assign, nothing to compare.",
            {"candidates": 0},
        )
    tol = benchmarks.tolerance
    checks = benchmark_deviation(percentages, benchmarks)
    bad = [c for c in checks if not c.ok]
    return Verdict(
        not bad,
        "Distribution within the benchmarks: "
        + ", ".join(f"{c.name} {c.actual:.1f} %" for c in checks)
        if not bad
        else f"Distribution deviates more than {tol:g} points: "
        + "; ".join(
            f"{c.name} {c.actual:.1f} % vs {c.expected:.1f} % ({c.deviation:+.1f} pp)"
            for c in bad
        )
        + ". Halt: investigate (legacy domains? missing concept folders? wrong "
        "RECON_STREAM_SOURCE?) and do not run pass 1 until the deviation is explained.",
        {
            "distribution": distribution_table(checks, tol),
            **{f"{c.name}_pct": c.actual for c in checks},
            "deviating": ", ".join(c.name for c in bad) or "none",
        },
    )


def spot_check_verdict(
    store: ReconStore,
    concepts_root: Path,
    status: str,
    sample_size: int,
    skip_channels: Iterable[str],
    remedy: str,
    *,
    max_window_file_mb: float = DEFAULTS.max_window_file_mb,
) -> Verdict:
    """Runbook Step 4 STOP: `sample_size` random `status` documents re-derived from their
    files; any disagreement fails. `remedy`: what to do then (the gate's, from the runbook)."""
    rows = spot_check(
        store, concepts_root, status, sample_size, skip_channels,
        max_window_file_mb=max_window_file_mb,
    )
    breakdown = store.status_counts()
    bad = [r for r in rows if not r.agrees]
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
    sample = Table.of(
        ["hash", "channel", "stored", "re-derived", "top counts", "channel counts", "PeerTube",
         "agrees"],
        [
            (
                r.hash[:12],
                r.channel,
                f"{r.stored_status}: {r.stored_domain}",
                f"{r.expected_status}: {r.expected_domain}" if not r.problem else r.problem,
                fmt_top(r.top_counts),
                fmt_top(r.channel_counts),
                r.path,
                "yes" if r.agrees else "NO",
            )
            for r in rows
        ],
    )
    return Verdict(
        passed,
        desc,
        {
            "sampled": len(rows),
            "disagreeing": len(bad),
            "sample": sample,
            "status_breakdown": counts_table(breakdown),
        },
    )

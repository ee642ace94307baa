"""Runbook Step 6's gate: PeerTube shows every pushed video's category."""

from __future__ import annotations

from dataclasses import dataclass

from recon_domains.peertube.categories import PeerTubeCategories, Uncategorized
from recon_domains.pushed import PushedComparison, compare_pushed
from recon_domains.recon.store import ReconStore
from recon_domains.verdicts import Verdict
from recon_domains.verdicts.push import (
    category_table,
    comparison_metadata,
    outside_finding,
    pushed_problems,
)


@dataclass(frozen=True)
class Rollout:
    """The rollout as measured: what we pushed beside PeerTube, and what is left."""

    comparison: PushedComparison  # every pushed video against PeerTube now
    peertube: dict[int, int]  # PeerTube's videos per RECON category (its histogram)
    uncategorized: Uncategorized  # PeerTube videos without a category
    status: dict[str, int]  # RECON's status breakdown
    unpushed: int  # categorized in RECON, not yet in PeerTube


def measure_rollout(store: ReconStore, categories: PeerTubeCategories) -> Rollout:
    """Read both sides now."""
    return Rollout(
        comparison=compare_pushed(store, categories),
        peertube=categories.histogram(),
        uncategorized=categories.uncategorized(),
        status=store.status_counts(),
        unpushed=len(store.unpushed_categorized()),
    )


def peertube_matches_recon(m: Rollout) -> Verdict:
    """Every video in the push ledger shows the category we pushed; videos RECON did not
    push that carry a RECON category are a finding, not a failure."""
    c = m.comparison
    problems = pushed_problems(c)
    finding = outside_finding(c)
    return Verdict(
        not problems,
        f"PeerTube matches RECON: all {len(c.pushed)} pushed videos show the category we "
        f"pushed ({c.source}); {m.uncategorized.count} PeerTube videos uncategorized."
        + (f" {finding}" if finding else "")
        if not problems
        else "PeerTube does not match RECON: "
        + "; ".join(problems)
        + ". Investigate before the reprocess step: re-run the affected push stage, or "
        "restore categories from the ledger (Rollback)."
        + (f" {finding}" if finding else ""),
        {
            "categories": category_table(c, m.peertube),
            "uncategorized_in_peertube": m.uncategorized.count,
            "uncategorized_counted_as": m.uncategorized.counted_as,
            **comparison_metadata(c),
        },
    )

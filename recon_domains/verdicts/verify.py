"""Runbook Step 6's gate: PeerTube's categories match what RECON pushed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from recon_domains.recon.store import ReconStore
from recon_domains.verdicts import Verdict
from recon_domains.verdicts.push import category_table

if TYPE_CHECKING:
    from recon_domains.peertube.database import PeerTubeDatabase


@dataclass(frozen=True)
class Rollout:
    """The rollout as measured: both histograms (category id -> videos) and what is left."""

    recon: dict[int, int]  # RECON's pushed distribution
    peertube: dict[int, int]  # PeerTube's RECON categories
    uncategorized: int  # PeerTube videos without a category
    status: dict[str, int]  # RECON's status breakdown
    unpushed: int  # categorized in RECON, not yet in PeerTube


def measure_rollout(store: ReconStore, database: PeerTubeDatabase) -> Rollout:
    """Read both sides now."""
    return Rollout(
        recon=store.pushed_category_histogram(),
        peertube=database.category_histogram(),
        uncategorized=database.uncategorized_count(),
        status=store.status_counts(),
        unpushed=len(store.unpushed_categorized()),
    )


def peertube_matches_recon(m: Rollout) -> Verdict:
    """Per-category counts in PeerTube's database equal RECON's pushed distribution."""
    diff = {
        i: (m.peertube.get(i, 0), m.recon.get(i, 0))
        for i in set(m.peertube) | set(m.recon)
        if m.peertube.get(i, 0) != m.recon.get(i, 0)
    }
    return Verdict(
        not diff,
        f"PeerTube matches RECON: {sum(m.recon.values())} videos over {len(m.recon)} "
        f"categories; {m.uncategorized} PeerTube videos uncategorized."
        if not diff
        else f"{len(diff)} categor(ies) differ between PeerTube and RECON (e.g. "
        + ", ".join(f"{i}: PeerTube {a} vs RECON {b}" for i, (a, b) in sorted(diff.items())[:4])
        + "). Investigate before the reprocess step: re-run the affected push stage, or "
        "restore categories from the ledger (Rollback).",
        {
            "categories": category_table(m.peertube, m.recon),
            "uncategorized_in_peertube": m.uncategorized,
            "differing_categories": len(diff),
        },
    )

"""Runbook Step 2's gate: PeerTube shows every RECON category with the taxonomy's label."""

from __future__ import annotations

from collections.abc import Mapping

from recon_domains.peertube.categories import category_problems
from recon_domains.taxonomy import DOMAIN_BY_ID
from recon_domains.verdicts import Table, Verdict


def categories_registered(categories: Mapping[int, str]) -> Verdict:
    """`categories`: PeerTube's registered categories (GET /api/v1/videos/categories)."""
    problems = category_problems(categories)
    rows = []
    for cid, label in sorted(DOMAIN_BY_ID.items()):
        got = categories.get(cid, "(missing)")
        rows.append((cid, label, got, "yes" if got == label else "NO"))
    return Verdict(
        not problems,
        f"All {len(DOMAIN_BY_ID)} RECON categories registered with exact labels."
        if not problems
        else f"{len(problems)} RECON categor(ies) wrong: {'; '.join(problems[:6])}. Do not "
        "proceed: check PeerTube's log for plugin errors, fix or reinstall the plugin "
        "(Rollback: 'Plugin install fails'), then run plugin_job again.",
        {"categories": Table.of(["id", "expected", "PeerTube", "ok"], rows)},
    )

"""The scheduled re-assignment's gate: the changes stay within a share of the categorized
documents (RECON_REASSIGN_MAX_CHANGE_PCT, default 5 %). A mass change means something
upstream changed (RECON's model or taxonomy): a human looks first."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from recon_domains.reassignment import ReassignmentPlan
from recon_domains.verdicts import Table, Verdict

if TYPE_CHECKING:
    from recon_domains.steady_state import DriftReport

SAMPLE_SIZE = 20


def change_share(changes: int, categorized: int) -> float:
    """Changes as a percentage of the categorized documents (100 when none are)."""
    if categorized <= 0:
        return 100.0 if changes else 0.0
    return round(100.0 * changes / categorized, 2)


def within_threshold(changes: int, categorized: int, max_pct: float) -> Verdict:
    """Pass when `changes` are at most `max_pct` % of the `categorized` documents."""
    share = change_share(changes, categorized)
    passed = changes == 0 or share <= max_pct
    what = (
        f"{changes} document(s) would change: {share:g} % of the {categorized} categorized "
        f"(the limit is {max_pct:g} %, RECON_REASSIGN_MAX_CHANGE_PCT)"
    )
    description = (
        f"{what}. Within the limit: the re-assignment may apply them."
        if passed
        else f"{what}. HALT: nothing is written. A change this large means something upstream "
        "changed (RECON's model or its taxonomy): look at the dry run's table by domain pair "
        "and its sample; if the changes are right, raise RECON_REASSIGN_MAX_CHANGE_PCT for "
        "one run (or apply in steps) and run reassignment_job again."
    )
    return Verdict(
        passed,
        description,
        {"changes": changes, "categorized": categorized, "share_pct": share, "max_pct": max_pct},
    )


def pairs_table(plan: ReassignmentPlan) -> Table:
    """The changes by decision pair: from → to, how many, of them held."""
    return Table.of(["from", "to", "documents", "held"], plan.pairs())


def sample_table(plan: ReassignmentPlan, n: int = SAMPLE_SIZE) -> Table:
    """The first `n` changes: the document, its video on PeerTube, from → to, why."""
    return Table.of(
        ["hash", "channel", "PeerTube", "from", "to", "why", "rule", "held"],
        [
            (
                c.hash[:12],
                c.channel,
                c.path,
                f"{c.old_status}: {c.old_domain}",
                f"{c.status}: {c.domain}",
                c.why,
                c.rule,
                c.held or "no: applied",
            )
            for c in plan.changes[:n]
        ],
    )


def plan_metadata(plan: ReassignmentPlan, max_pct: float) -> dict[str, Any]:
    """The dry run's figures and tables (the gate reads `changes` and `categorized`)."""
    return {
        "decided": plan.decided,
        "categorized": plan.categorized,
        "manual_assigned_untouched": plan.manual_assigned,
        "files_changed": plan.files_changed,
        "ties_retried": plan.ties_retried,
        "changes": len(plan.changes),
        "to_apply": len(plan.applicable),
        "held": len(plan.held),
        "category_changes": sum(1 for c in plan.applicable if c.category_changes),
        "fingerprints_refreshed": len(plan.refreshes),
        "decided_before_fingerprints": len(plan.baselines),
        "errors": len(plan.errors),
        "files_read": plan.files_read,
        "share_pct": change_share(len(plan.changes), plan.categorized),
        "max_change_pct": max_pct,
        "changes_by_domain": pairs_table(plan),
        "sample": sample_table(plan),
        "error_sample": [{"hash": e.hash, "reason": e.reason} for e in plan.errors[:20]],
    }


def reassignment_verified(report: DriftReport, pushed: Collection[str]) -> Verdict:
    """Every video the re-assignment pushed (`pushed`: document hashes) shows its new
    category; earlier pushed videos that no longer show ours are known drift, counted."""
    wrong, known = report.split(pushed)
    if wrong:
        e = wrong[0]
        text = (
            f"{len(wrong)} of {len(pushed)} re-assigned video(s) do not show their new "
            f"category (e.g. video {e['video_id']}: pushed {e['pushed_label']}, PeerTube has "
            f"{e['now_label']}): check the plugin and run peertube_drift_check"
        )
    else:
        text = f"all {len(pushed)} re-assigned video(s) show their new category"
    return Verdict(
        not wrong,
        f"{text}; known drift: {len(known)} earlier pushed video(s) (never overwritten).",
        {"verified": len(pushed), "mismatched": len(wrong), "known_drift": len(known)},
    )

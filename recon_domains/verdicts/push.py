"""Runbook Step 5's gate: one pushed stage verified (stage_verified)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from recon_domains.peertube.categories import PeerTubeCategories
from recon_domains.peertube.urls import parse_watch_url
from recon_domains.peertube.window import read_categories
from recon_domains.push import STAGES, select_stage_items
from recon_domains.pushed import MISSING, PushedComparison, compare_pushed
from recon_domains.recon.store import PushCandidate, ReconStore
from recon_domains.settings import DEFAULTS
from recon_domains.taxonomy import DOMAIN_BY_ID, describe_category
from recon_domains.verdicts import Table, Verdict

if TYPE_CHECKING:
    from recon_domains.peertube.client import PeerTubeClient

API_SAMPLE = 20  # later stages: videos read back through the API
SAMPLE_ROWS = 20  # rows of the tables listing videos


def category_table(comparison: PushedComparison, peertube: Mapping[int, int]) -> Table:
    """Per RECON category: PeerTube's videos (`peertube`, its histogram), the videos we
    pushed it to, how many of those show it, and the videos outside RECON carrying it."""
    counts = comparison.by_category()
    rows = []
    for i in sorted(set(peertube) | set(counts)):
        pushed, showing, outside = counts.get(i, (0, 0, 0))
        domain = DOMAIN_BY_ID.get(i, "(not a RECON domain)")
        agree = "yes" if pushed == showing else "NO"
        rows.append((i, domain, peertube.get(i, 0), pushed, showing, outside, agree))
    return Table.of(
        ["id", "domain", "PeerTube videos", "RECON pushed", "pushed showing it",
         "outside RECON", "agree"],
        rows,
    )


def split_unpushable(
    store: ReconStore, items: Iterable[PushCandidate]
) -> tuple[list[PushCandidate], list[tuple[str, str | None, str]]]:
    """(the items a push can reach, (hash, catalogue.path, why) of those no push ever
    reaches: no video id in the watch URL, or a URL on a host that is not the stream's)."""
    pushable: list[PushCandidate] = []
    unpushable: list[tuple[str, str | None, str]] = []
    for c in items:
        parsed = parse_watch_url(c.path, store.watch_hosts)
        if parsed.ok:
            pushable.append(c)
        else:
            unpushable.append((c.hash[:12], c.path, str(parsed.reason)))
    return pushable, unpushable


def pushed_problems(comparison: PushedComparison) -> list[str]:
    """What is wrong with what we pushed: videos showing another category, videos gone."""
    problems = []
    if comparison.changed:
        v, now = comparison.changed[0]
        problems.append(
            f"{len(comparison.changed)} pushed video(s) show another category in PeerTube than "
            f"the one we pushed (e.g. {v.uuid}: pushed {describe_category(v.category)}, "
            f"PeerTube has {describe_category(now)})"
        )
    if comparison.missing:
        problems.append(
            f"{len(comparison.missing)} pushed video(s) are no longer in PeerTube (e.g. "
            f"{comparison.missing[0].uuid}: deleted since the push?)"
        )
    return problems


def outside_finding(comparison: PushedComparison) -> str:
    """The finding about videos RECON did not push that carry a RECON category ("" without)."""
    n = len(comparison.outside)
    if not n:
        return ""
    return (
        f"Finding: {n} video(s) RECON did not push carry a RECON category (picked in "
        "PeerTube's upload form, or set by an admin): listed in outside_recon_videos, not "
        "compared."
    )


def comparison_metadata(comparison: PushedComparison) -> dict[str, object]:
    """The comparison's counts and tables, for a verdict's metadata."""
    return {
        "compared_via": comparison.source,
        "pushed_videos": len(comparison.pushed),
        "pushed_showing_their_category": len(comparison.matching),
        "pushed_showing_another": len(comparison.changed),
        "pushed_missing_in_peertube": len(comparison.missing),
        "outside_recon": len(comparison.outside),
        "outside_recon_videos": Table.of(
            ["video", "category"],
            [(u, describe_category(c)) for u, c in sorted(comparison.outside.items())][
                :SAMPLE_ROWS
            ],
        ),
        "pushed_not_showing_it": Table.of(
            ["hash", "video", "pushed", "PeerTube now"],
            [
                (v.hash[:12], v.uuid, describe_category(v.category), describe_category(now))
                for v, now in comparison.changed[:SAMPLE_ROWS]
            ]
            + [
                (v.hash[:12], v.uuid, describe_category(v.category), MISSING)
                for v in comparison.missing[:SAMPLE_ROWS]
            ],
        ),
    }


def stage_verified(
    store: ReconStore,
    client: PeerTubeClient,
    stage: str,
    stage_sizes: Sequence[int],
    categories: PeerTubeCategories,
    *,
    sample_size: int = API_SAMPLE,
    max_in_flight: int = DEFAULTS.peertube.push_max_in_flight,
    max_rate: float | None = DEFAULTS.peertube.push_max_rate,
) -> Verdict:
    """Runbook Step 5 STOP for `stage`.

    stage-1: every pushed video of the stage read back through the API; later stages: a
    random sample of `sample_size`; the reads run concurrently within the push's ceilings
    (max_in_flight, max_rate), so stage-1's read-back takes about as long as its PUTs, not
    several times longer. Then every video pushed so far (the push ledger's, by UUID) must
    show the category we pushed, read through `categories`; videos RECON did not push that
    carry a RECON category are a finding, not a failure. Items left unpushed fail it, except
    those no push can reach (split_unpushable: no video id in the watch URL, or a host that
    is not the stream's): they are reported and must not hold the rollout.
    """
    first = stage == STAGES[0]
    rows = store.pushed_ledger(stage)
    sample = rows if first else random.sample(rows, min(sample_size, len(rows)))
    paths = store.watch_paths(r.hash for r in sample)
    leftovers = select_stage_items(store, stage, stage_sizes)

    problems: list[str] = []
    checked = []
    read = read_categories(client, (r.video_id for r in sample),
                           max_in_flight=max_in_flight, max_rate=max_rate)
    for r in sample:
        answer = read[r.video_id]
        # one unreadable video is a finding, not a crash
        got = f"error: {answer}" if isinstance(answer, Exception) else answer
        ok = got == r.category_after
        shown = got if isinstance(got, str) else describe_category(got)
        expected = describe_category(r.category_after)
        checked.append((r.hash[:12], r.video_id, expected, shown, ok, paths.get(r.hash)))
        if not ok:
            problems.append(f"video {r.video_id}: expected {expected}, found {shown}")

    comparison = compare_pushed(store, categories)
    problems += pushed_problems(comparison)
    histogram = category_table(comparison, categories.histogram())

    pushable, unpushable = split_unpushable(store, leftovers)
    retryable = len(pushable)
    if retryable:
        problems.append(
            f"{retryable} item(s) of {stage} are still unpushed (their push failed): run "
            f"push_job for {stage} again to retry them"
        )
    finding = outside_finding(comparison)
    return Verdict(
        not problems,
        f"{stage} verified: {len(checked)} of {len(rows)} pushed video(s) read back through "
        f"the API with the expected category; all {len(comparison.pushed)} video(s) pushed so "
        f"far show the category we pushed ({comparison.source})."
        + (f" {finding}" if finding else "")
        if not problems
        else f"{stage} NOT verified: "
        + "; ".join(problems[:5])
        + ". Do not push the next stage. If categories are wrong, restore them (Rollback: "
        "'Clear wrong PeerTube categories')."
        + (f" {finding}" if finding else ""),
        {
            "pushed_in_stage": len(rows),
            "checked_via_api": len(checked),
            "mismatches": sum(1 for c in checked if not c[4]),
            "unpushed_retryable": retryable,
            "unpushable_bad_url": len(unpushable),
            "unpushable": Table.of(["hash", "catalogue.path", "why"], unpushable[:20]),
            "api_sample": Table.of(
                ["hash", "video", "expected", "PeerTube", "ok", "link"],
                [(h, v, e, g, "yes" if ok else "NO", lk) for h, v, e, g, ok, lk in checked],
            ),
            "histogram": histogram,
            **comparison_metadata(comparison),
        },
    )

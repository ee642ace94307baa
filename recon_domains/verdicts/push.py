"""Runbook Step 5's gate: one pushed stage verified (stage_verified)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from recon_domains.peertube.urls import parse_watch_url
from recon_domains.push import STAGES, select_stage_items
from recon_domains.recon.store import PushCandidate, ReconStore
from recon_domains.taxonomy import DOMAIN_BY_ID
from recon_domains.verdicts import Table, Verdict

if TYPE_CHECKING:
    from recon_domains.peertube.client import PeerTubeClient

API_SAMPLE = 20  # later stages: videos read back through the API


def category_table(peertube: Mapping[int, int], recon: Mapping[int, int]) -> Table:
    """PeerTube's category histogram beside RECON's pushed counts, per category id."""
    return Table.of(
        ["id", "domain", "PeerTube videos", "RECON pushed", "agree"],
        [
            (
                i,
                DOMAIN_BY_ID.get(i, "(not a RECON domain)"),
                peertube.get(i, 0),
                recon.get(i, 0),
                "yes" if peertube.get(i, 0) == recon.get(i, 0) else "NO",
            )
            for i in sorted(set(peertube) | set(recon))
        ],
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


def stage_verified(
    store: ReconStore,
    client: PeerTubeClient,
    stage: str,
    stage_sizes: Sequence[int],
    peertube_histogram: Callable[[], Mapping[int, int]],
    *,
    sample_size: int = API_SAMPLE,
) -> Verdict:
    """Runbook Step 5 STOP for `stage`.

    stage-1: every pushed video read back through the API; later stages: a random sample
    of `sample_size` through the API, and PeerTube's category histogram (read only then,
    through `peertube_histogram`) equal to RECON's pushed distribution. Items left unpushed
    fail it, except those no push can reach (split_unpushable): they are reported and must
    not hold the rollout.
    """
    first = stage == STAGES[0]
    rows = store.pushed_ledger(stage)
    sample = rows if first else random.sample(rows, min(sample_size, len(rows)))
    paths = store.watch_paths(r.hash for r in sample)
    leftovers = select_stage_items(store, stage, stage_sizes)
    recon_hist = store.pushed_category_histogram()

    problems: list[str] = []
    checked = []
    for r in sample:
        try:
            got: int | str | None = client.video_category(r.video_id)
        except Exception as exc:  # one unreadable video is a finding, not a crash
            got = f"error: {exc}"
        ok = got == r.category_after
        checked.append((r.hash[:12], r.video_id, r.category_after, got, ok, paths.get(r.hash)))
        if not ok:
            problems.append(f"video {r.video_id}: expected {r.category_after}, found {got}")

    histogram: Table | str = "not compared (stage-1 checks every video through the API)"
    if not first:
        pt_hist = dict(peertube_histogram())
        histogram = category_table(pt_hist, recon_hist)
        if pt_hist != recon_hist:
            problems.append("PeerTube's category histogram differs from RECON's pushed counts")

    pushable, unpushable = split_unpushable(store, leftovers)
    retryable = len(pushable)
    if retryable:
        problems.append(
            f"{retryable} item(s) of {stage} are still unpushed (their push failed): run "
            f"push_job for {stage} again to retry them"
        )
    return Verdict(
        not problems,
        f"{stage} verified: {len(checked)} of {len(rows)} pushed video(s) read back through "
        "the API with the expected category"
        + ("" if first else "; PeerTube's histogram equals RECON's")
        + "."
        if not problems
        else f"{stage} NOT verified: "
        + "; ".join(problems[:5])
        + ". Do not push the next stage. If categories are wrong, restore them (Rollback: "
        "'Clear wrong PeerTube categories').",
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
        },
    )

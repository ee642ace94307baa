"""Runbook "Clear wrong PeerTube categories", done exactly: every pushed video back to the
category it had before our first push, from the push ledger; a video a human changed in
PeerTube since is left as they set it (or, when asked, restored too)."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from recon_domains.peertube.categories import PeerTubeCategories
from recon_domains.peertube.urls import canonical_video_id, parse_watch_url
from recon_domains.recon.store import ReconStore
from recon_domains.rollback.audit import (
    SAMPLE_SIZE,
    AuditLog,
    RollbackConfigError,
    RollbackReport,
    recorded,
)
from recon_domains.settings import DEFAULTS
from recon_domains.taxonomy import DOMAIN_BY_ID, DOMAIN_IDS, describe_category

# What to do with a video whose category was changed in PeerTube after our push: leave it
# as the human set it (the default; the rollback goes on), or restore its original anyway.
Drifted = Literal["leave", "restore"]
LEFT, RESTORED = "left as set in PeerTube", "restored (the change in PeerTube overwritten)"


def rollback_peertube_categories(
    store: ReconStore,
    categories: PeerTubeCategories,
    client: Any = None,
    pt_db: Any = None,
    *,
    via: Literal["auto", "api", "db"] = "auto",
    drifted: Drifted = "leave",
    force: bool = False,
    concurrency: int = DEFAULTS.peertube.push_max_in_flight,
    dry_run: bool = True,
    audit: AuditLog | None = None,
) -> RollbackReport:
    """Put back every pushed video's category from the push ledger, then clear the push
    timestamps so a later push can retry.

    The target is the category a video had before our *first* push to it
    (`store.original_categories()`), NULL only where nothing was recorded (documents
    of the store's stream source marked pushed without a ledger row). Current categories
    are read through `categories` (PeerTube's database or API).

    A video whose category is neither its original nor one we pushed was changed in
    PeerTube since (an uploader or an admin): with `drifted="leave"` it keeps that category
    and its push timestamp (so no later push overwrites it either), and the rollback goes
    on; with `drifted="restore"` (or `force`, its older name) it is restored too. Either
    way `report.drifted` lists each such video. Writes go through the API (`via="api"`, the
    default when a client is given: PeerTube federates and bumps updatedAt) or PeerTube's
    database `pt_db` in one transaction (`via="db"`); API reads and writes keep
    `concurrency` requests in flight.
    """
    if via not in ("auto", "api", "db"):
        raise RollbackConfigError(f"via must be auto, api or db, got {via!r}")
    if drifted not in ("leave", "restore"):
        raise RollbackConfigError(f"drifted must be leave or restore, got {drifted!r}")
    restore_drifted = force or drifted == "restore"
    report = RollbackReport("rollback_peertube_categories", dry_run)
    if not store.has_ledger():
        report.steps.append(
            "no push ledger in recon.db (schema already reverted, or never migrated): "
            "nothing recorded to restore"
        )
        return recorded(audit, report)
    originals = store.original_categories()
    pushed_values: dict[str, set[int | None]] = {}
    last_pushed: dict[str, int | None] = {}
    hashes_of: dict[str, set[str]] = {}
    ledger_ids: dict[str, set[str]] = {}  # the ids as the ledger holds them (either form)
    for r in store.ledger():
        vid = canonical_video_id(r.video_id)
        pushed_values.setdefault(vid, set()).add(r.category_after)
        last_pushed[vid] = r.category_after
        hashes_of.setdefault(vid, set()).add(r.hash)
        ledger_ids.setdefault(vid, set()).add(r.video_id)
    unrecorded: dict[str, str] = {}  # video_id -> hash: pushed, but no ledger row
    if store.has_domain_columns():
        for cand in store.pushed_documents():
            parsed = parse_watch_url(cand.path)
            if parsed.ok and parsed.video_id not in originals:
                unrecorded[parsed.video_id] = cand.hash
                originals[parsed.video_id] = None
                category = DOMAIN_IDS.get(cand.domain)
                pushed_values.setdefault(parsed.video_id, set()).add(category)
                last_pushed[parsed.video_id] = category
                hashes_of.setdefault(parsed.video_id, set()).add(cand.hash)
    video_ids = sorted(originals)
    if via == "auto":
        via = "api" if client is not None else "db"
    current = categories.categories_of(video_ids) if video_ids else {}

    to_restore: dict[str, int | None] = {}
    already, gone, changed = [], [], []
    for vid in video_ids:
        target = originals[vid]
        if vid not in current:
            gone.append(vid)
        elif current[vid] == target:
            already.append(vid)
        elif current[vid] in pushed_values.get(vid, set()):
            to_restore[vid] = target
        else:
            changed.append(vid)
            if restore_drifted:
                to_restore[vid] = target
    report.drifted = [
        {
            "video_id": v,
            "hashes": sorted(hashes_of[v]),
            "we_pushed": describe_category(last_pushed[v]),
            "now": describe_category(current[v]),
            "original": describe_category(originals[v]),
            "action": RESTORED if restore_drifted else LEFT,
        }
        for v in changed
    ]
    report.counts = {
        "videos_in_ledger": len(video_ids) - len(unrecorded),
        "pushed_without_ledger_row": len(unrecorded),
        "to_restore": len(to_restore),
        "to_null": sum(1 for v in to_restore.values() if v is None),
        "to_builtin": sum(1 for v in to_restore.values() if v is not None),
        "already_original": len(already),
        "changed_in_peertube": len(changed),
        "left_as_set_in_peertube": 0 if restore_drifted else len(changed),
        "video_missing": len(gone),
    }
    report.sample = [
        {
            "video_id": v,
            "now": describe_category(current.get(v)),
            "restore_to": describe_category(t),
            "hashes": sorted(hashes_of[v]),
        }
        for v, t in list(to_restore.items())[:SAMPLE_SIZE]
    ]
    if changed:
        report.steps.append(_drifted_step(changed, current, restore_drifted, dry_run))
    clear_ids = video_ids if restore_drifted else [v for v in video_ids if v not in changed]
    clear_hashes = sorted({h for v in clear_ids for h in hashes_of[v]})
    pushed_marked = store.marked_pushed(clear_hashes) if store.has_domain_columns() else []
    report.counts["push_timestamps_to_clear"] = len(pushed_marked)
    if dry_run:
        report.steps.append(
            f"would restore {len(to_restore)} videos' categories through "
            f"{'the API' if via == 'api' else 'PeerTube database'} "
            f"({report.counts['to_null']} to NULL, {report.counts['to_builtin']} to their "
            f"earlier category) and clear {len(pushed_marked)} push timestamps"
        )
        return recorded(audit, report, via=via, drifted=report.drifted)

    failed: list[tuple[str, str]] = []
    if to_restore:
        if via == "db":
            if pt_db is None:
                raise ValueError("via='db' needs PeerTube's database (PEERTUBE_DB_DSN)")
            pt_db.write_restore_categories(to_restore)
        else:
            if client is None:
                raise ValueError("via='api' needs a PeerTube API client")
            failed = _restore_via_api(client, to_restore, concurrency)
        report.acted = True
    if failed:
        report.problems.append(
            f"{len(failed)} videos could not be restored through the API (e.g. "
            f"{failed[0][0]}: {failed[0][1]}): re-run; their push timestamps are kept"
        )
    # Verify by reading back, then forget the pushes of every video now at its original.
    after = categories.categories_of(list(to_restore)) if to_restore else {}
    wrong = [v for v in to_restore if v in after and after[v] != to_restore[v]]
    if wrong:
        report.problems.append(
            f"{len(wrong)} videos do not show the restored category (e.g. {wrong[0]}): re-run"
        )
    bad = {v for v, _ in failed} | set(wrong)
    done = [v for v in clear_ids if v not in bad]
    cleared = store.clear_push_timestamps(
        sorted({h for v in done for h in hashes_of[v]}),
        sorted({i for v in done for i in ledger_ids.get(v, ())}),
    )
    report.acted = report.acted or cleared > 0
    report.counts["restored"] = len(to_restore) - len(bad)
    report.counts["push_timestamps_cleared"] = cleared
    report.steps.append(
        f"restored {report.counts['restored']} videos' categories and cleared {cleared} "
        "push timestamps"
    )
    return recorded(
        audit,
        report,
        via=via,
        restored={v: t for v, t in to_restore.items() if v not in bad},
        failed=failed,
        drifted=report.drifted,
    )


def _drifted_step(
    changed: list[str], current: Mapping[str, int | None], restore: bool, dry_run: bool
) -> str:
    """What happens (or would) to the videos changed in PeerTube since our push."""
    n = len(changed)
    what = f"{n} video(s) were changed in PeerTube after our push (neither the original nor ours)"
    if restore:
        return f"{what}: {'would restore' if dry_run else 'restored'} them too (drifted: restore)"
    on_recon = sum(1 for v in changed if current[v] in DOMAIN_BY_ID)
    orphaned = (
        f"; {on_recon} of them carry a RECON category, which PeerTube shows as 'Unknown' once "
        "the plugin is uninstalled"
        if on_recon
        else ""
    )
    return (
        f"{what}: {'would leave' if dry_run else 'left'} them as set there, push timestamps "
        f"kept (listed in drifted{orphaned}); drifted: restore restores them too"
    )


def _restore_via_api(
    client: Any, mapping: Mapping[str, int | None], concurrency: int
) -> list[tuple[str, str]]:
    def put(item: tuple[str, int | None]) -> tuple[str, str | None]:
        vid, cat = item
        try:
            client.set_category(vid, cat)
            return vid, None
        except Exception as exc:  # reported per video; the rest go on
            return vid, str(exc)[:300]

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        return [(v, e) for v, e in pool.map(put, mapping.items()) if e is not None]

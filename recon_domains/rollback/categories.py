"""Runbook "Clear wrong PeerTube categories", done exactly: every pushed video back to the
category it had before our first push, from the push ledger."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from recon_domains.peertube.categories import read_current_categories
from recon_domains.peertube.urls import parse_watch_url
from recon_domains.recon.store import ReconStore
from recon_domains.rollback.audit import (
    SAMPLE_SIZE,
    AuditLog,
    RollbackConfigError,
    RollbackReport,
    recorded,
)
from recon_domains.settings import DEFAULTS
from recon_domains.taxonomy import DOMAIN_IDS


def rollback_peertube_categories(
    store: ReconStore,
    client: Any = None,
    pt_db: Any = None,
    *,
    via: Literal["auto", "api", "db"] = "auto",
    force: bool = False,
    concurrency: int = DEFAULTS.peertube.push_max_in_flight,
    dry_run: bool = True,
    audit: AuditLog | None = None,
) -> RollbackReport:
    """Put back every pushed video's category from the push ledger, then clear the push
    timestamps so a later push can retry.

    The target is the category a video had before our *first* push to it
    (`store.original_categories()`), NULL only where nothing was recorded (documents
    of the store's stream source marked pushed without a ledger row). A video whose
    category is neither its original nor one we pushed was changed in PeerTube since: it is
    reported and left alone unless `force`. Writes go through the API (`via="api"`, the
    default when a client is given: PeerTube federates and bumps updatedAt) or PeerTube's
    database in one transaction (`via="db"`); API reads and writes keep `concurrency`
    requests in flight.
    """
    if via not in ("auto", "api", "db"):
        raise RollbackConfigError(f"via must be auto, api or db, got {via!r}")
    report = RollbackReport("rollback_peertube_categories", dry_run)
    if not store.has_ledger():
        report.steps.append(
            "no push ledger in recon.db (schema already reverted, or never migrated): "
            "nothing recorded to restore"
        )
        return recorded(audit, report)
    originals = store.original_categories()
    pushed_values: dict[str, set[int | None]] = {}
    hashes_of: dict[str, set[str]] = {}
    for r in store.ledger():
        pushed_values.setdefault(r.video_id, set()).add(r.category_after)
        hashes_of.setdefault(r.video_id, set()).add(r.hash)
    unrecorded: dict[str, str] = {}  # video_id -> hash: pushed, but no ledger row
    if store.has_domain_columns():
        for cand in store.pushed_documents():
            parsed = parse_watch_url(cand.path)
            if parsed.ok and parsed.video_id not in originals:
                unrecorded[parsed.video_id] = cand.hash
                originals[parsed.video_id] = None
                pushed_values.setdefault(parsed.video_id, set()).add(DOMAIN_IDS.get(cand.domain))
                hashes_of.setdefault(parsed.video_id, set()).add(cand.hash)
    video_ids = sorted(originals)
    if via == "auto":
        via = "api" if client is not None else "db"
    current = (
        read_current_categories(video_ids, client, pt_db, concurrency=concurrency)
        if video_ids
        else {}
    )

    to_restore: dict[str, int | None] = {}
    already, gone, drifted = [], [], []
    for vid in video_ids:
        target = originals[vid]
        if vid not in current:
            gone.append(vid)
        elif current[vid] == target:
            already.append(vid)
        elif current[vid] in pushed_values.get(vid, set()) or force:
            to_restore[vid] = target
        else:
            drifted.append(vid)
    report.counts = {
        "videos_in_ledger": len(video_ids) - len(unrecorded),
        "pushed_without_ledger_row": len(unrecorded),
        "to_restore": len(to_restore),
        "to_null": sum(1 for v in to_restore.values() if v is None),
        "to_builtin": sum(1 for v in to_restore.values() if v is not None),
        "already_original": len(already),
        "changed_in_peertube": len(drifted),
        "video_missing": len(gone),
    }
    report.sample = [
        {"video_id": v, "now": current.get(v), "restore_to": t, "hashes": sorted(hashes_of[v])}
        for v, t in list(to_restore.items())[:SAMPLE_SIZE]
    ] + [
        {"video_id": v, "now": current.get(v), "original": originals[v], "left_alone": True}
        for v in drifted[:SAMPLE_SIZE]
    ]
    if drifted:
        report.problems.append(
            f"{len(drifted)} videos were changed in PeerTube after our push (their category is "
            "neither the original nor ours): left alone; review them (sample), then re-run "
            "with force: true to restore them anyway"
        )
    clear_ids = [v for v in video_ids if v not in drifted]
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
        return recorded(audit, report, via=via)

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
    after = (
        read_current_categories(video_ids, client, pt_db, concurrency=concurrency)
        if to_restore
        else current
    )
    wrong = [v for v in to_restore if v in after and after[v] != to_restore[v]]
    if wrong:
        report.problems.append(
            f"{len(wrong)} videos do not show the restored category (e.g. {wrong[0]}): re-run"
        )
    bad = {v for v, _ in failed} | set(wrong)
    done_hashes = sorted({h for v in clear_ids if v not in bad for h in hashes_of[v]})
    cleared = store.clear_push_timestamps(done_hashes, [v for v in clear_ids if v not in bad])
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

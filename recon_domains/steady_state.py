"""The steady state after the migration (SPEC §9): what is new in RECON, and whether PeerTube
still shows what we pushed. Plain core; the Dagster sensor, schedule and jobs call it.

- :func:`pending_work` looks at RECON's database *read-only* with a short timeout, so a
  sensor tick never blocks RECON and survives "database is locked" (:class:`ReconBusy`).
- :func:`drift_report` compares every pushed video's category in PeerTube with the one we
  pushed and reports differences; it never writes (a human changed them on purpose, or
  not: an operator decides).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recon_domains.peertube.categories import read_current_categories
from recon_domains.peertube.urls import parse_watch_url
from recon_domains.recon.store import ReconStore
from recon_domains.settings import DEFAULTS
from recon_domains.taxonomy import DOMAIN_BY_ID, DOMAIN_IDS, Status


class ReconBusy(RuntimeError):
    """RECON's database is locked or briefly unavailable; try again on the next tick."""


@dataclass(frozen=True)
class PendingWork:
    """Newly completed stream documents that have no domain yet (pass 1 candidates), plus
    counts of the other steady-state work (for schedules and logs)."""

    hashes: tuple[str, ...]
    tied_pass_1: int = 0
    unpushed: int = 0  # categorized, not yet pushed, with a usable watch URL

    @property
    def fingerprint(self) -> str:
        """A stable id of the candidate set: the sensor's cursor and run key."""
        if not self.hashes:
            return ""
        digest = hashlib.sha256("\n".join(self.hashes).encode()).hexdigest()[:16]
        return f"{len(self.hashes)}-{digest}"

    @property
    def any(self) -> bool:
        return bool(self.hashes or self.tied_pass_1 or self.unpushed)


def pending_work(
    db_path: str | os.PathLike[str],
    source: str,
    *,
    accepted_hosts: Iterable[str] = (),
    timeout_s: float = 2.0,
) -> PendingWork:
    """What the steady state would do now, read without writing anything.

    Raises ReconBusy when the database is locked, missing or unreadable right now (a
    sensor skips the tick and keeps its cursor), and ValueError when recon.db has not been
    migrated (the steady state belongs after the migration).
    """
    path = Path(db_path)
    if not path.is_file():
        raise ReconBusy(f"RECON database {path} is not there right now (RECON_DB_PATH)")
    try:
        store = ReconStore.open_readonly(
            path, source, accepted_hosts=accepted_hosts, timeout_s=timeout_s
        )
    except sqlite3.Error as exc:
        raise ReconBusy(f"cannot open RECON's database {path}: {exc}") from None
    try:
        if "recon_domain_status" not in store.column_names():
            raise ValueError(
                f"{path} has no domain columns: run the migration (schema_job) before the "
                "steady state"
            )
        # The store's own queries: the job's pass 1 and push select with them.
        hashes = tuple(d.hash for d in store.backfill_candidates())
        tied = len(store.documents_with_status(Status.TIED_PASS_1))
        # Only pushable ones: a garbage or foreign watch URL is never pushed: not work.
        unpushed = sum(
            1 for c in store.unpushed_categorized()
            if parse_watch_url(c.path, store.watch_hosts).ok
        )
    except sqlite3.OperationalError as exc:  # "database is locked", I/O hiccups
        raise ReconBusy(f"RECON's database is busy ({exc}); will look again next tick") from None
    finally:
        store.close()
    return PendingWork(hashes, tied, unpushed)


@dataclass
class DriftReport:
    """Pushed videos whose PeerTube category is not what we pushed."""

    checked: int = 0
    matching: int = 0
    drifted: list[dict[str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # video no longer in PeerTube
    unparsable: int = 0  # pushed documents whose watch URL holds no video id

    @property
    def ok(self) -> bool:
        return not self.drifted

    def sample(self, n: int = 10) -> list[dict[str, Any]]:
        return self.drifted[:n]


def _label(category: int | None) -> str:
    if category is None:
        return "(none)"
    return DOMAIN_BY_ID.get(category, f"category {category}")


def _pushed_videos(
    store: ReconStore, hashes: Collection[str] | None = None
) -> tuple[dict[str, tuple[str, int | None]], int]:
    """{video_id: (hash, its domain's category)} for the stream's pushed documents (only
    `hashes`, when given), and how many of them have no video id in their watch URL."""
    videos: dict[str, tuple[str, int | None]] = {}
    unparsable = 0
    for cand in store.pushed_documents():
        if hashes is not None and cand.hash not in hashes:
            continue
        parsed = parse_watch_url(cand.path)
        if not parsed.ok:
            unparsable += 1
            continue
        videos[parsed.video_id] = (cand.hash, DOMAIN_IDS.get(cand.domain))
    return videos, unparsable


def pushed_mismatches(
    store: ReconStore,
    hashes: Collection[str],
    pt_db: Any = None,
    client: Any = None,
    *,
    concurrency: int = DEFAULTS.peertube.push_max_in_flight,
) -> tuple[int, list[tuple[str, str, int | None, int | None]]]:
    """Read back the videos of the pushed documents `hashes` (e.g. those one run pushed):
    how many were checked, and (hash, video_id, pushed, now) for each whose PeerTube
    category is not its domain's, in video id order (now is None for a missing video).
    Through the API, `concurrency` reads are in flight at once."""
    expected, _ = _pushed_videos(store, set(hashes))
    ids = sorted(expected)
    now = read_current_categories(ids, client, pt_db, concurrency=concurrency) if ids else {}
    wrong = [
        (h, vid, cat, now.get(vid))
        for vid, (h, cat) in sorted(expected.items())
        if now.get(vid) != cat
    ]
    return len(ids), wrong


def drift_report(
    store: ReconStore,
    pt_db: Any = None,
    client: Any = None,
    *,
    base_url: str | None = None,
    concurrency: int = DEFAULTS.peertube.push_max_in_flight,
) -> DriftReport:
    """Every pushed document's video: what PeerTube shows now versus what we pushed (the
    ledger's latest completed push, or the document's domain when no ledger row exists).
    Reads PeerTube's database in one query when given, else the API per video, with
    `concurrency` reads in flight."""
    expected, unparsable = _pushed_videos(store)  # video_id -> (hash, category)
    report = DriftReport(unparsable=unparsable)
    if store.has_ledger():
        for row in store.ledger():  # oldest first: later rows win, the latest push
            if row.pushed_at and row.restored_at is None and row.video_id in expected:
                expected[row.video_id] = (row.hash, row.category_after)
    ids = sorted(expected)
    current = read_current_categories(ids, client, pt_db, concurrency=concurrency) if ids else {}
    for vid in ids:
        doc_hash, pushed = expected[vid]
        report.checked += 1
        if vid not in current:
            report.missing.append(vid)
        elif current[vid] == pushed:
            report.matching += 1
        else:
            report.drifted.append(
                {
                    "hash": doc_hash,
                    "video_id": vid,
                    "pushed": pushed,
                    "pushed_label": _label(pushed),
                    "now": current[vid],
                    "now_label": _label(current[vid]),
                    "url": f"{base_url.rstrip('/')}/w/{vid}" if base_url else None,
                }
            )
    return report

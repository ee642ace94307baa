"""The steady state after the migration (SPEC §9): what is new in RECON, and whether PeerTube
still shows what we pushed. Plain core; the Dagster sensor, schedule and jobs call it.

- :func:`pending_work` looks at RECON's database *read-only* with a short timeout, so a
  sensor tick never blocks RECON and survives "database is locked" (:class:`ReconBusy`).
- :func:`drift_report` compares every pushed video's category in PeerTube with the one we
  pushed and reports differences; it never writes (a human changed them on purpose, or
  not: an operator decides). The steady state's read-back uses it too: this run's pushes
  must show their category, earlier ones that do not are the known drift.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recon_domains.peertube.categories import PeerTubeCategories
from recon_domains.peertube.urls import parse_watch_url
from recon_domains.pushed import MISSING, PushedVideo, compare_pushed
from recon_domains.recon.store import ReconStore
from recon_domains.taxonomy import Status, describe_category


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
    """Pushed videos whose PeerTube category is not what we pushed (drifted: changed in
    PeerTube since; missing: deleted there), each entry with the document's hash, the video,
    both categories by label and its watch URL."""

    checked: int = 0
    matching: int = 0
    drifted: list[dict[str, Any]] = field(default_factory=list)
    missing: list[dict[str, Any]] = field(default_factory=list)
    unparsable: int = 0  # pushed documents whose watch URL holds no video id
    outside: int = 0  # videos RECON did not push carrying a RECON category: not drift

    @property
    def ok(self) -> bool:
        return not self.drifted

    def sample(self, n: int = 10) -> list[dict[str, Any]]:
        return self.drifted[:n]

    def split(self, hashes: Collection[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(the drifted and missing entries of the documents `hashes`, those of the others)."""
        entries = self.drifted + self.missing
        return (
            [e for e in entries if e["hash"] in hashes],
            [e for e in entries if e["hash"] not in hashes],
        )


def drift_report(
    store: ReconStore, categories: PeerTubeCategories, *, base_url: str | None = None
) -> DriftReport:
    """Every pushed document's video: what PeerTube shows now versus what we pushed (the
    ledger's latest completed push, or the document's domain when no ledger row exists),
    read through `categories` (recon_domains.pushed.compare_pushed). Never writes."""
    c = compare_pushed(store, categories)

    def entry(video: PushedVideo, **now: Any) -> dict[str, Any]:
        return {
            "hash": video.hash,
            "video_id": video.uuid,
            "pushed": video.category,
            "pushed_label": describe_category(video.category),
            **now,
            "url": f"{base_url.rstrip('/')}/w/{video.uuid}" if base_url else None,
        }

    return DriftReport(
        checked=len(c.pushed),
        matching=len(c.matching),
        drifted=[entry(v, now=now, now_label=describe_category(now)) for v, now in c.changed],
        missing=[entry(v, now_label=MISSING) for v in c.missing],
        unparsable=c.unparsable,
        outside=len(c.outside),
    )

"""What the review page shows and does: tied_manual videos and the manual assignment.

Runbook Step 8 ("Dashboard Review"): each tied video is shown with its channel, its tied
domains and their concept counts, and a human picks the domain. The list is filtered, ordered
and cut into pages in SQL (the store's review queries); only the shown page's counts are
re-read from the concept files, on every load (RECON may have rewritten them since the
tiebreaker ran). The channel context comes from the database (how the channel's other videos
are categorized), one grouped query per channel on the page: recounting a 9,000-video
catch-all channel's concept files on every load would make the page unusable.

The fallback domain a tied_manual row carries is display-only and never pushed (SPEC §4).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from recon_domains.peertube.urls import parse_watch_url
from recon_domains.recon.concepts import UnsafeHashError, read_domain_counts
from recon_domains.recon.review_queries import TiedRow
from recon_domains.recon.store import DomainDecision, PushCandidate, ReconStore, utc_now
from recon_domains.settings import DEFAULTS
from recon_domains.taxonomy import DOMAINS, Status, category_id, is_domain

CHANNEL_TOP_N = 5  # how many of the channel's domains the page shows


class ReviewError(ValueError):
    """A request the review page refuses (bad hash, bad domain); the message says why."""


@dataclass(frozen=True)
class TiedVideo:
    """One tied_manual stream document as the review page shows it."""

    hash: str
    title: str  # documents.book_title when RECON has one, else the file name
    filename: str | None
    channel: str | None
    path: str | None  # catalogue.path as stored
    watch_url: str | None  # path, when it is an http(s) URL safe to link to
    video_id: str | None  # PeerTube UUID parsed from the path
    path_problem: str | None  # why the path is not a usable watch URL
    fallback_domain: str | None  # display only: never pushed while tied_manual
    assigned_at: str | None
    counts: tuple[tuple[str, int], ...]  # valid-domain concept counts, highest first
    top_domains: tuple[str, ...]  # the domains sharing the top count now
    concept_state: str  # concepts.STATE_* of the recount
    channel_top: tuple[tuple[str, int], ...]  # the channel's categorized videos per domain
    channel_videos: int  # stream videos in the channel

    @property
    def still_tied(self) -> bool:
        """True when the recount still has several domains on top."""
        return len(self.top_domains) > 1

    def domain_options(self) -> tuple[str, ...]:
        """All domains for the choice: the top (tied) domains first, then the others."""
        rest = tuple(d for d in DOMAINS if d not in self.top_domains)
        return (*self.top_domains, *rest)

    def as_json(self) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "title": self.title,
            "filename": self.filename,
            "channel": self.channel,
            "path": self.path,
            "watch_url": self.watch_url,
            "video_id": self.video_id,
            "path_problem": self.path_problem,
            "fallback_domain": self.fallback_domain,
            "fallback_pushed": False,
            "assigned_at": self.assigned_at,
            "concept_counts": [{"domain": d, "concepts": n} for d, n in self.counts],
            "tied_domains": list(self.top_domains),
            "still_tied": self.still_tied,
            "concept_state": self.concept_state,
            "channel_top_domains": [{"domain": d, "videos": n} for d, n in self.channel_top],
            "channel_videos": self.channel_videos,
            "domain_options": list(self.domain_options()),
        }


@dataclass(frozen=True)
class Assignment:
    """A manual assignment just written, ready to push."""

    candidate: PushCandidate
    title: str
    category_id: int


def _link_target(path: str | None) -> str | None:
    """The path if it is an absolute http(s) URL; anything else is never made a link."""
    if not path:
        return None
    parts = urlsplit(path.strip())
    if parts.scheme.lower() in ("http", "https") and parts.netloc:
        return path.strip()
    return None


# The orders of the list (keys of the store's TIED_ORDERS) as the page labels them.
SORTS: dict[str, str] = {
    "channel": "Channel, then title",
    "title": "Title",
    "oldest": "Tied longest ago",
    "newest": "Tied most recently",
}
PER_PAGE = 50
MAX_PER_PAGE = 200
MAX_NUMBER = 999_999_999  # the largest page (or per_page) a query may ask for
_NUMBER = re.compile(rf"[0-9]{{1,{len(str(MAX_NUMBER))}}}")


@dataclass(frozen=True)
class ReviewQuery:
    """Which tied videos to show: a channel filter, an order and a page."""

    channel: str | None = None
    sort: str = "channel"
    page: int = 1
    per_page: int = PER_PAGE

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> ReviewQuery:
        """From URL query parameters; ReviewError (with what is allowed) for bad values."""
        sort = params.get("sort") or "channel"
        if sort not in SORTS:
            raise ReviewError(f"unknown sort {sort!r}; use one of {', '.join(SORTS)}.")
        numbers = {}
        for name, default in (("page", 1), ("per_page", PER_PAGE)):
            raw = params.get(name) or str(default)
            # ASCII digits only: str.isdigit and int() also take '²' or '٣'.
            if not _NUMBER.fullmatch(raw) or int(raw) < 1:
                raise ReviewError(
                    f"{name} must be a whole number from 1 to {MAX_NUMBER:,} in digits 0-9, "
                    f"not {raw!r}."
                )
            numbers[name] = int(raw)
        return cls(
            channel=params.get("channel") or None,
            sort=sort,
            page=numbers["page"],
            per_page=min(numbers["per_page"], MAX_PER_PAGE),
        )

    def params(self, **changes: Any) -> dict[str, str]:
        """Query parameters for a link to this view (with changes), defaults left out."""
        q = replace(self, **changes)
        out = {"channel": q.channel or "", "sort": q.sort, "page": str(q.page),
               "per_page": str(q.per_page)}
        defaults = {"channel": "", "sort": "channel", "page": "1", "per_page": str(PER_PAGE)}
        return {k: v for k, v in out.items() if v != defaults[k]}


@dataclass(frozen=True)
class TiedPage:
    """One page of tied videos plus what the header and the filter need."""

    videos: list[TiedVideo]
    query: ReviewQuery  # page clamped to the pages that exist
    total: int  # tied videos matching the filter
    pages: int
    channels: tuple[tuple[str, int], ...]  # every channel with tied videos, and how many
    status_counts: dict[str, int]  # every stream document's status (unassigned included)


def tied_page(
    store: ReconStore,
    concepts_root: Path,
    query: ReviewQuery | None = None,
    *,
    max_window_file_mb: float = DEFAULTS.max_window_file_mb,
) -> TiedPage:
    """One page of the store's tied_manual stream videos with fresh concept counts.

    Only the page's rows are read from disk (thousands of tied videos stay fast): the list
    is ordered and cut in SQL, then each row's concept folder is recounted.
    """
    query = query or ReviewQuery()
    channels = store.tied_channels()
    total = store.tied_count(query.channel)
    pages = max(1, -(-total // query.per_page))
    query = replace(query, page=min(query.page, pages))
    rows = store.tied_rows(
        query.sort, query.per_page, (query.page - 1) * query.per_page, query.channel
    )
    contexts: dict[str | None, tuple[tuple[tuple[str, int], ...], int]] = {}
    videos = []
    for row in rows:
        if row.channel not in contexts:  # once per channel per page
            contexts[row.channel] = (
                store.channel_context(row.channel, CHANNEL_TOP_N)
                if row.channel is not None
                else ((), 0)
            )
        videos.append(
            _tied_video(row, concepts_root, max_window_file_mb, *contexts[row.channel])
        )
    return TiedPage(
        videos=videos,
        query=query,
        total=total,
        pages=pages,
        channels=channels,
        status_counts=store.status_counts(),
    )


def _tied_video(
    row: TiedRow,
    concepts_root: Path,
    max_window_file_mb: float,
    channel_top: tuple[tuple[str, int], ...],
    channel_size: int,
) -> TiedVideo:
    try:
        recount = read_domain_counts(concepts_root, row.hash, max_file_mb=max_window_file_mb)
        counts = tuple(sorted(recount.counts.items(), key=lambda kv: (-kv[1], kv[0])))
        state = recount.state
    except UnsafeHashError as exc:
        counts, state = (), f"not read: {exc}"
    top = counts[0][1] if counts else 0
    parsed = parse_watch_url(row.path)
    return TiedVideo(
        hash=row.hash,
        title=str(row.title).strip(),
        filename=row.filename,
        channel=row.channel,
        path=row.path,
        watch_url=_link_target(row.path),
        video_id=parsed.video_id,
        path_problem=parsed.reason,
        fallback_domain=row.fallback_domain,
        assigned_at=row.assigned_at,
        counts=counts,
        top_domains=tuple(d for d, n in counts if n == top) if counts else (),
        concept_state=state,
        channel_top=channel_top,
        channel_videos=channel_size,
    )


def assign_domain(
    store: ReconStore, doc_hash: str, domain: str, *, now: str | None = None
) -> Assignment:
    """Record a human's choice: tied_manual → manual_assigned with `domain`.

    Raises ReviewError (nothing written) when domain is not a RECON domain or doc_hash is
    not a tied_manual stream document of the store's source (e.g. already assigned in
    another tab).
    """
    if not is_domain(domain):
        raise ReviewError(
            f"{domain!r} is not one of the {len(DOMAINS)} RECON domains; choose one from the list."
        )
    if not doc_hash:
        raise ReviewError("no video hash in the form; reload the review page and try again.")
    target = store.review_target(doc_hash)
    if target is None:
        raise ReviewError(
            f"no stream video with hash {doc_hash!r} (source {store.source}); reload the "
            "review page."
        )
    status = target.status
    if status != Status.TIED_MANUAL:
        raise ReviewError(
            f"video {doc_hash!r} is {status or 'unassigned'!s}, not tied_manual: only tied "
            "videos are assigned here (it may have been assigned already; reload the page)."
        )
    stamp = now or utc_now()
    # Guarded like the passes' writes: a choice made meanwhile elsewhere is never overwritten.
    written = store.write_decisions(
        [DomainDecision(doc_hash, Status.MANUAL_ASSIGNED, domain)],
        now=stamp, only_from=(Status.TIED_MANUAL,),
    )
    if not written:
        raise ReviewError(
            f"video {doc_hash!r} changed status while being assigned (another tab or "
            "process); reload the page."
        )
    return Assignment(
        candidate=PushCandidate(doc_hash, target.path, domain, Status.MANUAL_ASSIGNED, stamp),
        title=str(target.title).strip(),
        category_id=category_id(domain),
    )

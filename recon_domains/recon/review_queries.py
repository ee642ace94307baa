"""What the review page (runbook Step 8) reads: the tied_manual stream videos, filtered,
ordered and cut into pages in SQL, and each channel's categorized context."""

from __future__ import annotations

from dataclasses import dataclass

from recon_domains.recon.connection import STREAM_FROM, StoreConnection, marks
from recon_domains.taxonomy import CATEGORIZED, Status

# Orders of the tied list by name; every order ends in the hash so pages never overlap.
TIED_ORDERS: dict[str, str] = {
    "channel": "c.category, title, d.hash",
    "title": "title, d.hash",
    "oldest": "d.recon_domain_assigned_at, d.hash",
    "newest": "d.recon_domain_assigned_at DESC, d.hash",
}
# The title a person recognises: RECON's book title when it has one, else a file name.
_TITLE = "COALESCE(NULLIF(TRIM(d.book_title), ''), c.filename, d.filename, d.hash) AS title"
_TIED = f"{STREAM_FROM} AND d.recon_domain_status = ?"


@dataclass(frozen=True)
class TiedRow:
    """One tied_manual stream document as stored."""

    hash: str
    title: str
    filename: str | None
    channel: str | None  # catalogue.category
    path: str | None  # catalogue.path: the watch URL
    fallback_domain: str | None  # display only: never pushed while tied_manual
    assigned_at: str | None


@dataclass(frozen=True)
class ReviewTarget:
    """A stream document the review page is asked to assign."""

    status: str | None
    path: str | None
    title: str


class ReviewQueries(StoreConnection):
    """The review page's reads, over the bound stream source."""

    def tied_channels(self) -> tuple[tuple[str, int], ...]:
        """Every channel with tied_manual videos and how many, by channel name."""
        rows = self.conn.execute(
            f"SELECT c.category, count(*) {_TIED} AND c.category IS NOT NULL "
            "GROUP BY 1 ORDER BY 1",
            (self.source, Status.TIED_MANUAL),
        )
        return tuple((str(ch), int(n)) for ch, n in rows)

    def tied_count(self, channel: str | None = None) -> int:
        """tied_manual videos (of one channel, when given)."""
        where, args = self._tied_filter(channel)
        return int(self.conn.execute(f"SELECT count(*) {where}", args).fetchone()[0])

    def tied_rows(
        self, order: str, limit: int, offset: int, channel: str | None = None
    ) -> list[TiedRow]:
        """One page of tied_manual videos in one of TIED_ORDERS."""
        if order not in TIED_ORDERS:
            raise ValueError(f"unknown order {order!r}; expected one of {', '.join(TIED_ORDERS)}")
        where, args = self._tied_filter(channel)
        rows = self.conn.execute(
            f"SELECT d.hash, {_TITLE}, COALESCE(c.filename, d.filename) AS filename, "
            f"c.category, c.path, d.recon_domain, d.recon_domain_assigned_at {where} "
            f"ORDER BY {TIED_ORDERS[order]} LIMIT ? OFFSET ?",
            (*args, int(limit), int(offset)),
        )
        return [TiedRow(*row) for row in rows]

    def _tied_filter(self, channel: str | None) -> tuple[str, tuple[str, ...]]:
        if channel is None:
            return _TIED, (self.source, Status.TIED_MANUAL)
        return f"{_TIED} AND c.category = ?", (self.source, Status.TIED_MANUAL, channel)

    def channel_context(
        self, channel: str, top_n: int
    ) -> tuple[tuple[tuple[str, int], ...], int]:
        """(the channel's `top_n` categorized domains with their video counts, its size in
        stream videos): grouped in SQL, never a recount of the channel's concept files."""
        statuses = sorted(CATEGORIZED)
        rows = self.conn.execute(
            f"SELECT d.recon_domain, count(*) {STREAM_FROM} AND c.category = ? "
            f"AND d.recon_domain_status IN ({marks(len(statuses))}) "
            "AND d.recon_domain IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?",
            (self.source, channel, *statuses, int(top_n)),
        ).fetchall()
        size = self.conn.execute(
            f"SELECT count(*) {STREAM_FROM} AND c.category = ?", (self.source, channel)
        ).fetchone()[0]
        return tuple((str(d), int(n)) for d, n in rows), int(size)

    def review_target(self, doc_hash: str) -> ReviewTarget | None:
        """The stream document `doc_hash` (its domain status, watch URL and title), or None
        when the bound source has no such document."""
        row = self.conn.execute(
            f"SELECT d.recon_domain_status, c.path, {_TITLE} {STREAM_FROM} AND d.hash = ?",
            (self.source, doc_hash),
        ).fetchone()
        return None if row is None else ReviewTarget(*row)

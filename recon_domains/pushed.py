"""What we pushed, and what PeerTube shows for it: the comparison behind stage
verification (Step 5), Step 6, the steady state's read-back and the drift check.

Exactly the videos we pushed are compared (by UUID), never PeerTube's whole instance: once
the plugin is installed, uploaders pick RECON categories in PeerTube's upload form and
admins set them by hand, and those videos are not ours to judge. They are reported
(`outside`), not counted against us.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from recon_domains.peertube.categories import PeerTubeCategories
from recon_domains.peertube.urls import canonical_video_id, parse_watch_url
from recon_domains.recon.store import ReconStore
from recon_domains.taxonomy import DOMAIN_IDS

MISSING = "(video no longer in PeerTube)"  # what reports show for a deleted pushed video


@dataclass(frozen=True)
class PushedVideo:
    """One video as we pushed it: its UUID, its RECON document and the category we set."""

    uuid: str
    hash: str
    category: int | None


def pushed_videos(store: ReconStore) -> tuple[dict[str, PushedVideo], int]:
    """``{uuid: PushedVideo}`` for the stream's documents marked pushed, and how many of them
    name no video.

    The video and category are the push ledger's (its latest completed push of the document
    not restored since), else, for a document pushed without a ledger row, its watch URL's
    video and its domain's category. Ledger ids may be short UUIDs or UUIDs: canonical here.
    """
    latest = {}
    if store.has_ledger():
        for row in store.ledger():  # oldest first: a later push wins
            if row.pushed_at is not None and row.restored_at is None:
                latest[row.hash] = row
    videos: dict[str, PushedVideo] = {}
    unparsable = 0
    for doc in store.pushed_documents():
        row = latest.get(doc.hash)
        if row is not None:
            uuid, category = canonical_video_id(row.video_id), row.category_after
        else:
            uuid, category = parse_watch_url(doc.path).video_id, DOMAIN_IDS.get(doc.domain)
        if uuid is None:
            unparsable += 1
            continue
        videos[uuid] = PushedVideo(uuid, doc.hash, category)
    return videos, unparsable


@dataclass(frozen=True)
class PushedComparison:
    """The pushed videos beside what PeerTube shows now, and the videos outside RECON."""

    pushed: Mapping[str, PushedVideo]  # uuid -> what we pushed
    now: Mapping[str, int | None]  # uuid -> PeerTube's category now; a deleted video absent
    outside: Mapping[str, int]  # uuid -> RECON category of a video we did not push
    unparsable: int  # pushed documents naming no video
    source: str  # where PeerTube's side was read

    @property
    def matching(self) -> list[PushedVideo]:
        return [v for u, v in sorted(self.pushed.items()) if self.now.get(u, -1) == v.category]

    @property
    def changed(self) -> list[tuple[PushedVideo, int | None]]:
        """(what we pushed, PeerTube's category now) of each video showing another."""
        return [
            (v, self.now[u])
            for u, v in sorted(self.pushed.items())
            if u in self.now and self.now[u] != v.category
        ]

    @property
    def missing(self) -> list[PushedVideo]:
        """Pushed videos PeerTube no longer has."""
        return [v for u, v in sorted(self.pushed.items()) if u not in self.now]

    def by_category(self) -> dict[int, tuple[int, int, int]]:
        """category -> (videos we pushed it to, of those showing it now, videos outside
        RECON carrying it)."""
        pushed = Counter(v.category for v in self.pushed.values() if v.category is not None)
        showing = Counter(v.category for v in self.matching if v.category is not None)
        outside = Counter(self.outside.values())
        return {
            c: (pushed[c], showing[c], outside[c])
            for c in sorted(set(pushed) | set(outside))
        }


def compare_pushed(store: ReconStore, categories: PeerTubeCategories) -> PushedComparison:
    """Every pushed video against PeerTube now: the videos carrying RECON categories in one
    read (a query, or the API's pages), then the few pushed videos not among them read one
    by one (to tell another category from a deleted video)."""
    pushed, unparsable = pushed_videos(store)
    listed = categories.recon_videos()
    now: dict[str, int | None] = {u: listed[u] for u in pushed if u in listed}
    elsewhere = [u for u in pushed if u not in listed]
    if elsewhere:
        now.update(categories.categories_of(elsewhere))
    outside = {u: c for u, c in listed.items() if u not in pushed}
    return PushedComparison(pushed, now, outside, unparsable, categories.source)

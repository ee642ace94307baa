"""PeerTube's categories as the migration sees them: the plugin's ids among the registered
ones, how they compare with the taxonomy, and the one port through which every step reads
the videos' categories (`PeerTubeCategories`).

The port has two implementations, chosen once (`peertube_categories`): PeerTube's own
PostgreSQL when a DSN is configured (one query per read), else its API with the admin token
(`GET /api/v1/videos` counts and pages, PEERTUBE-FACTS "Counting videos by category"). Every
caller (the push's category-before read, stage verification, Step 6, drift, the rollbacks)
gets the same answers from either.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from recon_domains.peertube.client import PeerTubeClient, PeerTubeError, PeerTubeNotFound
from recon_domains.peertube.window import read_categories
from recon_domains.taxonomy import DOMAIN_BY_ID, FIRST_CATEGORY_ID, LAST_CATEGORY_ID

if TYPE_CHECKING:  # psycopg2 is loaded only where the database is used
    from recon_domains.peertube.database import PeerTubeDatabase

RECON_IDS = range(FIRST_CATEGORY_ID, LAST_CATEGORY_ID + 1)
PAGE_SIZE = 100  # the most GET /api/v1/videos gives per page
LISTING_ATTEMPTS = 3  # a listing that keeps changing under us is read again this often


def recon_categories(categories: Mapping[int, str]) -> dict[int, str]:
    """The RECON categories (the taxonomy's id range) among PeerTube's registered `categories`."""
    return {
        i: label for i, label in categories.items() if FIRST_CATEGORY_ID <= i <= LAST_CATEGORY_ID
    }


def category_problems(categories: Mapping[int, str]) -> list[str]:
    """How PeerTube's registered `categories` differ from the taxonomy's, in id order
    ("101 missing", "102 is 'X', expected 'Y'"); empty when all match."""
    problems = []
    for cid, label in sorted(DOMAIN_BY_ID.items()):
        got = categories.get(cid)
        if got is None:
            problems.append(f"{cid} missing")
        elif got != label:
            problems.append(f"{cid} is {got!r}, expected {label!r}")
    return problems


@dataclass(frozen=True)
class Uncategorized:
    """How many PeerTube videos have no category, and how that was counted."""

    count: int
    counted_as: str


class PeerTubeCategories(ABC):
    """Reads of PeerTube's video categories (never writes): the port every step uses."""

    source: str  # where the answers come from, for messages and metadata

    @abstractmethod
    def histogram(self) -> dict[int, int]:
        """``{category: videos}`` for the RECON categories (100–117) that have videos."""

    @abstractmethod
    def uncategorized(self) -> Uncategorized:
        """The videos without a category."""

    @abstractmethod
    def categories_of(self, video_ids: Iterable[str]) -> dict[str, int | None]:
        """``{video id: category or None}`` for the given UUIDs, keyed as given; a video
        PeerTube does not have is absent (so "missing" differs from "no category")."""

    @abstractmethod
    def recon_videos(self) -> dict[str, int]:
        """``{uuid: category}`` of every video carrying a RECON category (100–117)."""


class DatabaseCategories(PeerTubeCategories):
    """The port over PeerTube's PostgreSQL: one read-only query per read."""

    source = "PeerTube's database"

    def __init__(self, database: PeerTubeDatabase) -> None:
        self.database = database

    def histogram(self) -> dict[int, int]:
        return {
            c: n for c, n in self.database.category_histogram(FIRST_CATEGORY_ID).items()
            if c in RECON_IDS
        }

    def uncategorized(self) -> Uncategorized:
        return Uncategorized(self.database.uncategorized_count(), "category IS NULL")

    def categories_of(self, video_ids: Iterable[str]) -> dict[str, int | None]:
        return self.database.categories_of(video_ids)

    def recon_videos(self) -> dict[str, int]:
        return self.database.videos_in_categories(FIRST_CATEGORY_ID, LAST_CATEGORY_ID)


class ApiCategories(PeerTubeCategories):
    """The port over PeerTube's API with an admin token, for a PeerTube whose database this
    machine cannot reach: counts are `count=0` listings, the RECON videos are paged
    (100 a page, no per-video GET); only `categories_of` reads one video per GET,
    up to `client.pool_size` at a time under flow control."""

    source = "PeerTube's API"

    def __init__(self, client: PeerTubeClient) -> None:
        self.client = client

    def histogram(self) -> dict[int, int]:
        counts = {c: self.client.list_videos([c])[0] for c in RECON_IDS}
        return {c: n for c, n in counts.items() if n}

    def uncategorized(self) -> Uncategorized:
        total, _ = self.client.list_videos()
        registered, _ = self.client.list_videos(sorted(self.client.categories()))
        return Uncategorized(
            total - registered,
            "all videos minus those with a registered category (PeerTube's API cannot "
            "count a NULL category; a video on an id no longer registered counts here too)",
        )

    def categories_of(self, video_ids: Iterable[str]) -> dict[str, int | None]:
        found: dict[str, int | None] = {}
        for vid, answer in read_categories(self.client, video_ids).items():
            if isinstance(answer, PeerTubeNotFound):
                continue  # a video PeerTube lacks is left out
            if isinstance(answer, Exception):
                raise answer
            found[vid] = answer
        return found

    def recon_videos(self) -> dict[str, int]:
        totals: list[int] = []
        for _ in range(LISTING_ATTEMPTS):
            listed, total = self._list_recon_videos()
            if total is not None and len(listed) == total:
                return listed
            totals.append(len(listed) if total is None else total)
        raise PeerTubeError(
            "the videos carrying RECON categories kept changing while PeerTube's API listed "
            f"them ({LISTING_ATTEMPTS} attempts, totals {totals}): run this step again when "
            "uploads and edits are quieter, or set PEERTUBE_DB_DSN to read PeerTube's database"
        )

    def _list_recon_videos(self) -> tuple[dict[str, int], int | None]:
        """One pass over the pages: the videos seen and the total, None when the total
        changed between pages (an upload or an edit: the pages may have shifted)."""
        listed: dict[str, int] = {}
        total, page = self.client.list_videos(RECON_IDS, count=PAGE_SIZE)
        start = 0
        while True:
            for video in page:
                category = (video.get("category") or {}).get("id")
                if category is not None:
                    listed[str(video["uuid"]).lower()] = int(category)
            start += len(page)
            if not page or start >= total:
                return listed, total
            again, page = self.client.list_videos(RECON_IDS, start=start, count=PAGE_SIZE)
            if again != total:
                return listed, None


def peertube_categories(
    client: PeerTubeClient, database: PeerTubeDatabase | None
) -> PeerTubeCategories:
    """The port, chosen once: PeerTube's database when there is one, else its API."""
    return DatabaseCategories(database) if database is not None else ApiCategories(client)

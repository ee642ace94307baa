"""PeerTube's categories as the migration sees them: the plugin's ids among the registered
ones, how they compare with the taxonomy, and the category each video has now."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from recon_domains.peertube.client import PeerTubeNotFound
from recon_domains.settings import DEFAULTS
from recon_domains.taxonomy import DOMAIN_BY_ID, FIRST_CATEGORY_ID, LAST_CATEGORY_ID


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


def read_current_categories(
    video_ids: Sequence[str],
    client: Any = None,
    pt_db: Any = None,
    *,
    concurrency: int = DEFAULTS.peertube.push_max_in_flight,
) -> dict[str, int | None]:
    """{video_id: category} for videos that exist (a missing video is absent): one query on
    PeerTube's database when given, else one API GET per video, `concurrency` at a time."""
    if pt_db is not None:
        return pt_db.categories_of(video_ids)
    if client is None:
        raise ValueError("need PeerTube's database or an API client to read categories")

    def read(vid: str) -> tuple[str, int | None, bool]:
        try:
            return vid, client.video_category(vid), True
        except PeerTubeNotFound:
            return vid, None, False

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        return {vid: cat for vid, cat, found in pool.map(read, video_ids) if found}

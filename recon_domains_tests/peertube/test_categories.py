"""PeerTube's categories against the taxonomy, and the port that reads the videos'
categories (PeerTubeCategories): its database and API implementations against the same
sandbox PeerTube (over HTTP) and its PostgreSQL, giving the same answers."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from recon_domains.peertube.categories import (
    ApiCategories,
    DatabaseCategories,
    PeerTubeCategories,
    category_problems,
    peertube_categories,
    recon_categories,
)
from recon_domains.peertube.client import PeerTubeClient, PeerTubeError
from recon_domains.peertube.database import PeerTubeDatabase
from recon_domains.taxonomy import (
    DOMAIN_BY_ID,
    FIRST_CATEGORY_ID,
    LAST_CATEGORY_ID,
    PEERTUBE_BUILT_IN_CATEGORIES,
)
from recon_domains_tests.rollback_world import PLUGIN_DIR

# PeerTube's privacies: public, unlisted, private, internal, password-protected.
PRIVACIES = (1, 2, 3, 4, 5)
RECON_VIDEOS = 230  # more than two pages of 100


def test_recon_categories_are_the_taxonomy_id_range_only() -> None:
    first, last = FIRST_CATEGORY_ID, LAST_CATEGORY_ID
    registered = {
        **PEERTUBE_BUILT_IN_CATEGORIES, first - 1: "Other", first: "A", last: "B", last + 1: "C"
    }
    assert recon_categories(registered) == {first: "A", last: "B"}
    assert recon_categories(PEERTUBE_BUILT_IN_CATEGORIES) == {}


def test_category_problems_name_each_missing_or_wrong_id_in_order() -> None:
    assert category_problems({**PEERTUBE_BUILT_IN_CATEGORIES, **DOMAIN_BY_ID}) == []
    registered = {**DOMAIN_BY_ID, 102: "Comms"}
    del registered[101]
    assert category_problems(registered) == [
        "101 missing",
        "102 is 'Comms', expected 'Communications'",
    ]
    assert len(category_problems(PEERTUBE_BUILT_IN_CATEGORIES)) == len(DOMAIN_BY_ID)


@pytest.fixture(scope="module")
def videos(peertube_module_server) -> dict[str, int | None]:
    """{uuid: category} of a PeerTube holding every kind of video an admin sees: no
    category, built-in ones, RECON ones over more than two pages, in every privacy, some
    NSFW, some not published yet (still transcoding)."""
    server = peertube_module_server
    server.install_plugin(PLUGIN_DIR)
    made: dict[str, int | None] = {}
    categories: list[int | None] = [None] * 7 + [15, 1, 13] + [
        FIRST_CATEGORY_ID + i % len(DOMAIN_BY_ID) for i in range(RECON_VIDEOS)
    ]
    for i, category in enumerate(categories):
        row = server.add_video(f"video {i}", category=category, privacy=PRIVACIES[i % 5])
        made[row["uuid"]] = category
    recon = [u for u, c in made.items() if c is not None and c >= FIRST_CATEGORY_ID]
    server.store.execute("UPDATE video SET nsfw = true WHERE uuid = ANY(%s::uuid[])",
                         (recon[:9],))
    server.store.execute(
        'UPDATE video SET state = 2, "waitTranscoding" = true WHERE uuid = ANY(%s::uuid[])',
        ([*recon[9:14], next(u for u, c in made.items() if c is None)],),
    )
    return made


@pytest.fixture(scope="module")
def client(peertube_module_server) -> Iterator[PeerTubeClient]:
    server = peertube_module_server
    with PeerTubeClient(server.url, server.admin_username, server.admin_password) as c:
        yield c


@pytest.fixture(params=["database", "api"])
def port(request, peertube_module_server, client, videos) -> PeerTubeCategories:
    database = PeerTubeDatabase(peertube_module_server.dsn)
    chosen = peertube_categories(client, database if request.param == "database" else None)
    assert isinstance(chosen, DatabaseCategories if request.param == "database" else ApiCategories)
    return chosen


def test_both_implementations_give_the_same_answers(port, videos) -> None:
    recon = {u: c for u, c in videos.items() if c is not None and c >= FIRST_CATEGORY_ID}
    assert len(recon) == RECON_VIDEOS
    assert port.recon_videos() == recon
    assert port.histogram() == dict(Counter(recon.values()))
    uncategorized = port.uncategorized()
    assert uncategorized.count == sum(1 for c in videos.values() if c is None) == 7
    assert uncategorized.counted_as

    some = [*list(videos)[:12], *list(recon)[:5]]
    gone = str(uuid.uuid4())
    assert port.categories_of([*some, gone]) == {u: videos[u] for u in some}
    assert port.categories_of([]) == {}


def test_the_api_counts_a_video_on_an_unregistered_id_as_uncategorized_and_says_so(
    peertube_module_server, client, videos
) -> None:
    server = peertube_module_server
    orphan = server.add_video("orphaned category", category=205)["uuid"]
    try:
        api = ApiCategories(client).uncategorized()
        db = DatabaseCategories(PeerTubeDatabase(server.dsn)).uncategorized()
        assert (api.count, db.count) == (8, 7)
        assert "registered category" in api.counted_as and "NULL" in api.counted_as
        assert db.counted_as == "category IS NULL"
    finally:
        server.store.execute("DELETE FROM video WHERE uuid = %s", (orphan,))


class _EditedWhileListed(PeerTubeClient):
    """A client after each of whose first pages someone (an uploader, an admin) sets a RECON
    category on another video: `edits` times."""

    def __init__(self, server: Any, edits: int) -> None:
        super().__init__(server.url, server.admin_username, server.admin_password)
        self.server, self.edits, self.added = server, edits, []

    def list_videos(self, category_ids=(), *, start=0, count=0):
        answer = super().list_videos(category_ids, start=start, count=count)
        if count and start == 0 and len(self.added) < self.edits:
            self.added.append(
                self.server.add_video("set during the listing", category=LAST_CATEGORY_ID)["uuid"]
            )
        return answer


def test_a_listing_that_changes_while_paged_is_read_again(peertube_module_server, videos):
    server = peertube_module_server
    with _EditedWhileListed(server, edits=1) as edited:
        listed = ApiCategories(edited).recon_videos()
        assert edited.added and set(edited.added) <= set(listed)  # the second pass saw it
        assert len(listed) == RECON_VIDEOS + 1
    with _EditedWhileListed(server, edits=10) as restless, pytest.raises(
        PeerTubeError, match="kept changing while PeerTube's API listed them"
    ):
        ApiCategories(restless).recon_videos()
    for added in [*edited.added, *restless.added]:
        server.store.execute("DELETE FROM video WHERE uuid = %s", (added,))

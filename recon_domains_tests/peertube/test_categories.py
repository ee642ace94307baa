"""PeerTube's categories against the taxonomy, and reading videos' categories back (sandbox
PeerTube over HTTP and its PostgreSQL)."""

from __future__ import annotations

import uuid

import pytest

from recon_domains.peertube.categories import (
    category_problems,
    read_current_categories,
    recon_categories,
)
from recon_domains.peertube.client import PeerTubeClient
from recon_domains.peertube.database import PeerTubeDatabase
from recon_domains.taxonomy import (
    DOMAIN_BY_ID,
    FIRST_CATEGORY_ID,
    LAST_CATEGORY_ID,
    PEERTUBE_BUILT_IN_CATEGORIES,
)


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


def test_read_current_categories_through_the_api_or_the_database(peertube_server) -> None:
    plain = peertube_server.add_video("no category")["uuid"]
    music = peertube_server.add_video("music", category=1)["uuid"]
    gone = str(uuid.uuid4())
    want = {plain: None, music: 1}
    with PeerTubeClient(
        peertube_server.url, peertube_server.admin_username, peertube_server.admin_password
    ) as client:
        assert read_current_categories([plain, music, gone], client=client) == want
    pt_db = PeerTubeDatabase(peertube_server.dsn)
    assert read_current_categories([plain, music, gone], pt_db=pt_db) == want
    with pytest.raises(ValueError, match="database or an API client"):
        read_current_categories([plain])

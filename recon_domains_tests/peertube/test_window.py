"""Reads in the flow's window (recon_domains.peertube.window.read_categories): every video's
category through the API, concurrently, never above the ceiling, a failed read kept as that
video's error. Against the sandbox PeerTube over HTTP."""

from __future__ import annotations

import uuid

from recon_domains.peertube.client import PeerTubeClient, PeerTubeNotFound
from recon_domains.peertube.window import read_categories
from recon_domains.taxonomy import FIRST_CATEGORY_ID


def _client(server, pool_size: int) -> PeerTubeClient:
    return PeerTubeClient(server.url, server.admin_username, server.admin_password,
                          pool_size=pool_size)


def test_read_categories_reads_each_video_concurrently_within_the_ceiling(
    peertube_server_factory,
) -> None:
    # 4 places of 30 ms each: a ceiling of 3 must never fill all 4.
    server = peertube_server_factory(capacity=4, service_time_s=0.03)
    videos = {
        server.add_video(f"v{i}", category=(FIRST_CATEGORY_ID + i % 18) if i % 3 else None,
                         privacy=1 + i % 4)["uuid"]: (FIRST_CATEGORY_ID + i % 18) if i % 3
        else None
        for i in range(40)
    }
    with _client(server, pool_size=8) as client:
        client.login()
        server.app.peak_in_service = 0
        found = read_categories(client, list(videos), max_in_flight=3)
    assert found == videos
    # Concurrent (more than one at once), never above the ceiling.
    assert 2 <= server.app.peak_in_service <= 3


def test_a_failed_read_is_that_videos_error_and_the_others_are_read(peertube_server) -> None:
    present = peertube_server.add_video("here", category=FIRST_CATEGORY_ID + 4)["uuid"]
    missing = str(uuid.uuid4())
    with _client(peertube_server, pool_size=2) as client:
        found = read_categories(client, [missing, present, present])
    assert found[present] == FIRST_CATEGORY_ID + 4
    assert isinstance(found[missing], PeerTubeNotFound)
    assert len(found) == 2  # a video asked twice is read once

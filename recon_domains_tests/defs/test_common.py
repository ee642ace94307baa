"""Metadata helpers of the Dagster layer (recon_domains.defs.common)."""

from __future__ import annotations

import dagster as dg

from recon_domains.defs.common import review_metadata


def test_review_metadata_points_to_the_review_page_when_videos_await():
    meta = review_metadata({"assigned": 40, "tied_manual": 3}, "http://review.example:9999/")
    assert meta["awaiting_review"] == 3
    assert meta["review_url"] == dg.MetadataValue.url("http://review.example:9999/")
    assert meta["review_next_step"] == (
        "3 tied video(s) await review: run `recon-domains review` and open "
        "http://review.example:9999/ to assign them."
    )


def test_review_metadata_says_none_await():
    meta = review_metadata({"assigned": 40, "tied_pass_2": 2}, "http://127.0.0.1:8765/")
    assert meta["awaiting_review"] == 0
    assert meta["review_next_step"] == "No tied videos await review."

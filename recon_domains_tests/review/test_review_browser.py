"""The review page in a real headless Chromium, after a migration on the sandbox.

Debian's chromium (/usr/bin/chromium, or RECON_CHROMIUM), driven by Playwright for Python;
no browser is ever downloaded. Where Chromium is absent the test is skipped with the reason,
unless RECON_REQUIRE_BROWSER=1 (set by .ci/run, which installs Chromium) makes that a failure.

RECON_REVIEW_SCREENSHOT=path saves the screenshot the README shows:
    RECON_REVIEW_SCREENSHOT=docs/review-page.png .venv/bin/pytest -k browser
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2
import pytest

from recon_domains.assignment import run_pass1, run_tiebreaker
from recon_domains.peertube.client import PeerTubeClient
from recon_domains.peertube.urls import uuid_to_short
from recon_domains.push import push_items
from recon_domains.recon.store import ReconStore
from recon_domains.review.server import RunningReview, make_push, start_review_server
from recon_domains.sandbox.corpus import DEFAULT_STREAM_SOURCE, CorpusSummary
from recon_domains.sandbox.peertube_server import RunningPeerTube
from recon_domains.taxonomy import DOMAIN_IDS  # checked against SPEC §3 and the plugin
from recon_domains_tests.review.test_review import EVIL_CHANNEL, EVIL_FILE, build_recon

CHROMIUM = Path(os.environ.get("RECON_CHROMIUM", "/usr/bin/chromium"))
# Without the background-networking flag Chromium keeps dialling Google on a closed network.
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PLUGIN_DIR = (
    Path(__file__).resolve().parents[2] / "peertube-plugin" / "peertube-plugin-recon-domains"
)
SOURCE = DEFAULT_STREAM_SOURCE


def _require_browser() -> None:
    missing = None
    if not CHROMIUM.exists():
        missing = f"Chromium not found at {CHROMIUM} (apt-get install chromium; .ci/run does)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "Playwright for Python is not installed (pip install -e '.[dev]')"
    if missing:
        if os.environ.get("RECON_REQUIRE_BROWSER") == "1":
            pytest.fail(f"RECON_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)


@dataclass
class Migrated:
    db: Path
    concepts: Path
    peertube: RunningPeerTube
    review: RunningReview


def _sql(db: Path, query: str, *args: object) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(query, args).fetchall()


@pytest.fixture
def migrated(
    corpus_factory: Callable[..., CorpusSummary], peertube_server: RunningPeerTube
) -> Iterator[Migrated]:
    """Pass 1, the tiebreaker and the push of every categorized video, then the review page
    (pushing through the real engine) over that RECON and the sandbox PeerTube."""
    _require_browser()
    corpus = corpus_factory(docs=400, seed=7)
    db, concepts = corpus.recon_db, corpus.concepts_dir
    peertube_server.seed_videos_from_recon(db, SOURCE)
    client = PeerTubeClient(
        peertube_server.url, peertube_server.admin_username, peertube_server.admin_password
    )
    client.install_plugin(str(PLUGIN_DIR))
    with ReconStore.open(db) as store:
        store.migrate()
        run_pass1(store, concepts, SOURCE)
        run_tiebreaker(store, concepts, SOURCE)
        pushed = push_items(store, client, store.unpushed_categorized(SOURCE), stage="stage-3")
        assert not pushed.failed and not pushed.aborted
    try:
        with start_review_server(db, concepts, SOURCE, push=make_push(client)) as review:
            yield Migrated(db, concepts, peertube_server, review)
    finally:
        client.close()


def test_an_operator_assigns_a_tied_video_in_chromium(migrated: Migrated) -> None:
    from playwright.sync_api import expect, sync_playwright

    db = migrated.db
    stream = ("FROM documents d JOIN catalogue c ON c.hash = d.hash "
              "WHERE c.source = ? AND d.recon_domain_status = ?")
    tied_before = _sql(db, f"SELECT count(*) {stream}", SOURCE, "tied_manual")[0][0]
    manual_before = _sql(db, f"SELECT count(*) {stream}", SOURCE, "manual_assigned")[0][0]
    assert tied_before > 0, "the corpus should leave some videos tied for a human"

    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            # A console error would be e.g. a Content-Security-Policy violation.
            page.on("console", lambda m: m.type == "error" and problems.append(m.text))
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(migrated.review.url)

            chip = page.locator('[data-status="tied_manual"] b')
            expect(chip).to_have_text(f"{tied_before:,}")
            rows = page.locator("tbody tr")
            assert rows.count() == min(tied_before, 50)

            # Filter by the first row's channel: every row shown is of that channel.
            channel = rows.first.locator(".channel").inner_text()
            page.select_option('select[name="channel"]', channel)
            with page.expect_navigation():
                page.get_by_role("button", name="Show").click()
            channels = page.locator("tbody tr .channel").all_inner_texts()
            assert channels and set(channels) == {channel}

            # Back to every channel; take the first video that has a watch link, and choose
            # the last of its tied domains: never the (alphabetical) fallback.
            page.select_option('select[name="channel"]', "")
            with page.expect_navigation():
                page.get_by_role("button", name="Show").click()
            link = page.get_by_role("link", name="watch on PeerTube")
            row = page.locator("tbody tr", has=link).first
            doc_hash = row.get_attribute("data-hash")
            tied = row.locator('optgroup[label="Tied"] option').all_inner_texts()
            assert len(tied) >= 2
            domain = tied[-1]
            fallback = row.locator(".fallback").inner_text()
            assert domain != fallback
            watch = row.get_by_role("link", name="watch on PeerTube").get_attribute("href")
            row.locator('select[name="domain"]').select_option(label=domain)
            row.get_by_role("button", name="Assign").click()

            flash = page.locator(".flash")
            expect(flash).to_contain_text(f"Assigned {domain} to")
            expect(flash).to_contain_text(f"Pushed to PeerTube (category {DOMAIN_IDS[domain]})")
            assert "error" not in (flash.get_attribute("class") or "")
            expect(page.locator(f'tr[data-hash="{doc_hash}"]')).to_have_count(0)
            expect(page.locator("tbody tr")).to_have_count(min(tied_before - 1, 50))
            expect(chip).to_have_text(f"{tied_before - 1:,}")
            expect(page.locator('[data-status="manual_assigned"] b')).to_have_text(
                f"{manual_before + 1:,}"
            )
            if shot := os.environ.get("RECON_REVIEW_SCREENSHOT"):
                page.screenshot(path=shot)
        finally:
            browser.close()
    assert problems == []

    # RECON's database: the human's choice, pushed, with its ledger row.
    [(status, recon_domain, pushed_at)] = _sql(
        db, "SELECT recon_domain_status, recon_domain, peertube_category_pushed_at "
        "FROM documents WHERE hash = ?", doc_hash,
    )
    assert (status, recon_domain) == ("manual_assigned", domain) and pushed_at
    [(video_id, stage, after, done)] = _sql(
        db, "SELECT video_id, stage, category_after, pushed_at FROM recon_domains_push_ledger "
        "WHERE hash = ? ORDER BY rowid", doc_hash,
    )
    assert (stage, after) == ("review", DOMAIN_IDS[domain]) and done
    # The link the operator saw is that very video (/w/<uuid> or /w/<short uuid>, or
    # /videos/watch/<id>; the corpus adds trailing slashes, queries and fragments on purpose).
    shown_id = urlsplit(watch).path.rstrip("/").rsplit("/", 1)[1]
    assert shown_id.lower() == video_id or shown_id == uuid_to_short(video_id)

    # The sandbox PeerTube: its API (as the admin: the anonymous rate limit is spent by now)
    # and its own table.
    peertube = migrated.peertube
    admin = PeerTubeClient(peertube.url, peertube.admin_username, peertube.admin_password)
    try:
        video = admin.get_video(video_id)
    finally:
        admin.close()
    assert video["category"] == {"id": DOMAIN_IDS[domain], "label": domain}
    with psycopg2.connect(peertube.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT category FROM video WHERE uuid = %s", (video_id,))
        assert cur.fetchall() == [(DOMAIN_IDS[domain],)]


def test_hostile_names_render_as_text_and_run_nothing(tmp_path: Path) -> None:
    """A channel named <script>alert(1)</script> and a file name that closes an attribute:
    Chromium shows them as text, and no script runs (no dialog, no CSP report)."""
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    db, concepts = build_recon(tmp_path)
    dialogs: list[str] = []
    problems: list[str] = []
    with start_review_server(db, concepts, SOURCE) as review, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = browser.new_page()
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("console", lambda m: m.type == "error" and problems.append(m.text))
            page.goto(review.url)
            row = page.locator('tr[data-hash="tie_evil"]')
            expect(row.locator(".channel")).to_have_text(EVIL_CHANNEL)
            expect(row.locator(".title")).to_have_text(EVIL_FILE)
            assert page.locator("script").count() == 0
            assert page.locator("img").count() == 0
            # The javascript: path is not a link; the other rows' watch links are.
            assert row.get_by_role("link").count() == 0
        finally:
            browser.close()
    assert dialogs == [] and problems == []

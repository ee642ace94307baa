"""The review page in a real headless Chromium, after a migration on the sandbox.

Debian's chromium (/usr/bin/chromium, or RECON_CHROMIUM), driven by Playwright for Python;
no browser is ever downloaded. Where Chromium is absent the test is skipped with the reason,
unless RECON_REQUIRE_BROWSER=1 (set by .ci/run, which installs Chromium) makes that a failure.

RECON_REVIEW_SCREENSHOT=path saves the screenshots the README shows, the wide one at path
and the narrow one beside it (docs/review-page-420.png):
    RECON_REVIEW_SCREENSHOT=docs/review-page.png .venv/bin/pytest -k browser
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
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

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path(os.environ.get("RECON_CHROMIUM", "/usr/bin/chromium"))
# Without the background-networking flag Chromium keeps dialling Google on a closed network.
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PLUGIN_DIR = (
    Path(__file__).resolve().parents[2] / "peertube-plugin" / "peertube-plugin-recon-domains"
)
SOURCE = DEFAULT_STREAM_SOURCE
WIDE, NARROW = 1280, 420  # a laptop's and a phone's viewport width, CSS px


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


@dataclass
class Assigned:
    """A tied video assigned from the page: its hash, the domain chosen, its watch link."""

    hash: str
    domain: str
    watch: str


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
    with ReconStore.open(db, SOURCE) as store:
        store.migrate()
        run_pass1(store, concepts)
        run_tiebreaker(store, concepts)
        pushed = push_items(store, client, store.unpushed_categorized(), stage="stage-3")
        assert not pushed.failed and not pushed.aborted
    try:
        with start_review_server(db, concepts, SOURCE, push=make_push(client)) as review:
            yield Migrated(db, concepts, peertube_server, review)
    finally:
        client.close()


def _assign_a_tied_video(page: Page, tied_before: int, manual_before: int) -> Assigned:
    """Assign the first video that has a watch link the last of its tied domains (never the
    alphabetical fallback) and check what the page says back."""
    from playwright.sync_api import expect

    link = page.get_by_role("link", name="watch on PeerTube")
    row = page.locator("tbody tr", has=link).first
    doc_hash = row.get_attribute("data-hash")
    tied = row.locator('optgroup[label="Tied"] option').all_inner_texts()
    assert doc_hash and len(tied) >= 2
    domain = tied[-1]
    fallback = row.locator(".fallback").inner_text()
    assert domain != fallback
    watch = row.get_by_role("link", name="watch on PeerTube").get_attribute("href")
    assert watch
    row.locator('select[name="domain"]').select_option(label=domain)
    row.get_by_role("button", name="Assign").click()

    flash = page.locator(".flash")
    expect(flash).to_contain_text(f"Assigned {domain} to")
    expect(flash).to_contain_text(f"Pushed to PeerTube (category {DOMAIN_IDS[domain]})")
    assert "error" not in (flash.get_attribute("class") or "")
    expect(page.locator(f'tr[data-hash="{doc_hash}"]')).to_have_count(0)
    expect(page.locator("tbody tr")).to_have_count(min(tied_before - 1, 50))
    expect(page.locator('[data-status="tied_manual"] b')).to_have_text(f"{tied_before - 1:,}")
    expect(page.locator('[data-status="manual_assigned"] b')).to_have_text(
        f"{manual_before + 1:,}"
    )
    return Assigned(doc_hash, domain, watch)


def _assert_usable_without_scrolling(page: Page, width: int) -> None:
    """Nothing is wider than the viewport; every row's domain choice and Assign button lie
    inside it, the button touch-sized; file names wrap in a few lines, not a character per
    line of a squeezed column."""
    scroll, client = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert client == width and scroll <= client, f"{scroll} px of page in a {client} px view"
    rows = page.locator("tbody tr").all()
    assert rows
    for row in rows:
        for control in (row.locator('select[name="domain"]'),
                        row.get_by_role("button", name="Assign")):
            box = control.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= client, (width, box)
        button = row.get_by_role("button", name="Assign").bounding_box()
        assert button and button["height"] >= (44 if width <= NARROW else 24), (width, button)
        title = row.locator(".title")
        line = float(title.evaluate("e => getComputedStyle(e).lineHeight").removesuffix("px"))
        box = title.bounding_box()
        assert box and box["height"] <= 3 * line + 1, (width, title.inner_text(), box)


def _assert_accessible_choice(page: Page, width: int) -> None:
    """The first row's domain choice is labelled for a screen reader, and a keyboard user
    sees a clear outline on it and on its Assign button."""
    from playwright.sync_api import expect

    first = page.locator("tbody tr").first
    name = f"Domain for {first.locator('.title').inner_text()}"
    expect(first.get_by_role("combobox", name=name)).to_have_count(1)
    page.keyboard.press("Tab")  # a key press: from here on focus is shown as for a keyboard
    for control in (first.get_by_role("combobox"), first.get_by_role("button", name="Assign")):
        control.focus()
        outline = control.evaluate(
            "e => [e.matches(':focus-visible'), getComputedStyle(e).outlineStyle, "
            "getComputedStyle(e).outlineWidth]"
        )
        assert outline == [True, "solid", "3px"], (width, outline)


def _screenshot(page: Page, width: int) -> None:
    """RECON_REVIEW_SCREENSHOT=docs/review-page.png saves the wide view there and the narrow
    one beside it as docs/review-page-420.png."""
    if shot := os.environ.get("RECON_REVIEW_SCREENSHOT"):
        path = Path(shot)
        if width != WIDE:
            path = path.with_name(f"{path.stem}-{width}{path.suffix}")
        page.screenshot(path=path)


def test_an_operator_assigns_tied_videos_in_chromium_wide_and_narrow(
    migrated: Migrated,
) -> None:
    """On a desktop-wide and a phone-narrow viewport in turn, an operator assigns a tied
    video; each choice lands in RECON and in the sandbox PeerTube."""
    from playwright.sync_api import expect, sync_playwright

    db = migrated.db
    stream = ("FROM documents d JOIN catalogue c ON c.hash = d.hash "
              "WHERE c.source = ? AND d.recon_domain_status = ?")
    tied_before = _sql(db, f"SELECT count(*) {stream}", SOURCE, "tied_manual")[0][0]
    manual_before = _sql(db, f"SELECT count(*) {stream}", SOURCE, "manual_assigned")[0][0]
    assert tied_before >= 2, "the corpus should leave some videos tied for a human"

    problems: list[str] = []
    assigned: list[Assigned] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": WIDE, "height": 800})
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

            # Back to every channel, then the wide layout's Assign.
            page.select_option('select[name="channel"]', "")
            with page.expect_navigation():
                page.get_by_role("button", name="Show").click()
            _assert_usable_without_scrolling(page, WIDE)
            _assert_accessible_choice(page, WIDE)
            assigned.append(_assign_a_tied_video(page, tied_before, manual_before))
            _assert_usable_without_scrolling(page, WIDE)  # now with a message naming the file
            _screenshot(page, WIDE)

            # A phone: the table becomes cards, and Assign works there too.
            page.set_viewport_size({"width": NARROW, "height": 900})
            page.goto(migrated.review.url)
            _assert_usable_without_scrolling(page, NARROW)
            _assert_accessible_choice(page, NARROW)
            assigned.append(_assign_a_tied_video(page, tied_before - 1, manual_before + 1))
            _assert_usable_without_scrolling(page, NARROW)  # now with a message naming the file
            _screenshot(page, NARROW)
        finally:
            browser.close()
    assert problems == []
    assert assigned[0].hash != assigned[1].hash

    peertube = migrated.peertube
    # As the admin: the anonymous API rate limit is spent by now.
    admin = PeerTubeClient(peertube.url, peertube.admin_username, peertube.admin_password)
    try:
        for choice in assigned:
            _assert_pushed(db, admin, peertube, choice)
    finally:
        admin.close()


def _assert_pushed(
    db: Path, admin: PeerTubeClient, peertube: RunningPeerTube, choice: Assigned
) -> None:
    """RECON's database holds the human's choice, pushed, with its ledger row; the sandbox
    PeerTube's API and its own table hold the category, on the very video that was linked."""
    domain = choice.domain
    [(status, recon_domain, pushed_at)] = _sql(
        db, "SELECT recon_domain_status, recon_domain, peertube_category_pushed_at "
        "FROM documents WHERE hash = ?", choice.hash,
    )
    assert (status, recon_domain) == ("manual_assigned", domain) and pushed_at
    [(video_id, stage, after, done)] = _sql(
        db, "SELECT video_id, stage, category_after, pushed_at FROM recon_domains_push_ledger "
        "WHERE hash = ? ORDER BY rowid", choice.hash,
    )
    assert (stage, after) == ("review", DOMAIN_IDS[domain]) and done
    # The link the operator saw is that very video (/w/<uuid> or /w/<short uuid>, or
    # /videos/watch/<id>; the corpus adds trailing slashes, queries and fragments on purpose).
    shown_id = urlsplit(choice.watch).path.rstrip("/").rsplit("/", 1)[1]
    assert shown_id.lower() == video_id or shown_id == uuid_to_short(video_id)

    assert admin.get_video(video_id)["category"] == {"id": DOMAIN_IDS[domain], "label": domain}
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

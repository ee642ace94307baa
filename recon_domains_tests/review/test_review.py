"""The review page over real HTTP, against a real recon.db and real concept files."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests

from recon_domains.peertube.client import PeerTubeClient
from recon_domains.peertube.urls import uuid_to_short
from recon_domains.recon.review_queries import TIED_ORDERS
from recon_domains.recon.store import PushCandidate, ReconStore, ReconStoreError
from recon_domains.review.server import (
    ReviewConfigError,
    RunningReview,
    make_push,
    start_review_server,
)
from recon_domains.review.tied import SORTS
from recon_domains.sandbox.corpus import RECON_SCHEMA
from recon_domains.sandbox.recon_writer import RunningWriter
from recon_domains.taxonomy import DOMAINS, Status

SOURCE = "stream.echo6.co"
PLUGIN_DIR = (
    Path(__file__).resolve().parents[2] / "peertube-plugin" / "peertube-plugin-recon-domains"
)
EVIL_CHANNEL = "<script>alert(1)</script>"
EVIL_FILE = '"><img src=x onerror=alert(1)>.mp4'

# hash -> (channel, filename, recon_domain_status, recon_domain, source, path or None
# for a real watch URL, concept windows)
Doc = tuple[str, str, str | None, str | None, str, str | None, list[list[dict]]]


def _concepts(**counts: int) -> list[dict]:
    """Concept objects: Water_Systems=2 → two concepts of domain "Water Systems"."""
    def name(key: str) -> str:
        return key.replace("_", " ").replace(" and ", " & ")

    return [{"name": f"c{i}", "domain": name(d)} for d, n in counts.items() for i in range(n)]


DOCS: dict[str, Doc] = {
    # Tied 3-3 between Medical and Water Systems (over two files, plus noise that counts
    # nothing: a legacy domain, a malformed file, a non-window file).
    "tie_alpha": ("Alpha", "pumps.mp4", Status.TIED_MANUAL, "Medical", SOURCE, None,
                  [[*_concepts(Medical=2, Water_Systems=1, Security=1),
                    {"domain": "Survival (legacy)"}],
                   _concepts(Medical=1, Water_Systems=2)]),
    "tie_evil": (EVIL_CHANNEL, EVIL_FILE, Status.TIED_MANUAL, "Communications", SOURCE,
                 "javascript:alert(1)", [_concepts(Communications=2, Navigation=2)]),
    "tie_transcript": ("Transcript", "talk.mp4", Status.TIED_MANUAL, "Food Systems", SOURCE,
                       None, [_concepts(Medical=4, Food_Systems=4, Tools_and_Equipment=4)]),
    "asg_1": ("Alpha", "a1.mp4", Status.ASSIGNED, "Water Systems", SOURCE, None,
              [_concepts(Water_Systems=5)]),
    "asg_2": ("Alpha", "a2.mp4", Status.ASSIGNED, "Water Systems", SOURCE, None,
              [_concepts(Water_Systems=4)]),
    "pass2_1": ("Alpha", "p2.mp4", Status.TIED_PASS_2, "Medical", SOURCE, None,
                [_concepts(Medical=2, Security=2)]),
    "reproc_1": ("Alpha", "r1.mp4", Status.NEEDS_REPROCESS, None, SOURCE, None, []),
    "unassigned_1": ("Alpha", "u1.mp4", None, None, SOURCE, None, [_concepts(Medical=1)]),
    # tied_manual, but of another PeerTube instance: not on this page, not assignable here.
    "other_source": ("Alpha", "o1.mp4", Status.TIED_MANUAL, "Medical", "tube.example.org",
                     None, [_concepts(Medical=1, Security=1)]),
}
TIED = {"tie_alpha", "tie_evil", "tie_transcript"}


def _video_uuid(doc_hash: str) -> str:
    """A deterministic version-4 UUID per document (PeerTube refuses other versions)."""
    return str(uuid.UUID(bytes=hashlib.sha256(doc_hash.encode()).digest()[:16], version=4))


def _watch_url(doc_hash: str) -> str:
    return f"https://{SOURCE}/w/{uuid_to_short(_video_uuid(doc_hash))}"


def build_recon(root: Path) -> tuple[Path, Path]:
    """A migrated recon.db and a concepts folder holding DOCS."""
    db = root / "recon.db"
    concepts = root / "concepts"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    for ddl in RECON_SCHEMA:
        conn.execute(ddl)
    for doc_hash, (channel, filename, _, _, source, path, windows) in DOCS.items():
        conn.execute(
            "INSERT INTO catalogue (hash, filename, path, source, category, status) "
            "VALUES (?, ?, ?, ?, ?, 'complete')",
            (doc_hash, filename, path or _watch_url(doc_hash), source, channel),
        )
        conn.execute(
            "INSERT INTO documents (hash, filename, status, discovered_at) "
            "VALUES (?, ?, 'complete', '2026-01-01T00:00:00Z')",
            (doc_hash, filename),
        )
        if windows:
            folder = concepts / doc_hash
            folder.mkdir(parents=True)
            for i, window in enumerate(windows, 1):
                (folder / f"window_{i:04d}.json").write_text(json.dumps(window))
            (folder / "window_9999.json").write_text("{not json")
            (folder / "meta.json").write_text(json.dumps([{"domain": "Medical"}] * 50))
    conn.commit()
    conn.close()
    with ReconStore.open(db, SOURCE) as store:
        store.migrate()
        for doc_hash, (_, _, status, domain, *_rest) in DOCS.items():
            store.conn.execute(
                "UPDATE documents SET recon_domain_status = ?, recon_domain = ?, "
                "recon_domain_assigned_at = ? WHERE hash = ?",
                (status, domain, "2026-01-02T00:00:00Z" if status else None, doc_hash),
            )
    return db, concepts


def _documents(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT * FROM documents ORDER BY hash").fetchall()


def _row(db: Path, doc_hash: str) -> sqlite3.Row:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute("SELECT * FROM documents WHERE hash = ?", (doc_hash,)).fetchone()


def add_tied_videos(db: Path, concepts: Path, n: int, channels: Sequence[str]) -> list[str]:
    """n more tied_manual stream videos spread over channels; their hashes, in insert order."""
    hashes = [f"bulk_{i:04d}" for i in range(n)]
    with sqlite3.connect(db) as conn:
        for i, doc_hash in enumerate(hashes):
            conn.execute(
                "INSERT INTO catalogue (hash, filename, path, source, category, status) "
                "VALUES (?, ?, ?, ?, ?, 'complete')",
                (doc_hash, f"video {n - i:04d}.mp4", _watch_url(doc_hash), SOURCE,
                 channels[i % len(channels)]),
            )
            conn.execute(
                "INSERT INTO documents (hash, filename, status, discovered_at, "
                "recon_domain_status, recon_domain, recon_domain_assigned_at) "
                "VALUES (?, ?, 'complete', '2026-01-01T00:00:00Z', ?, 'Medical', ?)",
                (doc_hash, f"video {n - i:04d}.mp4", Status.TIED_MANUAL,
                 f"2026-02-01T00:{i // 60:02d}:{i % 60:02d}Z"),
            )
            folder = concepts / doc_hash
            folder.mkdir(parents=True)
            (folder / "window_0001.json").write_text(
                json.dumps(_concepts(Medical=2, Security=2))
            )
    return hashes


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Client:
    """requests over real HTTP, never following redirects (we assert on them).

    It keeps cookies like a browser; post() fetches the page's CSRF token first unless the
    test passes csrf=False (or its own token in the form).
    """

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.http = requests.Session()

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.http.get(self.url + path, allow_redirects=False, timeout=30, **kw)

    def csrf_token(self, **kw: Any) -> str:
        page = self.get("/", **kw)
        assert page.status_code == 200, page.text
        return CSRF.search(page.text).group(1)

    def post(self, path: str, form: dict[str, str], csrf: bool = True,
             **kw: Any) -> requests.Response:
        if csrf and "csrf_token" not in form:
            # The same Host as the POST: requests files cookies under the Host header's name.
            form = {**form, "csrf_token": self.csrf_token(headers=kw.get("headers"))}
        return self.http.post(self.url + path, data=form, allow_redirects=False, timeout=30,
                              **kw)

    def tied(self, **params: str) -> dict:
        answer = self.get("/api/tied", params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def assign(self, doc_hash: str, domain: str, **view: str) -> str:
        """POST /assign, check the 303, follow it once, return the page it leads to."""
        answer = self.post("/assign", {"hash": doc_hash, "domain": domain, **view})
        assert answer.status_code == 303, answer.text
        # Relative, so the page also works behind a reverse proxy under a path prefix.
        location = answer.headers["Location"]
        assert location.startswith("./?") and "flash=" in location
        page = self.get(urljoin("/assign", location))
        assert page.status_code == 200
        return page.text


def rows(page: str) -> list[str]:
    """The hashes of the table rows on a review page, in order."""
    return re.findall(r'<tr id="v-[^"]*" data-hash="([^"]*)"', page)


@pytest.fixture
def recon(tmp_path: Path) -> tuple[Path, Path]:
    return build_recon(tmp_path)


@pytest.fixture
def review(recon: tuple[Path, Path]) -> Iterator[tuple[RunningReview, Client]]:
    db, concepts = recon
    with start_review_server(db, concepts, SOURCE) as running:
        yield running, Client(running.url)


def _status_counts(db: Path) -> dict[str, int]:
    """Read independently of the code under test: stream documents per status."""
    with sqlite3.connect(db) as conn:
        return dict(conn.execute(
            "SELECT COALESCE(d.recon_domain_status, 'unassigned'), count(*) FROM documents d "
            "JOIN catalogue c ON c.hash = d.hash WHERE c.source = ? GROUP BY 1", (SOURCE,)
        ).fetchall())


# -- listing ------------------------------------------------------------------------------
def test_lists_exactly_the_tied_manual_videos_with_counts(review) -> None:
    _, client = review
    data = client.tied()
    videos = {v["hash"]: v for v in data["videos"]}
    assert set(videos) == TIED
    assert data["total"] == 3 and data["pages"] == 1 and data["push_configured"] is False

    alpha = videos["tie_alpha"]
    # Only window_*.json files count; the legacy domain and the malformed file add nothing.
    assert alpha["concept_counts"] == [
        {"domain": "Medical", "concepts": 3},
        {"domain": "Water Systems", "concepts": 3},
        {"domain": "Security", "concepts": 1},
    ]
    assert alpha["tied_domains"] == ["Medical", "Water Systems"] and alpha["still_tied"]
    assert alpha["fallback_domain"] == "Medical" and alpha["fallback_pushed"] is False
    assert alpha["watch_url"] == _watch_url("tie_alpha")
    assert alpha["video_id"] == _video_uuid("tie_alpha")
    # The channel context: Alpha's categorized videos (assigned + tied_pass_2) per domain;
    # tied_manual, needs_reprocess, unassigned and the other source's video do not count.
    assert alpha["channel_top_domains"] == [
        {"domain": "Water Systems", "videos": 2},
        {"domain": "Medical", "videos": 1},
    ]
    assert alpha["channel_videos"] == 6
    # The choice: every domain, the tied ones first.
    assert alpha["domain_options"][:2] == ["Medical", "Water Systems"]
    assert sorted(alpha["domain_options"]) == sorted(DOMAINS)

    three = videos["tie_transcript"]
    assert three["tied_domains"] == ["Food Systems", "Medical", "Tools & Equipment"]
    assert [c["concepts"] for c in three["concept_counts"]] == [4, 4, 4]

    answer = client.get("/")
    page = answer.text
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    assert sorted(rows(page)) == sorted(TIED)
    for doc_hash in set(DOCS) - TIED:
        assert doc_hash not in page
    assert f'href="{_watch_url("tie_alpha")}"' in page
    row = page.split('id="v-tie_alpha"')[1].split("</tr>")[0]
    # Tied domains are marked, the others not; the fallback is labelled display-only.
    assert re.search(r'<li class="tied"[^>]*>\s*<span>Water Systems</span><span class="n">3<',
                     row)
    assert re.search(r"<li>\s*<span>Security</span><span class=\"n\">1<", row)
    assert "display only, not pushed" in row
    # Each form offers every domain, the tied ones first, plus the "choose" placeholder.
    assert row.count("<option") == len(DOMAINS) + 1
    assert row.index("<option>Water Systems</option>") < row.index(
        "<option>Agriculture &amp; Livestock</option>"
    )


def test_the_header_counts_every_status(review, recon) -> None:
    _, client = review
    db, _ = recon
    page = client.get("/").text
    shown = {
        status: int(n.replace(",", ""))
        for status, n in re.findall(r'data-status="([^"]+)">\s*\S+ <b>([\d,]+)</b>', page)
    }
    expected = _status_counts(db)
    assert shown == {s: expected.get(s, 0) for s in shown}
    assert set(shown) == {"assigned", "tied_pass_1", "tied_pass_2", "tied_manual",
                          "needs_reprocess", "manual_assigned", "unassigned"}
    assert shown["tied_manual"] == 3 and shown["assigned"] == 2
    assert client.tied()["status_counts"] == expected


def test_counts_are_reread_from_the_concept_files_on_every_load(review, recon) -> None:
    _, client = review
    _, concepts = recon
    before = {v["hash"]: v for v in client.tied()["videos"]}["tie_alpha"]
    assert before["still_tied"]
    (concepts / "tie_alpha" / "window_0003.json").write_text(
        json.dumps([{"domain": "Water Systems"}, {"domain": ["Water Systems", "Medical"]}])
    )
    after = {v["hash"]: v for v in client.tied()["videos"]}["tie_alpha"]
    assert after["concept_counts"][:2] == [
        {"domain": "Water Systems", "concepts": 5},
        {"domain": "Medical", "concepts": 4},
    ]
    assert after["tied_domains"] == ["Water Systems"] and not after["still_tied"]
    assert "Water Systems is now alone on top" in client.get("/").text


def test_counts_use_the_configured_window_file_cap(review, recon) -> None:
    _, client = review
    db, concepts = recon
    before = {v["hash"]: v for v in client.tied()["videos"]}["tie_alpha"]
    big = json.dumps([{"domain": "Water Systems"}] * 100_000)  # about 2.8 MB
    (concepts / "tie_alpha" / "window_0004.json").write_text(big)
    with start_review_server(db, concepts, SOURCE, max_window_file_mb=1) as capped:
        shown = {v["hash"]: v for v in Client(capped.url).tied()["videos"]}["tie_alpha"]
    assert shown["concept_counts"] == before["concept_counts"]  # the big file not counted
    read = {v["hash"]: v for v in client.tied()["videos"]}["tie_alpha"]  # default cap: 16 MB
    assert read["concept_counts"][0]["domain"] == "Water Systems"
    assert read["concept_counts"][0]["concepts"] >= 100_000


def test_filter_by_channel(review, recon) -> None:
    _, client = review
    db, concepts = recon
    add_tied_videos(db, concepts, 7, ["Beta", "Gamma"])
    beta = client.tied(channel="Beta")
    assert beta["total"] == 4
    assert {v["channel"] for v in beta["videos"]} == {"Beta"}
    page = client.get("/", params={"channel": "Alpha"}).text
    assert rows(page) == ["tie_alpha"]
    # The filter lists every channel with tied videos and how many (escaped), and keeps the
    # chosen one selected.
    assert '<option value="Alpha" selected>' in page
    for channel, n in (("Beta", 4), ("Gamma", 3), ("Transcript", 1)):
        assert re.search(rf'<option value="{channel}">\s*{channel} \({n}\)</option>', page)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; (1)" in page
    assert client.tied(channel="No such channel")["total"] == 0
    assert "No tied videos are waiting for a domain in this channel" in client.get(
        "/", params={"channel": "No such channel"}).text


def test_pagination_covers_every_video_once_in_order(review, recon) -> None:
    _, client = review
    db, concepts = recon
    bulk = add_tied_videos(db, concepts, 120, ["Beta"])
    seen: list[str] = []
    for page_no in (1, 2, 3):
        data = client.tied(sort="oldest", per_page="50", page=str(page_no))
        assert data["pages"] == 3 and data["total"] == 123 and data["page"] == page_no
        seen += [v["hash"] for v in data["videos"]]
    assert len(seen) == 123 and len(set(seen)) == 123
    # oldest first: the three fixtures (tied 2026-01-02), then bulk in assignment order.
    assert sorted(seen[:3]) == sorted(TIED) and seen[3:] == bulk
    # newest first is the exact reverse among the bulk rows.
    newest = [v["hash"] for v in client.tied(sort="newest", per_page="200")["videos"]]
    assert newest[:120] == bulk[::-1]
    # title sort: filenames "video 0001.mp4"... were given in reverse insert order.
    titles = [v["title"] for v in client.tied(sort="title", channel="Beta",
                                              per_page="200")["videos"]]
    assert titles == sorted(titles) and titles[0] == "video 0001.mp4"

    page = client.get("/", params={"sort": "oldest", "page": "2"}).text
    assert rows(page) == bulk[47:97]
    assert "Page 2 of 3" in page
    assert 'rel="prev" href="?sort=oldest"' in page
    assert 'rel="next" href="?sort=oldest&amp;page=3"' in page
    # A page past the end shows the last page rather than nothing.
    assert client.tied(page="99", per_page="50")["page"] == 3


def test_every_order_the_page_offers_is_an_order_of_the_store(review) -> None:
    _, client = review
    assert set(SORTS) == set(TIED_ORDERS)
    for sort in SORTS:
        assert sorted(v["hash"] for v in client.tied(sort=sort)["videos"]) == sorted(TIED)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"sort": "random"}, "unknown sort 'random'"),
        ({"page": "0"}, "page must be a whole number from 1"),
        ({"page": "two"}, "page must be a whole number from 1"),
        ({"per_page": "-5"}, "per_page must be a whole number from 1"),
        # Malformed numbers, each in both numeric parameters: never a 500, never taken.
        *(
            ({name: raw}, f"{name} must be a whole number from 1")
            for name in ("page", "per_page")
            for raw in ("²", "٣", "１", "1e3", "-1", " 1", "1 ", "0x10", "+1", "1.0", "1_0",
                        "1000000000", "9" * 5000, "\x00")
        ),
    ],
)
def test_bad_view_parameters_are_a_clear_400(review, params, message) -> None:
    _, client = review
    answer = client.get("/", params=params)
    assert answer.status_code == 400 and message in answer.text.replace("&#39;", "'")
    api = client.get("/api/tied", params=params)
    assert api.status_code == 400 and message in api.json()["error"]


def test_channel_and_file_names_are_escaped(review) -> None:
    _, client = review
    page = client.get("/").text
    assert "<script" not in page.lower()
    assert "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;.mp4" in page
    # A javascript: path is shown (escaped) but never made a link.
    assert 'href="javascript' not in page
    assert "no usable watch URL" in page
    # The JSON API returns the raw strings, as JSON.
    videos = {v["hash"]: v for v in client.tied()["videos"]}
    assert videos["tie_evil"]["channel"] == EVIL_CHANNEL
    assert videos["tie_evil"]["watch_url"] is None


def test_security_headers_forbid_scripts_and_framing(review) -> None:
    _, client = review
    headers = client.get("/").headers
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert "script-src" not in headers["Content-Security-Policy"]  # so: no script at all
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Cache-Control"] == "no-store"
    assert "server" not in {k.lower() for k in headers}


# -- assigning ----------------------------------------------------------------------------
def test_assign_marks_manual_assigned_and_removes_the_video(review, recon) -> None:
    _, client = review
    db, _ = recon
    page = client.assign("tie_alpha", "Water Systems")
    assert "Assigned Water Systems to &#39;pumps.mp4&#39; (manual_assigned)" in page
    assert "No PeerTube push is configured here" in page
    row = _row(db, "tie_alpha")
    assert row["recon_domain"] == "Water Systems"
    assert row["recon_domain_status"] == Status.MANUAL_ASSIGNED
    assert row["recon_domain_assigned_at"] > "2026-01-02T00:00:00Z"
    assert row["peertube_category_pushed_at"] is None
    assert "tie_alpha" not in rows(page)
    assert {v["hash"] for v in client.tied()["videos"]} == TIED - {"tie_alpha"}
    # The flash message is shown once.
    assert "Assigned Water Systems" not in client.get("/").text
    # A second POST for the same video (double click, second tab) is refused.
    again = client.post("/assign", {"hash": "tie_alpha", "domain": "Medical"})
    assert again.status_code == 400 and "manual_assigned, not tied_manual" in again.text
    assert _row(db, "tie_alpha")["recon_domain"] == "Water Systems"


def test_assign_returns_to_the_same_filter_sort_and_page(review, recon) -> None:
    _, client = review
    db, concepts = recon
    bulk = add_tied_videos(db, concepts, 60, ["Beta"])
    view = {"channel": "Beta", "sort": "newest", "page": "2", "per_page": "25"}
    answer = client.post("/assign", {"hash": bulk[0], "domain": "Security", **view})
    assert answer.status_code == 303
    location = answer.headers["Location"]
    assert location.startswith("./?channel=Beta&sort=newest&page=2&per_page=25&flash=")
    page = client.get(urljoin("/assign", location)).text
    assert "Assigned Security" in page and '<option value="Beta" selected>' in page
    assert rows(page) == bulk[::-1][25:50]


NOT_A_DOMAIN = f"not one of the {len(DOMAINS)} RECON domains"


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"hash": "tie_alpha", "domain": "Survival (legacy)"}, NOT_A_DOMAIN),
        ({"hash": "tie_alpha", "domain": "<b>Medical</b>"}, NOT_A_DOMAIN),
        ({"hash": "tie_alpha", "domain": ""}, NOT_A_DOMAIN),
        ({"hash": "tie_alpha"}, NOT_A_DOMAIN),
        ({"hash": "asg_1", "domain": "Medical"}, "is assigned, not tied_manual"),
        ({"hash": "pass2_1", "domain": "Medical"}, "is tied_pass_2, not tied_manual"),
        ({"hash": "unassigned_1", "domain": "Medical"}, "is unassigned, not tied_manual"),
        ({"hash": "other_source", "domain": "Medical"}, "no stream video with hash"),
        ({"hash": "nope", "domain": "Medical"}, "no stream video with hash"),
        ({"domain": "Medical"}, "no video hash in the form"),
    ],
)
def test_invalid_assignments_are_refused_and_change_nothing(review, recon, form, message):
    _, client = review
    db, _ = recon
    before = _documents(db)
    answer = client.post("/assign", form)
    assert answer.status_code == 400, answer.text
    assert answer.headers["Content-Type"].startswith("text/html")
    assert message in answer.text.replace("&#39;", "'")
    assert "Nothing was changed." in answer.text
    assert "<b>Medical" not in answer.text
    assert _documents(db) == before


def test_posts_without_a_valid_csrf_token_are_refused(review, recon) -> None:
    running, client = review
    db, _ = recon
    before = _documents(db)
    form = {"hash": "tie_alpha", "domain": "Medical"}
    # No token at all, from a client that has never loaded the page.
    fresh = Client(running.url)
    answer = fresh.post("/assign", form, csrf=False)
    assert answer.status_code == 403 and "CSRF token is missing or stale" in answer.text
    # The session cookie without the form field (what a forged cross-site form would send).
    client.get("/")
    assert client.post("/assign", form, csrf=False).status_code == 403
    # A token made for another session, or a forged one.
    other = Client(running.url).csrf_token()
    assert client.post("/assign", {**form, "csrf_token": other}).status_code == 403
    assert client.post("/assign", {**form, "csrf_token": "0" * 64}).status_code == 403
    # The form field without the cookie.
    token = client.csrf_token()
    stranger = Client(running.url)
    assert stranger.post("/assign", {**form, "csrf_token": token}).status_code == 403
    assert _documents(db) == before
    # The page's own form, with its token and cookie, is accepted.
    assert client.post("/assign", {**form, "csrf_token": token}).status_code == 303
    assert _row(db, "tie_alpha")["recon_domain_status"] == Status.MANUAL_ASSIGNED


def test_cross_site_posts_and_foreign_hosts_are_refused(review, recon) -> None:
    running, client = review
    db, _ = recon
    before = _documents(db)
    form = {"hash": "tie_alpha", "domain": "Medical"}
    answer = client.post("/assign", form, headers={"Origin": "http://evil.example"})
    assert answer.status_code == 403 and "another site" in answer.text
    # DNS rebinding: a page served as evil.example that resolves to 127.0.0.1.
    port = running.review.port
    answer = client.get("/", headers={"Host": f"evil.example:{port}"})
    assert answer.status_code == 403 and "does not name this server" in answer.text
    token = client.csrf_token()
    assert client.post("/assign", {**form, "csrf_token": token},
                       headers={"Host": "evil.example"}).status_code == 403
    assert _documents(db) == before
    # The page's own origin is accepted.
    own = f"http://127.0.0.1:{port}"
    assert client.post("/assign", form, headers={"Origin": own}).status_code == 303
    assert _row(db, "tie_alpha")["recon_domain_status"] == Status.MANUAL_ASSIGNED


def test_ssh_tunnels_and_configured_proxy_names_are_accepted(recon) -> None:
    db, concepts = recon
    with start_review_server(db, concepts, SOURCE, extra_hosts=["Recon.Example.org"]) as running:
        client = Client(running.url)
        # ssh -L 9000:127.0.0.1:<port>: the browser says localhost:9000.
        assert client.get("/", headers={"Host": "localhost:9000"}).status_code == 200
        assert client.get("/", headers={"Host": "recon.example.org"}).status_code == 200
        assert client.get("/", headers={"Host": "other.example.org"}).status_code == 403
        answer = client.post(
            "/assign", {"hash": "tie_evil", "domain": "Security"},
            headers={"Host": "recon.example.org", "Origin": "https://recon.example.org"},
        )
        assert answer.status_code == 303
    assert _row(db, "tie_evil")["recon_domain"] == "Security"


def test_unknown_paths_and_methods(review) -> None:
    _, client = review
    assert client.get("/admin").status_code == 404
    assert client.post("/", {"hash": "tie_alpha", "domain": "Medical"}).status_code == 405
    assert client.get("/assign").status_code == 405


# -- off loopback: the token --------------------------------------------------------------
TOKEN = "s3cret-review-token-0123456789"


def test_refuses_to_listen_off_loopback_without_a_token(recon) -> None:
    db, concepts = recon
    with pytest.raises(ReviewConfigError, match="without RECON_REVIEW_TOKEN"):
        start_review_server(db, concepts, SOURCE, host="0.0.0.0")
    with pytest.raises(ReviewConfigError, match="too short"):
        start_review_server(db, concepts, SOURCE, host="0.0.0.0", token="short")


def test_the_token_guards_every_request_and_never_leaks(recon) -> None:
    db, concepts = recon
    before = _documents(db)
    with start_review_server(db, concepts, SOURCE, host="0.0.0.0", token=TOKEN) as running:
        url = f"http://127.0.0.1:{running.review.port}"
        client = Client(url)
        for path in ("/", "/api/tied"):
            answer = client.get(path)
            assert answer.status_code == 401 and "RECON_REVIEW_TOKEN" in answer.text
        assert client.post("/assign", {"hash": "tie_alpha", "domain": "Medical"},
                           csrf=False).status_code == 401
        wrong = client.get("/", params={"token": TOKEN[:-1] + "x", "sort": "title"})
        assert wrong.status_code == 401
        assert _documents(db) == before

        # Exposed, any Host name is accepted: the token is what guards.
        lan = client.get("/", params={"token": TOKEN}, headers={"Host": "recon.lan:8765"})
        assert lan.status_code == 303
        answer = client.get("/", params={"token": TOKEN, "sort": "title"})
        assert answer.status_code == 303
        assert answer.headers["Location"] == "/?sort=title"  # the token leaves the URL
        assert "HttpOnly" in answer.headers["Set-Cookie"]
        assert "SameSite=strict" in answer.headers["Set-Cookie"]
        page = client.get("/?sort=title")
        assert page.status_code == 200 and sorted(rows(page.text)) == sorted(TIED)
        assert TOKEN not in page.text
        assert client.assign("tie_alpha", "Medical")
        bearer = requests.get(f"{url}/api/tied", timeout=10,
                              headers={"Authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code == 200 and bearer.json()["total"] == 2
    assert _row(db, "tie_alpha")["recon_domain_status"] == Status.MANUAL_ASSIGNED


# -- pushing ------------------------------------------------------------------------------
def test_assign_pushes_exactly_that_item(recon) -> None:
    db, concepts = recon
    calls: list[list[PushCandidate]] = []

    def push(store: ReconStore, items: Sequence[PushCandidate]) -> None:
        calls.append(list(items))
        # What the real engine does once PeerTube has the category.
        for item in items:
            store.complete_pushes([item.hash])

    with start_review_server(db, concepts, SOURCE, push=push) as running:
        client = Client(running.url)
        assert client.tied()["push_configured"] is True
        page = client.assign("tie_transcript", "Tools & Equipment")
    assert len(calls) == 1 and len(calls[0]) == 1
    item = calls[0][0]
    assert (item.hash, item.domain, item.status) == (
        "tie_transcript", "Tools & Equipment", Status.MANUAL_ASSIGNED
    )
    assert item.path == _watch_url("tie_transcript")
    row = _row(db, "tie_transcript")
    assert item.assigned_at == row["recon_domain_assigned_at"]
    assert row["peertube_category_pushed_at"] is not None
    assert "Pushed to PeerTube (category 114)" in page
    assert '<p class="flash" role="status">' in page


def test_a_failed_push_keeps_the_assignment_and_says_so(recon) -> None:
    db, concepts = recon

    def push(store: ReconStore, items: Sequence[PushCandidate]) -> None:
        raise ConnectionError("PeerTube at http://127.0.0.1:9 is unreachable")

    with start_review_server(db, concepts, SOURCE, push=push) as running:
        page = Client(running.url).assign("tie_alpha", "Medical")
    assert "Pushing to PeerTube failed (ConnectionError" in page
    assert '<p class="flash error"' in page
    assert "the steady-state push retries it" in page
    row = _row(db, "tie_alpha")
    assert row["recon_domain_status"] == Status.MANUAL_ASSIGNED
    assert row["peertube_category_pushed_at"] is None
    # ...and it is exactly what the steady-state push picks up next.
    with ReconStore.open(db, SOURCE) as store:
        assert [c.hash for c in store.unpushed_categorized()
                if c.status == Status.MANUAL_ASSIGNED] == ["tie_alpha"]


def test_assign_really_pushes_to_the_sandbox_peertube(recon, peertube_server) -> None:
    """The real push engine against the sandbox PeerTube over HTTP, read back via its API."""
    db, concepts = recon
    peertube_server.seed_videos_from_recon(db, SOURCE, prior_category_percent=0)
    client = PeerTubeClient(
        peertube_server.url, peertube_server.admin_username, peertube_server.admin_password
    )
    client.install_plugin(str(PLUGIN_DIR))  # registers the RECON categories
    api = f"{peertube_server.url}/api/v1/videos"
    try:
        with start_review_server(db, concepts, SOURCE, push=make_push(client)) as running:
            page = Client(running.url).assign("tie_transcript", "Tools & Equipment")
            # A video whose watch URL is garbage: assigned, not pushed, and the page says why.
            bad = Client(running.url).assign("tie_evil", "Security")
    finally:
        client.close()
    assert "Pushed to PeerTube (category 114)" in page

    video = requests.get(f"{api}/{_video_uuid('tie_transcript')}", timeout=10).json()
    assert video["category"] == {"id": 114, "label": "Tools & Equipment"}
    # Only that video: the other tied ones keep no category (the fallback is never pushed).
    for other in ("tie_alpha", "asg_1"):
        assert requests.get(f"{api}/{_video_uuid(other)}", timeout=10).json()["category"][
            "id"] is None
    row = _row(db, "tie_transcript")
    assert row["peertube_category_pushed_at"] is not None
    assert '<p class="flash error"' in bad and "Not pushed to PeerTube (" in bad
    assert "the steady-state push retries it" in bad
    assert _row(db, "tie_evil")["recon_domain_status"] == Status.MANUAL_ASSIGNED
    assert _row(db, "tie_evil")["peertube_category_pushed_at"] is None
    with ReconStore.open(db, SOURCE) as store:
        ledger = store.ledger()
    assert [(r.hash, r.video_id, r.stage, r.category_before, r.category_after)
            for r in ledger] == [
        ("tie_transcript", _video_uuid("tie_transcript"), "review", None, 114)
    ]
    assert ledger[0].pushed_at is not None


# -- starting -----------------------------------------------------------------------------
def test_refuses_to_start_on_an_unmigrated_database(tmp_path: Path) -> None:
    db = tmp_path / "recon.db"
    conn = sqlite3.connect(db)
    for ddl in RECON_SCHEMA:
        conn.execute(ddl)
    conn.commit()
    conn.close()
    with pytest.raises(ReconStoreError, match="not migrated"):
        start_review_server(db, tmp_path, SOURCE)
    with pytest.raises(ReconStoreError, match="not found"):
        start_review_server(tmp_path / "missing.db", tmp_path, SOURCE)


def test_cli_reports_missing_settings(monkeypatch, capsys, recon) -> None:
    from recon_domains.cli import main

    db, _ = recon
    monkeypatch.delenv("RECON_CONCEPTS_DIR", raising=False)
    assert main(["review", "--db", str(db), "--port", "0"]) == 3
    assert "RECON_CONCEPTS_DIR is not set" in capsys.readouterr().err


def test_cli_refuses_an_exposed_page_without_a_token(monkeypatch, capsys, recon) -> None:
    from recon_domains.cli import main

    db, concepts = recon
    monkeypatch.setenv("RECON_CONCEPTS_DIR", str(concepts))
    monkeypatch.delenv("RECON_REVIEW_TOKEN", raising=False)
    assert main(["review", "--db", str(db), "--host", "0.0.0.0", "--port", "0"]) == 3
    assert "without RECON_REVIEW_TOKEN" in capsys.readouterr().err


def test_an_assignment_while_recon_holds_its_lock_is_a_503_and_changes_nothing(recon) -> None:
    """RECON writing without a gap: the review page's write waits its deadline, then answers
    503 with Retry-After (try again in a moment), not a 500; once the writer stops, the same
    assignment works."""
    db, concepts = recon
    with start_review_server(db, concepts, SOURCE, lock_timeout_s=0.3) as running:
        client = Client(running.url)
        token = client.csrf_token()  # read while the lock is free
        with RunningWriter(db, hold_s=3600, gap_s=0):
            answer = client.post("/assign", {"hash": "tie_alpha", "domain": "Water Systems",
                                             "csrf_token": token})
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "5"
        assert "recon.db stayed locked" in answer.text and "Try again in a moment" in answer.text
        assert _row(db, "tie_alpha")["recon_domain_status"] == Status.TIED_MANUAL
        assert "Assigned Water Systems" in client.assign("tie_alpha", "Water Systems")

"""The review page over real HTTP, against a real recon.db and real concept files."""

from __future__ import annotations

import hashlib
import http.client
import json
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlencode, urljoin, urlsplit

import pytest
import requests

from recon_domains.peertube.client import PeerTubeClient
from recon_domains.peertube.urls import uuid_to_short
from recon_domains.recon.store import PushCandidate, ReconStore, ReconStoreError
from recon_domains.review.server import RunningReview, make_push, start_review_server
from recon_domains.sandbox.corpus import RECON_SCHEMA
from recon_domains.taxonomy import DOMAINS, Status

SOURCE = "stream.echo6.co"
PLUGIN_DIR = (
    Path(__file__).resolve().parents[2] / "peertube-plugin" / "peertube-plugin-recon-domains"
)
EVIL_CHANNEL = "<script>alert('channel')</script>"
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
    with ReconStore.open(db) as store:
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


class Client:
    """A tiny HTTP client that does not follow redirects (we assert on them)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80

    def request(
        self, method: str, path: str, body: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], str]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            data = urlencode(body).encode() if body is not None else None
            hdrs = dict(headers or {})
            if data is not None:
                hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read().decode("utf-8")
        finally:
            conn.close()

    def get(self, path: str, **kw) -> tuple[int, dict[str, str], str]:
        return self.request("GET", path, **kw)

    def post(self, path: str, form: dict[str, str], **kw) -> tuple[int, dict[str, str], str]:
        return self.request("POST", path, form, **kw)

    def tied(self) -> dict:
        status, _, body = self.get("/api/tied")
        assert status == 200, body
        return json.loads(body)

    def assign(self, doc_hash: str, domain: str) -> str:
        """POST /assign, check the 303, follow it once, return the page it leads to."""
        status, headers, body = self.post("/assign", {"hash": doc_hash, "domain": domain})
        assert status == 303, body
        # Relative, so the page also works behind a reverse proxy under a path prefix.
        location = headers["Location"]
        assert location.startswith("./?flash=")
        status, _, page = self.get(urljoin("/assign", location))
        assert status == 200
        return page


@pytest.fixture
def recon(tmp_path: Path) -> tuple[Path, Path]:
    return build_recon(tmp_path)


@pytest.fixture
def review(recon: tuple[Path, Path]) -> Iterator[tuple[RunningReview, Client]]:
    db, concepts = recon
    with start_review_server(db, concepts, SOURCE) as running:
        yield running, Client(running.url)


# -- listing ------------------------------------------------------------------------------
def test_lists_exactly_the_tied_manual_videos_with_counts(review) -> None:
    _, client = review
    data = client.tied()
    videos = {v["hash"]: v for v in data["videos"]}
    assert set(videos) == TIED
    assert data["count"] == 3 and data["push_configured"] is False

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
    # The choice: all 18 domains, the tied ones first.
    assert alpha["domain_options"][:2] == ["Medical", "Water Systems"]
    assert sorted(alpha["domain_options"]) == sorted(DOMAINS)

    three = videos["tie_transcript"]
    assert three["tied_domains"] == ["Food Systems", "Medical", "Tools & Equipment"]
    assert [c["concepts"] for c in three["concept_counts"]] == [4, 4, 4]

    status, headers, page = client.get("/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert page.count('<section class="video"') == 3
    for doc_hash in TIED:
        assert f'id="v-{doc_hash}"' in page
    for doc_hash in set(DOCS) - TIED:
        assert doc_hash not in page
    assert f'href="{_watch_url("tie_alpha")}"' in page
    assert "Water Systems</td><td class=\"n\">3</td>" in page
    assert "(display only, not pushed)" in page
    # Each form offers the 18 domains plus the "choose" placeholder.
    section = page.split('id="v-tie_alpha"')[1].split("</section>")[0]
    assert section.count("<option") == 19
    assert section.index(">Water Systems</option>") < section.index(
        ">Agriculture &amp; Livestock</option>"
    )


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
    _, _, page = client.get("/")
    assert "Water Systems is now alone on top" in page


def test_channel_and_file_names_are_escaped(review) -> None:
    _, client = review
    status, _, page = client.get("/")
    assert status == 200
    assert "<script" not in page.lower()
    assert "<img" not in page
    assert "&lt;script&gt;alert(&#x27;channel&#x27;)&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;.mp4" in page
    # A javascript: path is shown (escaped) but never made a link.
    assert 'href="javascript' not in page
    assert "no usable watch URL" in page
    # The JSON API returns the raw strings, as JSON.
    videos = {v["hash"]: v for v in client.tied()["videos"]}
    assert videos["tie_evil"]["channel"] == EVIL_CHANNEL
    assert videos["tie_evil"]["watch_url"] is None


# -- assigning ----------------------------------------------------------------------------
def test_assign_marks_manual_assigned_and_removes_the_video(review, recon) -> None:
    _, client = review
    db, _ = recon
    page = client.assign("tie_alpha", "Water Systems")
    assert "Assigned Water Systems to &#x27;pumps.mp4&#x27; (manual_assigned)" in page
    assert "will be pushed by the next steady-state run" in page
    row = _row(db, "tie_alpha")
    assert row["recon_domain"] == "Water Systems"
    assert row["recon_domain_status"] == Status.MANUAL_ASSIGNED
    assert row["recon_domain_assigned_at"] > "2026-01-02T00:00:00Z"
    assert row["peertube_category_pushed_at"] is None
    assert 'id="v-tie_alpha"' not in page
    assert {v["hash"] for v in client.tied()["videos"]} == TIED - {"tie_alpha"}
    # The flash message is shown once.
    _, _, again = client.get("/")
    assert "Assigned Water Systems" not in again
    # A second POST for the same video (double click, second tab) is refused.
    status, _, body = client.post("/assign", {"hash": "tie_alpha", "domain": "Medical"})
    assert status == 400 and "manual_assigned, not tied_manual" in body
    assert _row(db, "tie_alpha")["recon_domain"] == "Water Systems"


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"hash": "tie_alpha", "domain": "Survival (legacy)"}, "not one of the 18 RECON domains"),
        ({"hash": "tie_alpha", "domain": ""}, "not one of the 18 RECON domains"),
        ({"hash": "tie_alpha"}, "not one of the 18 RECON domains"),
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
    status, headers, body = client.post("/assign", form)
    assert status == 400, body
    assert headers["Content-Type"].startswith("text/html")
    assert message in body.replace("&#x27;", "'")
    assert "Nothing was changed." in body
    assert _documents(db) == before


def test_cross_site_posts_and_foreign_hosts_are_refused(review, recon) -> None:
    running, client = review
    db, _ = recon
    before = _documents(db)
    form = {"hash": "tie_alpha", "domain": "Medical"}
    status, _, body = client.post("/assign", form, headers={"Origin": "http://evil.example"})
    assert status == 403 and "another site" in body
    status, _, _ = client.post(
        "/assign", form, headers={"Referer": "http://evil.example/page"}
    )
    assert status == 403
    # DNS rebinding: a page served as evil.example that resolves to 127.0.0.1.
    status, _, body = client.get("/", headers={"Host": f"evil.example:{running.server.port}"})
    assert status == 403 and "does not name this server" in body
    status, _, _ = client.post("/assign", form, headers={"Host": "evil.example"})
    assert status == 403
    assert _documents(db) == before
    # The page's own origin is accepted.
    own = f"http://127.0.0.1:{running.server.port}"
    status, _, _ = client.post("/assign", form, headers={"Origin": own})
    assert status == 303
    assert _row(db, "tie_alpha")["recon_domain_status"] == Status.MANUAL_ASSIGNED


def test_ssh_tunnels_and_configured_proxy_names_are_accepted(recon) -> None:
    db, concepts = recon
    with start_review_server(db, concepts, SOURCE, extra_hosts=["Recon.Example.org"]) as running:
        client = Client(running.url)
        # ssh -L 9000:127.0.0.1:<port>: the browser says localhost:9000.
        assert client.get("/", headers={"Host": "localhost:9000"})[0] == 200
        assert client.get("/", headers={"Host": "recon.example.org"})[0] == 200
        assert client.get("/", headers={"Host": "other.example.org"})[0] == 403
        status, _, _ = client.post(
            "/assign", {"hash": "tie_evil", "domain": "Security"},
            headers={"Host": "recon.example.org", "Origin": "https://recon.example.org"},
        )
        assert status == 303
    assert _row(db, "tie_evil")["recon_domain"] == "Security"


def test_unknown_paths_are_404(review) -> None:
    _, client = review
    assert client.get("/admin")[0] == 404
    assert client.post("/", {"hash": "tie_alpha", "domain": "Medical"})[0] == 404


# -- pushing ------------------------------------------------------------------------------
def test_assign_pushes_exactly_that_item(recon) -> None:
    db, concepts = recon
    calls: list[list[PushCandidate]] = []

    def push(store: ReconStore, items: Sequence[PushCandidate]) -> None:
        calls.append(list(items))
        # What the real engine does once PeerTube has the category.
        for item in items:
            store.complete_push(item.hash)

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
    assert '<p class="flash"' in page


def test_a_failed_push_keeps_the_assignment_and_says_so(recon) -> None:
    db, concepts = recon

    def push(store: ReconStore, items: Sequence[PushCandidate]) -> None:
        raise ConnectionError("PeerTube at http://127.0.0.1:9 is unreachable")

    with start_review_server(db, concepts, SOURCE, push=push) as running:
        page = Client(running.url).assign("tie_alpha", "Medical")
    assert "Pushing to PeerTube failed (ConnectionError" in page
    assert '<p class="flash error"' in page
    assert "will be pushed by the next steady-state run" in page
    row = _row(db, "tie_alpha")
    assert row["recon_domain_status"] == Status.MANUAL_ASSIGNED
    assert row["peertube_category_pushed_at"] is None


def test_assign_really_pushes_to_the_sandbox_peertube(recon, peertube_server) -> None:
    """The real push engine against the sandbox PeerTube over HTTP, read back via its API."""
    db, concepts = recon
    peertube_server.seed_videos_from_recon(db, SOURCE, prior_category_percent=0)
    client = PeerTubeClient(
        peertube_server.url, peertube_server.admin_username, peertube_server.admin_password
    )
    client.install_plugin(str(PLUGIN_DIR))  # registers categories 100-117
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
    assert '<p class="flash error"' in bad and "Not pushed to PeerTube now (" in bad
    assert "will be pushed by the next steady-state run" in bad
    assert _row(db, "tie_evil")["recon_domain_status"] == Status.MANUAL_ASSIGNED
    assert _row(db, "tie_evil")["peertube_category_pushed_at"] is None
    with ReconStore.open(db) as store:
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
    assert main(["review", "--db", str(db), "--port", "0"]) == 2
    assert "RECON_CONCEPTS_DIR is not set" in capsys.readouterr().err

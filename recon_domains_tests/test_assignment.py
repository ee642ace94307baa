"""Pass 1, the tiebreaker and pass 3: the SPEC §4 rules, then the runners against a real
recon.db (SQLite) and real concept folders."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recon_domains.assignment import (
    RULE_CHANNEL,
    RULE_CHANNEL_PASS3,
    RULE_CHANNEL_TIED,
    RULE_NO_CHANNEL,
    RULE_NO_VALID,
    RULE_OWN_WINNER,
    RULE_SKIP_CHANNEL,
    BenchmarkCheck,
    DecisionWriteError,
    Pass1Result,
    benchmark_deviation,
    decide_pass1,
    decide_tiebreak,
    rederive_decision,
    run_pass1,
    run_tiebreaker,
    spot_check,
)
from recon_domains.recon import concepts
from recon_domains.recon.concepts import REASON_TOO_LARGE
from recon_domains.recon.store import ReconStore
from recon_domains.reprocess import plan_reprocess
from recon_domains.sandbox.corpus import RECON_SCHEMA
from recon_domains.settings import Benchmarks
from recon_domains.taxonomy import CATEGORIZED, DOMAINS, Status

SOURCE = "stream.echo6.co"
MED, NAV, WAT, TEC = "Medical", "Navigation", "Water Systems", "Technology"


# -- pure rules ------------------------------------------------------------------------------
def test_pass1_zero_valid_is_needs_reprocess() -> None:
    for counts in (Counter(), Counter({MED: 0}), {}):
        d = decide_pass1(counts)
        assert (d.status, d.domain, d.top_count, d.tied_domains) == (
            Status.NEEDS_REPROCESS,
            None,
            0,
            (),
        )


def test_pass1_strict_max_is_assigned_and_shared_top_is_tied() -> None:
    d = decide_pass1(Counter({MED: 3, NAV: 2, WAT: 2}))
    assert (d.status, d.domain, d.top_count, d.tied_domains) == (Status.ASSIGNED, MED, 3, ())
    d = decide_pass1(Counter({WAT: 3, MED: 3, NAV: 1}))
    assert (d.status, d.domain, d.top_count, d.tied_domains) == (
        Status.TIED_PASS_1,
        None,
        3,
        (MED, WAT),
    )


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(DOMAINS), st.integers(min_value=0, max_value=6)))
def test_pass1_properties(counts: dict[str, int]) -> None:
    d = decide_pass1(counts)
    top = max(counts.values(), default=0)
    sharing = sorted(k for k, v in counts.items() if v == top and v > 0)
    if top == 0:
        assert d.status == Status.NEEDS_REPROCESS and d.domain is None
    elif d.status == Status.ASSIGNED:
        # the assigned domain is a strict maximum
        assert all(counts[d.domain] > v for k, v in counts.items() if k != d.domain)
    else:
        assert d.status == Status.TIED_PASS_1 and d.domain is None
        # ties are exactly the domains sharing the top count
        assert list(d.tied_domains) == sharing and len(sharing) >= 2
    assert d.top_count == top


def test_tiebreak_own_recount_comes_first() -> None:
    d = decide_tiebreak(Counter(), {MED: 9}, channel_on_skip_list=False)
    assert (d.status, d.domain, d.rule) == (Status.NEEDS_REPROCESS, None, RULE_NO_VALID)
    d = decide_tiebreak(Counter({NAV: 2, MED: 1}), {MED: 9}, channel_on_skip_list=True)
    assert (d.status, d.domain, d.rule) == (Status.ASSIGNED, NAV, RULE_OWN_WINNER)


def test_tiebreak_skip_list_and_no_channel_give_tied_manual_with_alphabetical_fallback() -> None:
    own = Counter({WAT: 2, NAV: 2, MED: 1})
    d = decide_tiebreak(own, {WAT: 50}, channel_on_skip_list=True)
    assert (d.status, d.domain, d.rule, d.tied_domains) == (
        Status.TIED_MANUAL,
        NAV,
        RULE_SKIP_CHANNEL,
        (NAV, WAT),
    )
    assert Status.TIED_MANUAL not in CATEGORIZED  # the fallback is display-only
    d = decide_tiebreak(own, None, channel_on_skip_list=False)
    assert (d.status, d.domain, d.rule) == (Status.TIED_MANUAL, NAV, RULE_NO_CHANNEL)


def test_tiebreak_channel_winner_among_tied_domains_only() -> None:
    own = Counter({WAT: 2, NAV: 2})
    # Technology dominates the channel but is not tied for this document: it cannot win.
    d = decide_tiebreak(own, {TEC: 100, WAT: 4, NAV: 3}, channel_on_skip_list=False)
    assert (d.status, d.domain, d.rule) == (Status.TIED_PASS_2, WAT, RULE_CHANNEL)
    assert d.channel_counts == ((WAT, 4), (NAV, 3))


def test_tiebreak_channel_tie_needs_pass3_then_tied_manual() -> None:
    own = Counter({WAT: 2, NAV: 2, MED: 2})
    channel = {WAT: 4, NAV: 4, MED: 1}
    d = decide_tiebreak(own, channel, channel_on_skip_list=False)
    assert d.needs_pass_3 and d.status is None and d.domain is None
    d = decide_tiebreak(own, channel, channel_on_skip_list=False, final=True)
    assert (d.status, d.domain, d.rule) == (Status.TIED_MANUAL, MED, RULE_CHANNEL_TIED)
    # an empty channel context (all zero) is a tie too
    assert decide_tiebreak(own, {}, channel_on_skip_list=False).needs_pass_3
    d = decide_tiebreak(own, {NAV: 1}, channel_on_skip_list=False, final=True)
    assert (d.status, d.domain, d.rule) == (Status.TIED_PASS_2, NAV, RULE_CHANNEL_PASS3)


def test_benchmark_deviation() -> None:
    checks = benchmark_deviation({"assigned": 90.0, "tied": 10.0, "needs_reprocess": 25.0})
    assert checks == [
        BenchmarkCheck("assigned", 94.8, 90.0, -4.8, True),
        BenchmarkCheck("tied", 5.2, 10.0, 4.8, True),
        BenchmarkCheck("needs_reprocess", 19.5, 25.0, 5.5, False),
    ]
    custom = benchmark_deviation(
        {"assigned": 80.0, "tied": 20.0, "needs_reprocess": 10.0},
        Benchmarks(assigned=80.0, tied=20.0, needs_reprocess=10.5, tolerance=0.0),
    )
    assert custom == [
        BenchmarkCheck("assigned", 80.0, 80.0, 0.0, True),
        BenchmarkCheck("tied", 20.0, 20.0, 0.0, True),
        BenchmarkCheck("needs_reprocess", 10.5, 10.0, -0.5, False),
    ]


# -- a real recon.db and concept folders ---------------------------------------------------
def concept(domain: object) -> dict:
    return {"concept": "c", "domain": domain}


class World:
    """A migrated recon.db plus a concepts folder, filled document by document."""

    def __init__(self, tmp: Path) -> None:
        self.root = tmp / "concepts"
        self.root.mkdir()
        self.db = tmp / "recon.db"
        conn = sqlite3.connect(self.db)
        conn.execute("PRAGMA journal_mode=WAL")
        for ddl in RECON_SCHEMA:  # RECON's own tables (SPEC §3)
            conn.execute(ddl)
        conn.commit()
        conn.close()
        self.store = ReconStore.open(self.db, SOURCE)
        self.store.migrate()

    def add(
        self,
        doc_hash: str,
        channel: str | None,
        windows: list[list[object]] | None,
        *,
        status: str = "complete",
        source: str = SOURCE,
    ) -> None:
        """windows: the domains of each window file (None: no concept folder)."""
        self.store.conn.execute(
            "INSERT INTO catalogue (hash, filename, path, source, category, status) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (doc_hash, "v.mp4", f"https://{source}/w/{doc_hash}", source, channel, status),
        )
        self.store.conn.execute(
            "INSERT INTO documents (hash, filename, status) VALUES (?, ?, ?)",
            (doc_hash, "v.mp4", status),
        )
        if windows is not None:
            self.write(doc_hash, windows)

    def write(self, doc_hash: str, windows: list[list[object]], start: int = 1) -> None:
        folder = self.root / doc_hash
        folder.mkdir(exist_ok=True)
        (folder / "meta.json").write_text("{}")
        for i, domains in enumerate(windows, start=start):
            (folder / f"window_{i:04d}.json").write_text(json.dumps([concept(d) for d in domains]))

    def set_status(self, doc_hash: str, status: str | None, domain: str | None = None) -> None:
        self.store.conn.execute(
            "UPDATE documents SET recon_domain_status = ?, recon_domain = ? WHERE hash = ?",
            (status, domain, doc_hash),
        )

    def row(self, doc_hash: str) -> tuple[str | None, str | None]:
        r = self.store.domain_row(doc_hash)
        return r["recon_domain_status"], r["recon_domain"]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.store.close()


def patch_concept_open(
    monkeypatch, failing: str | None = None, error: OSError | None = None
) -> Counter[str]:
    """Count every file the concept reader opens, by path; opening a path that contains
    ``failing`` raises ``error`` instead (running as root, chmod 000 would not stop us)."""
    seen: Counter[str] = Counter()
    real_open = os.open

    def counting_open(path, *args, **kwargs):
        seen[os.fspath(path)] += 1
        if failing is not None and error is not None and failing in os.fspath(path):
            raise error
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(concepts.os, "open", counting_open)
    return seen


@pytest.fixture
def opened(monkeypatch) -> Counter[str]:
    """Every file the concept reader opens, by path."""
    return patch_concept_open(monkeypatch)


def window_files(root: Path) -> set[str]:
    return {os.fspath(p) for p in root.glob("*/window_*.json")}


def fill_pass1_world(w: World) -> None:
    w.add("a1", "Cooking", [[MED, MED], [NAV, MED]])  # assigned Medical
    w.add("a2", "Cooking", [[[WAT, WAT, NAV]], [WAT]])  # list-valued: WAT 2, NAV 1
    w.add("t1", "Cooking", [[MED, NAV], ["Survival"]])  # tie MED/NAV
    w.add("n1", "Cooking", None)  # no folder
    w.add("n2", "Cooking", [["Survival", "Prepping"]])  # legacy only
    w.add("n3", "Cooking", [])  # folder with meta.json only
    w.add("book", "Books", [[MED]], source="library")  # another source: not a candidate
    w.add("q1", "Cooking", [[MED]], status="queued")  # not complete: not a candidate
    w.add("done", "Cooking", [[NAV]])
    w.set_status("done", Status.ASSIGNED, NAV)  # already assigned: not a candidate


def test_pass1_decides_writes_and_reports(world: World, opened: Counter[str]) -> None:
    fill_pass1_world(world)
    (world.root / "n3" / "window_0001.json").write_text('[{"domain": "Medical"')  # malformed
    result = run_pass1(world.store, world.root)
    assert result.candidates == 6 and result.errors == [] and result.written == 6
    assert {(d.hash, d.status, d.domain) for d in result.decisions} == {
        ("a1", Status.ASSIGNED, MED),
        ("a2", Status.ASSIGNED, WAT),
        ("t1", Status.TIED_PASS_1, None),
        ("n1", Status.NEEDS_REPROCESS, None),
        ("n2", Status.NEEDS_REPROCESS, None),
        ("n3", Status.NEEDS_REPROCESS, None),
    }
    assert world.row("a1") == (Status.ASSIGNED, MED)
    assert world.row("t1") == (Status.TIED_PASS_1, None)
    assert world.row("n1") == (Status.NEEDS_REPROCESS, None)
    assert world.row("book") == (None, None) and world.row("q1") == (None, None)
    assert world.row("done") == (Status.ASSIGNED, NAV)
    by_hash = {d.hash: d for d in result.decisions}
    assert by_hash["a1"].top_counts == ((MED, 3), (NAV, 1))
    assert by_hash["t1"].tied_domains == (MED, NAV)
    assert by_hash["n1"].state == concepts.STATE_MISSING_FOLDER
    assert result.skipped_files == {"legacy domain": 2, "malformed json": 1}
    assert result.states[concepts.STATE_NO_VALID_DOMAINS] == 2
    # assigned/tied of the 3 with valid concepts; needs_reprocess of all 6 candidates
    assert result.percentages() == {"assigned": 66.67, "tied": 33.33, "needs_reprocess": 50.0}
    # every candidate's window file opened exactly once, nothing else opened
    candidates = {"a1", "a2", "t1", "n2", "n3"}
    expected = {p for p in window_files(world.root) if Path(p).parent.name in candidates}
    assert set(opened) == expected and set(opened.values()) == {1}
    assert result.files_read == len(expected)


def test_pass1_dry_run_writes_nothing(world: World) -> None:
    fill_pass1_world(world)
    result = run_pass1(world.store, world.root, dry_run=True)
    assert result.dry_run and result.written == 0 and len(result.decisions) == 6
    assert world.store.status_counts() == {"assigned": 1, "unassigned": 7}


def test_pass1_writes_in_batches(world: World, monkeypatch) -> None:
    for i in range(7):
        world.add(f"d{i}", "C", [[MED]])
    calls: list[int] = []
    real = world.store.write_decisions

    def spy(decisions, **kwargs):
        decisions = list(decisions)
        calls.append(len(decisions))
        return real(decisions, **kwargs)

    monkeypatch.setattr(world.store, "write_decisions", spy)
    result = run_pass1(world.store, world.root, batch_size=3)
    assert calls == [3, 3, 1] and result.written == 7
    assert world.store.status_counts() == {"assigned": 7}


def test_pass1_one_failing_document_is_counted_and_the_pass_continues(
    world: World, monkeypatch
) -> None:
    world.add("good", "C", [[MED]])
    world.add("../evil", "C", None)  # an unsafe hash in the DB
    world.add("locked", "C", [[NAV]])
    world.add("good2", "C", [[WAT]])
    patch_concept_open(monkeypatch, "locked", PermissionError(13, "Permission denied"))
    result = run_pass1(world.store, world.root)
    errors = {e.hash: e.reason for e in result.errors}
    assert set(errors) == {"../evil", "locked"}
    assert "plain folder name" in errors["../evil"]
    assert "Permission denied" in errors["locked"] and "not decided" in errors["locked"]
    assert {d.hash for d in result.decisions} == {"good", "good2"}
    # failing documents are not written (not sent to needs_reprocess on a partial read)
    assert world.row("locked") == (None, None) and world.row("../evil") == (None, None)
    assert world.row("good2") == (Status.ASSIGNED, WAT)
    assert result.percentages()["needs_reprocess"] == 0.0


def test_pass1_explicit_documents(world: World) -> None:
    fill_pass1_world(world)
    docs = [d for d in world.store.backfill_candidates() if d.hash in {"a1", "t1"}]
    result = run_pass1(world.store, world.root, documents=docs)
    assert result.candidates == 2 and world.row("a1") == (Status.ASSIGNED, MED)
    assert world.row("a2") == (None, None)


def test_benchmark_deviation_of_a_pass1_result(world: World) -> None:
    fill_pass1_world(world)
    result = run_pass1(world.store, world.root, dry_run=True)
    assert isinstance(result, Pass1Result)
    checks = {c.name: c for c in benchmark_deviation(result)}
    assert checks["assigned"].actual == 66.67 and not checks["assigned"].ok
    assert checks["needs_reprocess"].deviation == 30.5


# -- window files above the size cap (RECON_MAX_WINDOW_FILE_MB) ------------------------------
MB = 1024 * 1024


def test_pass1_decides_from_the_other_files_and_never_reads_one_above_the_cap(world: World):
    world.add("big", "C", [[MED], [MED, NAV]])
    with open(world.root / "big" / "window_0003.json", "wb") as fh:
        fh.truncate(200 * MB)  # sparse: 200 MB that take no disk and no time to make
    world.add("only", "C", [])
    with open(world.root / "only" / "window_0001.json", "wb") as fh:
        fh.truncate(200 * MB)
    tracemalloc.start()
    try:
        result = run_pass1(world.store, world.root)  # the default cap, 16 MB
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * MB  # neither file was read (reading one allocates its 200 MB)
    assert result.errors == [] and result.skipped_files == {REASON_TOO_LARGE: 2}
    assert world.row("big") == (Status.ASSIGNED, MED)  # decided from its other two files
    # Nothing else to count: no valid concept, so needs_reprocess (SPEC §4), like a folder
    # of malformed files; Step 7 says why and what else to do.
    assert world.row("only") == (Status.NEEDS_REPROCESS, None)
    example = result.skip_examples[REASON_TOO_LARGE]
    assert example.startswith("big/window_0003.json: 209,715,200 bytes (200.0 MB), above")
    assert "raise RECON_MAX_WINDOW_FILE_MB" in example
    (item,) = plan_reprocess(world.store, world.root)
    assert item.hash == "only" and item.stale
    assert item.why.startswith("window files above RECON_MAX_WINDOW_FILE_MB, not read")


def test_the_configured_cap_reaches_pass1_the_tiebreaker_the_spot_check_and_reprocess(
    world: World,
) -> None:
    """A real 2 MB window file of Navigation: counted under the default cap (16 MB), not
    under a cap of 1 MB — each entry point decides by the cap it is given."""
    navigation = "[" + ", ".join([json.dumps(concept(NAV))] * 60_000) + "]"
    assert 1 * MB < len(navigation) < 16 * MB
    world.add("big", "C", [[MED], [MED, NAV]])
    (world.root / "big" / "window_0003.json").write_text(navigation)
    world.add("tie", "C", [[MED, NAV]])
    world.add("only", "D", [])
    (world.root / "only" / "window_0001.json").write_text(navigation)

    result = run_pass1(world.store, world.root, max_window_file_mb=1)
    assert {(d.hash, d.status, d.domain) for d in result.decisions} == {
        ("big", Status.ASSIGNED, MED),
        ("tie", Status.TIED_PASS_1, None),
        ("only", Status.NEEDS_REPROCESS, None),
    }
    # The tie's channel context is "big" without its big file (MED 2, NAV 1) ...
    tie = run_tiebreaker(world.store, world.root, dry_run=True, max_window_file_mb=1)
    assert [(d.hash, d.status, d.domain) for d in tie.decisions] == [
        ("tie", Status.TIED_PASS_2, MED)
    ]
    # ... and with it under the default cap.
    tie = run_tiebreaker(world.store, world.root, dry_run=True)
    assert [(d.hash, d.domain) for d in tie.decisions] == [("tie", NAV)]

    (row,) = spot_check(world.store, world.root, Status.ASSIGNED, 5, max_window_file_mb=1)
    assert row.agrees
    (row,) = spot_check(world.store, world.root, Status.ASSIGNED, 5)
    assert not row.agrees and row.expected_domain == NAV

    (item,) = plan_reprocess(world.store, world.root, max_window_file_mb=1)
    assert item.stale and "RECON_MAX_WINDOW_FILE_MB" in item.why
    (item,) = plan_reprocess(world.store, world.root)
    assert not item.stale and item.why.startswith("has valid domains now")


# -- tiebreaker ------------------------------------------------------------------------------
def fill_tie_world(w: World) -> None:
    # Cooking: two tied documents and three others. Technology dominates the channel but is
    # tied for neither document.
    w.add("t1", "Cooking", [[MED, WAT], [MED, WAT]])  # MED/WAT tie
    w.add("t2", "Cooking", [[NAV, WAT]])  # NAV/WAT tie
    w.add("o1", "Cooking", [[WAT, WAT, MED], [TEC] * 9])
    w.add("o2", "Cooking", [[NAV, NAV, NAV]])
    w.add("o3", "Cooking", None)
    # Transcript (skip list): many members that must never be read.
    w.add("t3", "Transcript", [[NAV, MED]])
    for i in range(5):
        w.add(f"tr{i}", "Transcript", [[NAV] * 3])
    # No channel at all.
    w.add("t4", None, [[MED, NAV]])
    run = run_pass1(w.store, w.root)
    assert run.status_counts[Status.TIED_PASS_1] == 4


def test_tiebreaker_channel_context_excludes_the_document(world: World, opened) -> None:
    fill_tie_world(world)
    opened.clear()
    result = run_tiebreaker(world.store, world.root)
    by = {d.hash: d for d in result.decisions}
    assert result.errors == [] and result.tied_documents == 4
    # t1: channel = t2 + o1 + o2 (not t1 itself): WAT 1+2=3, MED 1 → Water Systems.
    assert (by["t1"].status, by["t1"].domain, by["t1"].rule) == (
        Status.TIED_PASS_2,
        WAT,
        RULE_CHANNEL,
    )
    assert by["t1"].channel_counts == ((WAT, 3), (MED, 1))
    # t2: channel = t1 + o1 + o2: NAV 3, WAT 2+2=4 → Water Systems.
    assert by["t2"].channel_counts == ((WAT, 4), (NAV, 3))
    assert by["t2"].domain == WAT
    assert (by["t3"].status, by["t3"].domain, by["t3"].rule) == (
        Status.TIED_MANUAL,
        MED,
        RULE_SKIP_CHANNEL,
    )
    assert (by["t4"].status, by["t4"].domain, by["t4"].rule) == (
        Status.TIED_MANUAL,
        MED,
        RULE_NO_CHANNEL,
    )
    assert world.row("t1") == (Status.TIED_PASS_2, WAT)
    assert world.row("t3") == (Status.TIED_MANUAL, MED)
    assert result.status_counts == {Status.TIED_PASS_2: 2, Status.TIED_MANUAL: 2}
    assert result.channels_counted == 1 and result.channels_recounted == 0
    # every file read at most once; the skip-listed channel's members never read
    assert set(opened.values()) == {1}
    assert not any(Path(p).parent.name.startswith("tr") for p in opened)
    expected = {
        p
        for p in window_files(world.root)
        if Path(p).parent.name in {"t1", "t2", "t3", "t4", "o1", "o2"}
    }
    assert set(opened) == expected and result.files_read == len(expected)


def test_tiebreaker_custom_skip_list(world: World) -> None:
    fill_tie_world(world)
    result = run_tiebreaker(world.store, world.root, skip_channels={"Cooking"})
    by = {d.hash: d for d in result.decisions}
    assert (by["t1"].status, by["t1"].domain) == (Status.TIED_MANUAL, MED)
    assert (by["t2"].status, by["t2"].domain) == (Status.TIED_MANUAL, NAV)
    # Transcript is no longer skipped: its members decide t3 (NAV 15 vs MED 0).
    assert (by["t3"].status, by["t3"].domain) == (Status.TIED_PASS_2, NAV)


def test_tiebreaker_dry_run_writes_nothing(world: World) -> None:
    fill_tie_world(world)
    result = run_tiebreaker(world.store, world.root, dry_run=True)
    assert result.written == 0 and len(result.decisions) == 4
    assert world.store.status_counts()[Status.TIED_PASS_1] == 4


def test_tiebreaker_recounts_own_files_changed_since_pass1(world: World) -> None:
    fill_tie_world(world)
    world.write("t1", [[MED]], start=3)  # RECON added a window: MED now wins outright
    shutil.rmtree(world.root / "t2")  # concepts removed: nothing valid any more
    result = run_tiebreaker(world.store, world.root)
    by = {d.hash: d for d in result.decisions}
    assert (by["t1"].status, by["t1"].domain, by["t1"].rule) == (
        Status.ASSIGNED,
        MED,
        RULE_OWN_WINNER,
    )
    assert (by["t2"].status, by["t2"].domain) == (Status.NEEDS_REPROCESS, None)
    assert world.row("t1") == (Status.ASSIGNED, MED)
    assert world.row("t2") == (Status.NEEDS_REPROCESS, None)


def test_pass3_channel_counts_still_tied_gives_tied_manual(world: World, opened) -> None:
    world.add("t1", "Garden", [[MED, WAT]])
    world.add("o1", "Garden", [[MED, WAT, WAT]])
    world.add("o2", "Garden", [[MED, MED]])  # channel: MED 3, WAT 2+... → see below
    world.add("o3", "Garden", [[WAT]])  # MED 3, WAT 3: tied
    run_pass1(world.store, world.root)
    opened.clear()
    result = run_tiebreaker(world.store, world.root)
    (d,) = result.decisions
    assert (d.hash, d.status, d.domain, d.rule) == (
        "t1",
        Status.TIED_MANUAL,
        MED,
        RULE_CHANNEL_TIED,
    )
    assert d.channel_counts == ((MED, 3), (WAT, 3))
    assert result.channels_counted == 1 and result.channels_recounted == 1
    # pass 3 re-read the channel once: every file at most twice
    assert set(opened.values()) == {2}
    assert world.row("t1") == (Status.TIED_MANUAL, MED)


def test_pass3_recount_sees_concurrent_writes(world: World, monkeypatch) -> None:
    world.add("t1", "Garden", [[MED, WAT]])
    world.add("o1", "Garden", [[MED]])
    world.add("o2", "Garden", [[WAT]])
    run_pass1(world.store, world.root)
    real = world.store.channel_members_map
    calls: list[list[str]] = []

    def members(channels=None) -> dict[str, list[str]]:
        calls.append(sorted(channels))
        if len(calls) == 2:  # RECON writes a window for o2 between pass 2 and pass 3
            world.write("o2", [[WAT]], start=2)
        return real(channels)

    monkeypatch.setattr(world.store, "channel_members_map", members)
    result = run_tiebreaker(world.store, world.root)
    (d,) = result.decisions
    assert (d.status, d.domain, d.rule) == (Status.TIED_PASS_2, WAT, RULE_CHANNEL_PASS3)
    assert d.channel_counts == ((WAT, 2), (MED, 1))
    assert calls == [["Garden"], ["Garden"]]  # one membership read for pass 2, one for 3


def test_tiebreaker_failures_are_counted_and_the_pass_continues(world: World, monkeypatch) -> None:
    fill_tie_world(world)
    world.add("../escape", "Cooking", None)  # unsafe hash, tied in the DB, channel member
    world.set_status("../escape", Status.TIED_PASS_1)
    world.add("o4", "Cooking", [[WAT] * 50])  # a member whose files cannot be read
    patch_concept_open(monkeypatch, "/o4/", OSError(5, "Input/output error"))
    result = run_tiebreaker(world.store, world.root)
    assert [e.hash for e in result.errors] == ["../escape"]
    assert "plain folder name" in result.errors[0].reason
    assert {p.hash for p in result.channel_problems} == {"../escape", "o4"}
    assert len(result.decisions) == 4  # the other tied documents were all decided
    assert world.row("../escape") == (Status.TIED_PASS_1, None)
    # o4's 50 WAT were not counted: t1's channel counts are the same as without o4
    assert {d.hash: d for d in result.decisions}["t1"].channel_counts == ((WAT, 3), (MED, 1))


# -- spot checks ---------------------------------------------------------------------------
def test_rederive_and_spot_check_agree_then_catch_a_wrong_row(world: World) -> None:
    fill_tie_world(world)
    world.add("a1", "Misc", [[TEC, TEC, MED]])
    run_pass1(world.store, world.root)
    run_tiebreaker(world.store, world.root)
    r = rederive_decision(world.root, world.store, "t1")
    assert (r.status, r.domain, r.channel) == (Status.TIED_PASS_2, WAT, "Cooking")
    assert r.channel_counts == ((WAT, 3), (MED, 1)) and r.top_counts == ((MED, 2), (WAT, 2))
    r = rederive_decision(world.root, world.store, "a1")
    assert (r.status, r.domain, r.top_counts) == (Status.ASSIGNED, TEC, ((TEC, 2), (MED, 1)))

    rows = spot_check(world.store, world.root, Status.ASSIGNED, 20, seed=1)
    assigned = {"a1", "o1", "o2", *(f"tr{i}" for i in range(5))}
    assert {r.hash for r in rows} == assigned and all(r.agrees for r in rows)
    rows = spot_check(world.store, world.root, Status.TIED_PASS_2, 5, seed=1)
    assert {r.hash for r in rows} == {"t1", "t2"} and all(r.agrees for r in rows)

    world.set_status("t2", Status.TIED_PASS_2, NAV)  # a wrong stored decision
    rows = spot_check(world.store, world.root, Status.TIED_PASS_2, 5, seed=1)
    bad = [r for r in rows if not r.agrees]
    assert [(r.hash, r.stored_domain, r.expected_domain) for r in bad] == [("t2", NAV, WAT)]


def test_spot_check_rows_carry_the_watch_url(world: World) -> None:
    world.add("a1", "Misc", [[TEC, TEC, MED]])
    world.add("..", "Misc", None)  # an unsafe hash: re-deriving fails, the row still links
    run_pass1(world.store, world.root)
    world.set_status("..", Status.ASSIGNED, TEC)
    rows = spot_check(world.store, world.root, Status.ASSIGNED, 20, seed=1)
    assert {r.hash: (r.path, bool(r.problem)) for r in rows} == {
        "a1": (f"https://{SOURCE}/w/a1", False),
        "..": (f"https://{SOURCE}/w/..", True),
    }


def test_unreadable_tied_document_is_an_error_read_once_and_left_out_of_context(
    world: World, monkeypatch
) -> None:
    fill_tie_world(world)
    attempts = patch_concept_open(monkeypatch, "/t2/", PermissionError(13, "Permission denied"))
    result = run_tiebreaker(world.store, world.root)
    assert [e.hash for e in result.errors] == ["t2"]
    assert world.row("t2") == (Status.TIED_PASS_1, None)  # left for the next run
    assert [p.hash for p in result.channel_problems] == ["t2"]
    t2_files = [p for p in attempts if "/t2/" in p]
    assert t2_files and all(attempts[p] == 1 for p in t2_files)
    # t1's context is o1 + o2 only: WAT 2, MED 1
    by = {d.hash: d for d in result.decisions}
    assert (by["t1"].domain, by["t1"].channel_counts) == (WAT, ((WAT, 2), (MED, 1)))
    r = rederive_decision(world.root, world.store, "t1")
    assert (r.status, r.domain) == (Status.TIED_PASS_2, WAT)
    assert len(r.channel_problems) == 1 and r.channel_problems[0].startswith("t2: ")


# -- a generated corpus (recon_domains.sandbox.corpus) ---------------------------------------
def test_passes_on_a_generated_corpus_match_its_design(small_corpus, opened) -> None:
    c = small_corpus
    with ReconStore.open(c.recon_db, c.source) as store:
        store.migrate()
        dry = run_pass1(store, c.concepts_dir, dry_run=True)
        assert store.status_counts().keys() == {"unassigned"}
        opened.clear()
        result = run_pass1(store, c.concepts_dir)
        assert result.errors == [] and result.candidates == c.complete_stream_docs
        assert (
            result.status_counts
            == dry.status_counts
            == {
                Status.ASSIGNED: c.expected_assigned,
                Status.TIED_PASS_1: c.expected_tied,
                Status.NEEDS_REPROCESS: c.expected_needs_reprocess,
            }
        )
        assert set(opened.values()) == {1} and result.files_read == len(opened)
        opened.clear()
        tb = run_tiebreaker(store, c.concepts_dir)
        assert tb.errors == [] and tb.tied_documents == c.expected_tied
        assert Status.TIED_PASS_1 not in store.status_counts()
        assert max(opened.values()) <= 2  # once, plus at most one pass-3 recount
        if tb.channels_recounted == 0:
            assert set(opened.values()) == {1}
        rows = spot_check(store, c.concepts_dir, Status.ASSIGNED, 20, seed=7)
        assert len(rows) == 20 and all(r.agrees for r in rows)
        rows = spot_check(store, c.concepts_dir, Status.TIED_PASS_2, 5, seed=7)
        assert rows and all(r.agrees for r in rows)


def test_a_failing_write_stops_the_pass_keeps_earlier_batches_and_a_rerun_finishes(
    world: World, monkeypatch
) -> None:
    for i in range(5):
        world.add(f"d{i}", "C", [[MED]])
    real = world.store.write_decisions
    calls: list[int] = []

    def locked_on_second(decisions, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise sqlite3.OperationalError("database is locked")
        return real(decisions, **kwargs)

    monkeypatch.setattr(world.store, "write_decisions", locked_on_second)
    with pytest.raises(DecisionWriteError, match=r"database is locked.*2 were written"):
        run_pass1(world.store, world.root, batch_size=2)
    assert world.store.status_counts() == {"assigned": 2, "unassigned": 3}
    monkeypatch.setattr(world.store, "write_decisions", real)
    result = run_pass1(world.store, world.root, batch_size=2)
    assert result.candidates == 3 and world.store.status_counts() == {"assigned": 5}

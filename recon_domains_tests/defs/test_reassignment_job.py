"""The scheduled re-assignment through Dagster (reassignment_job), after a whole migration
against the sandbox PeerTube on real PostgreSQL: changed concept files are reported exactly,
applied and pushed with the ledger, rolled back exactly; a tie whose channel gained context
is resolved; a mass change stops at the gate; manual_assigned and drifted videos untouched."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter

import pytest

from recon_domains.definitions import build_definitions
from recon_domains.peertube.client import PeerTubeClient
from recon_domains.peertube.urls import canonical_video_id, parse_watch_url
from recon_domains.recon.concepts import read_domain_counts
from recon_domains.recon.store import LEDGER_TABLE
from recon_domains.taxonomy import DOMAIN_IDS, DOMAINS, Status, fallback_domain
from recon_domains_tests.defs.conftest import (
    MIGRATION,
    check_evaluation,
    failure_text,
)
from recon_domains_tests.snapshots import video_snapshot

pytestmark = pytest.mark.slow

JOB = "reassignment_job"
HUMAN_CATEGORY = 3  # a built-in category an admin picked by hand in PeerTube


def _rewrite(folder, domains: dict[str, int]) -> None:
    """RECON re-enriched a document: its window files replaced by one with these counts."""
    folder.mkdir(exist_ok=True)
    for f in folder.glob("window_*.json"):
        f.unlink()
    items = [{"domain": d} for d, n in domains.items() for _ in range(n)]
    (folder / "window_0001.json").write_text(json.dumps(items))


def _uuid(path: str | None) -> str:
    video = parse_watch_url(path).video_id
    assert video is not None, path
    return canonical_video_id(video)


def _materialized(result, key: str) -> dict:
    (mat,) = result.asset_materializations_for_node(key)
    return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}


def _sample_hashes(meta: dict) -> set[str]:
    return {r.data["hash"] for r in meta["sample"].records}


def _domain_columns(db) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(
            "SELECT hash, recon_domain, recon_domain_status, recon_domain_assigned_at, "
            "peertube_category_pushed_at FROM documents ORDER BY hash"
        ).fetchall()
    finally:
        conn.close()


def _ledger(db) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(
            f"SELECT hash, stage, category_before, category_after, pushed_at FROM {LEDGER_TABLE} "
            "ORDER BY id"
        ).fetchall()
    finally:
        conn.close()


def test_reassignment_job_end_to_end(rollout_factory) -> None:
    r = rollout_factory(docs=200)
    r.defs = build_definitions(dict(r.defs.resources))
    root = r.corpus.concepts_dir
    before_migration = video_snapshot(r.server.dsn)
    r.through(*MIGRATION)

    # -- the world after the migration ----------------------------------------------------
    with r.store() as s:
        pushed = [c for c in s.pushed_documents() if c.status == Status.ASSIGNED]
        moved, drifted = pushed[:3], pushed[3]
        # A tie no channel could break: a re-processed video of a topical channel whose two
        # tied domains its channel does not have yet.
        stale = [
            d for d in s.documents_with_status(Status.NEEDS_REPROCESS)
            if d.channel and d.channel != "Transcript" and parse_watch_url(d.path).ok
        ]
        tie = stale[0]
        members = [m for m in s.channel_members(tie.channel) if m != tie.hash]
        seen: Counter[str] = Counter()
        for m in members:
            seen.update(read_domain_counts(root, m).counts)
        a, b = [d for d in DOMAINS if not seen[d]][:2]
        _rewrite(root / tie.hash, {a: 5, b: 5})
        human = s.documents_with_status(Status.TIED_MANUAL)[0]
    with r.store() as s, s.transaction() as conn:
        conn.execute(
            "UPDATE documents SET recon_domain_status = 'tied_manual', recon_domain = ? "
            "WHERE hash = ?", (fallback_domain((a, b)), tie.hash),
        )
        # The review page: a human assigned this one.
        conn.execute(
            "UPDATE documents SET recon_domain_status = 'manual_assigned', recon_domain = ? "
            "WHERE hash = ?", ("Medical", human.hash),
        )
    with r.store() as s:  # the tie as the tiebreaker would have recorded it
        s.refresh_sources([
            (tie.hash, read_domain_counts(root, tie.hash).fingerprint, "tied_manual",
             fallback_domain((a, b)))
        ])

    # -- a first run: nothing changed; the tie is retried and stays a tie ------------------
    quiet = r.job(JOB)
    assert quiet.success, failure_text(quiet)
    dry = _materialized(quiet, "reassignment_dry_run")
    assert dry["changes"] == 0 and dry["files_changed"] == 0
    assert dry["ties_retried"] >= 1 and dry["decided_before_fingerprints"] == 0
    ledger_before = _ledger(r.corpus.recon_db)

    # -- RECON re-enriches: new concept files; the tie's channel gains context -------------
    new_domain = {}
    for c in [*moved, drifted]:
        new_domain[c.hash] = next(d for d in DOMAINS if d not in (c.domain, a, b))
        _rewrite(root / c.hash, {new_domain[c.hash]: 40})
    _rewrite(root / human.hash, {"Water Systems": 40})  # never decided again
    with r.store() as s, s.transaction() as conn:
        newcomer = "f" * 32
        conn.execute(
            "INSERT INTO catalogue (hash, filename, path, size_bytes, source, category, status, "
            "discovered_at) SELECT ?, filename, path, size_bytes, source, category, 'complete', "
            "discovered_at FROM catalogue WHERE hash = ?", (newcomer, tie.hash),
        )
        conn.execute(
            "INSERT INTO documents (hash, filename, path, status, discovered_at) "
            "SELECT ?, filename, path, 'complete', discovered_at FROM documents WHERE hash = ?",
            (newcomer, tie.hash),
        )
    _rewrite(root / newcomer, {a: 10})
    # Someone picks another category for one of the videos in PeerTube.
    with PeerTubeClient(r.server.url, "root", r.server.admin_password) as client:
        client.set_category(_uuid(drifted.path), HUMAN_CATEGORY)
    human_row = _domain_columns(r.corpus.recon_db)

    run = r.job(JOB)
    assert run.success, failure_text(run)
    dry = _materialized(run, "reassignment_dry_run")
    expected = {c.hash for c in [*moved, drifted]} | {tie.hash}
    assert dry["changes"] == len(expected) == 5
    assert _sample_hashes(dry) == {h[:12] for h in expected}
    pairs = {(p.data["from"], p.data["to"]): p.data["documents"]
             for p in dry["changes_by_domain"].records}
    assert sum(pairs.values()) == 5 and pairs[("tied_manual", a)] == 1
    assert check_evaluation(run, "reassignment_within_threshold").passed
    applied = _materialized(run, "reassignment")
    assert check_evaluation(run, "reassignment_verified").passed

    # RECON has the new decisions; the drifted one and the human's are untouched.
    rows = {row[0]: row for row in _domain_columns(r.corpus.recon_db)}
    for c in moved:
        assert rows[c.hash][1:3] == (new_domain[c.hash], Status.ASSIGNED)
    assert rows[tie.hash][1:3] == (a, Status.TIED_PASS_2)
    assert rows[drifted.hash][1:3] == (drifted.domain, Status.ASSIGNED)
    old = {row[0]: row for row in human_row}
    assert rows[drifted.hash] == old[drifted.hash]
    assert rows[human.hash] == old[human.hash] and rows[human.hash][2] == "manual_assigned"
    assert [d.data["hash"] for d in applied["drifted_videos"].records] == [drifted.hash[:12]]

    # The sandbox shows the new categories (the drifted video what the human set) and the
    # ledger the old ones.
    videos = video_snapshot(r.server.dsn)
    for c in moved:
        assert videos[_uuid(c.path)] == DOMAIN_IDS[new_domain[c.hash]]
    assert videos[_uuid(tie.path)] == DOMAIN_IDS[a]
    assert videos[_uuid(drifted.path)] == HUMAN_CATEGORY
    added = _ledger(r.corpus.recon_db)[len(ledger_before):]
    assert {(h, stage, before, after) for h, stage, before, after, _ in added} == {
        *((c.hash, "reassignment", DOMAIN_IDS[c.domain], DOMAIN_IDS[new_domain[c.hash]])
          for c in moved),
        (tie.hash, "reassignment", before_migration[_uuid(tie.path)], DOMAIN_IDS[a]),
    }
    assert all(pushed_at for *_, pushed_at in added)

    # -- a mass change (RECON's taxonomy changed) stops at the gate, nothing written -------
    with r.store() as s:
        mass = [c for c in s.pushed_documents() if c.status == Status.ASSIGNED][5:25]
    for c in mass:
        _rewrite(root / c.hash, {next(d for d in DOMAINS if d not in (c.domain, a, b)): 40})
    recon_before, videos_before = _domain_columns(r.corpus.recon_db), video_snapshot(r.server.dsn)
    ledger_now = _ledger(r.corpus.recon_db)
    stopped = r.job(JOB)
    assert not stopped.success
    gate = check_evaluation(stopped, "reassignment_within_threshold")
    assert not gate.passed and "HALT: nothing is written" in gate.description
    assert not stopped.asset_materializations_for_node("reassignment")
    # A later run of the apply alone is refused by its guard.
    alone = r.assets_alone(["reassignment"])
    assert not alone.success and "reassignment_within_threshold" in failure_text(alone)
    assert _domain_columns(r.corpus.recon_db) == recon_before
    assert video_snapshot(r.server.dsn) == videos_before
    assert _ledger(r.corpus.recon_db) == ledger_now

    # -- the rollback restores every category from before our first push, exactly ----------
    rollback = r.defs.resolve_job_def("rollback_peertube_categories").execute_in_process(
        instance=r.instance,
        run_config={"ops": {"rollback_peertube_categories_step": {"config": {"confirm": True}}}},
        raise_on_error=False,
    )
    assert rollback.success, failure_text(rollback)
    after = video_snapshot(r.server.dsn)
    assert after[_uuid(drifted.path)] == HUMAN_CATEGORY  # the human's choice, left
    del after[_uuid(drifted.path)]
    assert after == {u: c for u, c in before_migration.items() if u != _uuid(drifted.path)}

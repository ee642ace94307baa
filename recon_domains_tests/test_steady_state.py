"""Steady-state core: new-work detection (read-only, lock-tolerant) and the drift report."""

from __future__ import annotations

import sqlite3

import psycopg2
import pytest

from recon_domains.assignment import run_pass1
from recon_domains.recon.store import ReconStore
from recon_domains.sandbox.corpus import add_completed_documents
from recon_domains.steady_state import ReconBusy, drift_report, pending_work, pushed_mismatches
from recon_domains_tests.rollback_world import run_migration, start_world
from recon_domains_tests.snapshots import db_snapshot


@pytest.fixture
def migrated_corpus(corpus_factory):
    corpus = corpus_factory(docs=100)
    with ReconStore.open(corpus.recon_db, corpus.source) as store:
        store.migrate()
        run_pass1(store, corpus.concepts_dir)
    return corpus


def test_pending_work_sees_new_documents_and_writes_nothing(migrated_corpus) -> None:
    c = migrated_corpus
    before = db_snapshot(c.recon_db)
    idle = pending_work(c.recon_db, c.source)
    assert idle.hashes == () and idle.fingerprint == ""
    assert db_snapshot(c.recon_db) == before
    added = add_completed_documents(c.recon_db, c.concepts_dir, 3, seed=7, source=c.source)
    work = pending_work(c.recon_db, c.source)
    assert work.hashes == tuple(sorted(added))
    assert work.fingerprint.startswith("3-")
    assert pending_work(c.recon_db, c.source).fingerprint == work.fingerprint  # stable
    more = add_completed_documents(c.recon_db, c.concepts_dir, 1, seed=8, source=c.source)
    assert pending_work(c.recon_db, c.source).hashes == tuple(sorted(added + more))


def test_pending_work_survives_a_locked_database(migrated_corpus) -> None:
    c = migrated_corpus
    locker = sqlite3.connect(c.recon_db, isolation_level=None)
    locker.execute("PRAGMA locking_mode = EXCLUSIVE")
    locker.execute("BEGIN EXCLUSIVE")
    locker.execute("UPDATE documents SET status = status WHERE 0")
    try:
        with pytest.raises(ReconBusy, match="busy"):
            pending_work(c.recon_db, c.source, timeout_s=0.1)
    finally:
        locker.execute("COMMIT")
        locker.close()
    assert pending_work(c.recon_db, c.source).hashes == ()


def test_pending_work_refuses_unmigrated_and_missing(corpus_factory, tmp_path) -> None:
    corpus = corpus_factory(docs=100)
    with pytest.raises(ValueError, match="schema_job"):
        pending_work(corpus.recon_db, corpus.source)
    with pytest.raises(ReconBusy):
        pending_work(tmp_path / "gone.db", corpus.source)


def test_drift_report_finds_a_video_changed_in_peertube(corpus_factory, peertube_server) -> None:
    w = run_migration(start_world(corpus_factory, peertube_server, docs=100), reprocess=0)
    try:
        clean = drift_report(w.store, w.pt_db)
        assert clean.ok and clean.checked == clean.matching > 0
        victim = sorted(w.store.original_categories())[0]
        victim_hash = next(r.hash for r in w.store.ledger() if r.video_id == victim)
        assert pushed_mismatches(w.store, [victim_hash], w.pt_db) == (1, [])
        conn = psycopg2.connect(w.server.dsn)
        with conn, conn.cursor() as cur:
            cur.execute("UPDATE video SET category = 2 WHERE uuid = %s", (victim,))
        conn.close()
        before = db_snapshot(w.corpus.recon_db)
        for kwargs in ({"pt_db": w.pt_db}, {"client": w.client}):
            report = drift_report(w.store, base_url=w.server.url, **kwargs)
            assert not report.ok
            assert [d["video_id"] for d in report.drifted] == [victim]
            assert report.drifted[0]["now"] == 2 and report.drifted[0]["pushed"] >= 100
            assert report.drifted[0]["url"].endswith(victim)
            checked, wrong = pushed_mismatches(w.store, [victim_hash], **kwargs)
            assert checked == 1 and [(h, v, now) for h, v, _, now in wrong] == [
                (victim_hash, victim, 2)
            ]
        assert db_snapshot(w.corpus.recon_db) == before
        conn = psycopg2.connect(w.server.dsn)
        with conn.cursor() as cur:
            cur.execute("SELECT category FROM video WHERE uuid = %s", (victim,))
            assert cur.fetchone()[0] == 2  # reported, never overwritten
        conn.close()
    finally:
        w.store.close()
        w.client.close()

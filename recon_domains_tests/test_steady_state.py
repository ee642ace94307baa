"""Steady-state core: new-work detection (read-only, lock-tolerant) and the drift report."""

from __future__ import annotations

import sqlite3

import psycopg2
import pytest

from recon_domains.assignment import run_pass1
from recon_domains.peertube.categories import peertube_categories
from recon_domains.peertube.urls import short_to_uuid, uuid_to_short
from recon_domains.recon.store import LEDGER_TABLE, ReconStore
from recon_domains.sandbox.corpus import add_completed_documents
from recon_domains.steady_state import ReconBusy, drift_report, pending_work
from recon_domains.taxonomy import DOMAIN_BY_ID
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


@pytest.mark.parametrize("reads", ["database", "api"])
def test_drift_report_finds_a_video_changed_in_peertube(
    corpus_factory, peertube_server, reads
) -> None:
    w = run_migration(start_world(corpus_factory, peertube_server, docs=100), reprocess=0)
    try:
        categories = peertube_categories(w.client, w.pt_db if reads == "database" else None)
        clean = drift_report(w.store, categories)
        assert clean.ok and clean.checked == clean.matching > 0 and clean.outside == 0
        # Ledger ids written as short UUIDs (watch URLs carry either form) are the same videos.
        with w.store.transaction() as conn:
            for row in w.store.ledger():
                conn.execute(f"UPDATE {LEDGER_TABLE} SET video_id = ? WHERE id = ?",
                             (uuid_to_short(row.video_id), row.id))
        assert drift_report(w.store, categories) == clean
        victim, gone = sorted(w.store.original_categories())[:2]
        victim_hash = next(r.hash for r in w.store.ledger() if short_to_uuid(r.video_id) == victim)
        gone_hash = next(r.hash for r in w.store.ledger() if short_to_uuid(r.video_id) == gone)
        # A human sets a built-in category; a video is deleted; an uploader picks a RECON
        # category on a video RECON never pushed.
        conn = psycopg2.connect(w.server.dsn)
        with conn, conn.cursor() as cur:
            cur.execute("UPDATE video SET category = 2 WHERE uuid = %s", (victim,))
            cur.execute("DELETE FROM video WHERE uuid = %s", (gone,))
        conn.close()
        w.server.add_video("an upload", category=105)
        before = db_snapshot(w.corpus.recon_db)
        report = drift_report(w.store, categories, base_url=w.server.url)
        assert not report.ok
        assert [d["video_id"] for d in report.drifted] == [victim]
        drifted = report.drifted[0]
        assert drifted["now"] == 2 and drifted["now_label"] == "2 Films"
        assert drifted["pushed"] >= 100
        assert drifted["pushed_label"] == f"{drifted['pushed']} {DOMAIN_BY_ID[drifted['pushed']]}"
        assert drifted["url"].endswith(victim)
        assert [(m["hash"], m["video_id"]) for m in report.missing] == [(gone_hash, gone)]
        assert report.outside == 1 and report.checked == clean.checked
        mine, known = report.split({victim_hash})
        assert [e["video_id"] for e in mine] == [victim]
        assert [e["video_id"] for e in known] == [gone]
        assert db_snapshot(w.corpus.recon_db) == before
        conn = psycopg2.connect(w.server.dsn)
        with conn.cursor() as cur:
            cur.execute("SELECT category FROM video WHERE uuid = %s", (victim,))
            assert cur.fetchone()[0] == 2  # reported, never overwritten
        conn.close()
    finally:
        w.store.close()
        w.client.close()

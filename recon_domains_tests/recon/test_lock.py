"""The store next to RECON's writer: a real process taking recon.db's write lock (the
recon_writer fixture), real SQLite files."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from recon_domains.recon.store import DomainDecision, ReconLocked, ReconStore
from recon_domains.sandbox.corpus import CorpusSummary
from recon_domains.taxonomy import Status


def _migrated(corpus: CorpusSummary) -> list[str]:
    """Migrate the corpus's recon.db; its backfill candidates' hashes."""
    with ReconStore.open(corpus.recon_db, corpus.source) as store:
        store.migrate()
        return [d.hash for d in store.backfill_candidates()]


def _domain_of(db: Path, doc_hash: str) -> str | None:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT recon_domain FROM documents WHERE hash = ?",
                            (doc_hash,)).fetchone()[0]


def test_writes_get_in_between_the_holds_of_a_writer_that_pauses_10_ms(
    small_corpus, recon_writer
) -> None:
    """SQLite's own busy handler waits past 2 s for most of such writes (it backs off to
    one try per 100 ms and misses 10 ms gaps); ours each get the next gap."""
    hashes = _migrated(small_corpus)[:8]
    writer = recon_writer(small_corpus.recon_db, hold_s=0.5, gap_s=0.01)
    waits: list[float] = []
    with ReconStore.open(small_corpus.recon_db, small_corpus.source, lock_timeout_s=2) as store:
        for doc_hash in hashes:
            started = time.monotonic()
            store.write_decisions([DomainDecision(doc_hash, Status.ASSIGNED, "Medical")])
            waits.append(time.monotonic() - started)
            time.sleep(0.05)  # work between writes, as a pass does
    figures = writer.stop()
    assert all(_domain_of(small_corpus.recon_db, h) == "Medical" for h in hashes)
    assert max(waits) < 1.5  # each got one of the next gaps, not the deadline
    assert figures.cycles >= len(hashes)  # the writer kept writing throughout
    assert figures.max_wait_s < 0.25  # and our transactions kept it waiting briefly


def test_a_writer_that_never_lets_go_ends_in_one_readable_error_at_the_deadline(
    small_corpus, recon_writer
) -> None:
    doc_hash = _migrated(small_corpus)[0]
    writer = recon_writer(small_corpus.recon_db, hold_s=60, gap_s=0)
    with ReconStore.open(
        small_corpus.recon_db, small_corpus.source, lock_timeout_s=1.5
    ) as store:
        started = time.monotonic()
        with pytest.raises(ReconLocked) as caught:
            store.write_decisions([DomainDecision(doc_hash, Status.ASSIGNED, "Medical")])
        waited = time.monotonic() - started
        # A write that can as well wait for the next gap gives up at once.
        started = time.monotonic()
        with pytest.raises(ReconLocked):
            store.write_decisions([DomainDecision(doc_hash, Status.ASSIGNED, "Legal")],
                                  wait=False)
        at_once = time.monotonic() - started
    writer.stop()
    assert 1.5 <= waited < 2.5
    assert at_once < 0.1
    message = str(caught.value)
    assert message.startswith(
        "recon.db stayed locked for 1.5 s: a RECON process is writing continuously — "
    )
    assert str(small_corpus.recon_db) in message and "nothing of it was written" in message
    assert "What to do:" in message and "RECON_LOCK_TIMEOUT_S" in message
    assert "OperationalError" not in message and "database is locked" not in message
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    assert _domain_of(small_corpus.recon_db, doc_hash) is None


def _checkpoint_completes(db: Path) -> bool:
    """Whether a checkpoint (as RECON's own) can copy the whole WAL into the database right
    now: it cannot get past a frame newer than any open read transaction's snapshot."""
    other = sqlite3.connect(db, timeout=0)
    try:
        _, log, checkpointed = other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        other.close()
    return log == checkpointed


class _Recon:
    """RECON's service: one long-lived connection writing a row now and then."""

    def __init__(self, db: Path) -> None:
        self.conn = sqlite3.connect(db, isolation_level=None)
        self.writes = 0

    def write(self) -> None:
        self.writes += 1
        self.conn.execute("UPDATE catalogue SET path_updated_at = ? WHERE rowid = ?",
                          (f"write {self.writes}", self.writes))


def test_reads_never_wait_for_the_writer_and_leave_no_read_transaction_open(
    small_corpus, recon_writer
) -> None:
    hashes = _migrated(small_corpus)
    with ReconStore.open(small_corpus.recon_db, small_corpus.source) as store:
        store.write_decisions([DomainDecision(h, Status.ASSIGNED, "Medical") for h in hashes])
        store.record_push_intents([(hashes[0], "uuid-0", "stage-1", None, 106)])
        channel = store.channel_of(hashes[0])
        assert channel is not None

        def read_everything() -> None:
            store.status_counts()
            store.backfill_candidates()
            store.documents_with_status(Status.ASSIGNED)
            store.unpushed_categorized(limit=10)
            store.pushed_documents()
            store.open_push_intents()
            store.ledger()
            store.channel_members_map()
            store.channel_members(channel)
            store.watch_paths(hashes[:5])
            store.domain_row(hashes[0])
            store.channel_of(hashes[1])
            store.domain_distribution()

        writer = recon_writer(small_corpus.recon_db, hold_s=60, gap_s=0)
        started = time.monotonic()
        read_everything()
        assert time.monotonic() - started < 1  # WAL: the held write lock blocks no read
        writer.stop()

        recon = _Recon(small_corpus.recon_db)
        try:
            recon.write()
            read_everything()
            recon.write()
            assert _checkpoint_completes(small_corpus.recon_db)
            # The probe does see an open read: a cursor left half-read pins its snapshot.
            cursor = store.conn.execute("SELECT hash FROM documents")
            cursor.fetchone()
            recon.write()
            assert not _checkpoint_completes(small_corpus.recon_db)
            cursor.close()
            recon.write()
            assert _checkpoint_completes(small_corpus.recon_db)
        finally:
            recon.conn.close()

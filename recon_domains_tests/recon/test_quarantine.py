"""The quarantine journal on a real corpus: an entry belongs to exactly one document hash,
even when another document's hash starts with it and the separator (`x` and `x__y`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recon_domains import reprocess
from recon_domains.assignment import run_pass1
from recon_domains.recon import quarantine
from recon_domains.recon.store import ReconStore
from recon_domains.reprocess import (
    plan_reprocess,
    resume_interrupted,
    run_reprocess_batch,
    verify_requeued,
)
from recon_domains.rollback import restore_concepts
from recon_domains.verdicts.reprocess import requeued
from recon_domains_tests.snapshots import tree_snapshot


@pytest.fixture
def two_prefixed_documents(corpus_factory):
    """A migrated corpus after pass 1 in which two stale needs_reprocess documents with a
    concept folder are renamed `x` and `x__y` (rows and folders)."""
    corpus = corpus_factory(docs=150)
    store = ReconStore.open(corpus.recon_db, corpus.source)
    store.migrate()
    run_pass1(store, corpus.concepts_dir)
    first, second = [i for i in plan_reprocess(store, corpus.concepts_dir) if i.folder_exists][:2]
    x, xy = "x", "x" + quarantine.ENTRY_SEPARATOR + "y"
    with store.transaction() as conn:
        for old, new in ((first.hash, x), (second.hash, xy)):
            conn.execute("UPDATE documents SET hash = ? WHERE hash = ?", (new, old))
            conn.execute("UPDATE catalogue SET hash = ? WHERE hash = ?", (new, old))
            (corpus.concepts_dir / old).rename(corpus.concepts_dir / new)
    yield corpus, store, x, xy
    store.close()


def test_x_and_x__y_in_separate_batches_each_keep_their_own_entry(two_prefixed_documents):
    corpus, store, x, xy = two_prefixed_documents
    qroot: Path = corpus.out_dir / "concepts.quarantine"
    files = {h: tree_snapshot(corpus.concepts_dir / h) for h in (x, xy)}
    rows = {h: store.row_snapshot("documents", h) for h in (x, xy)}
    assert files[x] != files[xy]

    # x__y first, then x: x must not take x__y's (prefix-matching) entry for its own.
    first = run_reprocess_batch(store, corpus.concepts_dir, qroot, [xy], "batch-10")
    second = run_reprocess_batch(store, corpus.concepts_dir, qroot, [x], "batch-100")
    assert first.errors == [] and first.requeued == [xy]
    assert second.errors == [] and second.requeued == [x] and second.resumed == []
    assert [e.hash for e in quarantine.entries_for(qroot, x)] == [x]
    assert [e.hash for e in quarantine.entries_for(qroot, xy)] == [xy]
    for h in (x, xy):
        (entry,) = quarantine.entries_for(qroot, h)
        assert entry.read().documents == rows[h]
        assert tree_snapshot(entry.concepts) == files[h]
        # Each audit row names its own document's entry.
        assert store.latest_audit(h).quarantine_path == str(entry.concepts)
    assert verify_requeued(store, [x, xy], qroot).ok

    # Restoring x puts back x's own folder and row; x__y stays quarantined and queued.
    report = restore_concepts(store, corpus.concepts_dir, qroot, hashes=[x], dry_run=False)
    assert report.ok and report.counts["restored"] == 1, report.problems
    assert tree_snapshot(corpus.concepts_dir / x) == files[x]
    assert store.row_snapshot("documents", x) == rows[x]
    assert not (corpus.concepts_dir / xy).exists()
    (xy_entry,) = quarantine.entries_for(qroot, xy)
    assert tree_snapshot(xy_entry.concepts) == files[xy] and not xy_entry.is_restored()
    assert store.row_snapshot("documents", xy)["status"] == "queued"


class Killed(BaseException):
    """Stands for the process dying: not an Exception, so nothing catches it."""


def _die(*a, **k):
    raise Killed()


def test_x__y_interrupted_is_resumed_by_its_own_entry_and_x_never_sees_it(
    two_prefixed_documents, monkeypatch
) -> None:
    corpus, store, x, xy = two_prefixed_documents
    qroot: Path = corpus.out_dir / "concepts.quarantine"
    files = {h: tree_snapshot(corpus.concepts_dir / h) for h in (x, xy)}
    rows = {h: store.row_snapshot("documents", h) for h in (x, xy)}

    # x__y's batch dies after writing its entry, before moving its folder.
    monkeypatch.setattr(reprocess, "move_folder", _die)
    with pytest.raises(Killed):
        run_reprocess_batch(store, corpus.concepts_dir, qroot, [xy], "batch-10")
    monkeypatch.undo()
    # x's own batch: a fresh entry of its own, x__y's unfinished one is not x's to resume.
    done = run_reprocess_batch(store, corpus.concepts_dir, qroot, [x], "batch-100")
    assert done.errors == [] and done.requeued == [x] and done.resumed == []
    assert tree_snapshot(corpus.concepts_dir / xy) == files[xy]  # still untouched
    verdict = requeued(store, "batch-100", {"requeued_hashes": [x], "errors": 0}, qroot)
    assert verdict.passed, verdict.description
    assert not requeued(store, "batch-10", {"requeued_hashes": [xy], "errors": 0}, qroot).passed

    # The next run resumes x__y alone, with its own entry.
    resumed = resume_interrupted(store, corpus.concepts_dir, qroot)
    assert resumed.errors == [] and resumed.resumed == [xy] and resumed.requeued == [xy]
    for h in (x, xy):
        (entry,) = quarantine.entries_for(qroot, h)
        assert store.latest_audit(h).quarantine_path == str(entry.concepts)
        assert tree_snapshot(entry.concepts) == files[h]
    assert requeued(store, "batch-10", {"requeued_hashes": [xy], "errors": 0}, qroot).passed

    # Restoring everything puts each folder and row back: neither document stays queued.
    report = restore_concepts(store, corpus.concepts_dir, qroot, dry_run=False)
    assert report.ok and report.counts["restored"] == 2, report.problems
    for h in (x, xy):
        assert tree_snapshot(corpus.concepts_dir / h) == files[h]
        assert store.row_snapshot("documents", h) == rows[h]
        assert store.latest_audit(h).restored_at is not None
    again = restore_concepts(store, corpus.concepts_dir, qroot, dry_run=False)
    assert again.counts["candidates"] == 0

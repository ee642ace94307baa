"""The scheduled re-assignment's core: what a decision was made from (the fingerprint) and the
plan (recon_domains.reassignment). Through Dagster, with PeerTube: defs/test_reassignment_job.py."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from recon_domains.assignment import run_pass1, run_tiebreaker
from recon_domains.reassignment import (
    HELD_NO_VALID,
    TIE_RETRIED,
    plan_reassignment,
    require_sources,
)
from recon_domains.recon.concepts import (
    FINGERPRINT_MISSING,
    concept_fingerprint,
    read_domain_counts,
)
from recon_domains.recon.store import SOURCES_TABLE, ReconStore, ReconStoreError
from recon_domains.taxonomy import DEFAULT_SKIP_CHANNELS, DOMAINS, Status


def _sources(db) -> dict[str, str]:
    """The recorded fingerprints, read straight from RECON's SQLite file."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return dict(conn.execute(f"SELECT hash, fingerprint FROM {SOURCES_TABLE}"))
    finally:
        conn.close()


def _rewrite(folder, domain: str, n: int = 40) -> None:
    """RECON re-enriched the document: its window files replaced by one of `n` concepts."""
    for f in folder.glob("window_*.json"):
        f.unlink()
    (folder / "window_0001.json").write_text(json.dumps([{"domain": domain}] * n))


def test_the_fingerprint_is_of_the_files_read_and_sees_every_change(corpus_factory) -> None:
    root = corpus_factory(docs=100).concepts_dir
    folders = sorted(p for p in root.iterdir() if p.is_dir())[:40]
    for folder in folders:  # the reader's (from its fstat) equals the stat scan's
        assert read_domain_counts(root, folder.name).fingerprint == concept_fingerprint(
            root, folder.name
        )
    folder = next(f for f in folders if any(f.glob("window_*.json")))
    first = concept_fingerprint(root, folder.name)
    window = sorted(folder.glob("window_*.json"))[0]
    stat = window.stat()
    os.utime(window, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # rewritten as is
    touched = concept_fingerprint(root, folder.name)
    assert touched != first
    (folder / "meta.json").write_text("{}")  # not a window file: no change
    assert concept_fingerprint(root, folder.name) == touched
    (folder / "window_9999.json").write_text("[]")  # a new window file
    assert concept_fingerprint(root, folder.name) not in (first, touched)
    assert concept_fingerprint(root, "no-such-folder") == FINGERPRINT_MISSING
    assert read_domain_counts(root, "no-such-folder").fingerprint == FINGERPRINT_MISSING


def test_decisions_record_their_fingerprint_and_a_plan_finds_exactly_what_changed(
    corpus_factory,
) -> None:
    c = corpus_factory(docs=150)
    with ReconStore.open(c.recon_db, c.source) as store:
        store.migrate()
        p1 = run_pass1(store, c.concepts_dir)
        run_tiebreaker(store, c.concepts_dir)
        decided = {d.hash for d in p1.decisions}
        sources = _sources(c.recon_db)
        # Every decision written has the fingerprint of the files it was made from.
        assert decided <= set(sources)
        for h in sorted(decided)[:50]:
            assert sources[h] == concept_fingerprint(c.concepts_dir, h), h

        # Nothing changed: nothing to decide again (ties of other channels retried, same).
        quiet = plan_reassignment(store, c.concepts_dir)
        assert quiet.changes == [] and quiet.files_changed == 0 and quiet.baselines == []

        assigned = store.documents_with_status(Status.ASSIGNED)
        rows = {d.hash: store.domain_row(d.hash) for d in assigned}
        moved, emptied, same, human = (d.hash for d in assigned[:4])
        new_domain = next(x for x in DOMAINS if x != rows[moved]["recon_domain"])
        _rewrite(c.concepts_dir / moved, new_domain)
        _rewrite(c.concepts_dir / emptied, "Not A Domain")  # no valid domain any more
        _rewrite(c.concepts_dir / same, rows[same]["recon_domain"])  # new files, same winner
        _rewrite(c.concepts_dir / human, new_domain)
        with store.transaction() as conn:  # a human chose this one on the review page
            conn.execute(
                "UPDATE documents SET recon_domain_status = 'manual_assigned' WHERE hash = ?",
                (human,),
            )
            # And one decided before fingerprints existed.
            old = assigned[5].hash
            conn.execute(f"DELETE FROM {SOURCES_TABLE} WHERE hash = ?", (old,))

        plan = plan_reassignment(store, c.concepts_dir, DEFAULT_SKIP_CHANNELS)
    assert plan.files_changed == 3  # the manual_assigned one is never looked at
    assert [(x.hash, x.status, x.domain) for x in plan.applicable] == [
        (moved, Status.ASSIGNED, new_domain)
    ]
    assert [(x.hash, x.status, x.held) for x in plan.held] == [
        (emptied, Status.NEEDS_REPROCESS, HELD_NO_VALID)
    ]
    assert [r[0] for r in plan.refreshes] == [same]
    assert plan.baselines == [(old, concept_fingerprint(c.concepts_dir, old))]
    assert all(x.why != TIE_RETRIED for x in plan.changes)
    assert (rows[moved]["recon_domain"], new_domain, 1, 0) in plan.pairs()
    assert _sources(c.recon_db) != {}  # the dry run wrote nothing: sources as they were
    assert _sources(c.recon_db)[moved] == sources[moved]


def test_clearing_assignments_forgets_their_sources_and_the_revert_drops_the_table(
    corpus_factory,
) -> None:
    c = corpus_factory(docs=100)
    with ReconStore.open(c.recon_db, c.source) as store:
        store.migrate()
        run_pass1(store, c.concepts_dir)
        assert store.has_sources() and _sources(c.recon_db)
        store.clear_assignments()
        assert _sources(c.recon_db) == {}
        store.revert_migration()
        assert not store.has_sources()


def test_a_database_migrated_before_the_sources_table_keeps_working(corpus_factory) -> None:
    """An upgrade: recon.db was migrated before the table existed. Every step still works
    (decisions written without a fingerprint); the re-assignment says what to do; running
    the migration again adds the table."""
    c = corpus_factory(docs=100)
    with ReconStore.open(c.recon_db, c.source) as store:
        store.migrate()
        with store.transaction() as conn:
            conn.execute(f"DROP TABLE {SOURCES_TABLE}")
        store.require_migrated()  # the steady state's steps still open the store
        assert run_pass1(store, c.concepts_dir).written > 0
        with pytest.raises(ReconStoreError, match="run schema_job once more"):
            require_sources(store)
        assert SOURCES_TABLE in store.migrate().created
        require_sources(store)

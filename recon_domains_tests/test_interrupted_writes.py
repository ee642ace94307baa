"""Quarantine writes killed mid-way (SIGKILL of a real batch process, or the exact on-disk
state such a kill leaves) are settled by the next run: a `.partial` copy whose source is
still there is removed and the move done again, one whose source is gone is kept and
reported (or, known complete, put in place). Nothing is lost."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from recon_domains.recon import quarantine
from recon_domains.reprocess import (
    plan_reprocess,
    resume_interrupted,
    run_reprocess_batch,
    verify_requeued,
)
from recon_domains.rollback import restore_concepts
from recon_domains.taxonomy import Status
from recon_domains_tests.snapshots import tree_snapshot

PARTIAL_COPY = quarantine.CONCEPTS_SUBDIR + quarantine.PARTIAL_SUFFIX


def _qroot(corpus) -> Path:
    return corpus.out_dir / "concepts.quarantine"


def _stale_with_files(store, corpus, n: int = 1, at_least: int = 3):
    """`n` stale documents whose concept folder holds at least `at_least` files."""
    items = [
        i for i in plan_reprocess(store, corpus.concepts_dir)
        if i.folder_exists and i.file_count >= at_least
    ]
    assert len(items) >= n
    return items[:n]


def _killed_batch(corpus, doc_hash: str, where: str) -> None:
    """Run a batch for doc_hash in its own process and SIGKILL it at `where`."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "recon_domains_tests.reprocess_process", str(corpus.recon_db),
         corpus.source, str(corpus.concepts_dir), str(_qroot(corpus)), doc_hash, where],
        stdout=subprocess.PIPE, text=True,
    )
    if where == "copy":
        assert proc.stdout.readline().strip() == "copying"  # one file copied, more to go
        proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL, proc.stdout.read()


def _only_entry(corpus, doc_hash: str) -> quarantine.QuarantineEntry:
    (entry,) = quarantine.entries_for(_qroot(corpus), doc_hash)
    return entry


def test_killed_mid_copy_the_partial_copy_is_removed_and_the_move_done_again(after_pass1) -> None:
    corpus, store = after_pass1
    (item,) = _stale_with_files(store, corpus)
    files = tree_snapshot(item.folder)
    _killed_batch(corpus, item.hash, "copy")
    entry = _only_entry(corpus, item.hash)
    partial = entry.path / PARTIAL_COPY
    assert 0 < len(tree_snapshot(partial)) < len(files)  # what a kill mid-copy leaves
    assert tree_snapshot(item.folder) == files
    assert store.latest_audit(item.hash) is None

    result = resume_interrupted(store, corpus.concepts_dir, _qroot(corpus))
    assert result.errors == []
    (write,) = result.interrupted
    assert (write["path"], write["action"]) == (str(partial), quarantine.REMOVE)
    assert not partial.exists()
    assert result.resumed == [item.hash] == result.requeued
    assert tree_snapshot(entry.concepts) == files and not Path(item.folder).exists()
    assert verify_requeued(store, [item.hash], _qroot(corpus)).ok
    assert quarantine.entries_for(_qroot(corpus), item.hash) == [entry]


def test_killed_mid_copy_with_the_source_gone_the_partial_copy_is_kept(after_pass1) -> None:
    corpus, store = after_pass1
    (item,) = _stale_with_files(store, corpus)
    _killed_batch(corpus, item.hash, "copy")
    partial = _only_entry(corpus, item.hash).path / PARTIAL_COPY
    copied = tree_snapshot(partial)
    shutil.rmtree(item.folder)  # someone removed the original meanwhile
    row = store.row_snapshot("documents", item.hash)

    result = resume_interrupted(store, corpus.concepts_dir, _qroot(corpus))
    assert result.interrupted[0]["action"] == quarantine.KEEP
    messages = [m for h, m in result.errors if h == item.hash]
    assert len(messages) == 2 and result.requeued == []
    assert messages[0].startswith(f"{partial}: ") and "may be all that is left" in messages[0]
    assert "neither at" in messages[1]
    assert tree_snapshot(partial) == copied  # kept as it was
    assert store.row_snapshot("documents", item.hash) == row  # not reset
    # Every run says so again until an operator settles it.
    again = resume_interrupted(store, corpus.concepts_dir, _qroot(corpus))
    assert again.errors == result.errors and tree_snapshot(partial) == copied


def test_killed_before_the_rename_a_complete_copy_is_finished_when_its_source_is_gone(
    after_pass1,
) -> None:
    corpus, store = after_pass1
    first, second = _stale_with_files(store, corpus, 2)
    files = {i.hash: tree_snapshot(i.folder) for i in (first, second)}
    for item in (first, second):
        _killed_batch(corpus, item.hash, "rename")
        entry = _only_entry(corpus, item.hash)
        assert tree_snapshot(entry.path / PARTIAL_COPY) == files[item.hash]
        assert entry.removing_marker.exists()
    # `first` keeps its source (the copy is redundant); `second`'s source is gone.
    shutil.rmtree(second.folder)

    result = resume_interrupted(store, corpus.concepts_dir, _qroot(corpus))
    actions = {w["hash"]: w["action"] for w in result.interrupted}
    assert actions == {first.hash: quarantine.REMOVE, second.hash: quarantine.FINISH}
    assert result.errors == [] and sorted(result.requeued) == sorted(files)
    for item in (first, second):
        entry = _only_entry(corpus, item.hash)
        assert tree_snapshot(entry.concepts) == files[item.hash]
        assert not (entry.path / PARTIAL_COPY).exists() and not entry.removing_marker.exists()
        assert not Path(item.folder).exists()
        assert store.latest_audit(item.hash).file_count == len(files[item.hash])
    assert verify_requeued(store, sorted(files), _qroot(corpus)).ok


def test_a_copy_restarted_and_killed_again_is_never_taken_for_complete(after_pass1) -> None:
    corpus, store = after_pass1
    (item,) = _stale_with_files(store, corpus)
    files = tree_snapshot(item.folder)
    _killed_batch(corpus, item.hash, "rename")  # complete copy, marker written
    _killed_batch(corpus, item.hash, "copy")  # the next run copies again, and dies
    entry = _only_entry(corpus, item.hash)
    partial = entry.path / PARTIAL_COPY
    assert len(tree_snapshot(partial)) < len(files)
    assert not entry.removing_marker.exists()  # the restarted copy dropped the old marker
    shutil.rmtree(item.folder)
    result = resume_interrupted(store, corpus.concepts_dir, _qroot(corpus))
    assert [w["action"] for w in result.interrupted] == [quarantine.KEEP]
    assert partial.exists() and not entry.concepts.exists()
    assert store.domain_row(item.hash)["recon_domain_status"] == Status.NEEDS_REPROCESS


def test_killed_while_writing_the_entry_the_partial_entry_is_removed(after_pass1) -> None:
    corpus, store = after_pass1
    (item,) = _stale_with_files(store, corpus)
    files = tree_snapshot(item.folder)
    _killed_batch(corpus, item.hash, "entry")
    (partial,) = _qroot(corpus).iterdir()
    assert partial.name.startswith(f"{item.hash}__")
    assert partial.name.endswith(quarantine.PARTIAL_SUFFIX)
    assert [p.name for p in partial.iterdir()] == [quarantine.DOCUMENT_FILE]
    assert quarantine.entries_for(_qroot(corpus), item.hash) == []
    assert tree_snapshot(item.folder) == files

    resumed = resume_interrupted(store, corpus.concepts_dir, _qroot(corpus))
    assert [w["action"] for w in resumed.interrupted] == [quarantine.REMOVE]
    assert resumed.requeued == [] and not partial.exists()
    done = run_reprocess_batch(store, corpus.concepts_dir, _qroot(corpus), [item.hash], "b")
    assert done.requeued == [item.hash] and done.errors == []
    assert tree_snapshot(_only_entry(corpus, item.hash).concepts) == files
    assert [p.name for p in _qroot(corpus).iterdir()] == [_only_entry(corpus, item.hash).name]


def test_a_partial_entry_holding_more_than_its_document_file_is_kept(after_pass1) -> None:
    corpus, store = after_pass1
    (item,) = _stale_with_files(store, corpus)
    stamp = time.strftime("%Y%m%dT%H%M%S000000Z", time.gmtime())
    partial = _qroot(corpus) / f"{item.hash}__{stamp}{quarantine.PARTIAL_SUFFIX}"
    (partial / "concepts").mkdir(parents=True)
    (partial / "concepts" / "window_0001.json").write_text("[]")
    result = resume_interrupted(store, corpus.concepts_dir, _qroot(corpus))
    assert [w["action"] for w in result.interrupted] == [quarantine.KEEP]
    assert result.errors[0][0] == item.hash and "check it by hand" in result.errors[0][1]
    assert (partial / "concepts" / "window_0001.json").read_text() == "[]"


def test_restore_settles_its_own_killed_copies(after_pass1) -> None:
    """The on-disk state a forced restore and an off-site restore leave when killed
    mid-copy (set-aside copy, staging copy): removed when their source is there, kept and
    reported when it is not; the dry run only lists them."""
    corpus, store = after_pass1
    offsite = corpus.out_dir / "offsite"
    aside_item, staged_item, lost_item = _stale_with_files(store, corpus, 3)
    shutil.copytree(staged_item.folder, offsite / staged_item.hash)
    run_reprocess_batch(
        store, corpus.concepts_dir, _qroot(corpus), [aside_item, staged_item, lost_item], "b"
    )
    qroot = _qroot(corpus)
    # A forced restore was copying aside a folder RECON re-created for aside_item.
    (corpus.concepts_dir / aside_item.hash).mkdir()
    (corpus.concepts_dir / aside_item.hash / "window_0001.json").write_text("[]")
    aside = qroot / f"{aside_item.hash}__20250101T000000000000Z.replaced.partial"
    aside.mkdir()
    # Off-site copies being staged: one whose off-site folder is there, one that is gone.
    staged = quarantine.staging_path(qroot, staged_item.hash)
    shutil.copytree(offsite / staged_item.hash, staged)
    next(iter(staged.iterdir())).unlink()
    lost = quarantine.staging_path(qroot, lost_item.hash)
    lost.mkdir()
    (lost / "window_0001.json").write_text("[]")

    dry = restore_concepts(store, corpus.concepts_dir, qroot, offsite, dry_run=True)
    assert dry.counts["interrupted_writes"] == 3 and aside.exists() and staged.exists()
    assert any(s.startswith("would settle 2 copies") for s in dry.steps)
    done = restore_concepts(store, corpus.concepts_dir, qroot, offsite, dry_run=False)
    assert not aside.exists() and not staged.exists()
    assert (lost / "window_0001.json").read_text() == "[]"
    assert [p for p in done.problems if p.startswith(f"{lost_item.hash}: {lost}")]
    assert os.listdir(corpus.concepts_dir / aside_item.hash) == ["window_0001.json"]

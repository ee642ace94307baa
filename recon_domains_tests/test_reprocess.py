"""Reprocess (runbook Step 7) on a real generated corpus: dry run, batches, interruptions."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

from recon_domains import reprocess as rp
from recon_domains.recon import quarantine
from recon_domains.recon.store import AUDIT_TABLE
from recon_domains.reprocess import (
    ReprocessError,
    plan_reprocess,
    run_reprocess_batch,
    verify_requeued,
)
from recon_domains.rollback import restore_concepts
from recon_domains.taxonomy import Status
from recon_domains_tests.snapshots import db_snapshot, tree_snapshot


def _quarantine(corpus) -> Path:
    return corpus.out_dir / "concepts.quarantine"


def test_plan_lists_state_and_reason_and_writes_nothing(after_pass1) -> None:
    corpus, store = after_pass1
    before_db, before_tree = db_snapshot(corpus.recon_db), tree_snapshot(corpus.out_dir)
    items = plan_reprocess(store, corpus.concepts_dir)
    assert db_snapshot(corpus.recon_db) == before_db
    assert tree_snapshot(corpus.out_dir) == before_tree
    needs = store.documents_with_status(Status.NEEDS_REPROCESS)
    assert [i.hash for i in items] == [d.hash for d in needs]
    assert len(items) == corpus.expected_needs_reprocess
    missing = [i for i in items if not i.folder_exists]
    assert len(missing) == corpus.missing_folders
    assert all(i.why == "missing folder" and i.file_count == 0 for i in missing)
    present = [i for i in items if i.folder_exists]
    assert present and all(i.stale for i in items)
    for i in present:
        assert i.file_count == sum(len(f) for _, _, f in os.walk(i.folder))
        assert i.why in {
            "no window files",
            "only legacy domains",
            "malformed window files",
            "only legacy domains and malformed files",
            "concepts without a domain",
            "empty window files",
        }
    assert len(plan_reprocess(store, corpus.concepts_dir, limit=10)) == 10


def _pick(items, with_folder: int, without: int):
    return [i for i in items if i.folder_exists][:with_folder] + [
        i for i in items if not i.folder_exists
    ][:without]


def test_batch_quarantines_and_queues_exactly(after_pass1) -> None:
    corpus, store = after_pass1
    items = _pick(plan_reprocess(store, corpus.concepts_dir), 7, 3)
    untouched = db_snapshot(corpus.recon_db)["rows"]
    trees = {i.hash: tree_snapshot(i.folder) for i in items if i.folder_exists}
    result = run_reprocess_batch(store, corpus.concepts_dir, _quarantine(corpus), items, "batch-10")
    assert result.errors == [] and result.skipped == []
    assert sorted(result.requeued) == sorted(i.hash for i in items)
    assert len(result.quarantined) == 7
    for q in result.quarantined:
        # Moved, not deleted: same files, same contents, original gone.
        assert tree_snapshot(q["quarantine_path"]) == trees[q["hash"]]
        assert not (corpus.concepts_dir / q["hash"]).exists()
        assert q["file_count"] == len(trees[q["hash"]])
    for i in items:
        row = store.conn.execute("SELECT * FROM documents WHERE hash = ?", (i.hash,)).fetchone()
        assert row["status"] == "queued"
        assert (row["concepts_extracted"], row["vectors_inserted"]) == (0, 0)
        for col in (
            "extracted_at",
            "enriched_at",
            "embedded_at",
            "error_message",
            "recon_domain",
            "recon_domain_status",
            "recon_domain_assigned_at",
            "peertube_category_pushed_at",
        ):
            assert row[col] is None, col
        cat = store.conn.execute("SELECT status FROM catalogue WHERE hash = ?", (i.hash,))
        assert cat.fetchone()[0] == "queued"
    audits = store.conn.execute(f"SELECT * FROM {AUDIT_TABLE}").fetchall()
    assert len(audits) == 10
    assert {a["hash"] for a in audits if a["file_count"]} == set(trees)
    assert all(a["reason"].startswith("batch-10: ") and a["quarantined_at"] for a in audits)
    # Every other document is exactly as it was.
    after = db_snapshot(corpus.recon_db)["rows"]
    done = {i.hash for i in items}
    assert [r for r in after["documents"] if r[0] not in done] == [
        r for r in untouched["documents"] if r[0] not in done
    ]
    check = verify_requeued(store, [i.hash for i in items], _quarantine(corpus))
    assert check.ok, check.problems
    assert (check.queued, check.quarantined_folders) == (10, 7)
    # The entry keeps the rows as they were before the reset (what a rollback restores).
    entry = Path(result.quarantined[0]["quarantine_path"]).parent
    saved = json.loads((entry / quarantine.DOCUMENT_FILE).read_text())
    assert saved["documents"]["recon_domain_status"] == Status.NEEDS_REPROCESS
    assert saved["documents"]["status"] == "complete"


def test_rerun_is_safe_and_changes_nothing(after_pass1) -> None:
    corpus, store = after_pass1
    items = plan_reprocess(store, corpus.concepts_dir, limit=5)
    run_reprocess_batch(store, corpus.concepts_dir, _quarantine(corpus), items, "b")
    before_db, before_tree = db_snapshot(corpus.recon_db), tree_snapshot(corpus.out_dir)
    again = run_reprocess_batch(store, corpus.concepts_dir, _quarantine(corpus), items, "b")
    assert again.requeued == [] and again.errors == []
    assert len(again.skipped) == 5
    assert all("not needs_reprocess" in why for _, why in again.skipped)
    assert db_snapshot(corpus.recon_db) == before_db
    assert tree_snapshot(corpus.out_dir) == before_tree
    # The next plan no longer lists them.
    assert not {i.hash for i in items} & {
        i.hash for i in plan_reprocess(store, corpus.concepts_dir)
    }


class Killed(BaseException):
    """Stands for the process dying: not an Exception, so nothing catches it."""


def _die(*a, **k):
    raise Killed()


def test_kill_between_move_and_reset_resumes(after_pass1, monkeypatch) -> None:
    corpus, store = after_pass1
    item = _pick(plan_reprocess(store, corpus.concepts_dir), 1, 0)[0]
    files = tree_snapshot(item.folder)
    monkeypatch.setattr(rp, "_reset_and_audit", _die)
    with pytest.raises(Killed):
        run_reprocess_batch(store, corpus.concepts_dir, _quarantine(corpus), [item], "b")
    monkeypatch.undo()
    # The folder is in quarantine, the document not yet reset: the gate sees it.
    assert not Path(item.folder).exists()
    check = verify_requeued(store, [item.hash], _quarantine(corpus))
    assert not check.ok
    assert any("interrupted batch" in p for p in check.problems)
    # A new plan shows it as "missing folder"; running the batch finishes the job.
    replanned = [
        i for i in plan_reprocess(store, corpus.concepts_dir) if i.hash == item.hash
    ]
    assert replanned[0].why == "missing folder"
    result = run_reprocess_batch(store, corpus.concepts_dir, _quarantine(corpus), replanned, "b")
    assert result.resumed == [item.hash] and result.errors == []
    assert result.quarantined[0]["file_count"] == len(files)
    assert tree_snapshot(result.quarantined[0]["quarantine_path"]) == files
    assert verify_requeued(store, [item.hash], _quarantine(corpus)).ok
    assert len(list(_quarantine(corpus).iterdir())) == 1  # no second entry


def test_kill_before_the_move_resumes(after_pass1, monkeypatch) -> None:
    corpus, store = after_pass1
    item = _pick(plan_reprocess(store, corpus.concepts_dir), 1, 0)[0]
    files = tree_snapshot(item.folder)
    monkeypatch.setattr(rp, "move_folder", _die)
    with pytest.raises(Killed):
        run_reprocess_batch(store, corpus.concepts_dir, _quarantine(corpus), [item.hash], "b")
    monkeypatch.undo()
    assert tree_snapshot(item.folder) == files  # untouched
    result = run_reprocess_batch(store, corpus.concepts_dir, _quarantine(corpus), [item], "b")
    assert result.resumed == [item.hash]
    assert tree_snapshot(result.quarantined[0]["quarantine_path"]) == files
    assert verify_requeued(store, [item.hash], _quarantine(corpus)).ok


def test_cross_device_move_and_kill_while_removing_the_source(after_pass1, monkeypatch) -> None:
    corpus, store = after_pass1
    item = _pick(plan_reprocess(store, corpus.concepts_dir), 1, 0)[0]
    files = tree_snapshot(item.folder)
    real_rename, real_rmtree = os.rename, shutil.rmtree

    def rename(src, dst):
        if Path(src) == Path(item.folder):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_rename(src, dst)

    def rmtree(path, *a, **k):
        if Path(path) == Path(item.folder):
            # Remove one file, then die: a partial source is left behind.
            first = sorted(Path(path).iterdir())[0]
            first.unlink()
            raise Killed()
        return real_rmtree(path, *a, **k)

    monkeypatch.setattr(rp.os, "rename", rename)
    monkeypatch.setattr(rp.shutil, "rmtree", rmtree)
    with pytest.raises(Killed):
        run_reprocess_batch(store, corpus.concepts_dir, _quarantine(corpus), [item], "b")
    monkeypatch.setattr(rp.shutil, "rmtree", real_rmtree)
    result = run_reprocess_batch(store, corpus.concepts_dir, _quarantine(corpus), [item], "b")
    assert result.errors == [] and result.resumed == [item.hash]
    assert not Path(item.folder).exists()
    assert tree_snapshot(result.quarantined[0]["quarantine_path"]) == files
    assert verify_requeued(store, [item.hash], _quarantine(corpus)).ok


def test_folder_with_valid_domains_now_is_skipped(after_pass1) -> None:
    corpus, store = after_pass1
    item = _pick(plan_reprocess(store, corpus.concepts_dir), 1, 0)[0]
    # RECON rewrote the folder since pass 1: it has a valid domain now.
    Path(item.folder, "window_9999.json").write_text(json.dumps([{"domain": "Medical"}]))
    before = tree_snapshot(item.folder)
    result = run_reprocess_batch(store, corpus.concepts_dir, _quarantine(corpus), [item.hash], "b")
    assert result.requeued == []
    assert "valid domains now" in result.skipped[0][1]
    assert tree_snapshot(item.folder) == before
    assert store.domain_row(item.hash)["recon_domain_status"] == Status.NEEDS_REPROCESS


def test_quarantine_inside_concepts_is_refused(after_pass1) -> None:
    corpus, store = after_pass1
    with pytest.raises(ReprocessError, match="outside the concepts folder"):
        run_reprocess_batch(store, corpus.concepts_dir, corpus.concepts_dir / "quarantine", [], "b")


def test_batch_preconditions_block_a_busy_recon_unless_a_copy_and_a_stale_offsite() -> None:
    busy = [("a" * 40, "extracting"), ("b" * 40, "embedding")]
    assert rp.batch_preconditions([], []) == []
    problems = rp.batch_preconditions(busy, ["lag 9.0 h > 6 h"])
    assert problems == [
        f"2 document(s) mid-pipeline right now (e.g. {'a' * 12} extracting): wait for RECON "
        "to be idle",
        "off-site backup: lag 9.0 h > 6 h",
    ]
    # A rehearsal copy has no workers: its mid-pipeline statuses are not activity.
    assert rp.batch_preconditions(busy, [], is_copy=True) == []
    assert rp.batch_preconditions([], None) == [
        "RECON_OFFSITE_CONCEPTS_DIR is not set: the off-site backup cannot be checked"
    ]


def _outside_dir(corpus) -> Path:
    """A folder outside the concepts root with files of its own (what a hostile link targets)."""
    outside = corpus.out_dir / "outside"
    outside.mkdir()
    (outside / "window_0001.json").write_text(json.dumps([{"domain": "Medical"}]))
    (outside / "precious.txt").write_text("not RECON's")
    return outside


def _swap_for_link(folder: str | Path, target: Path) -> None:
    """Replace a concept folder by a symlink to target (its files moved aside, kept)."""
    shutil.move(folder, f"{folder}.moved-away")
    os.symlink(target, folder)


def test_a_folder_swapped_for_a_link_out_of_the_root_is_reported_and_the_batch_goes_on(
    after_pass1,
) -> None:
    corpus, store = after_pass1
    outside = _outside_dir(corpus)
    linked, later, *others = _pick(plan_reprocess(store, corpus.concepts_dir), 5, 0)
    # One folder is a link out of the root before the plan, one becomes one after it.
    _swap_for_link(linked.folder, outside)
    plan = plan_reprocess(store, corpus.concepts_dir)
    (listed,) = [i for i in plan if i.hash == linked.hash]
    assert listed.unsafe and not listed.stale and listed.file_count == 0
    assert "unsafe concept folder, nothing touched" in listed.why
    assert "symlink" in listed.why and str(outside) in listed.why
    assert len([i for i in plan if i.stale]) == len(plan) - 1
    _swap_for_link(later.folder, outside)
    outside_before = tree_snapshot(outside)
    rows_before = {h: store.row_snapshot("documents", h) for h in (linked.hash, later.hash)}

    wanted = {linked.hash, later.hash, *(i.hash for i in others)}
    result = run_reprocess_batch(
        store, corpus.concepts_dir, _quarantine(corpus),
        [i for i in plan if i.hash in wanted], "batch-10",
    )
    errors = dict(result.errors)
    assert set(errors) == {linked.hash, later.hash}
    assert errors[linked.hash] == listed.why
    assert "unsafe concept folder, nothing touched" in errors[later.hash]
    assert sorted(result.requeued) == sorted(i.hash for i in others)
    # Nothing outside the root changed; the links and their documents are as they were.
    assert tree_snapshot(outside) == outside_before
    for item in (linked, later):
        assert os.readlink(item.folder) == str(outside)
        assert store.row_snapshot("documents", item.hash) == rows_before[item.hash]
        assert quarantine.entries_for(_quarantine(corpus), item.hash) == []
    assert verify_requeued(store, result.requeued, _quarantine(corpus)).ok


def test_an_interrupted_document_whose_folder_became_a_link_is_an_error_not_an_abort(
    after_pass1, monkeypatch
) -> None:
    corpus, store = after_pass1
    outside = _outside_dir(corpus)
    first, second = _pick(plan_reprocess(store, corpus.concepts_dir), 2, 0)
    monkeypatch.setattr(rp, "move_folder", _die)
    for item in (first, second):
        with pytest.raises(Killed):
            run_reprocess_batch(store, corpus.concepts_dir, _quarantine(corpus), [item], "b")
    monkeypatch.undo()
    _swap_for_link(first.folder, outside)
    outside_before = tree_snapshot(outside)
    resumed = rp.resume_interrupted(store, corpus.concepts_dir, _quarantine(corpus))
    assert [h for h, _ in resumed.errors] == [first.hash]
    assert "unsafe concept folder, nothing touched" in resumed.errors[0][1]
    assert resumed.requeued == [second.hash]
    assert tree_snapshot(outside) == outside_before and os.path.islink(first.folder)


def test_restore_reports_a_target_swapped_for_a_link_and_restores_the_rest(after_pass1) -> None:
    corpus, store = after_pass1
    outside = _outside_dir(corpus)
    items = _pick(plan_reprocess(store, corpus.concepts_dir), 3, 0)
    trees = {i.hash: tree_snapshot(i.folder) for i in items}
    run_reprocess_batch(store, corpus.concepts_dir, _quarantine(corpus), items, "b")
    hostile = items[0]
    os.symlink(outside, hostile.folder)  # where the restore would put the folder back
    outside_before = tree_snapshot(outside)
    report = restore_concepts(store, corpus.concepts_dir, _quarantine(corpus), dry_run=False)
    assert report.counts["unsafe"] == 1 and report.counts["restored"] == 2
    (problem,) = report.problems
    assert problem.startswith(f"{hostile.hash}: nothing touched, the concept folder is unsafe")
    assert tree_snapshot(outside) == outside_before and os.path.islink(hostile.folder)
    (entry,) = quarantine.entries_for(_quarantine(corpus), hostile.hash)
    assert tree_snapshot(entry.concepts) == trees[hostile.hash] and not entry.is_restored()
    for item in items[1:]:
        assert tree_snapshot(item.folder) == trees[item.hash]

"""restore_concepts: quarantined concept folders back from the quarantine or the off-site
mirror, never over a folder RECON re-created unless forced."""

from __future__ import annotations

import shutil

from recon_domains.recon.store import AUDIT_TABLE
from recon_domains.rollback import restore_concepts
from recon_domains_tests.snapshots import tree_snapshot


def test_restore_concepts_from_quarantine_and_offsite(world) -> None:
    w = world
    c = w.corpus
    with_folder = [h for h in w.reprocessed if any(w.quarantine.glob(f"{h}__*/concepts"))]
    assert len(with_folder) >= 3
    first, second, third = with_folder[:3]
    # The quarantine copy of `second` is lost: the off-site mirror has it.
    shutil.rmtree(next(w.quarantine.glob(f"{second}__*/concepts")))
    # RECON already re-created `third`'s folder: never overwritten without force.
    (c.concepts_dir / third).mkdir()
    (c.concepts_dir / third / "window_0001.json").write_text("[]")
    state = w.state()
    dry = restore_concepts(w.store, c.concepts_dir, w.quarantine, w.offsite)
    assert w.state() == state
    assert dry.counts["from_offsite"] == 1 and dry.counts["skipped"] == 1
    done = restore_concepts(w.store, c.concepts_dir, w.quarantine, w.offsite, dry_run=False)
    assert done.ok, done.problems
    for h in (first, second):
        assert tree_snapshot(c.concepts_dir / h) == {
            k.split("/", 1)[1]: v for k, v in w.before["concepts"].items() if k.startswith(h + "/")
        }
        row = w.store.domain_row(h)
        assert row["status"] == "complete" and row["recon_domain_status"] == "needs_reprocess"
    assert (c.concepts_dir / third / "window_0001.json").read_text() == "[]"
    audits = w.store.conn.execute(f"SELECT hash, restored_at FROM {AUDIT_TABLE}").fetchall()
    assert {a["hash"] for a in audits if a["restored_at"]} >= {first, second}
    # Re-run: nothing left but the skipped one.
    state = w.state()
    again = restore_concepts(w.store, c.concepts_dir, w.quarantine, w.offsite, dry_run=False)
    assert w.state() == state and again.counts.get("restored", 0) == 0
    # force replaces the existing folder, keeping it aside in the quarantine.
    forced = restore_concepts(
        w.store,
        c.concepts_dir,
        w.quarantine,
        w.offsite,
        hashes=[third],
        force=True,
        dry_run=False,
    )
    assert forced.counts["restored"] == 1
    assert (c.concepts_dir / third / "window_0001.json").read_text() != "[]"
    aside = list(w.quarantine.glob(f"{third}__*.replaced"))
    assert len(aside) == 1 and (aside[0] / "window_0001.json").read_text() == "[]"


def test_a_restore_killed_between_the_folder_and_the_rows_is_finished_by_the_next_run(
    world, monkeypatch
) -> None:
    """The folder is moved back inside the rows' transaction; a kill there rolls the rows
    back with the folder already in place. The next run finds the entry's folder at its
    target (the restoring marker), puts the rows back and marks it, moving nothing."""
    w = world
    c = w.corpus
    h = next(h for h in w.reprocessed if any(w.quarantine.glob(f"{h}__*/concepts")))
    before = w.store.domain_row(h)
    assert before["status"] == "queued"

    def killed(*_args, **_kwargs):
        raise KeyboardInterrupt  # as a kill: the transaction is rolled back

    with monkeypatch.context() as m:
        m.setattr(type(w.store), "put_rows_back", killed)
        try:
            restore_concepts(w.store, c.concepts_dir, w.quarantine, w.offsite, hashes=[h],
                             dry_run=False)
        except KeyboardInterrupt:
            pass
        else:
            raise AssertionError("the restore was not interrupted")
    expected = {k.split("/", 1)[1]: v for k, v in w.before["concepts"].items()
                if k.startswith(h + "/")}
    assert tree_snapshot(c.concepts_dir / h) == expected  # the folder moved back …
    assert w.store.domain_row(h)["status"] == "queued"  # … its rows did not

    again = restore_concepts(w.store, c.concepts_dir, w.quarantine, w.offsite, hashes=[h],
                             dry_run=False)
    assert again.ok, again.problems
    assert again.counts["restored"] == 1 and again.counts["skipped"] == 0
    assert tree_snapshot(c.concepts_dir / h) == expected
    row = w.store.domain_row(h)
    assert row["status"] == "complete" and row["recon_domain_status"] == "needs_reprocess"

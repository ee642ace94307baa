"""Rollbacks (runbook "Rollback Procedures") on a whole sandbox migration: real SQLite,
real concept folders, the sandbox PeerTube over HTTP and its PostgreSQL."""

from __future__ import annotations

import json
import shutil

import psycopg2
import pytest

from recon_domains.recon import quarantine
from recon_domains.recon.store import AUDIT_TABLE, LEDGER_TABLE
from recon_domains.rollback import (
    AuditLog,
    RollbackRefused,
    audit_log_for,
    remove_feature,
    restore_concepts,
    rollback_assignments,
    rollback_peertube_categories,
    rollback_plugin,
    rollback_schema,
)
from recon_domains.taxonomy import Status
from recon_domains_tests.rollback_world import run_migration, start_world
from recon_domains_tests.snapshots import tree_snapshot, video_snapshot


@pytest.fixture
def world(corpus_factory, peertube_server):
    w = run_migration(start_world(corpus_factory, peertube_server, docs=100))
    yield w
    w.store.close()
    w.client.close()


def _state(w) -> dict:
    """Everything a rollback could touch: recon.db, concepts, quarantine, PeerTube."""
    return {
        **w.snapshot(),
        "quarantine": tree_snapshot(w.quarantine),
        "categories": w.client.categories(),
    }


def _remove_feature(w, audit: AuditLog, *, dry_run: bool = True):
    """remove_feature over the whole world: every resource and `audit`."""
    return remove_feature(
        w.store,
        w.client,
        w.corpus.concepts_dir,
        w.quarantine,
        w.offsite,
        w.pt_db,
        dry_run=dry_run,
        audit=audit,
    )


def _set_category(dsn: str, uuid: str, category: int | None) -> None:
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE video SET category = %s WHERE uuid = %s", (category, uuid))
    conn.close()


# --- the whole way out -----------------------------------------------------------------------


def test_remove_feature_restores_everything_exactly(world) -> None:
    w = world
    assert w.snapshot() != w.before  # the migration did change things
    builtin_before = {u: c for u, c in w.before["videos"].items() if c is not None}
    assert builtin_before, "the world must have videos with a built-in category before"
    changed_builtin = [u for u, c in builtin_before.items() if w.snapshot()["videos"][u] != c]
    assert changed_builtin, "some videos with a built-in category must have been pushed over"
    audit = audit_log_for(w.backup_dir)

    state = _state(w)
    dry = _remove_feature(w, audit)
    assert dry.dry_run and not dry.acted
    assert _state(w) == state  # the dry run changed nothing
    assert [p.action for p in dry.parts] == [
        "rollback_peertube_categories",
        "rollback_plugin",
        "restore_concepts",
        "rollback_assignments[all]",
        "rollback_schema",
    ]
    assert dry.counts["rollback_peertube_categories.to_restore"] > 0

    done = _remove_feature(w, audit, dry_run=False)
    assert done.ok, done.problems
    after = w.snapshot()
    assert after["videos"] == w.before["videos"]  # every category, built-in ones included
    assert after["concepts"] == w.before["concepts"]  # quarantined folders are back
    assert after["db"]["schema"] == w.before["db"]["schema"]
    assert after["db"]["columns"] == w.before["db"]["columns"]
    assert after["db"]["rows"] == w.before["db"]["rows"]  # every row, every value
    assert not any(1 <= i - 99 <= 18 for i in w.client.categories())  # 100–117 gone

    # A re-run finds nothing to do and changes nothing.
    state = _state(w)
    again = _remove_feature(w, audit, dry_run=False)
    assert again.ok and not again.acted, again.problems
    assert _state(w) == state
    # The audit trail survived the schema revert and holds the exported tables.
    entries = audit.entries()
    assert {e["action"] for e in entries} >= {"remove_feature", "rollback_schema:export"}
    export = next(e for e in entries if e["action"] == "rollback_schema:export")
    assert (
        len(export["tables"][LEDGER_TABLE]) >= dry.counts["rollback_peertube_categories.to_restore"]
    )
    assert len(export["tables"][AUDIT_TABLE]) == len(w.reprocessed)


# --- each rollback on its own ----------------------------------------------------------------


@pytest.mark.parametrize("via", ["db", "api"])
def test_rollback_peertube_categories(world, via) -> None:
    w = world
    pushed = w.store.pushed_documents()
    originals = w.store.original_categories()
    assert pushed and len(originals) == len(pushed)
    # Someone changes one pushed video in PeerTube after the push.
    drifted = sorted(originals)[0]
    _set_category(w.server.dsn, drifted, 7)
    state = _state(w)
    dry = rollback_peertube_categories(w.store, w.client, w.pt_db, via=via)
    assert _state(w) == state
    assert dry.counts["to_restore"] == len(originals) - 1
    assert dry.counts["changed_in_peertube"] == 1

    done = rollback_peertube_categories(
        w.store, w.client, w.pt_db, via=via, dry_run=False
    )
    videos = video_snapshot(w.server.dsn)
    for vid, original in originals.items():
        assert videos[vid] == (7 if vid == drifted else original)
    assert done.counts["restored"] == len(originals) - 1
    assert any("changed in PeerTube" in p for p in done.problems)
    # Only the drifted video's document is still marked pushed.
    still = w.store.pushed_documents()
    assert len(still) == 1
    # Re-run: nothing more to restore.
    again = rollback_peertube_categories(
        w.store, w.client, w.pt_db, via=via, dry_run=False
    )
    assert again.counts["to_restore"] == 0 and video_snapshot(w.server.dsn) == videos
    # force restores the drifted one too.
    forced = rollback_peertube_categories(
        w.store, w.client, w.pt_db, via=via, force=True, dry_run=False
    )
    assert forced.ok and video_snapshot(w.server.dsn)[drifted] == originals[drifted]
    assert w.store.pushed_documents() == []
    assert {u: c for u, c in video_snapshot(w.server.dsn).items()} == w.before["videos"]


def test_pushed_without_ledger_row_goes_back_to_null(world) -> None:
    w = world
    victim = w.store.pushed_documents()[0]
    vid = next(r.video_id for r in w.store.ledger() if r.hash == victim.hash)
    with w.store.transaction() as conn:  # as if pushed by the original, ledger-less system
        conn.execute(f"DELETE FROM {LEDGER_TABLE} WHERE hash = ?", (victim.hash,))
    dry = rollback_peertube_categories(w.store, None, w.pt_db)
    assert dry.counts["pushed_without_ledger_row"] == 1
    rollback_peertube_categories(w.store, None, w.pt_db, dry_run=False)
    assert video_snapshot(w.server.dsn)[vid] is None


def test_rollback_plugin(world, tmp_path) -> None:
    w = world
    audit = AuditLog(tmp_path / "a" / "audit.jsonl")
    state = _state(w)
    # Installed by hand: the manual steps are stated, and what is left is reported.
    manual = rollback_plugin(w.client, manual=True, dry_run=False, audit=audit)
    assert not manual.ok and "still registered" in manual.problems[0]
    assert any("Uninstall" in s for s in manual.steps)
    dry = rollback_plugin(w.client, audit=audit)
    assert _state(w) == state
    assert dry.counts == {"recon_categories_registered": 18, "plugin_installed": 1}
    done = rollback_plugin(w.client, dry_run=False, audit=audit)
    assert done.ok and done.acted
    assert set(w.client.categories()) == set(range(1, 19))
    again = rollback_plugin(w.client, dry_run=False, audit=audit)
    assert again.ok and not again.acted
    manual = rollback_plugin(w.client, manual=True, dry_run=False, audit=audit)
    assert manual.ok and not manual.acted
    # The audit trail: one JSON line per call, dry runs included.
    lines = (tmp_path / "a" / "audit.jsonl").read_text().splitlines()
    entries = [json.loads(x) for x in lines]
    assert [e["action"] for e in entries] == ["rollback_plugin"] * 5
    assert [e["dry_run"] for e in entries] == [False, True, False, False, False]
    assert [e["acted"] for e in entries] == [False, False, True, False, False]


def test_rollback_schema_refuses_while_pushed_then_drops(world, tmp_path) -> None:
    w = world
    audit = AuditLog(tmp_path / "audit.jsonl")
    state = _state(w)
    dry = rollback_schema(w.store, w.pt_db, audit=audit)
    assert _state(w) == state
    assert "still carries pushed categories" in dry.problems[0]
    with pytest.raises(RollbackRefused, match="rollback_peertube_categories first"):
        rollback_schema(w.store, w.pt_db, dry_run=False, audit=audit)
    assert _state(w) == state
    rollback_peertube_categories(w.store, None, w.pt_db, dry_run=False)
    state = _state(w)
    dry = rollback_schema(w.store, w.pt_db, audit=audit)
    assert dry.ok and not dry.acted and _state(w) == state
    done = rollback_schema(w.store, w.pt_db, dry_run=False, audit=audit)
    assert done.ok and done.acted
    cols = {r[1] for r in w.store.conn.execute("PRAGMA table_info(documents)")}
    assert not cols & {"recon_domain", "recon_domain_status"}
    assert not w.store.is_migrated()
    # The quarantine entries were marked as audited before the audit table went away, so a
    # later reprocess never mistakes them for an interrupted batch.
    for entry in w.quarantine.iterdir():
        assert (entry / quarantine.AUDITED_MARKER).exists()
    again = rollback_schema(w.store, w.pt_db, dry_run=False, audit=audit)
    assert again.ok and not again.acted
    assert [e["action"] for e in audit.entries()].count("rollback_schema:export") == 1


def test_rollback_assignments_modes(world) -> None:
    w = world
    counts = w.store.status_counts()
    tied = counts.get(Status.TIED_PASS_2, 0) + counts.get(Status.TIED_MANUAL, 0)
    assert tied > 0
    state = _state(w)
    dry = rollback_assignments(w.store, "tiebreaker_only")
    assert _state(w) == state and dry.counts["documents"] == tied
    done = rollback_assignments(w.store, "tiebreaker_only", dry_run=False)
    after = w.store.status_counts()
    assert after.get(Status.TIED_PASS_2, 0) == after.get(Status.TIED_MANUAL, 0) == 0
    assert after[Status.TIED_PASS_1] == counts.get(Status.TIED_PASS_1, 0) + tied
    assert done.counts["cleared"] == tied
    rows = w.store.documents_with_status(Status.TIED_PASS_1)
    assert all(w.store.domain_row(d.hash)["recon_domain"] is None for d in rows)
    again = rollback_assignments(w.store, "tiebreaker_only", dry_run=False)
    assert not again.acted
    # all: every domain column NULL; PeerTube untouched; the ledger keeps the originals.
    videos = video_snapshot(w.server.dsn)
    rollback_assignments(w.store, "all", dry_run=False)
    assert w.store.status_counts() == {"unassigned": sum(counts.values())}
    assert video_snapshot(w.server.dsn) == videos
    assert w.store.original_categories()
    # PeerTube still carries our categories: the schema rollback refuses, unless forced.
    with pytest.raises(RollbackRefused):
        rollback_schema(w.store, w.pt_db, dry_run=False)
    forced = rollback_schema(w.store, w.pt_db, force=True, dry_run=False)
    assert forced.ok and not w.store.is_migrated()
    with pytest.raises(ValueError):
        rollback_assignments(w.store, "some")


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
    state = _state(w)
    dry = restore_concepts(w.store, c.concepts_dir, w.quarantine, w.offsite)
    assert _state(w) == state
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
    state = _state(w)
    again = restore_concepts(w.store, c.concepts_dir, w.quarantine, w.offsite, dry_run=False)
    assert _state(w) == state and again.counts.get("restored", 0) == 0
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

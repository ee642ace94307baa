"""Runbook "Fully remove feature" (remove_feature) on a whole sandbox migration: real
SQLite, real concept folders, the sandbox PeerTube over HTTP and its PostgreSQL."""

from __future__ import annotations

import pytest

from recon_domains.peertube.categories import DatabaseCategories
from recon_domains.recon.store import AUDIT_TABLE, LEDGER_TABLE
from recon_domains.rollback import AuditLog, audit_log_for, remove_feature
from recon_domains.rollback.categories import LEFT, RESTORED
from recon_domains.taxonomy import DOMAIN_BY_ID


def _remove_feature(w, audit: AuditLog, *, dry_run: bool = True, **options):
    """remove_feature over the whole world: every resource and `audit`."""
    return remove_feature(
        w.store,
        w.client,
        w.corpus.concepts_dir,
        w.quarantine,
        w.offsite,
        w.pt_db,
        categories=DatabaseCategories(w.pt_db),
        dry_run=dry_run,
        audit=audit,
        **options,
    )


def test_remove_feature_restores_everything_exactly(world) -> None:
    w = world
    assert w.snapshot() != w.before  # the migration did change things
    builtin_before = {u: c for u, c in w.before["videos"].items() if c is not None}
    assert builtin_before, "the world must have videos with a built-in category before"
    changed_builtin = [u for u, c in builtin_before.items() if w.snapshot()["videos"][u] != c]
    assert changed_builtin, "some videos with a built-in category must have been pushed over"
    audit = audit_log_for(w.backup_dir)

    state = w.state()
    dry = _remove_feature(w, audit)
    assert dry.dry_run and not dry.acted
    assert w.state() == state  # the dry run changed nothing
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
    assert not set(w.client.categories()) & set(DOMAIN_BY_ID)  # RECON's categories gone

    # A re-run finds nothing to do and changes nothing.
    state = w.state()
    again = _remove_feature(w, audit, dry_run=False)
    assert again.ok and not again.acted, again.problems
    assert w.state() == state
    # The audit trail survived the schema revert and holds the exported tables.
    entries = audit.entries()
    assert {e["action"] for e in entries} >= {"remove_feature", "rollback_schema:export"}
    export = next(e for e in entries if e["action"] == "rollback_schema:export")
    assert (
        len(export["tables"][LEDGER_TABLE]) >= dry.counts["rollback_peertube_categories.to_restore"]
    )
    assert len(export["tables"][AUDIT_TABLE]) == len(w.reprocessed)


@pytest.mark.parametrize("drifted", ["leave", "restore"])
def test_remove_feature_with_a_video_changed_in_peertube(world, drifted) -> None:
    w = world
    audit = audit_log_for(w.backup_dir)
    # After our push, an admin sets a built-in category on one pushed video (a PUT, as the
    # PeerTube UI does).
    human = next(v for v, c in sorted(w.store.original_categories().items()) if c != 15)
    w.client.set_category(human, 15)

    done = _remove_feature(w, audit, dry_run=False, drifted=drifted)
    assert done.ok, done.problems
    assert not w.store.is_migrated()  # every step ran, the schema revert included
    after = w.snapshot()["videos"]
    # Every video exactly as before the push, except the human's edit when left alone.
    expected = {**w.before["videos"], **({human: 15} if drifted == "leave" else {})}
    assert after == expected
    assert after[human] == (15 if drifted == "leave" else w.before["videos"][human])
    # The report says so, naming the categories by label.
    (entry,) = done.drifted
    assert entry["video_id"] == human and entry["now"] == "15 Science & Technology"
    assert entry["action"] == (LEFT if drifted == "leave" else RESTORED)
    say = "left them as set there" if drifted == "leave" else "restored them too"
    assert any(say in s for s in done.steps)
    logged = next(e for e in audit.entries() if e["action"] == "remove_feature" and e["acted"])
    assert [d["video_id"] for d in logged["drifted"]] == [human]

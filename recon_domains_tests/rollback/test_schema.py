"""rollback_schema: refuses while PeerTube carries our categories, then drops our
columns, index and tables after copying them into the audit trail."""

from __future__ import annotations

import pytest

from recon_domains.peertube.categories import DatabaseCategories
from recon_domains.recon import quarantine
from recon_domains.rollback import (
    AuditLog,
    RollbackRefused,
    rollback_peertube_categories,
    rollback_schema,
)


def test_rollback_schema_refuses_while_pushed_then_drops(world, tmp_path) -> None:
    w = world
    categories = DatabaseCategories(w.pt_db)
    audit = AuditLog(tmp_path / "audit.jsonl")
    state = w.state()
    dry = rollback_schema(w.store, categories, audit=audit)
    assert w.state() == state
    assert "still carries pushed categories" in dry.problems[0]
    with pytest.raises(RollbackRefused, match="rollback_peertube_categories first"):
        rollback_schema(w.store, categories, dry_run=False, audit=audit)
    assert w.state() == state
    rollback_peertube_categories(w.store, categories, None, w.pt_db, dry_run=False)
    state = w.state()
    dry = rollback_schema(w.store, categories, audit=audit)
    assert dry.ok and not dry.acted and w.state() == state
    done = rollback_schema(w.store, categories, dry_run=False, audit=audit)
    assert done.ok and done.acted
    cols = {r[1] for r in w.store.conn.execute("PRAGMA table_info(documents)")}
    assert not cols & {"recon_domain", "recon_domain_status"}
    assert not w.store.is_migrated()
    # The quarantine entries were marked as audited before the audit table went away, so a
    # later reprocess never mistakes them for an interrupted batch.
    for entry in w.quarantine.iterdir():
        assert (entry / quarantine.AUDITED_MARKER).exists()
    again = rollback_schema(w.store, categories, dry_run=False, audit=audit)
    assert again.ok and not again.acted
    assert [e["action"] for e in audit.entries()].count("rollback_schema:export") == 1

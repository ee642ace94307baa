"""rollback_plugin, and the audit trail every rollback appends to."""

from __future__ import annotations

import json

from recon_domains.rollback import AuditLog, rollback_plugin
from recon_domains.taxonomy import DOMAIN_BY_ID


def test_rollback_plugin(world, tmp_path) -> None:
    w = world
    audit = AuditLog(tmp_path / "a" / "audit.jsonl")
    state = w.state()
    # Installed by hand: the manual steps are stated, and what is left is reported.
    manual = rollback_plugin(w.client, manual=True, dry_run=False, audit=audit)
    assert not manual.ok and "still registered" in manual.problems[0]
    assert any("Uninstall" in s for s in manual.steps)
    dry = rollback_plugin(w.client, audit=audit)
    assert w.state() == state
    assert dry.counts == {"recon_categories_registered": len(DOMAIN_BY_ID), "plugin_installed": 1}
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

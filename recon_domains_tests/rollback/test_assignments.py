"""rollback_assignments: mode all and tiebreaker_only."""

from __future__ import annotations

import pytest

from recon_domains.peertube.categories import ApiCategories
from recon_domains.rollback import RollbackRefused, rollback_assignments, rollback_schema
from recon_domains.taxonomy import Status
from recon_domains_tests.snapshots import video_snapshot


def test_rollback_assignments_modes(world) -> None:
    w = world
    counts = w.store.status_counts()
    tied = counts.get(Status.TIED_PASS_2, 0) + counts.get(Status.TIED_MANUAL, 0)
    assert tied > 0
    state = w.state()
    dry = rollback_assignments(w.store, "tiebreaker_only")
    assert w.state() == state and dry.counts["documents"] == tied
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
    # PeerTube still carries our categories (seen through its API here, as without
    # PEERTUBE_DB_DSN): the schema rollback refuses, unless forced.
    with pytest.raises(RollbackRefused, match=r"[1-9]\d* videos still showing our category"):
        rollback_schema(w.store, ApiCategories(w.client), dry_run=False)
    forced = rollback_schema(w.store, ApiCategories(w.client), force=True, dry_run=False)
    assert forced.ok and not w.store.is_migrated()
    with pytest.raises(ValueError):
        rollback_assignments(w.store, "some")

"""rollback_peertube_categories: every pushed video back to its category from before our
first push, through the API or PeerTube's database."""

from __future__ import annotations

import psycopg2
import pytest

from recon_domains.peertube.categories import peertube_categories
from recon_domains.peertube.urls import uuid_to_short
from recon_domains.recon.store import LEDGER_TABLE
from recon_domains.rollback import rollback_peertube_categories
from recon_domains.rollback.categories import LEFT, RESTORED
from recon_domains_tests.snapshots import video_snapshot


def _set_category(dsn: str, uuid: str, category: int | None) -> None:
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE video SET category = %s WHERE uuid = %s", (category, uuid))
    conn.close()


def _categories(w, reads: str):
    """The read port as the resource would choose it: with PEERTUBE_DB_DSN, or without."""
    return peertube_categories(w.client, w.pt_db if reads == "database" else None)


# (writes, reads, how the drifted video is then restored anyway): the API path is the one
# without PeerTube's database; `force: true` is the older name of `drifted: restore`.
@pytest.mark.parametrize(
    ("via", "reads", "restore_anyway"),
    [("db", "database", {"force": True}), ("api", "api", {"drifted": "restore"})],
)
def test_rollback_peertube_categories(world, via, reads, restore_anyway) -> None:
    w = world
    categories = _categories(w, reads)
    # Half the ledger names its videos by short UUID (watch URLs carry either form).
    with w.store.transaction() as conn:
        for row in w.store.ledger()[::2]:
            conn.execute(f"UPDATE {LEDGER_TABLE} SET video_id = ? WHERE id = ?",
                         (uuid_to_short(row.video_id), row.id))
    pushed = w.store.pushed_documents()
    originals = w.store.original_categories()
    assert pushed and len(originals) == len(pushed)
    # Someone changes one pushed video in PeerTube after the push.
    drifted = sorted(originals)[0]
    _set_category(w.server.dsn, drifted, 7)
    state = w.state()
    dry = rollback_peertube_categories(w.store, categories, w.client, w.pt_db, via=via)
    assert w.state() == state
    assert dry.counts["to_restore"] == len(originals) - 1
    assert dry.counts["changed_in_peertube"] == dry.counts["left_as_set_in_peertube"] == 1
    assert [(d["video_id"], d["now"], d["action"]) for d in dry.drifted] == [
        (drifted, "7 Gaming", LEFT)
    ]

    # The default leaves the human's change and goes on: no problem, the rest restored.
    done = rollback_peertube_categories(
        w.store, categories, w.client, w.pt_db, via=via, dry_run=False
    )
    assert done.ok, done.problems
    videos = video_snapshot(w.server.dsn)
    for vid, original in originals.items():
        assert videos[vid] == (7 if vid == drifted else original)
    assert done.counts["restored"] == len(originals) - 1
    assert [d["video_id"] for d in done.drifted] == [drifted]
    assert any("left them as set there" in s for s in done.steps)
    # Only the drifted video's document is still marked pushed (no later push overwrites it).
    still = w.store.pushed_documents()
    assert len(still) == 1
    # Re-run: nothing more to restore; the drifted video is listed again.
    again = rollback_peertube_categories(
        w.store, categories, w.client, w.pt_db, via=via, dry_run=False
    )
    assert again.counts["to_restore"] == 0 and not again.acted
    assert video_snapshot(w.server.dsn) == videos and len(again.drifted) == 1
    # The other choice restores the drifted one too, and says so.
    forced = rollback_peertube_categories(
        w.store, categories, w.client, w.pt_db, via=via, dry_run=False, **restore_anyway
    )
    assert forced.ok and video_snapshot(w.server.dsn)[drifted] == originals[drifted]
    assert [(d["video_id"], d["action"]) for d in forced.drifted] == [(drifted, RESTORED)]
    assert w.store.pushed_documents() == []
    assert all(row.restored_at for row in w.store.ledger())  # short UUIDs or not
    assert {u: c for u, c in video_snapshot(w.server.dsn).items()} == w.before["videos"]


def test_pushed_without_ledger_row_goes_back_to_null(world) -> None:
    w = world
    victim = w.store.pushed_documents()[0]
    vid = next(r.video_id for r in w.store.ledger() if r.hash == victim.hash)
    with w.store.transaction() as conn:  # as if pushed by the original, ledger-less system
        conn.execute(f"DELETE FROM {LEDGER_TABLE} WHERE hash = ?", (victim.hash,))
    categories = _categories(w, "database")
    dry = rollback_peertube_categories(w.store, categories, None, w.pt_db)
    assert dry.counts["pushed_without_ledger_row"] == 1
    rollback_peertube_categories(w.store, categories, None, w.pt_db, dry_run=False)
    assert video_snapshot(w.server.dsn)[vid] is None

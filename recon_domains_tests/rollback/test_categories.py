"""rollback_peertube_categories: every pushed video back to its category from before our
first push, through the API or PeerTube's database."""

from __future__ import annotations

import psycopg2
import pytest

from recon_domains.recon.store import LEDGER_TABLE
from recon_domains.rollback import rollback_peertube_categories
from recon_domains_tests.snapshots import video_snapshot


def _set_category(dsn: str, uuid: str, category: int | None) -> None:
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE video SET category = %s WHERE uuid = %s", (category, uuid))
    conn.close()


@pytest.mark.parametrize("via", ["db", "api"])
def test_rollback_peertube_categories(world, via) -> None:
    w = world
    pushed = w.store.pushed_documents()
    originals = w.store.original_categories()
    assert pushed and len(originals) == len(pushed)
    # Someone changes one pushed video in PeerTube after the push.
    drifted = sorted(originals)[0]
    _set_category(w.server.dsn, drifted, 7)
    state = w.state()
    dry = rollback_peertube_categories(w.store, w.client, w.pt_db, via=via)
    assert w.state() == state
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

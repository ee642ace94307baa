"""PeerTubeDatabase against a real PostgreSQL holding PeerTube's video table shape."""

from __future__ import annotations

import socket
import uuid as uuid_mod

import psycopg2
import pytest

from recon_domains.peertube.database import PeerTubeDatabase, PeerTubeDatabaseError, mask_dsn
from recon_domains.sandbox.peertube_store import SandboxStore


@pytest.fixture
def store(pg_dsn):
    s = SandboxStore(pg_dsn, max_connections=2)
    yield s
    s.close()


def _videos(store: SandboxStore, categories: list[int | None]) -> list[str]:
    return [
        store.add_video(f"v{i}", channel=f"c{i % 2}", category=c)["uuid"]
        for i, c in enumerate(categories)
    ]


def test_reads(store, pg_dsn):
    uuids = _videos(store, [None, None, 13, 100, 100, 105, 117, None])
    db = PeerTubeDatabase(pg_dsn)
    assert db.video_count() == 8
    assert db.uncategorized_count() == 3
    assert db.category_histogram() == {100: 2, 105: 1, 117: 1}
    assert db.category_histogram(min_id=1) == {13: 1, 100: 2, 105: 1, 117: 1}
    missing = str(uuid_mod.uuid4())
    asked = [uuids[0], uuids[2].upper(), uuids[5], missing, "not-a-uuid"]
    assert db.categories_of(asked) == {uuids[0]: None, uuids[2].upper(): 13, uuids[5]: 105}
    assert db.categories_of([]) == {}


def test_write_restore_categories_in_one_transaction(store, pg_dsn):
    uuids = _videos(store, [100, 101, 102, None])
    db = PeerTubeDatabase(pg_dsn)
    written = db.write_restore_categories(
        {uuids[0]: None, uuids[1]: 13, uuids[3]: 15, str(uuid_mod.uuid4()): 12}
    )
    assert written == 3
    assert db.categories_of(uuids) == {uuids[0]: None, uuids[1]: 13, uuids[2]: 102, uuids[3]: 15}
    # A bad key refuses the whole mapping before anything is written.
    with pytest.raises(ValueError, match="nothing was written"):
        db.write_restore_categories({uuids[2]: None, "garbage": 1})
    assert db.categories_of([uuids[2]]) == {uuids[2]: 102}
    assert db.write_restore_categories({}) == 0


def test_write_restore_many_pages(store, pg_dsn):
    uuids = _videos(store, [100] * 5)
    db = PeerTubeDatabase(pg_dsn)
    mapping: dict[str, int | None] = {str(uuid_mod.uuid4()): 1 for _ in range(2500)}
    mapping.update(dict.fromkeys(uuids, 14))
    assert db.write_restore_categories(mapping) == 5
    assert set(db.categories_of(uuids).values()) == {14}


def test_reads_are_read_only_transactions(store, pg_dsn):
    db = PeerTubeDatabase(pg_dsn)
    with db._cursor(write=False) as cur, pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
        cur.execute("UPDATE video SET category = 1")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_database_error_hides_the_password():
    dsn = f"postgresql://peertube:s3cr3t-pw@127.0.0.1:{_free_port()}/peertube_prod"
    db = PeerTubeDatabase(dsn, connect_timeout_s=1)
    with pytest.raises(PeerTubeDatabaseError) as info:
        db.video_count()
    message = str(info.value)
    assert "s3cr3t-pw" not in message
    assert "peertube:***@127.0.0.1" in message
    assert "PEERTUBE_DB_DSN" in message


def test_wrong_database_says_so(pg_dsn):
    with pytest.raises(PeerTubeDatabaseError, match='no table "video"'):
        PeerTubeDatabase(pg_dsn).uncategorized_count()


def test_empty_dsn_is_refused():
    with pytest.raises(PeerTubeDatabaseError, match="PEERTUBE_DB_DSN"):
        PeerTubeDatabase("")


@pytest.mark.parametrize(
    ("dsn", "masked"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgres://u:p%40ss@h/db?sslmode=require", "postgres://u:***@h/db?sslmode=require"),
        ("host=h user=u password=secret dbname=db", "host=h user=u password=*** dbname=db"),
        ("host=h password='a b c' dbname=db", "host=h password=*** dbname=db"),
        ("postgresql:///db?host=/tmp&password=zz", "postgresql:///db?host=/tmp&password=***"),
    ],
)
def test_mask_dsn(dsn, masked):
    assert mask_dsn(dsn) == masked

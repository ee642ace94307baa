"""The RECON store against real SQLite files shaped like RECON's."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from recon_domains.recon.store import (
    AUDIT_TABLE,
    DOMAIN_COLUMNS,
    LEDGER_TABLE,
    STATUS_INDEX,
    DomainDecision,
    ReconStore,
    ReconStoreError,
)
from recon_domains.sandbox.corpus import RECON_SCHEMA
from recon_domains.taxonomy import Status

SOURCE = "stream.echo6.co"


def _make_recon_db(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    """rows: (hash, documents.status, channel, source)."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    for ddl in RECON_SCHEMA:
        conn.execute(ddl)
    for doc_hash, status, channel, source in rows:
        conn.execute(
            "INSERT INTO catalogue (hash, filename, path, source, category, status) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (doc_hash, f"{doc_hash}.mp4", f"https://{source}/w/{doc_hash}", source, channel,
             status),
        )
        conn.execute(
            "INSERT INTO documents (hash, filename, status, discovered_at) VALUES (?, ?, ?, ?)",
            (doc_hash, f"{doc_hash}.mp4", status, "2026-01-01T00:00:00Z"),
        )
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def recon_db(tmp_path: Path) -> Path:
    rows = [(f"h{i:03d}", "complete", f"chan{i % 3}", SOURCE) for i in range(30)]
    rows += [("book1", "complete", "Books", "library"), ("q1", "queued", "chan0", SOURCE)]
    rows += [("x1", "extracting", "chan1", SOURCE)]
    return _make_recon_db(tmp_path / "recon.db", rows)


def _documents_columns(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA table_info(documents)").fetchall()


def test_open_refuses_missing_file_and_foreign_database(tmp_path: Path) -> None:
    with pytest.raises(ReconStoreError, match="not found"):
        ReconStore.open(tmp_path / "nope.db", SOURCE)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(ReconStoreError, match="not RECON's database"):
        ReconStore.open(other, SOURCE)
    # Refusing must not have created RECON's tables in the foreign file.
    with sqlite3.connect(other) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert tables == {"t"}
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ReconStoreError, match="not a readable SQLite database"):
        ReconStore.open(garbage, SOURCE)


def test_migration_is_idempotent_and_verified(recon_db: Path) -> None:
    original = _documents_columns(recon_db)
    with ReconStore.open(recon_db, SOURCE) as store:
        assert not store.is_migrated()
        first = store.migrate()
        assert first.added_columns == DOMAIN_COLUMNS
        assert STATUS_INDEX in first.created and LEDGER_TABLE in first.created
        second = store.migrate()
        assert not second.changed
        check = store.verify_migration()
        assert check.ok, check.problems
    after = _documents_columns(recon_db)
    assert after[: len(original)] == original  # RECON's columns untouched, in order
    assert [c[1] for c in after[len(original) :]] == list(DOMAIN_COLUMNS)


def test_verification_catches_a_missing_column(recon_db: Path) -> None:
    with ReconStore.open(recon_db, SOURCE) as store:
        store.migrate()
        store.conn.execute("ALTER TABLE documents DROP COLUMN recon_domain_assigned_at")
        check = store.verify_migration()
    assert not check.ok
    assert check.problems == ("missing column documents.recon_domain_assigned_at",)


def test_verification_catches_a_dropped_recon_column(recon_db: Path) -> None:
    with ReconStore.open(recon_db, SOURCE) as store:
        store.migrate()
        store.conn.execute("ALTER TABLE documents DROP COLUMN discovered_at")
        check = store.verify_migration()
    assert not check.ok
    assert any("discovered_at" in p for p in check.problems)


def _schema(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()


def test_revert_restores_the_original_column_set(recon_db: Path) -> None:
    original = _documents_columns(recon_db)
    original_schema = _schema(recon_db)
    with ReconStore.open(recon_db, SOURCE) as store:
        store.migrate()
        actions = store.revert_migration()
        assert "dropped column documents.recon_domain" in actions
        assert store.revert_migration() == []  # re-run is a no-op
    assert _documents_columns(recon_db) == original
    with sqlite3.connect(recon_db) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert not any(n.startswith("recon_domains_") or n == STATUS_INDEX for n in names)
    assert _schema(recon_db) == original_schema  # nothing left behind (no sqlite_sequence)


def test_queries_select_stream_documents_only(recon_db: Path) -> None:
    with ReconStore.open(recon_db, SOURCE) as store:
        store.migrate()
        candidates = store.backfill_candidates()
        assert len(candidates) == 30  # not the book, not queued/extracting documents
        assert {c.channel for c in candidates} == {"chan0", "chan1", "chan2"}
        assert store.mid_pipeline_documents() == [("x1", "extracting")]
        assert len(store.channel_members("chan0")) == 11  # 10 complete + q1
        by_channel = store.channel_members_map()
        assert set(by_channel) == {"chan0", "chan1", "chan2"}  # not the library's "Books"
        assert by_channel["chan0"] == store.channel_members("chan0")
        assert set(store.channel_members_map(["chan1"])) == {"chan1"}
        store.write_decisions(
            [DomainDecision("h000", Status.ASSIGNED, "Medical"),
             DomainDecision("h001", Status.TIED_PASS_1, None),
             DomainDecision("h002", Status.TIED_MANUAL, "Logistics"),
             DomainDecision("h003", Status.TIED_PASS_2, "Medical")]
        )
        counts = store.status_counts()
        assert counts["assigned"] == 1 and counts["tied_pass_1"] == 1
        assert counts["unassigned"] == 32 - 4 + 0  # 30 complete + q1 + x1, minus 4 decided
        # tied_manual is displayed but never pushed
        assert {c.hash for c in store.unpushed_categorized()} == {"h000", "h003"}
        assert store.domain_distribution() == {"Medical": 2}
        assert len(store.backfill_candidates()) == 26


def test_writes_are_batched(recon_db: Path) -> None:
    with ReconStore.open(recon_db, SOURCE) as store:
        store.migrate()
        commits = []
        store.conn.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
        decisions = [DomainDecision(f"h{i:03d}", Status.ASSIGNED, "Medical") for i in range(30)]
        assert store.write_decisions(decisions, batch_size=8) == 30
    assert len(commits) == 4  # ceil(30 / 8): one transaction per batch, not per row


def test_writes_wait_for_a_concurrent_writer_instead_of_failing(recon_db: Path) -> None:
    """RECON's service holds write transactions; ours must wait and then succeed."""
    with ReconStore.open(recon_db, SOURCE) as store:
        store.migrate()
    other = sqlite3.connect(recon_db, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("UPDATE documents SET retry_count = 1 WHERE hash = 'h010'")
    release = threading.Timer(0.5, lambda: other.execute("COMMIT"))
    release.start()
    started = time.monotonic()
    try:
        with ReconStore.open(recon_db, SOURCE, lock_timeout_s=10) as store:
            store.write_decisions([DomainDecision("h000", Status.ASSIGNED, "Medical")])
            waited = time.monotonic() - started
            assert store.domain_row("h000")["recon_domain"] == "Medical"
    finally:
        release.join()
        other.close()
    assert waited >= 0.4  # it really waited for the other writer's lock


def test_push_ledger_keeps_the_category_from_before_the_first_push(recon_db: Path) -> None:
    with ReconStore.open(recon_db, SOURCE) as store:
        store.migrate()
        store.write_decisions([DomainDecision("h000", Status.ASSIGNED, "Medical")])
        store.record_push_intents([("h000", "uuid-0", "stage-1", 15, 106)])
        # A resumed run reads PeerTube again and may see our own value: keep the original.
        store.record_push_intents([("h000", "uuid-0", "stage-1", 106, 106)])
        assert [r.category_before for r in store.open_push_intents()] == [15]
        assert store.domain_row("h000")["peertube_category_pushed_at"] is None
        store.complete_pushes(["h000"])
        assert store.open_push_intents() == []
        assert store.domain_row("h000")["peertube_category_pushed_at"] is not None
        # A later push of the same video (new domain) does not change the rollback target.
        store.record_push_intents([("h000", "uuid-0", "steady", 106, 113)])
        store.complete_pushes(["h000"])
        assert store.original_categories() == {"uuid-0": 15}
        assert store.clear_push_timestamps() == 1
        assert store.unpushed_categorized()[0].hash == "h000"


def test_a_video_pushed_by_short_uuid_then_by_uuid_is_one_video(recon_db: Path) -> None:
    # PEERTUBE-FACTS: the observed pair; watch URLs carry either form.
    short, full = "k8mQZHTJKUcohGWKxxzwvX", "9ae4afdc-a21a-42bf-9fe9-ca247e5e5f39"
    with ReconStore.open(recon_db, SOURCE) as store:
        store.migrate()
        store.write_decisions([DomainDecision("h000", Status.ASSIGNED, "Medical")])
        store.record_push_intents([("h000", short, "stage-1", 15, 106)])
        store.complete_pushes(["h000"])
        store.record_push_intents([("h000", full.upper(), "steady", 106, 113)])
        store.complete_pushes(["h000"])
        assert store.original_categories() == {full: 15}


def test_guarded_writes_never_overwrite_a_human_choice(recon_db: Path) -> None:
    """The tiebreaker writes only rows still tied_pass_1: a review-page choice made while it
    ran stays."""
    with ReconStore.open(recon_db, SOURCE) as store:
        store.migrate()
        store.write_decisions([DomainDecision(h, Status.TIED_PASS_1, None)
                               for h in ("h000", "h001")])
        store.write_decisions([DomainDecision("h001", Status.MANUAL_ASSIGNED, "Medical")])
        written = store.write_decisions(
            [DomainDecision(h, Status.TIED_PASS_2, "Logistics") for h in ("h000", "h001")],
            only_from=(Status.TIED_PASS_1,),
        )
        assert written == 1
        assert store.domain_row("h000")["recon_domain"] == "Logistics"
        assert store.domain_row("h001")["recon_domain_status"] == Status.MANUAL_ASSIGNED
        assert store.domain_row("h001")["recon_domain"] == "Medical"


def test_audit_counts_count_quarantined_and_restored_rows(recon_db: Path) -> None:
    with ReconStore.open(recon_db, SOURCE) as store:
        store.migrate()
        assert store.audit_counts() == (0, 0)
        with store.transaction() as conn:
            conn.executemany(
                f"INSERT INTO {AUDIT_TABLE} (hash, original_path, quarantine_path, file_count, "
                "reason, quarantined_at, restored_at) VALUES (?, 'o', 'q', 1, 'r', 't', ?)",
                [("h000", None), ("h001", "2026-01-02T00:00:00Z")],
            )
        assert store.audit_counts() == (2, 1)


def test_pushed_ledger_of_a_stage_and_watch_paths_of_some_documents(recon_db: Path) -> None:
    with ReconStore.open(recon_db, SOURCE) as store:
        store.migrate()
        store.record_push_intents(
            [("h000", "uuid-0", "stage-1", 15, 106), ("h001", "uuid-1", "stage-1", 15, 106),
             ("h002", "uuid-2", "stage-2", 15, 106)]
        )
        store.complete_pushes(["h000"])
        store.complete_pushes(["h002"])
        assert [r.hash for r in store.pushed_ledger("stage-1")] == ["h000"]  # h001 still open
        assert [r.hash for r in store.pushed_ledger("stage-2")] == ["h002"]
        store.clear_push_timestamps()  # a rollback restored them
        assert store.pushed_ledger("stage-1") == []
        assert store.watch_paths(["h001", "book1", "nope"]) == {
            "h001": f"https://{SOURCE}/w/h001",
            "book1": "https://library/w/book1",
        }
        assert store.watch_paths([]) == {}


def test_pushed_distribution_counts_the_pushed_documents_by_domain(recon_db: Path) -> None:
    with ReconStore.open(recon_db, SOURCE) as store:
        store.migrate()
        store.write_decisions(
            [DomainDecision("h000", Status.ASSIGNED, "Medical"),
             DomainDecision("h001", Status.ASSIGNED, "Medical"),
             DomainDecision("h002", Status.ASSIGNED, "Not a RECON domain"),
             DomainDecision("h003", Status.ASSIGNED, "Medical")]
        )
        for h in ("h000", "h001", "h002"):
            store.complete_pushes([h])
        assert store.pushed_distribution() == {"Medical": 2, "Not a RECON domain": 1}

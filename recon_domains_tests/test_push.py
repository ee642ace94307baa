"""The push engine against real SQLite, real HTTP (sandbox PeerTube) and real PostgreSQL.

Every sandbox PeerTube here loses some concurrent PUTs to PeerTube's serialization-failure
500, as a real one does under load (PEERTUBE-FACTS.md, "Concurrent PUTs sometimes answer
500"): the push must get every item through its retries.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from recon_domains.bench.push import PLUGIN_DIR, PushDoc, build_push_corpus
from recon_domains.peertube.client import PeerTubeClient, RetryPolicy
from recon_domains.peertube.database import PeerTubeDatabase
from recon_domains.push import (
    _FailureTracker,
    plan_stages,
    push_items,
    select_stage_items,
)
from recon_domains.recon.store import LEDGER_TABLE, DomainDecision, ReconStore
from recon_domains.taxonomy import DOMAIN_IDS, Status
from recon_domains_tests.peertube.test_client import wait_until_token_refused

SOURCE = "stream.echo6.co"
FAST_RETRY = RetryPolicy(max_retries=2, backoff_base=0.01, backoff_max=0.05)
# Above the 1–2 % PeerTube shows, so that every push test meets a few; a PUT alone in flight
# never fails this way, so the retries get through.
SERIALIZATION_FAILURE_RATE = 0.05
pytestmark = pytest.mark.peertube_knobs(serialization_failure_rate=SERIALIZATION_FAILURE_RATE)


def _corpus(tmp_path: Path, count: int, **kwargs) -> tuple[Path, list[PushDoc]]:
    db = tmp_path / "recon.db"
    return db, build_push_corpus(db, count, source=SOURCE, **kwargs)


def _server_with_videos(server, db: Path, docs: list[PushDoc], *, plugin: bool = True,
                        prior: dict[str, int] | None = None) -> dict[str, int | None]:
    """Seed one video per document; set prior categories; return uuid -> category now."""
    server.seed_videos_from_recon(db, SOURCE, prior_category_percent=0)
    for video, category in (prior or {}).items():
        server.store.execute("UPDATE video SET category = %s WHERE uuid = %s",
                             (category, video))
    if plugin:
        server.install_plugin(PLUGIN_DIR)
    uuids = [d.video_uuid for d in docs if d.video_uuid]
    return PeerTubeDatabase(server.dsn).categories_of(uuids)


def _client(server, **kwargs) -> PeerTubeClient:
    kwargs.setdefault("retry", FAST_RETRY)
    return PeerTubeClient(server.url, server.admin_username, server.admin_password, **kwargs)


def _pushed_hashes(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {h for (h,) in conn.execute(
            "SELECT hash FROM documents WHERE peertube_category_pushed_at IS NOT NULL")}


# -- stage selection (SQLite only) ----------------------------------------------------------
def test_stages_follow_assignment_time_then_hash(tmp_path: Path) -> None:
    db, docs = _corpus(tmp_path, 30, same_time_groups=4)
    order = [d.hash for d in docs]  # build_push_corpus returns (assigned_at, hash) order
    with ReconStore.open(db, SOURCE) as store:
        # A tied_manual document is never pushed, whatever its age.
        store.write_decisions([DomainDecision(order[0], Status.TIED_MANUAL, "Medical")],
                              now="2025-01-01T00:00:00Z")
        order = order[1:]
        plan = plan_stages(store, sizes=(5, 10))
        assert [c.hash for c in plan["stage-1"]] == order[:5]
        assert [c.hash for c in plan["stage-2"]] == order[5:15]
        assert [c.hash for c in plan["stage-3"]] == order[15:]

        # Stage 1 pushed except one failure: stage 1 keeps only that leftover, stage 2 is
        # the first 10 still unpushed after stage 1, not shifted by the leftover.
        for doc_hash in order[:4]:
            store.complete_pushes([doc_hash])
        plan = plan_stages(store, sizes=(5, 10))
        assert [c.hash for c in plan["stage-1"]] == [order[4]]
        assert [c.hash for c in plan["stage-2"]] == order[5:15]
        for doc_hash in order[4:15]:
            store.complete_pushes([doc_hash])
        assert select_stage_items(store, "stage-2", sizes=(5, 10)) == []
        assert [c.hash for c in select_stage_items(store, "stage-3", sizes=(5, 10))] \
            == order[15:]
        assert len(select_stage_items(store, "all")) == len(order) - 15
        with pytest.raises(ValueError, match="stage-4"):
            select_stage_items(store, "stage-4")


def test_default_stage_sizes_are_100_and_1000(tmp_path: Path) -> None:
    db, _ = _corpus(tmp_path, 1150, same_time_groups=50)
    with ReconStore.open(db, SOURCE) as store:
        plan = plan_stages(store)
    assert [len(plan[s]) for s in ("stage-1", "stage-2", "stage-3")] == [100, 1000, 50]


def test_failure_tracker_first_attempts_and_streaks() -> None:
    boom = RuntimeError("boom")
    first = _FailureTracker(5, 25)
    for _ in range(4):
        first.record(boom)
    assert first.abort_reason is None
    first.record(boom)
    assert first.abort_reason and "first 5 attempts" in first.abort_reason

    later = _FailureTracker(5, 3)
    later.record(None)
    for _ in range(2):
        later.record(boom)
    later.record(None)  # a success resets the streak
    for _ in range(2):
        later.record(boom)
    assert later.abort_reason is None
    later.record(boom)
    assert later.abort_reason and "3 consecutive failures" in later.abort_reason


# -- pushes against the sandbox --------------------------------------------------------------
@pytest.mark.parametrize("use_database", [True, False], ids=["db-reads", "api-reads"])
def test_push_with_plugin_installed_records_before_and_after(
    tmp_path: Path, peertube_server, use_database: bool
) -> None:
    db, docs = _corpus(tmp_path, 24, garbage=2)
    real = [d for d in docs if d.video_uuid]
    prior = {real[0].video_uuid: 13, real[7].video_uuid: 15}
    _server_with_videos(peertube_server, db, docs, prior=prior)
    client = _client(peertube_server)
    database = PeerTubeDatabase(peertube_server.dsn) if use_database else None
    with ReconStore.open(db, SOURCE) as store:
        items = select_stage_items(store, "stage-1")
        result = push_items(store, client, items, stage="stage-1", database=database)
        ledger = {row.hash: row for row in store.ledger()}

    assert result.ok and not result.aborted, result.summary()
    assert sorted(result.succeeded) == sorted(d.hash for d in real)
    assert {h for h, _ in result.skipped} == {d.hash for d in docs if not d.video_uuid}
    assert all("watch URL" in reason for _, reason in result.skipped)
    assert result.login_count == 1 and client.login_count == 1
    assert result.put_count == len(real)
    now = PeerTubeDatabase(peertube_server.dsn).categories_of([d.video_uuid for d in real])
    for d in real:
        assert now[d.video_uuid] == DOMAIN_IDS[d.domain]
        row = ledger[d.hash]
        assert (row.video_id, row.stage) == (d.video_uuid, "stage-1")
        assert row.category_before == prior.get(d.video_uuid)
        assert row.category_after == DOMAIN_IDS[d.domain]
        assert row.pushed_at is not None
    assert _pushed_hashes(db) == {d.hash for d in real}


def _ledger_counts(db: Path) -> tuple[Counter[str], Counter[str]]:
    """(ledger rows per document, completed ledger rows per document)."""
    with ReconStore.open(db, SOURCE) as store:
        rows = store.ledger()
    return Counter(r.hash for r in rows), Counter(r.hash for r in rows if r.pushed_at)


def test_serialization_failures_are_retried_and_nothing_is_lost_or_marked_twice(
    tmp_path, peertube_server_factory
) -> None:
    """Under concurrent PUTs PeerTube answers some with its serialization-failure 500; the
    client retries them, the push reports how many, and every item ends pushed once."""
    server = peertube_server_factory(serialization_failure_rate=0.3, latency_s=0.005)
    db, docs = _corpus(tmp_path, 80)
    _server_with_videos(server, db, docs)
    client = _client(server, pool_size=8,
                     retry=RetryPolicy(max_retries=8, backoff_base=0.005, backoff_max=0.02))
    with ReconStore.open(db, SOURCE) as store:
        result = push_items(store, client, select_stage_items(store, "all"),
                            stage="stage-1", database=PeerTubeDatabase(server.dsn), workers=8)
    assert result.ok, result.summary()
    assert result.retried_after_500 > 0
    assert result.retried_after_500 == client.retried_after_500
    assert f"{result.retried_after_500} retried after PeerTube 500" in result.summary()
    assert result.put_count == 80 and sorted(result.succeeded) == sorted(d.hash for d in docs)
    rows, completed = _ledger_counts(db)
    assert rows == completed == Counter({d.hash: 1 for d in docs})
    assert _pushed_hashes(db) == {d.hash for d in docs}
    now = PeerTubeDatabase(server.dsn).categories_of([d.video_uuid for d in docs])
    assert now == {d.video_uuid: DOMAIN_IDS[d.domain] for d in docs}


def test_items_whose_retries_run_out_are_left_for_the_next_run(
    tmp_path, peertube_server_factory
) -> None:
    """Without retries the 500s are failures: those items stay unpushed (open intents),
    the rest are marked once, and the next run finishes them without a second row."""
    server = peertube_server_factory(serialization_failure_rate=0.5, latency_s=0.005)
    db, docs = _corpus(tmp_path, 60)
    _server_with_videos(server, db, docs)
    client = _client(server, pool_size=8, retry=RetryPolicy(max_retries=0))
    with ReconStore.open(db, SOURCE) as store:
        first = push_items(store, client, select_stage_items(store, "all"),
                           stage="stage-1", database=PeerTubeDatabase(server.dsn), workers=8,
                           first_attempts=1)
    failed = {h for h, _ in first.failed}
    assert failed and not first.aborted, first.summary()
    assert all("500" in reason and "could not serialize access" in reason
               for _, reason in first.failed)
    assert first.retried_after_500 == 0
    assert _pushed_hashes(db) == set(first.succeeded) == {d.hash for d in docs} - failed
    rows, completed = _ledger_counts(db)
    assert rows == Counter({d.hash: 1 for d in docs})
    assert set(completed) == set(first.succeeded) and set(completed.values()) == {1}

    server.set_knobs(serialization_failure_rate=0.0)
    with ReconStore.open(db, SOURCE) as store:
        second = push_items(store, client, select_stage_items(store, "all"),
                            stage="stage-1", database=PeerTubeDatabase(server.dsn))
    assert second.ok and sorted(second.succeeded) == sorted(failed), second.summary()
    rows, completed = _ledger_counts(db)
    assert rows == completed == Counter({d.hash: 1 for d in docs})
    assert _pushed_hashes(db) == {d.hash for d in docs}
    now = PeerTubeDatabase(server.dsn).categories_of([d.video_uuid for d in docs])
    assert now == {d.video_uuid: DOMAIN_IDS[d.domain] for d in docs}


def test_plugin_missing_aborts_after_exactly_five_attempts(tmp_path, peertube_server) -> None:
    db, docs = _corpus(tmp_path, 40)
    before = _server_with_videos(peertube_server, db, docs, plugin=False)
    client = _client(peertube_server)
    with ReconStore.open(db, SOURCE) as store:
        items = select_stage_items(store, "all")
        result = push_items(store, client, items, stage="stage-1",
                            database=PeerTubeDatabase(peertube_server.dsn))
        assert store.pushed_documents() == []
    assert result.aborted
    assert "plugin is probably not installed" in result.abort_reason
    assert "first 5 attempts" in result.abort_reason
    assert result.put_count == 5 and len(result.failed) == 5
    assert all("400" in reason for _, reason in result.failed)
    assert result.not_attempted == 35 and result.succeeded == []
    assert _pushed_hashes(db) == set()
    after = PeerTubeDatabase(peertube_server.dsn).categories_of(before)
    assert after == before  # PeerTube untouched


def test_a_missing_video_is_that_items_failure_only(tmp_path, peertube_server) -> None:
    db, docs = _corpus(tmp_path, 20)
    _server_with_videos(peertube_server, db, docs)
    gone = docs[10]
    peertube_server.store.execute("DELETE FROM video WHERE uuid = %s", (gone.video_uuid,))
    with ReconStore.open(db, SOURCE) as store:
        result = push_items(store, _client(peertube_server),
                            select_stage_items(store, "all"), stage="stage-1",
                            database=PeerTubeDatabase(peertube_server.dsn))
    assert not result.aborted
    assert [h for h, _ in result.failed] == [gone.hash]
    assert "404" in result.failed[0][1]
    assert len(result.succeeded) == 19
    assert gone.hash not in _pushed_hashes(db)


def test_a_long_run_of_failures_later_aborts(tmp_path, peertube_server) -> None:
    db, docs = _corpus(tmp_path, 40)
    _server_with_videos(peertube_server, db, docs)
    for d in docs[8:]:  # PeerTube lost every video after the first 8
        peertube_server.store.execute("DELETE FROM video WHERE uuid = %s", (d.video_uuid,))
    with ReconStore.open(db, SOURCE) as store:
        result = push_items(store, _client(peertube_server),
                            select_stage_items(store, "all"), stage="stage-1",
                            database=PeerTubeDatabase(peertube_server.dsn),
                            workers=1, max_consecutive_failures=10)
    assert result.aborted
    assert "10 consecutive failures" in result.abort_reason
    assert "404" in result.abort_reason
    assert len(result.succeeded) == 8
    # The abort stops new work; with one worker at most one more PUT was already queued.
    assert len(result.failed) in (10, 11)
    assert len(result.failed) + result.not_attempted == 32


def test_non_admin_account_aborts_before_any_attempt(tmp_path, peertube_server) -> None:
    db, docs = _corpus(tmp_path, 10)
    _server_with_videos(peertube_server, db, docs)
    peertube_server.add_user("carol", "carol-password", "user")
    client = PeerTubeClient(peertube_server.url, "carol", "carol-password", retry=FAST_RETRY)
    with ReconStore.open(db, SOURCE) as store:
        result = push_items(store, client, select_stage_items(store, "all"),
                            stage="stage-1")
        assert store.ledger() == []
    assert result.aborted and "administrator" in result.abort_reason
    assert result.put_count == 0 and result.not_attempted == 10
    assert "carol-password" not in result.abort_reason


def test_wrong_password_aborts_with_the_cause_and_no_password(tmp_path, peertube_server) -> None:
    db, docs = _corpus(tmp_path, 10)
    _server_with_videos(peertube_server, db, docs)
    client = PeerTubeClient(peertube_server.url, "root", "not-the-Passw0rd", retry=FAST_RETRY)
    with ReconStore.open(db, SOURCE) as store:
        result = push_items(store, client, select_stage_items(store, "all"),
                            stage="stage-1")
    assert result.aborted and "PEERTUBE_PASSWORD" in result.abort_reason
    assert "not-the-Passw0rd" not in result.abort_reason + result.summary()
    # The advice once, and the refused login not counted as a login.
    assert result.abort_reason.count("PEERTUBE_PASSWORD") == 1
    assert result.login_count == 0 and "1 login(s)" not in result.summary()


def test_token_expiring_mid_push_is_refreshed_without_a_new_login(
    tmp_path, peertube_server_factory
) -> None:
    server = peertube_server_factory(token_lifetime_s=1.0)
    db, docs = _corpus(tmp_path, 40)
    _server_with_videos(server, db, docs)
    client = _client(server)

    def progress(done: int, total: int) -> None:
        if done == 10:  # mid-push: let the current token die on the server, then go on
            wait_until_token_refused(server, client)
            server.set_knobs(token_lifetime_s=86400.0)

    with ReconStore.open(db, SOURCE) as store:
        result = push_items(store, client, select_stage_items(store, "all"),
                            stage="stage-1", database=PeerTubeDatabase(server.dsn),
                            on_progress=progress)
    assert result.ok, result.summary()
    assert len(result.succeeded) == 40
    assert client.refresh_count >= 1
    assert client.login_count == 1 and result.login_count == 1


def test_rate_limited_push_waits_instead_of_failing(tmp_path, peertube_server_factory) -> None:
    # Real PeerTube exempts admins from the API limit; make the push hit it anyway.
    server = peertube_server_factory(
        rate_limit_max=10, rate_limit_window_s=2.0, admins_bypass_rate_limit=False
    )
    db, docs = _corpus(tmp_path, 30)
    _server_with_videos(server, db, docs)
    server.reset_rate_limits()
    client = _client(server)
    with ReconStore.open(db, SOURCE) as store:
        result = push_items(store, client, select_stage_items(store, "all"),
                            stage="stage-1", database=PeerTubeDatabase(server.dsn))
    assert result.ok, result.summary()
    assert len(result.succeeded) == 30 and result.login_count == 1
    assert client.rate_limited_count >= 1  # it did hit the limit, and waited


def test_resume_completes_open_intents_without_pushing_twice(tmp_path, peertube_server) -> None:
    """A run killed between its PUTs and their completion: PeerTube has some categories, the
    ledger has open intents. The next run completes those without a PUT and keeps the
    category each video had before the first run."""
    db, docs = _corpus(tmp_path, 12)
    prior = {docs[0].video_uuid: 13, docs[1].video_uuid: 15}
    _server_with_videos(peertube_server, db, docs, prior=prior)
    client = _client(peertube_server)
    with ReconStore.open(db, SOURCE) as store:
        store.record_push_intents(
            (d.hash, d.video_uuid, "stage-1", prior.get(d.video_uuid), DOMAIN_IDS[d.domain])
            for d in docs[:8])
    for d in docs[:5]:  # the killed run got these PUTs through
        client.set_category(d.video_uuid, DOMAIN_IDS[d.domain])

    with ReconStore.open(db, SOURCE) as store:
        result = push_items(store, client, select_stage_items(store, "all"),
                            stage="stage-1", database=PeerTubeDatabase(peertube_server.dsn))
        ledger = store.ledger()
    assert result.ok, result.summary()
    assert sorted(result.already_in_place) == sorted(d.hash for d in docs[:5])
    assert result.put_count == 7
    assert len(ledger) == 12 and all(row.pushed_at for row in ledger)  # one row per document
    before = {row.hash: row.category_before for row in ledger}
    assert before[docs[0].hash] == 13 and before[docs[1].hash] == 15
    assert all(before[d.hash] is None for d in docs[2:])


PUSH_ENV_KEYS = ("PEERTUBE_URL", "PEERTUBE_PASSWORD", "PEERTUBE_USERNAME", "PEERTUBE_DB_DSN",
                 "PEERTUBE_HOST_HEADER", "PEERTUBE_TOKEN_CACHE")


def test_kill_9_mid_push_then_resume(tmp_path, peertube_server) -> None:
    """A real `kill -9` of a pushing process; the resumed run finishes the job, pushes
    nothing twice needlessly, and the ledger keeps every original category."""
    db, docs = _corpus(tmp_path, 120)
    prior = {d.video_uuid: 13 for d in docs[::9]}
    _server_with_videos(peertube_server, db, docs, prior=prior)
    peertube_server.set_knobs(latency_s=0.03)  # slow enough to be killed mid-way
    env = {k: v for k, v in os.environ.items() if k not in PUSH_ENV_KEYS}
    env.update(PEERTUBE_PASSWORD=peertube_server.admin_password)
    log = (tmp_path / "push.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "recon_domains_tests.push_process", str(db), SOURCE,
         peertube_server.url, peertube_server.admin_username, peertube_server.dsn, "4"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while len(_pushed_hashes(db)) < 30:
            assert proc.poll() is None, (tmp_path / "push.log").read_text()
            assert time.monotonic() < deadline, "the push made no progress"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert proc.returncode == -signal.SIGKILL

    peertube = PeerTubeDatabase(peertube_server.dsn)
    target = {d.hash: DOMAIN_IDS[d.domain] for d in docs}
    pushed_before = _pushed_hashes(db)
    assert 30 <= len(pushed_before) < len(docs)
    # Requests the killed process had sent are still being answered: let PeerTube settle.
    at_kill = peertube.categories_of([d.video_uuid for d in docs])
    while True:
        time.sleep(0.3)
        settled = peertube.categories_of([d.video_uuid for d in docs])
        if settled == at_kill:
            break
        at_kill = settled
    # Nothing is marked pushed that PeerTube does not have.
    assert all(at_kill[d.video_uuid] == target[d.hash] for d in docs if d.hash in pushed_before)

    peertube_server.set_knobs(latency_s=0.0)
    remaining = [d for d in docs if d.hash not in pushed_before]
    already = {d.hash for d in remaining if at_kill[d.video_uuid] == target[d.hash]}
    client = _client(peertube_server)
    with ReconStore.open(db, SOURCE) as store:
        items = select_stage_items(store, "all")
        assert sorted(i.hash for i in items) == sorted(d.hash for d in remaining)
        result = push_items(store, client, items, stage="all", database=peertube)
        ledger = store.ledger()
    assert result.ok, result.summary()
    assert set(result.already_in_place) == already
    assert result.put_count == len(remaining) - len(already)
    assert _pushed_hashes(db) == {d.hash for d in docs}
    final = peertube.categories_of([d.video_uuid for d in docs])
    assert all(final[d.video_uuid] == target[d.hash] for d in docs)
    assert len(ledger) == len(docs)  # one row per document: no duplicate intents
    original = {d.hash: prior.get(d.video_uuid) for d in docs}
    assert {row.hash: row.category_before for row in ledger} == original


# -- next to RECON's writer (a real process holding recon.db's write lock) -------------------
def _sandbox_categories(server, docs: list[PushDoc]) -> dict[str, int | None]:
    """hash -> the category the sandbox's video table holds now."""
    now = PeerTubeDatabase(server.dsn).categories_of([d.video_uuid for d in docs])
    return {d.hash: now[d.video_uuid] for d in docs}


def _ledger_rows(db: Path) -> list[tuple[str, str | None]]:
    """(hash, pushed_at) of every ledger row, read straight from the file."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(f"SELECT hash, pushed_at FROM {LEDGER_TABLE}").fetchall()


def test_push_next_to_a_recon_writer_pausing_10_ms_pushes_and_marks_each_once(
    tmp_path, peertube_server, recon_writer
) -> None:
    db, docs = _corpus(tmp_path, 60)
    _server_with_videos(peertube_server, db, docs)
    writer = recon_writer(db, hold_s=0.5, gap_s=0.01)
    with ReconStore.open(db, SOURCE, lock_timeout_s=3) as store:
        result = push_items(store, _client(peertube_server), select_stage_items(store, "all"),
                            stage="stage-1", database=PeerTubeDatabase(peertube_server.dsn),
                            chunk_size=20)
    figures = writer.stop()
    assert result.ok, result.summary()
    every = {d.hash for d in docs}
    assert len(result.succeeded) == 60 and set(result.succeeded) == every
    assert result.put_count == 60 and result.unmarked == []
    assert _pushed_hashes(db) == every
    ledger = _ledger_rows(db)
    assert len(ledger) == 60 and {h for h, _ in ledger} == every and all(p for _, p in ledger)
    assert _sandbox_categories(peertube_server, docs) == {d.hash: DOMAIN_IDS[d.domain]
                                                          for d in docs}
    assert figures.cycles >= 2 and figures.max_wait_s < 0.25  # RECON kept writing


def test_push_next_to_a_writer_that_never_lets_go_stops_before_any_put(
    tmp_path, peertube_server, recon_writer
) -> None:
    db, docs = _corpus(tmp_path, 30)
    before = _server_with_videos(peertube_server, db, docs)
    writer = recon_writer(db, hold_s=60, gap_s=0)
    with ReconStore.open(db, SOURCE, lock_timeout_s=1) as store:
        result = push_items(store, _client(peertube_server), select_stage_items(store, "all"),
                            stage="stage-1", database=PeerTubeDatabase(peertube_server.dsn))
    writer.stop()
    assert result.aborted and result.abort_reason.startswith(
        "recon.db stayed locked for 1 s: a RECON process is writing continuously — ")
    assert "0 pushed and marked, 0 in PeerTube but not yet marked" in result.abort_reason
    assert "OperationalError" not in result.abort_reason
    assert result.elapsed < 1 + 3
    # The intents could not be written, so nothing was sent: PeerTube and RECON untouched.
    assert result.put_count == 0 and result.not_attempted == 30
    assert PeerTubeDatabase(peertube_server.dsn).categories_of(before) == before
    assert _pushed_hashes(db) == set() and _ledger_rows(db) == []

    with ReconStore.open(db, SOURCE, lock_timeout_s=1) as store:  # RECON paused
        again = push_items(store, _client(peertube_server), select_stage_items(store, "all"),
                           stage="stage-1", database=PeerTubeDatabase(peertube_server.dsn))
    assert again.ok and len(again.succeeded) == 30 and again.put_count == 30


def test_push_when_recon_stops_pausing_midway_stops_and_the_rerun_marks(
    tmp_path, peertube_server, recon_writer
) -> None:
    """After 10 items RECON's writer takes the lock and never lets go: PUTs already under
    way finish but cannot be marked, no further PUT is sent, and nothing is marked that
    PeerTube lacks; the next run marks those without a PUT and pushes the rest."""
    db, docs = _corpus(tmp_path, 80)
    _server_with_videos(peertube_server, db, docs)
    target = {d.hash: DOMAIN_IDS[d.domain] for d in docs}
    writers = []

    def progress(done: int, total: int) -> None:
        if done == 10 and not writers:
            writers.append(recon_writer(db, hold_s=60, gap_s=0))

    with ReconStore.open(db, SOURCE, lock_timeout_s=1) as store:
        result = push_items(store, _client(peertube_server), select_stage_items(store, "all"),
                            stage="stage-1", database=PeerTubeDatabase(peertube_server.dsn),
                            chunk_size=20, on_progress=progress)
    writers[0].stop()
    assert result.aborted and result.abort_reason.startswith(
        "recon.db stayed locked for 1 s: a RECON process is writing continuously — ")
    marked, unmarked = set(result.succeeded), set(result.unmarked)
    assert f"{len(marked)} pushed and marked, {len(unmarked)} in PeerTube but not yet " \
        "marked in RECON" in result.abort_reason
    assert len(marked) >= 10 and unmarked and not marked & unmarked
    assert _pushed_hashes(db) == marked
    now = _sandbox_categories(peertube_server, docs)
    assert all(now[h] == target[h] for h in marked | unmarked)  # PeerTube has all of them
    # No PUT after the stop: every other video is as it was.
    assert result.put_count == len(marked | unmarked) and result.failed == []
    assert all(now[d.hash] is None for d in docs if d.hash not in marked | unmarked)
    assert result.not_attempted == 80 - len(marked | unmarked)
    assert {h for h, pushed_at in _ledger_rows(db) if pushed_at} == marked

    with ReconStore.open(db, SOURCE, lock_timeout_s=1) as store:  # RECON paused
        again = push_items(store, _client(peertube_server), select_stage_items(store, "all"),
                           stage="stage-1", database=PeerTubeDatabase(peertube_server.dsn))
    assert again.ok, again.summary()
    assert set(again.already_in_place) == unmarked  # marked without a new PUT
    assert again.put_count == 80 - len(marked | unmarked)
    assert _pushed_hashes(db) == set(target)
    assert _sandbox_categories(peertube_server, docs) == target
    ledger = _ledger_rows(db)
    assert len(ledger) == 80 and all(p for _, p in ledger)  # one row each, all completed


def test_a_watch_url_on_another_host_is_never_pushed_and_does_not_hold_the_stage(
    tmp_path, peertube_server
) -> None:
    """Two stream documents whose watch URL names another host (a hostile row, a federated
    video from another instance) but the id of a video our PeerTube has: no PUT reaches
    those videos, the push and the stage's gate report why, and the stage still verifies."""
    from recon_domains.peertube.categories import peertube_categories
    from recon_domains.verdicts.push import split_unpushable, stage_verified
    from recon_domains_tests.snapshots import video_snapshot

    db, docs = _corpus(tmp_path, 12)
    prior = {docs[3].video_uuid: 13, docs[8].video_uuid: 15}
    _server_with_videos(peertube_server, db, docs, prior=prior)
    evil, federated = docs[3], docs[8]
    foreign = {
        evil.hash: evil.path.replace(f"https://{SOURCE}/", "https://evil.example/"),
        federated.hash: f"https://peertube.other.org/videos/watch/{federated.video_uuid}",
    }
    with sqlite3.connect(db) as conn:
        for doc_hash, path in foreign.items():
            conn.execute("UPDATE catalogue SET path = ? WHERE hash = ?", (path, doc_hash))
    before = video_snapshot(peertube_server.dsn)

    with ReconStore.open(db, SOURCE) as store:
        items = select_stage_items(store, "stage-1")
        _, unpushable = split_unpushable(store, items)  # what the push plan lists
        assert {(h, p) for h, p, _ in unpushable} == {(h[:12], p) for h, p in foreign.items()}
        result = push_items(store, _client(peertube_server), items, stage="stage-1")
        client = _client(peertube_server)
        verdict = stage_verified(
            store, client, "stage-1", (100, 1000), peertube_categories(client, None)
        )

    assert result.ok and sorted(result.succeeded) == sorted(
        d.hash for d in docs if d.hash not in foreign
    )
    skipped = dict(result.skipped)
    assert set(skipped) == set(foreign)
    assert "host 'evil.example' is not the stream host" in skipped[evil.hash]
    assert "host 'peertube.other.org' is not the stream host" in skipped[federated.hash]
    assert result.put_count == len(docs) - 2
    after = video_snapshot(peertube_server.dsn)
    for d in (evil, federated):  # exactly as before: no PUT reached them
        assert after[d.video_uuid] == before[d.video_uuid] == prior[d.video_uuid]
    assert {u for u in after if after[u] != before[u]} == {
        d.video_uuid for d in docs if d.hash not in foreign
    }
    assert foreign.keys().isdisjoint(_pushed_hashes(db))
    assert verdict.passed, verdict.description
    assert verdict.metadata["unpushable_bad_url"] == 2
    assert verdict.metadata["unpushed_retryable"] == 0


def test_recon_accepted_hosts_reach_the_store_the_push_reads(tmp_path) -> None:
    from recon_domains.defs.resources import ReconResource
    from recon_domains.verdicts.push import split_unpushable

    db, docs = _corpus(tmp_path, 3)
    moved = docs[0].path.replace(f"https://{SOURCE}/", "https://old-name.example/")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE catalogue SET path = ? WHERE hash = ?", (moved, docs[0].hash))
    for accepted, unpushable in (([], 1), (["old-name.example"], 0)):
        recon = ReconResource(db_path=str(db), concepts_dir=str(tmp_path), accepted_hosts=accepted)
        with recon.store() as store:
            assert store.watch_hosts == (SOURCE, *accepted)
            _, refused = split_unpushable(store, select_stage_items(store, "all"))
        assert len(refused) == unpushable

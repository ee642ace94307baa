"""Issue 5 steady state through Dagster: the sensor on RECON's database, the
steady_state_assignment job, the hourly schedule and the drift check."""

from __future__ import annotations

import json
import sqlite3

import dagster as dg
import psycopg2
import pytest

from recon_domains.assignment import run_pass1
from recon_domains.definitions import build_definitions
from recon_domains.defs.resources import ReconResource
from recon_domains.defs.steady_state.schedules import steady_state_hourly
from recon_domains.defs.steady_state.sensors import steady_state_sensor
from recon_domains.peertube.database import PeerTubeDatabase
from recon_domains.peertube.urls import parse_watch_url
from recon_domains.recon.store import ReconStore
from recon_domains.sandbox.corpus import add_completed_documents
from recon_domains.taxonomy import DOMAIN_IDS
from recon_domains_tests.defs.conftest import (
    MIGRATION_AND_FIRST_REPROCESS,
    REVIEW_URL,
    failure_text,
    tied_manual_count,
)

pytestmark = pytest.mark.slow


def evaluate(r, cursor: str | None = None):
    """One sensor tick as the daemon does it: a fresh context carrying the last cursor."""
    ctx = dg.build_sensor_context(
        instance=r.instance, cursor=cursor, resources={"recon": r.defs.resources["recon"]}
    )
    return steady_state_sensor(ctx), ctx.cursor


def requests(result) -> list[dg.RunRequest]:
    if isinstance(result, dg.RunRequest):
        return [result]
    if isinstance(result, list):
        return [x for x in result if isinstance(x, dg.RunRequest)]
    return []


def recon_reprocessed(r, hashes: list[str]) -> None:
    """What RECON does with a re-queued document: new concept files, status complete."""
    for i, h in enumerate(hashes):
        folder = r.corpus.concepts_dir / h
        folder.mkdir(exist_ok=True)
        domain = ["Medical", "Water Systems"][i % 2]
        (folder / "window_0001.json").write_text(json.dumps([{"domain": domain}] * 3))
    conn = sqlite3.connect(r.corpus.recon_db)
    with conn:
        conn.executemany(
            "UPDATE documents SET status = 'complete' WHERE hash = ?", [(h,) for h in hashes]
        )
        conn.executemany(
            "UPDATE catalogue SET status = 'complete' WHERE hash = ?", [(h,) for h in hashes]
        )
    conn.close()


@pytest.fixture
def steady(rollout_factory):
    r = rollout_factory(docs=200)
    r.defs = build_definitions(dict(r.defs.resources))
    r.through(*MIGRATION_AND_FIRST_REPROCESS)
    return r


def test_sensor_runs_the_steady_state_once_for_new_documents(steady) -> None:
    r = steady
    # Right after the migration: nothing new.
    result, cursor = evaluate(r)
    assert requests(result) == [] and isinstance(result, dg.SkipReason)

    # RECON completes new videos (one tied) and re-processes two re-queued documents.
    added = add_completed_documents(
        r.corpus.recon_db, r.corpus.concepts_dir, 5, seed=42, source=r.corpus.source, tied=1
    )
    r.server.seed_videos_from_recon(r.corpus.recon_db, r.corpus.source)
    batch = r.runs[-1].asset_materializations_for_node("reprocess_batch")[0].metadata
    back = [h for h in batch["requeued_hashes"].value][:2]
    recon_reprocessed(r, back)

    result, cursor = evaluate(r, cursor)
    reqs = requests(result)
    assert len(reqs) == 1, result
    assert reqs[0].tags["recon_domains/new_documents"] == "7"
    # A second tick before the run: same work, no second request.
    again, cursor2 = evaluate(r, cursor)
    assert requests(again) == [] and cursor2 == cursor

    run = r.job("steady_state_assignment")
    assert run.success, failure_text(run)
    # Its tiebreaker step says how many videos await review and where, like the migration's.
    (tie,) = [
        e.step_output_data.metadata
        for e in run.events_for_node("steady_state_tiebreaker")
        if e.is_successful_output
    ]
    awaiting = tied_manual_count(r.corpus.recon_db, r.corpus.source)
    assert awaiting > 0
    assert tie["awaiting_review"].value == awaiting
    assert tie["review_url"] == dg.MetadataValue.url(REVIEW_URL)
    with r.store() as s:
        rows = {h: s.domain_row(h) for h in [*added, *back]}
        pushed = {c.hash: c for c in s.pushed_documents()}
    for h, row in rows.items():
        assert row["recon_domain_status"] in {"assigned", "tied_pass_2", "tied_manual"}, h
    categorized = [h for h, row in rows.items() if row["recon_domain_status"] != "tied_manual"]
    assert categorized and all(h in pushed for h in categorized)
    assert {rows[h]["recon_domain"] for h in back} <= {"Medical", "Water Systems"}
    db = PeerTubeDatabase(r.server.dsn)
    want = {
        parse_watch_url(pushed[h].path).video_id: DOMAIN_IDS[pushed[h].domain] for h in categorized
    }
    assert db.categories_of(list(want)) == want

    # Work done: the next tick requests nothing.
    result, cursor = evaluate(r, cursor)
    assert requests(result) == []

    # The hourly schedule has nothing to do either, until something is left unpushed.
    sched_ctx = dg.build_schedule_context(
        instance=r.instance, resources={"recon": r.defs.resources["recon"]}
    )
    assert isinstance(steady_state_hourly(sched_ctx), dg.SkipReason)
    with r.store() as s, s.transaction() as conn:  # e.g. a push that failed last hour
        conn.execute(
            "UPDATE documents SET peertube_category_pushed_at = NULL WHERE hash = ?",
            (categorized[0],),
        )
    assert isinstance(steady_state_hourly(sched_ctx), dg.RunRequest)

    # The drift check, on the same world.
    drift_check_reports_a_video_changed_in_peertube(r)


def test_sensor_survives_a_locked_database(corpus_factory, tmp_path) -> None:
    corpus = corpus_factory(docs=100)
    with ReconStore.open(corpus.recon_db, corpus.source) as store:
        store.migrate()
        run_pass1(store, corpus.concepts_dir)
    recon = ReconResource(
        db_path=str(corpus.recon_db),
        concepts_dir=str(corpus.concepts_dir),
        stream_source=corpus.source,
    )

    def tick(cursor):
        ctx = dg.build_sensor_context(cursor=cursor, resources={"recon": recon})
        return steady_state_sensor(ctx), ctx.cursor

    assert isinstance(tick(None)[0], dg.SkipReason)
    add_completed_documents(corpus.recon_db, corpus.concepts_dir, 2, seed=43, source=corpus.source)
    locker = sqlite3.connect(corpus.recon_db, isolation_level=None)
    locker.execute("PRAGMA locking_mode = EXCLUSIVE")
    locker.execute("BEGIN EXCLUSIVE")
    locker.execute("UPDATE documents SET status = status WHERE 0")
    try:
        result, cursor = tick("previous-cursor")
    finally:
        locker.execute("COMMIT")
        locker.close()
    assert isinstance(result, dg.SkipReason) and "busy" in result.skip_message
    assert cursor == "previous-cursor"
    result, cursor = tick(cursor)
    assert len(requests(result)) == 1 and cursor.startswith("2-")
    # RECON's database briefly gone (e.g. being replaced): skipped, cursor kept.
    corpus.recon_db.rename(tmp_path / "away.db")
    result, cursor2 = tick(cursor)
    assert isinstance(result, dg.SkipReason) and cursor2 == cursor


def drift_check_reports_a_video_changed_in_peertube(r) -> None:
    clean = r.job("peertube_drift_check")
    assert clean.success, failure_text(clean)
    with r.store() as s:
        victim = s.pushed_documents()[0]
    vid = parse_watch_url(victim.path).video_id
    conn = psycopg2.connect(r.server.dsn)
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE video SET category = 4 WHERE uuid = %s", (vid,))
    conn.close()

    drift = r.job("peertube_drift_check")
    assert not drift.success
    text = failure_text(drift)
    assert "1 pushed video(s) no longer show the category we pushed" in text
    assert PeerTubeDatabase(r.server.dsn).categories_of([vid]) == {vid: 4}  # not overwritten

    report_only = r.defs.resolve_job_def("peertube_drift_check").execute_in_process(
        instance=r.instance,
        run_config={"ops": {"peertube_drift_check_step": {"config": {"fail_on_drift": False}}}},
    )
    assert report_only.success
    meta = report_only.output_for_node("peertube_drift_check_step")
    assert [d["video_id"] for d in meta["drifted"]] == [vid]
    assert meta["drifted"][0]["pushed"] == DOMAIN_IDS[victim.domain]
    assert PeerTubeDatabase(r.server.dsn).categories_of([vid]) == {vid: 4}


def test_steady_state_refuses_before_the_migration(rollout_factory) -> None:
    r = rollout_factory(docs=100)
    r.defs = build_definitions(dict(r.defs.resources))
    result = r.job("steady_state_assignment")
    assert not result.success
    assert "Refusing steady_state_assignment" in failure_text(result)
    assert "rollout_verification:peertube_matches_recon" in failure_text(result)

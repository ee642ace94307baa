"""End-to-end: the runbook through the project's Dagster jobs, against a generated corpus, a
sandbox PeerTube over real PostgreSQL and a persistent Dagster instance (so every gate is
also read back across runs, as in production)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from recon_domains.peertube.client import PeerTubeClient
from recon_domains.peertube.database import PeerTubeDatabase
from recon_domains.peertube.urls import parse_watch_url
from recon_domains.push import select_stage_items
from recon_domains.recon.store import AUDIT_TABLE
from recon_domains.taxonomy import DOMAIN_IDS, PLUGIN_NPM_NAME
from recon_domains_tests.defs.conftest import (
    MIGRATION,
    REVIEW_URL,
    STAGE1,
    STAGE2,
    THROUGH_TIEBREAKER,
    check_evaluation,
    failure_metadata,
    failure_text,
    finish_workers,
    tied_manual_count,
)

pytestmark = pytest.mark.slow

ALL_GATES = {
    "backup_verified",
    "dump_verified",
    "backup_fresh",
    "no_active_workers",
    "categories_registered",
    "schema_verified",
    "distribution_within_benchmarks",
    "assigned_spot_check",
    "tiebreaker_spot_check",
    "stage_verified",
    "peertube_matches_recon",
}


def _tree(root: Path) -> dict[str, int]:
    """Relative path -> size of every file under root (to prove nothing changed)."""
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def _audit_rows(r) -> list[tuple]:
    with r.store() as s:
        return s.conn.execute(
            f"SELECT hash, quarantine_path, file_count FROM {AUDIT_TABLE}"
        ).fetchall()


def test_whole_runbook_then_reprocess(rollout_factory):
    r = rollout_factory(docs=300)
    r.through(*THROUGH_TIEBREAKER)

    # The tiebreaker tells the operator how many videos await review and where.
    tie = r.last("tiebreaker_job").asset_materializations_for_node("tiebreaker_assignments")
    meta = tie[0].metadata
    awaiting = tied_manual_count(r.corpus.recon_db, r.corpus.source)
    assert awaiting > 0  # the catch-all channel's ties
    assert meta["awaiting_review"].value == awaiting
    assert meta["review_url"] == dg.MetadataValue.url(REVIEW_URL)
    assert meta["review_next_step"].value == (
        f"{awaiting} tied video(s) await review: run `recon-domains review` and open "
        f"{REVIEW_URL} to assign them."
    )

    r.through(*MIGRATION[len(THROUGH_TIEBREAKER) :])

    passed = {e.check_name for res in r.runs for e in res.get_asset_check_evaluations() if e.passed}
    assert passed >= ALL_GATES

    # Backups exist where the metadata says, with the recorded sizes.
    for key in ("recon_db_backup", "peertube_db_backup"):
        meta = r.runs[0].asset_materializations_for_node(key)[0].metadata
        assert Path(meta["path"].value).stat().st_size == meta["size_bytes"].value > 0

    # RECON: everything categorized is pushed, except documents whose watch URL has no video
    # id (garbage paths in the corpus); PeerTube holds exactly the pushed categories.
    with r.store() as s:
        pushed = s.pushed_documents()
        left = s.unpushed_categorized()
        status = s.status_counts()
    assert {c.status for c in pushed} <= {"assigned", "tied_pass_2", "manual_assigned"}
    assert left and all(not parse_watch_url(c.path).ok for c in left)
    assert status.get("tied_manual", 0) > 0  # the catch-all channel's ties wait for a human
    db = PeerTubeDatabase(r.server.dsn)
    expected = {parse_watch_url(c.path).video_id: DOMAIN_IDS[c.domain] for c in pushed}
    assert db.categories_of(list(expected)) == expected
    assert sum(db.category_histogram().values()) == len(pushed)

    # The plan was visible before any push; each stage pushed what the plan showed (minus the
    # items without a video id, reported as skipped).
    plan = r.last("push_plan_job").asset_materializations_for_node("push_plan")[0].metadata
    planned = [plan[f"{s}_count"].value for s in ("stage-1", "stage-2", "stage-3")]
    assert planned[:2] == [STAGE1, STAGE2] and planned[2] > 0
    assert plan["unpushable"].value == len(left)  # listed before any push, with reasons
    done = []
    for res in r.all("push_job"):
        m = res.asset_materializations_for_node("peertube_category_push")[0].metadata
        done.append(m["pushed"].value + m["skipped"].value)
    assert done == planned

    # --- Step 7: reprocess --------------------------------------------------------------
    concepts_before = _tree(r.corpus.concepts_dir)
    status_before = r.status_counts()

    # batch-10 before the dry run: refused, nothing written.
    res = r.job("reprocess_job", "batch-10")
    assert not res.success
    assert "dry-run" in failure_text(res)
    assert _audit_rows(r) == []

    # The dry run lists the stale documents and changes nothing.
    res = r.job("reprocess_job", "dry-run")
    assert res.success, failure_text(res)
    meta = res.asset_materializations_for_node("reprocess_batch")[0].metadata
    assert meta["needs_reprocess"].value == status_before["needs_reprocess"]
    assert meta["stale"].value > 10
    assert check_evaluation(res, "requeued").passed
    assert _tree(r.corpus.concepts_dir) == concepts_before
    assert r.status_counts() == status_before
    assert _audit_rows(r) == []
    plan_items = meta["plan_items"].value
    first10 = [i for i in plan_items if i["stale"]][:10]

    # batch-10: exactly 10 documents quarantined (an audit row and a quarantine entry each;
    # the concept folder moved into it where there was one) and exactly 10 queued.
    res = r.job("reprocess_job", "batch-10")
    assert res.success, failure_text(res)
    assert check_evaluation(res, "requeued").passed
    audits = _audit_rows(r)
    assert sorted(a[0] for a in audits) == sorted(i["hash"] for i in first10)
    with_folder = {i["hash"] for i in first10 if i["folder_exists"]}
    assert with_folder, "the corpus should give some stale documents a concept folder"
    for h, qpath, files in audits:
        assert (Path(qpath).parent / "document.json").is_file()  # the entry: rows before
        assert Path(qpath).is_dir() == (h in with_folder) == (files > 0)
        assert not (r.corpus.concepts_dir / h).exists()
    meta = res.asset_materializations_for_node("reprocess_batch")[0].metadata
    assert meta["requeued"].value == 10
    assert meta["folders_quarantined"].value == len(with_folder)
    after = r.status_counts()
    assert after["needs_reprocess"] == status_before["needs_reprocess"] - 10
    with r.store() as s:
        queued = {
            h for (h,) in s.conn.execute("SELECT hash FROM documents WHERE status = 'queued'")
        }
    assert {i["hash"] for i in first10} <= queued
    # Only those ten folders left the concepts tree.
    gone = set(concepts_before) - set(_tree(r.corpus.concepts_dir))
    assert {p.split("/")[0] for p in gone} == with_folder


def test_stage_3_refused_before_stage_2_verified_and_killed_push_resumes(rollout_factory):
    r = rollout_factory(docs=300)
    r.through(*THROUGH_TIEBREAKER, ("push_job", "stage-1"))
    before = r.pushed_count()
    assert STAGE1 - 5 <= before <= STAGE1  # minus items whose watch URL has no video id

    # stage-3 right after stage-1: stage-2 was never materialized.
    res = r.job("push_job", "stage-3")
    assert not res.success
    text = failure_text(res)
    assert "peertube_category_push partition stage-2" in text and "never materialized" in text
    assert r.pushed_count() == before

    # stage-2 materialized in a run that skipped its check: stage-3 still refused.
    res = r.assets_alone(["peertube_category_push"], partition="stage-2")
    assert res.success, failure_text(res)
    assert not res.get_asset_check_evaluations()
    mid = r.pushed_count()
    assert mid > before
    res = r.job("push_job", "stage-3")
    assert not res.success
    text = failure_text(res)
    assert "peertube_category_push[stage-2]:stage_verified" in text
    assert "never been evaluated" in text
    assert r.pushed_count() == mid

    # Once stage-2's check passes (a push_job run: nothing left to push, then the check),
    # stage-3 may start.
    r.through(("push_job", "stage-2"))

    # A stage-3 push killed mid-stage: intents recorded for 6 items, 4 PUT, only 2 marked
    # pushed when the process died. The next push_job run resumes: the 2 PUT-but-unmarked
    # are completed without a new PUT, the rest pushed, nothing pushed twice.
    db = PeerTubeDatabase(r.server.dsn)
    with r.store() as s:
        items = [
            c
            for c in select_stage_items(s, "stage-3", (STAGE1, STAGE2))
            if parse_watch_url(c.path).ok
        ]
        assert len(items) > 6
        vids = {c.hash: parse_watch_url(c.path).video_id for c in items[:6]}
        original = db.categories_of(list(vids.values()))
        s.record_push_intents(
            [
                (c.hash, vids[c.hash], "stage-3", original[vids[c.hash]], DOMAIN_IDS[c.domain])
                for c in items[:6]
            ]
        )
        with PeerTubeClient(r.server.url, "root", r.server.admin_password) as client:
            for c in items[:4]:
                client.set_category(vids[c.hash], DOMAIN_IDS[c.domain])
        for c in items[:2]:
            s.complete_pushes([c.hash])
    killed_at = r.pushed_count()
    assert killed_at == mid + 2

    r.through(("push_job", "stage-3"))
    m = r.last("push_job").asset_materializations_for_node("peertube_category_push")[0].metadata
    assert m["already_in_place"].value == 2
    assert m["pushed"].value == len(items) - 2
    assert m["put_requests"].value == len(items) - 4
    with r.store() as s:
        assert not [
            c for c in s.unpushed_categorized() if parse_watch_url(c.path).ok
        ]
        ledger = {row.hash: row for row in s.ledger() if row.hash in vids}
    # The category from before the first push is kept for the rollback.
    assert {h: row.category_before for h, row in ledger.items()} == {
        h: original[v] for h, v in vids.items()
    }
    assert db.categories_of(list(vids.values())) == {
        vids[c.hash]: DOMAIN_IDS[c.domain] for c in items[:6]
    }


def test_skewed_corpus_stops_at_distribution_gate(rollout_factory):
    r = rollout_factory(docs=200, skewed=True)
    r.through("predeploy_job", "plugin_job", "schema_job")

    res = r.job("pass1_dry_run_job")
    assert not res.success
    ev = check_evaluation(res, "distribution_within_benchmarks")
    assert not ev.passed
    assert "Halt" in ev.description and "deviates" in ev.description
    table = ev.metadata["distribution"]
    assert isinstance(table, dg.TableMetadataValue)
    assert "DEVIATES" in {r.data["verdict"] for r in table.records}
    before = r.status_counts()
    assert set(before) == {"unassigned"}  # the dry run wrote nothing

    # Later runs that skip the check: each writing step refuses, naming the gate.
    for key, gate in (
        ("pass1_assignments", "pass1_dry_run:distribution_within_benchmarks"),
        ("tiebreaker_assignments", "pass1_assignments:assigned_spot_check"),
    ):
        res = r.assets_alone([key])
        assert not res.success
        text = failure_text(res)
        assert f"Refusing {key}" in text and gate in text
        assert r.status_counts() == before
    res = r.job("pass1_job")
    assert not res.success and "distribution_within_benchmarks" in failure_text(res)
    res = r.job("push_job", "stage-1")
    assert not res.success and "tiebreaker_spot_check" in failure_text(res)
    assert r.status_counts() == before
    assert r.pushed_count() == 0


def test_plugin_missing_push_aborts_after_5(rollout_factory):
    r = rollout_factory(docs=200)
    r.through(*THROUGH_TIEBREAKER)
    # The plugin disappears after its gate passed (someone uninstalled it).
    with PeerTubeClient(r.server.url, "root", r.server.admin_password) as client:
        client.uninstall_plugin(PLUGIN_NPM_NAME)
        assert 100 not in client.categories()

    res = r.job("push_job", "stage-1")
    assert not res.success
    text = failure_text(res)
    assert "ABORTED" in text and "first 5 attempts all failed" in text
    assert "plugin" in text
    meta = failure_metadata(res)
    assert meta["put_requests"] == 5 and meta["pushed_before_abort"] == 0
    assert r.pushed_count() == 0
    with r.store() as s:
        assert all(row.pushed_at is None for row in s.ledger())
    assert PeerTubeDatabase(r.server.dsn).category_histogram() == {}


def test_busy_recon_blocks_every_state_change(rollout_factory):
    r = rollout_factory(docs=200, idle=False)
    res = r.job("predeploy_job")
    assert not res.success
    ev = check_evaluation(res, "no_active_workers")
    assert not ev.passed and "mid-pipeline" in ev.description
    # The busy documents are listed.
    assert "extracting" in {r.data["status"] for r in ev.metadata["documents"].records}

    for job in ("plugin_job", "schema_job"):
        res = r.job(job)
        assert not res.success
        assert "recon_idle:no_active_workers" in failure_text(res)
    with r.store() as s:
        assert not s.is_migrated()
    with PeerTubeClient(r.server.url, "root", r.server.admin_password) as client:
        assert 100 not in client.categories()

    # Workers finish: a fresh observation reopens the gate and the steps go ahead.
    assert finish_workers(r.corpus.recon_db) > 0
    r.through("predeploy_job", "plugin_job", "schema_job")

    # A backup taken again without its check makes the old verification stale: refused.
    assert r.assets_alone(["recon_db_backup"]).success
    res = r.job("schema_job")
    assert not res.success
    text = failure_text(res)
    assert "recon_db_backup:backup_verified" in text and "older materialization" in text

"""The runbook as an operator whose PeerTube database sits in a container runs it: no
PEERTUBE_DB_DSN (every read through PeerTube's API), the pre-deploy dump from
PEERTUBE_DB_DUMP_COMMAND (a real `pg_dump -Fc` of the sandbox's database), and PeerTube
answering some concurrent PUTs with its serialization 500. Its uploaders pick RECON
categories before and during the push; afterwards a human changes one pushed video, and the
drift check, the steady state and the way out meet that change.

One world for the module (the migration runs once); the tests run in file order, the last
one changes it."""

from __future__ import annotations

import re
import shlex
import uuid
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

from recon_domains.backups import choose_pg_dump, server_version_num
from recon_domains.definitions import build_definitions
from recon_domains.defs.resources import PeerTubeDbResource
from recon_domains.peertube.client import PeerTubeClient
from recon_domains.peertube.urls import parse_watch_url
from recon_domains.rollback.categories import LEFT
from recon_domains.sandbox.corpus import generate_corpus
from recon_domains.sandbox.peertube_server import start_server
from recon_domains.sandbox.postgres import create_database, drop_database, pg_bin_dir
from recon_domains.taxonomy import DOMAIN_BY_ID, DOMAIN_IDS, FIRST_CATEGORY_ID
from recon_domains_tests.defs.conftest import (
    MIGRATION,
    Rollout,
    build_rollout,
    check_evaluation,
    failure_text,
    persistent_instance,
)
from recon_domains_tests.defs.test_rollback_jobs import output_metadata, run
from recon_domains_tests.defs.test_rollout import ALL_GATES
from recon_domains_tests.fixtures.peertube import SANDBOX_ADMIN_PASSWORD, SANDBOX_ADMIN_USER
from recon_domains_tests.snapshots import video_snapshot

pytestmark = pytest.mark.slow

STAGE_1 = ("push_job", "stage-1")


@dataclass
class World:
    r: Rollout
    before_push: dict[str, int | None]  # every video's category before the first push
    uploaded_before: dict[str, int]  # videos RECON does not know, RECON category set before
    uploaded_during: dict[str, int]  # ... and during the push (after stage-1)

    @property
    def uploaded(self) -> dict[str, int]:
        return {**self.uploaded_before, **self.uploaded_during}

    def client(self) -> PeerTubeClient:
        return self.r.defs.resources["peertube"].client()  # type: ignore[attr-defined]


def _upload(server, name: str, category: int, privacy: int) -> tuple[str, int]:
    """A video uploaded to PeerTube by someone else, with a RECON category picked."""
    return server.add_video(name, category=category, privacy=privacy)["uuid"], category


@pytest.fixture(scope="module")
def world(tmp_path_factory, pg_admin_dsn):
    root = tmp_path_factory.mktemp("without-peertube-db")
    corpus = generate_corpus(root / "corpus", 200, seed=5)
    name = f"rd_test_{uuid.uuid4().hex[:12]}"
    dsn = create_database(pg_admin_dsn, name)
    server = start_server(
        dsn,
        admin_username=SANDBOX_ADMIN_USER,
        admin_password=SANDBOX_ADMIN_PASSWORD,
        serialization_failure_rate=0.5,
        # A server whose capacity is 8 PUTs at 5 ms each: concurrency pays off, so the
        # push widens its window and its PUTs overlap, the only time the 500 is drawn.
        capacity=8,
        service_time_s=0.005,
    )
    # What an operator puts in PEERTUBE_DB_DUMP_COMMAND (e.g. ssh … pg_dump -Fc): here a
    # pg_dump fit for the test PostgreSQL, printing the sandbox's database to stdout.
    tool = choose_pg_dump(server_version_num(dsn), pg_bin_dir())
    dump_command = f"{shlex.quote(str(tool.path))} -Fc --no-password {shlex.quote(dsn)}"
    no_database = PeerTubeDbResource(
        dsn="", dump_command=dump_command, pg_bin_dir=str(Path(tool.path).parent)
    )
    try:
        with persistent_instance(root / "dagster_home") as instance:
            work = root / "work"
            work.mkdir()
            r = build_rollout(corpus, server, work, instance, peertube_db=no_database)
            before = dict(
                [
                    _upload(server, "a lecture", FIRST_CATEGORY_ID + 2, privacy=1),
                    _upload(server, "unlisted talk", FIRST_CATEGORY_ID + 5, privacy=2),
                    _upload(server, "private notes", FIRST_CATEGORY_ID + 17, privacy=3),
                ]
            )
            before_push = video_snapshot(dsn)
            r.through(*MIGRATION[: MIGRATION.index(STAGE_1) + 1])
            during = dict(
                [
                    _upload(server, "internal briefing", FIRST_CATEGORY_ID + 9, privacy=4),
                    _upload(server, "another lecture", FIRST_CATEGORY_ID + 2, privacy=1),
                ]
            )
            # An admin sets a RECON category by hand, through the API as PeerTube's UI does.
            by_hand = server.add_video("set by an admin")["uuid"]
            with r.defs.resources["peertube"].client() as client:  # type: ignore[attr-defined]
                client.set_category(by_hand, FIRST_CATEGORY_ID + 11)
            during[by_hand] = FIRST_CATEGORY_ID + 11
            r.through(*MIGRATION[MIGRATION.index(STAGE_1) + 1 :])
            yield World(r, before_push, before, during)
    finally:
        server.stop()
        drop_database(pg_admin_dsn, name)


def _null_count(dsn: str) -> int:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM video WHERE category IS NULL")
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_every_gate_passes_through_the_api_and_the_uploads_are_reported(world) -> None:
    r = world.r
    passed = {e.check_name for res in r.runs for e in res.get_asset_check_evaluations() if e.passed}
    assert passed >= ALL_GATES
    # The dump came from PEERTUBE_DB_DUMP_COMMAND and pg_restore read it.
    dump = r.last("predeploy_job").asset_materializations_for_node("peertube_db_backup")
    assert dump[0].metadata["method"].value == "PEERTUBE_DB_DUMP_COMMAND"
    assert Path(dump[0].metadata["path"].value).stat().st_size > 0
    assert check_evaluation(r.last("predeploy_job"), "dump_verified").passed

    # Every categorized video with a video id carries its domain (read in PeerTube's DB).
    with r.store() as s:
        pushed = s.pushed_documents()
    videos = video_snapshot(r.server.dsn)
    expected = {parse_watch_url(c.path).video_id: DOMAIN_IDS[c.domain] for c in pushed}
    assert pushed and {u: videos[u] for u in expected} == expected

    # Each stage verified through PeerTube's API; the uploads are a finding in every stage.
    for res, uploads in zip(
        r.all("push_job"),
        [world.uploaded_before, world.uploaded, world.uploaded],
        strict=True,
    ):
        ev = check_evaluation(res, "stage_verified")
        assert ev.passed, ev.description
        assert ev.metadata["compared_via"].value == "PeerTube's API"
        assert ev.metadata["outside_recon"].value == len(uploads)
        assert f"Finding: {len(uploads)} video(s) RECON did not push" in ev.description
        listed = {t.data["video"]: t.data["category"] for t in
                  ev.metadata["outside_recon_videos"].records}
        assert listed == {u: f"{c} {DOMAIN_BY_ID[c]}" for u, c in uploads.items()}

    # Step 6 passes and reports them; the uncategorized count is the API's, labelled so.
    verify = r.last("verify_job")
    ev = check_evaluation(verify, "peertube_matches_recon")
    assert ev.passed, ev.description
    assert ev.metadata["outside_recon"].value == len(world.uploaded) == 6
    assert ev.metadata["pushed_videos"].value == len(expected)
    assert ev.metadata["uncategorized_in_peertube"].value == _null_count(r.server.dsn)
    assert "registered category" in ev.metadata["uncategorized_counted_as"].value
    categories = {t.data["id"]: t.data for t in ev.metadata["categories"].records}
    for cid in set(world.uploaded.values()):
        row = categories[cid]
        pushed_here = sum(1 for c in expected.values() if c == cid)
        outside = sum(1 for c in world.uploaded.values() if c == cid)
        assert (row["PeerTube videos"], row["RECON pushed"], row["outside RECON"]) == (
            pushed_here + outside, pushed_here, outside
        )

    # PeerTube's 500s, retried, are counted in each push's metadata and summary.
    retried = []
    for res in r.all("push_job"):
        meta = res.asset_materializations_for_node("peertube_category_push")[0].metadata
        n = meta["retried_after_500"].value
        assert f"{n} retried after PeerTube 500" in meta["summary"].value
        retried.append(n)
    assert sum(retried) > 0


def _logs(r: Rollout, result: dg.ExecuteInProcessResult) -> list[str]:
    return [e.user_message for e in r.instance.all_logs(result.run_id) if e.user_message]


def test_a_human_edit_meets_drift_the_steady_state_and_the_way_out(world) -> None:
    r = world.r
    r.defs = build_definitions(dict(r.defs.resources))  # rollback and steady state too
    with r.store() as s:
        victim = next(
            c for c in sorted(s.pushed_documents(), key=lambda c: c.hash)
            if world.before_push[parse_watch_url(c.path).video_id] != 15
        )
    human = parse_watch_url(victim.path).video_id
    with world.client() as client:
        client.set_category(human, 15)  # an admin prefers Science & Technology

    # The drift check names the change by its labels and overwrites nothing.
    drift = r.job("peertube_drift_check")
    assert not drift.success
    text = failure_text(drift)
    assert "1 pushed video(s) no longer show the category we pushed" in text
    assert "now 15 Science & Technology" in text
    pushed_label = f"{DOMAIN_IDS[victim.domain]} {victim.domain}"
    assert f"video {human}: pushed {pushed_label}" in text

    # The steady state has nothing new to do, and counts the known drift.
    steady = r.job("steady_state_assignment")
    assert steady.success, failure_text(steady)
    (verify,) = [
        e.step_output_data.metadata
        for e in steady.events_for_node("steady_state_verify")
        if e.is_successful_output
    ]
    assert verify["known_drift"].value == 1
    assert [t.data["video"] for t in verify["known_drift_sample"].records] == [
        f"{r.server.url}/w/{human}"
    ]
    assert any(
        re.match(r"known drift: 1 earlier pushed video\(s\) no longer show", m)
        for m in _logs(r, steady)
    )
    assert video_snapshot(r.server.dsn)[human] == 15

    # The way out: the dry run lists the edit; confirmed, everything else goes back exactly
    # and the human's category stays.
    dry = run(r, "remove_feature")
    assert dry.success, failure_text(dry)
    listed = output_metadata(dry)["drifted_videos"]
    assert [(t.data["video_id"], t.data["now"], t.data["action"]) for t in listed.records] == [
        (human, "15 Science & Technology", LEFT)
    ]
    done = run(r, "remove_feature", confirm=True)
    assert done.success, failure_text(done)
    meta = output_metadata(done)
    assert meta["counts"]["rollback_peertube_categories.left_as_set_in_peertube"] == 1
    assert "left them as set there" in meta["steps"]
    after = video_snapshot(r.server.dsn)
    assert after == {**world.before_push, **world.uploaded_during, human: 15}
    with r.store() as s:
        assert not s.is_migrated()


def test_no_dsn_and_no_dump_command_is_one_clear_failure(tmp_path) -> None:
    from recon_domains.defs.predeploy.assets import peertube_db_backup
    from recon_domains.defs.resources import ReconResource

    result = dg.materialize(
        [peertube_db_backup],
        resources={
            "recon": ReconResource(
                db_path=str(tmp_path / "recon.db"),
                concepts_dir=str(tmp_path),
                backup_dir=str(tmp_path / "backups"),
            ),
            "peertube_db": PeerTubeDbResource(),
        },
        raise_on_error=False,
    )
    assert not result.success
    text = failure_text(result)
    assert (
        "Failure: peertube_db_backup (Pre-Deploy 2) failed: no dump of PeerTube's database "
        "could be taken: neither PEERTUBE_DB_DUMP_COMMAND nor PEERTUBE_DB_DSN is set. Set "
        "PEERTUBE_DB_DUMP_COMMAND"
    ) in text
    assert "Traceback" not in text and "PostProcessingError" not in text
    assert not any((tmp_path / "backups").glob("*"))

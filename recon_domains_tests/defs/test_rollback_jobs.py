"""Issue 5 rollback jobs through Dagster: the whole migration (runbook order, through the
project's jobs, reprocess batch-10 included), then the way out — snapshot before, exactly
back after; every rollback job's dry run changes nothing; re-runs are safe."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import dagster as dg
import pytest

from recon_domains.definitions import build_definitions
from recon_domains.recon.store import ReconStore
from recon_domains.rollback import AUDIT_FILE_NAME, AuditLog
from recon_domains.taxonomy import Status
from recon_domains_tests.defs.conftest import MIGRATION_AND_FIRST_REPROCESS, failure_text
from recon_domains_tests.snapshots import db_snapshot, tree_snapshot, video_snapshot

pytestmark = pytest.mark.slow

ROLLBACK_JOBS = (
    "rollback_peertube_categories",
    "rollback_plugin",
    "restore_concepts",
    "rollback_assignments",
    "rollback_schema",
    "remove_feature",
)


def snapshot(r) -> dict:
    """recon.db (schema + every row), concept folders, PeerTube's video categories."""
    return {
        "db": db_snapshot(r.corpus.recon_db),
        "concepts": tree_snapshot(r.corpus.concepts_dir),
        "videos": video_snapshot(r.server.dsn),
    }


def run(r, job: str, **config):
    """Run a rollback job with its op's config (confirm etc.), never raising."""
    op = r.defs.resolve_job_def(job).graph.node_defs[0].name
    result = r.defs.resolve_job_def(job).execute_in_process(
        instance=r.instance,
        run_config={"ops": {op: {"config": config}}} if config else None,
        raise_on_error=False,
    )
    r.runs.append(result)
    return result


def run_with(r, job: str, run_config: dict):
    result = r.defs.resolve_job_def(job).execute_in_process(
        instance=r.instance, run_config=run_config, raise_on_error=False
    )
    r.runs.append(result)
    return result


def printed_confirmation(r, result, job: str) -> dict:
    """The run config of the command a dry run printed to confirm it (its last log line
    and its metadata say the same command), parsed as a shell would."""
    command = output_metadata(result)["confirm_command"]
    logged = [e.user_message for e in r.instance.all_logs(result.run_id)]
    assert any(f"To do it, run {command} " in m for m in logged), job
    argv = shlex.split(command)
    assert Path(argv[0]).name == "dg" and argv[1:4] == ["launch", "--job", job], command
    assert argv[argv.index("-m") + 1] == "recon_domains.definitions"
    run_config = json.loads(argv[argv.index("--config-json") + 1])
    assert run_config == output_metadata(result)["confirm_run_config"]
    return run_config


def output_metadata(result) -> dict:
    for event in result.all_events:
        if event.event_type_value == "STEP_OUTPUT":
            return {k: getattr(v, "value", v) for k, v in event.step_output_data.metadata.items()}
    return {}


def with_all_jobs(r):
    """The rollout world with the whole project's Definitions (rollback and steady-state
    areas included), same resources and instance."""
    r.defs = build_definitions(dict(r.defs.resources))
    return r


@pytest.fixture
def migrated(rollout_factory):
    r = with_all_jobs(rollout_factory(docs=200))
    before = snapshot(r)
    r.through(*MIGRATION_AND_FIRST_REPROCESS)
    assert snapshot(r) != before
    return r, before


def test_remove_feature_job_puts_everything_back_exactly(migrated) -> None:
    r, before = migrated
    pushed_over_builtin = [
        u for u, c in before["videos"].items() if c is not None and c != snapshot(r)["videos"][u]
    ]
    assert pushed_over_builtin, "some videos with a built-in category must have been pushed"
    with r.store() as s:
        quarantined = s.conn.execute(
            "SELECT count(*) FROM recon_domains_reprocess_audit WHERE file_count > 0"
        ).fetchone()[0]
    assert quarantined > 0

    state = snapshot(r)
    dry = run(r, "remove_feature")
    assert dry.success, failure_text(dry)
    meta = output_metadata(dry)
    assert meta["dry_run"] is True and meta["acted"] is False
    assert meta["counts"]["rollback_peertube_categories.to_restore"] > 0
    assert snapshot(r) == state

    done = run(r, "remove_feature", confirm=True)
    assert done.success, failure_text(done)
    after = snapshot(r)
    assert after["videos"] == before["videos"]
    assert after["concepts"] == before["concepts"]
    assert after["db"] == before["db"]
    with r.store() as s:
        assert not s.is_migrated()

    again = run(r, "remove_feature", confirm=True)
    assert again.success and output_metadata(again)["acted"] is False
    assert snapshot(r) == after
    entries = AuditLog(r.recon.backup_root / AUDIT_FILE_NAME).entries()
    assert [e["action"] for e in entries if e["action"] == "remove_feature"] == [
        "remove_feature"
    ] * 3
    assert [e["dry_run"] for e in entries if e["action"] == "remove_feature"] == [
        True,
        False,
        False,
    ]


def test_each_rollback_job_dry_run_then_confirmed(migrated) -> None:
    r, before = migrated
    state = snapshot(r)
    for job in ROLLBACK_JOBS:
        result = run(r, job)
        assert result.success, f"{job}: {failure_text(result)}"
        assert output_metadata(result)["dry_run"] is True
        assert snapshot(r) == state, f"dry run of {job} changed something"

    # The schema rollback refuses while PeerTube carries our categories.
    refused = run(r, "rollback_schema", confirm=True)
    assert not refused.success
    assert "still carries pushed categories" in failure_text(refused)
    assert snapshot(r) == state

    # A wrong mode is refused with a clear message, before anything is touched: the config
    # type lists the modes, so Dagster refuses the run config before the run starts.
    with pytest.raises(dg.DagsterInvalidConfigError, match=r"Literal\['all', 'tiebreaker_only'\]"):
        run(r, "rollback_assignments", confirm=True, mode="everything")
    assert snapshot(r) == state

    # Then each job confirmed, in the safe order, by the config of the command its dry run
    # printed (the dry run's own choices kept); every re-run finds nothing to do.
    def confirmed(job: str, **cfg) -> dict:
        dry = run(r, job, **cfg)
        assert dry.success, f"{job}: {failure_text(dry)}"
        run_config = printed_confirmation(r, dry, job)
        printed = run_config["ops"][dry.job_def.graph.node_defs[0].name]["config"]
        assert printed["confirm"] is True
        assert all(printed.get(k, v) == v for k, v in cfg.items())  # defaults left out
        result = run_with(r, job, run_config)
        assert result.success, f"{job}: {failure_text(result)}"
        meta = output_metadata(result)
        assert meta["dry_run"] is False and "confirm_command" not in meta
        rerun = run(r, job, confirm=True, **cfg)
        assert rerun.success and output_metadata(rerun)["acted"] is False, job
        return meta

    confirmed("rollback_peertube_categories")
    assert video_snapshot(r.server.dsn) == before["videos"]
    with r.store() as s:
        assert s.pushed_documents() == []

    confirmed("rollback_plugin")
    with r.defs.resources["peertube"].client() as client:
        assert set(client.categories()) == set(range(1, 19))

    confirmed("restore_concepts")
    assert tree_snapshot(r.corpus.concepts_dir) == before["concepts"]

    with r.store() as s:
        tied = sum(
            s.status_counts().get(k, 0)
            for k in (Status.TIED_PASS_2, Status.TIED_MANUAL)
        )
    meta = confirmed("rollback_assignments", mode="tiebreaker_only")
    assert meta["counts"]["documents"] == tied > 0
    with r.store() as s:
        counts = s.status_counts()
    assert counts.get(Status.TIED_PASS_2, 0) == counts.get(Status.TIED_MANUAL, 0) == 0

    confirmed("rollback_assignments", mode="all")
    with r.store() as s:
        assert set(s.status_counts()) == {"unassigned"}

    confirmed("rollback_schema")
    assert snapshot(r) == {**before, "db": db_snapshot(r.corpus.recon_db)}
    assert db_snapshot(r.corpus.recon_db) == before["db"]
    with ReconStore.open(r.corpus.recon_db, r.corpus.source) as s:
        assert not s.is_migrated()


# Later steps first: a failed run of an earlier step closes the gates of the later ones.
NEEDS_THE_MIGRATION = (
    "peertube_drift_check",
    "steady_state_assignment",
    ("reprocess_job", "batch-100"),
    ("reprocess_job", "dry-run"),
    "verify_job",
    ("push_job", "stage-3"),
    "push_plan_job",
    "tiebreaker_job",
    "pass1_job",
    "pass1_dry_run_job",
)


def test_after_remove_feature_every_step_that_needs_the_migration_says_so(migrated) -> None:
    """The instance still remembers every gate passed; recon.db has no domain columns
    any more. Each step ends as one readable refusal naming the migration step, never a
    raw SQLite error."""
    r, _ = migrated
    assert run(r, "remove_feature", confirm=True).success
    state = snapshot(r)
    for job in NEEDS_THE_MIGRATION:
        name, partition = (job, None) if isinstance(job, str) else job
        result = r.job(name, partition)
        text = failure_text(result)
        assert not result.success, name
        assert "is not migrated for domain assignment" in text, (job, text)
        assert "recon_schema" in text, (job, text)
        assert "OperationalError" not in text and "no such column" not in text, (job, text)
    assert snapshot(r) == state

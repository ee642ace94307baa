"""Fixtures of the Dagster-layer tests: a whole rollout world (corpus + sandbox PeerTube over
real PostgreSQL + a persistent Dagster instance) driven through the project's jobs."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from recon_domains import definitions
from recon_domains.defs.resources import PeerTubeDbResource, PeerTubeResource, ReconResource
from recon_domains.recon.store import ReconStore
from recon_domains.runbook import runs
from recon_domains.sandbox.corpus import CorpusSummary
from recon_domains.sandbox.postgres import pg_bin_dir

REPO = Path(__file__).resolve().parents[2]
PLUGIN_DIR = REPO / "peertube-plugin" / "peertube-plugin-recon-domains"
# Small stages so a few-hundred-document corpus exercises all three.
STAGE1, STAGE2 = 60, 60
# Not the default, so metadata showing it proves it came from the resource.
REVIEW_URL = "http://review.example:9999/"


def shipped_instance_config() -> dict[str, Any]:
    """dagster.yaml as shipped (pools: op granularity, limit 1; telemetry off)."""
    return yaml.safe_load((REPO / "dagster.yaml").read_text())


@dataclass
class Rollout:
    """One migration world and the Dagster instance that remembers its gates."""

    corpus: CorpusSummary
    server: Any  # RunningPeerTube
    instance: dg.DagsterInstance
    workdir: Path
    defs: dg.Definitions
    runs: list[dg.ExecuteInProcessResult] = field(default_factory=list)

    @property
    def recon(self) -> ReconResource:
        return self.defs.resources["recon"]  # type: ignore[return-value]

    def job(self, name: str, partition: str | None = None) -> dg.ExecuteInProcessResult:
        """Run one of the project's jobs (what cron does), never raising."""
        result = self.defs.resolve_job_def(name).execute_in_process(
            instance=self.instance, partition_key=partition, raise_on_error=False
        )
        self.runs.append(result)
        return result

    def assets_alone(
        self, keys: Sequence[str], partition: str | None = None
    ) -> dg.ExecuteInProcessResult:
        """Materialize only these assets (no checks): a later run that skips the gates."""
        alone = dg.define_asset_job(
            "assets_alone", selection=dg.AssetSelection.assets(*keys).without_checks()
        )
        defs = dg.Definitions(
            assets=self.defs.assets,
            asset_checks=self.defs.asset_checks,
            jobs=[alone],
            resources=self.defs.resources,
        )
        result = defs.resolve_job_def("assets_alone").execute_in_process(
            instance=self.instance, partition_key=partition, raise_on_error=False
        )
        self.runs.append(result)
        return result

    def all(self, job_name: str) -> list[dg.ExecuteInProcessResult]:
        """Every run of a job so far, oldest first."""
        return [res for res in self.runs if res.dagster_run.job_name == job_name]

    def last(self, job_name: str) -> dg.ExecuteInProcessResult:
        return self.all(job_name)[-1]

    def store(self) -> ReconStore:
        return ReconStore.open(self.corpus.recon_db, self.corpus.source)

    def status_counts(self) -> dict[str, int]:
        with self.store() as s:
            return s.status_counts()

    def pushed_count(self) -> int:
        with self.store() as s:
            return len(s.pushed_documents())

    def through(self, *jobs: str | tuple[str, str]) -> None:
        """Run jobs in order, asserting each succeeded."""
        for j in jobs:
            name, part = (j, None) if isinstance(j, str) else j
            result = self.job(name, part)
            assert result.success, f"{name} {part or ''} failed: {failure_text(result)}"


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """Every step failure's message and every failed check's description of a run."""
    parts: list[str] = []
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data is not None:
            err = event.step_failure_data.error
            if err is not None:
                parts.append(err.message)
                if err.cause is not None:
                    parts.append(err.cause.message)
    for ev in result.get_asset_check_evaluations():
        if not ev.passed:
            parts.append(f"check {ev.check_name}: {ev.description}")
    return "\n".join(parts)


def failure_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    """The metadata of the dg.Failure a step raised (plain values)."""
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data is not None:
            data = event.step_failure_data.user_failure_data
            if data is not None:
                return {k: getattr(v, "value", v) for k, v in data.metadata.items()}
    return {}


def check_evaluation(result: dg.ExecuteInProcessResult, name: str) -> Any:
    found = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    assert found, f"check {name} did not run; failures: {failure_text(result)}"
    return found[-1]


def finish_workers(recon_db: Path) -> int:
    """What an idle RECON looks like: the generator's mid-pipeline documents moved on one
    step (as if the workers finished and stopped). Returns how many there were."""
    conn = sqlite3.connect(recon_db)
    try:
        with conn:
            cur = conn.execute(
                "UPDATE documents SET status = CASE status WHEN 'extracting' THEN 'extracted' "
                "WHEN 'enriching' THEN 'enriched' ELSE 'failed' END "
                "WHERE status IN ('extracting', 'enriching', 'embedding')"
            )
        return cur.rowcount
    finally:
        conn.close()


def tied_manual_count(recon_db: Path, source: str) -> int:
    """Stream documents awaiting review, read straight from RECON's SQLite file (not through
    the code under test)."""
    conn = sqlite3.connect(f"file:{recon_db}?mode=ro", uri=True)
    try:
        (n,) = conn.execute(
            "SELECT count(*) FROM documents d JOIN catalogue c ON c.hash = d.hash "
            "WHERE c.source = ? AND d.recon_domain_status = 'tied_manual'",
            (source,),
        ).fetchone()
        return n
    finally:
        conn.close()


def build_rollout(
    corpus: CorpusSummary,
    server: Any,
    work: Path,
    instance: dg.DagsterInstance,
    *,
    peertube_db: PeerTubeDbResource | None = None,
    idle: bool = True,
) -> Rollout:
    """A rollout world over a generated corpus and a running sandbox PeerTube: the off-site
    mirror (copied with mtimes) under `work`, the sandbox seeded with a video per stream
    document, resources pointing at all of it (`peertube_db`: PeerTube's database by its
    DSN unless given) and the migration graph's Definitions on `instance`."""
    offsite = work / "offsite-concepts"
    shutil.copytree(corpus.concepts_dir, offsite)
    if idle:
        finish_workers(corpus.recon_db)
    server.seed_videos_from_recon(corpus.recon_db, corpus.source)
    resources = {
        "recon": ReconResource(
            db_path=str(corpus.recon_db),
            concepts_dir=str(corpus.concepts_dir),
            stream_source=corpus.source,
            backup_dir=str(work / "backups"),
            offsite_concepts_dir=str(offsite),
            quarantine_dir=str(work / "quarantine"),
            push_stage1_size=STAGE1,
            push_stage2_size=STAGE2,
            review_url=REVIEW_URL,
        ),
        "peertube": PeerTubeResource(
            url=server.url,
            password=server.admin_password,
            plugin_path=str(PLUGIN_DIR),
            token_cache=str(work / "token-cache.json"),
        ),
        # The embedded server's pg_dump, in case the test PostgreSQL is newer than PATH's.
        "peertube_db": peertube_db
        or PeerTubeDbResource(dsn=server.dsn, pg_bin_dir=str(pg_bin_dir())),
    }
    # The migration graph only: other areas (rollback, steady state) have their own tests.
    defs = definitions.build_definitions(resources, areas=definitions.MIGRATION)
    return Rollout(corpus, server, instance, work, defs)


@contextmanager
def persistent_instance(home: Path) -> Iterator[dg.DagsterInstance]:
    """A persistent Dagster instance in `home`, configured like the shipped dagster.yaml."""
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home), overrides=shipped_instance_config()) as i:
        yield i


@pytest.fixture
def rollout_factory(
    tmp_path: Path,
    corpus_factory: Callable[..., CorpusSummary],
    peertube_server_factory: Callable[..., Any],
) -> Iterator[Callable[..., Rollout]]:
    """``make(docs=400, skewed=False, instance=None, idle=True) -> Rollout``: build_rollout
    over a new corpus and sandbox PeerTube, with a persistent Dagster instance under
    tmp_path unless one is given."""
    with ExitStack() as instances:
        made = 0

        def make(
            docs: int = 400,
            skewed: bool = False,
            seed: int = 1,
            instance: dg.DagsterInstance | None = None,
            idle: bool = True,
        ) -> Rollout:
            nonlocal made
            made += 1
            corpus = corpus_factory(docs=docs, seed=seed, skewed=skewed)
            work = tmp_path / f"work-{made}"
            work.mkdir()
            if instance is None:
                instance = instances.enter_context(persistent_instance(work / "dagster_home"))
            return build_rollout(corpus, peertube_server_factory(), work, instance, idle=idle)

        yield make


# The runbook's jobs in order, as the end-to-end tests run them (a partitioned job as
# (job, partition)), from the runbook table; test_definitions pins that order.
RUNBOOK = tuple(r.job if r.partition is None else (r.job, r.partition) for r in runs())


def through(last: str | tuple[str, str]) -> tuple[str | tuple[str, str], ...]:
    """The runbook's runs up to and including `last`."""
    return RUNBOOK[: RUNBOOK.index(last) + 1]


THROUGH_TIEBREAKER = through("tiebreaker_job")
MIGRATION = through("verify_job")
MIGRATION_AND_FIRST_REPROCESS = through(("reprocess_job", "batch-10"))

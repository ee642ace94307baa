"""A whole migration on the sandbox, for the rollback and steady-state tests: a generated
corpus, a sandbox PeerTube seeded with its videos (some with a built-in category before),
the plugin installed through the API, schema, pass 1, tiebreaker, every categorized video
pushed, and one reprocess batch. Snapshots are taken before anything changes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recon_domains.assignment import run_pass1, run_tiebreaker
from recon_domains.peertube.client import PeerTubeClient
from recon_domains.peertube.database import PeerTubeDatabase
from recon_domains.push import push_items
from recon_domains.recon.store import ReconStore
from recon_domains.reprocess import plan_reprocess, run_reprocess_batch
from recon_domains.taxonomy import PLUGIN_NPM_NAME
from recon_domains_tests.snapshots import db_snapshot, tree_snapshot, video_snapshot

PLUGIN_DIR = Path(__file__).resolve().parents[1] / "peertube-plugin" / PLUGIN_NPM_NAME


@dataclass
class World:
    corpus: Any
    server: Any
    client: PeerTubeClient
    pt_db: PeerTubeDatabase
    store: ReconStore
    quarantine: Path
    offsite: Path
    backup_dir: Path
    before: dict[str, Any] = field(default_factory=dict)
    reprocessed: list[str] = field(default_factory=list)

    def snapshot(self) -> dict[str, Any]:
        return {
            "db": db_snapshot(self.corpus.recon_db),
            "concepts": tree_snapshot(self.corpus.concepts_dir),
            "videos": video_snapshot(self.server.dsn),
        }

    def state(self) -> dict[str, Any]:
        """Everything a rollback could touch: recon.db, concepts, quarantine, PeerTube."""
        return {
            **self.snapshot(),
            "quarantine": tree_snapshot(self.quarantine),
            "categories": self.client.categories(),
        }


def start_world(corpus_factory, peertube_server, docs: int = 120) -> World:
    """The corpus and the sandbox PeerTube, nothing of the feature yet; `before` snapshot."""
    corpus = corpus_factory(docs=docs)
    report = peertube_server.seed_videos_from_recon(
        corpus.recon_db, corpus.source, prior_category_percent=30
    )
    assert report.created > 0 and report.with_prior_category > 0
    client = PeerTubeClient(
        peertube_server.url, peertube_server.admin_username, peertube_server.admin_password
    )
    offsite = corpus.out_dir / "offsite"
    import shutil

    shutil.copytree(corpus.concepts_dir, offsite)
    world = World(
        corpus=corpus,
        server=peertube_server,
        client=client,
        pt_db=PeerTubeDatabase(peertube_server.dsn),
        store=ReconStore.open(corpus.recon_db, corpus.source),
        quarantine=corpus.out_dir / "concepts.quarantine",
        offsite=offsite,
        backup_dir=corpus.out_dir / "backups",
    )
    world.before = world.snapshot()
    return world


def run_migration(world: World, reprocess: int = 6) -> World:
    """Plugin, schema, pass 1, tiebreaker, push everything categorized, one reprocess batch."""
    c, store = world.corpus, world.store
    world.client.install_plugin(str(PLUGIN_DIR))
    store.migrate()
    run_pass1(store, c.concepts_dir)
    run_tiebreaker(store, c.concepts_dir)
    items = store.unpushed_categorized()
    result = push_items(store, world.client, items, stage="stage-3", database=world.pt_db)
    # Documents whose watch URL is garbage are skipped (never attempted), as in production.
    assert result.ok and result.succeeded, result.summary()
    assert len(result.succeeded) + len(result.skipped) == len(items), result.summary()
    if reprocess:
        plan = plan_reprocess(store, c.concepts_dir)
        with_folder = [i for i in plan if i.folder_exists][: reprocess - 1]
        without = [i for i in plan if not i.folder_exists][:1]
        batch = run_reprocess_batch(
            store, c.concepts_dir, world.quarantine, with_folder + without, "batch-10"
        )
        assert batch.errors == [] and len(batch.requeued) == len(with_folder) + len(without)
        world.reprocessed = batch.requeued
    return world

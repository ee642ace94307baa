"""Pass 1 and the push next to RECON's writer (issue 11), for `make bench`: each alone and
next to a RECON-writer stand-in, a separate process holding recon.db's write lock 0.5 s at
a time with 10 ms gaps (recon_domains.sandbox.recon_writer), the slowdown as a ratio and
how long RECON waited for its lock meanwhile. Measured here, never asserted in tests.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from recon_domains.assignment import run_pass1
from recon_domains.bench.push import _ChildServer, build_push_corpus
from recon_domains.peertube.client import PeerTubeClient
from recon_domains.peertube.database import PeerTubeDatabase
from recon_domains.push import push_items, select_stage_items
from recon_domains.recon.backup import copy_database
from recon_domains.recon.store import ReconStore
from recon_domains.sandbox.corpus import CorpusSummary
from recon_domains.sandbox.postgres import (
    create_database,
    drop_database,
    embedded_or_system_postgres,
)
from recon_domains.sandbox.recon_writer import RunningWriter, WriterFigures

REPEATS = 3
WRITER_HOLD_S, WRITER_GAP_S = 0.5, 0.01  # issue 11: RECON's writer as the operator saw it
WRITER_PUSH_ITEMS = 1000
WRITER_PUSH_LATENCY_S = 0.02  # as bench_push: PeerTube answering after 20 ms
WRITER_PUSH_REPEATS = 3


def writer_slowdown(corpus: CorpusSummary, folder: Path, source: str
                    ) -> list[tuple[str, str, str]]:
    """Pass 1 and the push, alone and next to a RECON-writer stand-in (another process
    holding recon.db's write lock WRITER_HOLD_S at a time, WRITER_GAP_S apart): figure rows
    with the slowdown as a ratio and the longest RECON waited for its lock meanwhile."""
    folder.mkdir(parents=True, exist_ok=True)
    hold = f"{WRITER_HOLD_S:g} s holds, {WRITER_GAP_S * 1000:g} ms gaps"

    def pass1_once(i: int, writer: bool) -> tuple[float, WriterFigures | None]:
        db = folder / f"pass1-{i}.db"
        copy_database(corpus.recon_db, db, read_only=True)
        with ReconStore.open(db, source) as store:
            store.migrate()
            return _timed(db, writer, lambda: run_pass1(store, corpus.concepts_dir))

    alone, nearby, waited = _alone_and_next_to_writer(REPEATS, pass1_once)
    rows = [("pass 1 next to RECON's writer", f"{nearby:.2f} s",
             f"{nearby / alone:.2f}x pass 1 alone ({alone:.2f} s), median of {REPEATS} each; "
             f"{hold}; RECON waited at most {waited * 1000:.0f} ms for its lock")]

    name = f"bench_writer_{uuid.uuid4().hex[:10]}"
    with embedded_or_system_postgres(folder) as pg:
        server = _ChildServer(create_database(pg.admin_dsn, name),
                              {"latency_s": WRITER_PUSH_LATENCY_S})
        client = PeerTubeClient(server.url, server.admin_username, server.admin_password)

        def push_once(i: int, writer: bool) -> tuple[float, WriterFigures | None]:
            db = folder / f"push-{i}.db"
            build_push_corpus(db, WRITER_PUSH_ITEMS, source=source, seed=11 + i)
            server.seed_videos_from_recon(db, source, prior_category_percent=0)
            # Logged in and answered once before the clock starts: the sandbox's first
            # answers after seeding take seconds, which is not what is measured here.
            client.require_admin()
            with ReconStore.open(db, source) as store:
                items = select_stage_items(store, "all")

                def push() -> None:
                    done = push_items(store, client, items, stage="bench",
                                      database=PeerTubeDatabase(server.dsn))
                    if not done.ok:
                        raise RuntimeError(f"push next to RECON's writer: {done.summary()}")

                return _timed(db, writer, push)

        try:
            alone, nearby, waited = _alone_and_next_to_writer(WRITER_PUSH_REPEATS, push_once)
        finally:
            client.close()
            server.stop()
            drop_database(pg.admin_dsn, name)
    rows.append(("push next to RECON's writer", f"{nearby:.2f} s",
                 f"{nearby / alone:.2f}x the push alone ({alone:.2f} s), median of "
                 f"{WRITER_PUSH_REPEATS} each; {hold}; {WRITER_PUSH_ITEMS} videos, "
                 f"{WRITER_PUSH_LATENCY_S * 1000:g} ms latency; RECON waited at most "
                 f"{waited * 1000:.0f} ms for its lock"))
    return rows


def _timed(db: Path, writer: bool, run: Callable[[], object]
           ) -> tuple[float, WriterFigures | None]:
    """Seconds `run()` takes, next to a writer stand-in on `db` when `writer`; its figures."""
    recon = RunningWriter(db, hold_s=WRITER_HOLD_S, gap_s=WRITER_GAP_S) if writer else None
    try:
        started = time.perf_counter()
        run()
        seconds = time.perf_counter() - started
    finally:
        figures = recon.stop() if recon is not None else None
    return seconds, figures


def _alone_and_next_to_writer(
    repeats: int, run_once: Callable[[int, bool], tuple[float, WriterFigures | None]]
) -> tuple[float, float, float]:
    """(median seconds alone, median next to the writer, RECON's longest wait): `repeats`
    runs of each, alternating, so drift on a shared VM hits both alike."""
    runs: dict[bool, list[float]] = {False: [], True: []}
    waited = 0.0
    for i in range(2 * repeats):
        writer = bool(i % 2)
        seconds, figures = run_once(i, writer)
        runs[writer].append(seconds)
        if figures is not None:
            waited = max(waited, figures.max_wait_s)
    return statistics.median(runs[False]), statistics.median(runs[True]), waited

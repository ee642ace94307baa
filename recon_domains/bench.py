"""`make bench`: speed and memory on a corpus the size of the real deployment (SPEC §10).

Prints, from one run: the floor (read and parse every window file once), pass 1 (read,
decide, write), the tiebreaker, pass 1 and the push next to a RECON writer, the push, the
whole rehearsal, and peak memory, with the targets of issue 4 beside them. Measured here,
never asserted in timed tests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from recon_domains.assignment import run_pass1, run_tiebreaker
from recon_domains.bench_push import _ChildServer, build_push_corpus
from recon_domains.defs.rehearsal import rehearse
from recon_domains.peertube.client import PeerTubeClient
from recon_domains.peertube.database import PeerTubeDatabase
from recon_domains.push import push_items, select_stage_items
from recon_domains.recon.backup import copy_database
from recon_domains.recon.store import ReconStore
from recon_domains.sandbox.corpus import CorpusSummary, generate_corpus
from recon_domains.sandbox.postgres import (
    create_database,
    drop_database,
    embedded_or_system_postgres,
)
from recon_domains.sandbox.recon_writer import RunningWriter, WriterFigures
from recon_domains.taxonomy import DEFAULT_SKIP_CHANNELS, DEFAULT_STREAM_SOURCE


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read_every_window_file(concepts: Path) -> tuple[float, int]:
    """The floor: open and parse every window_*.json once, doing nothing else."""
    started = time.perf_counter()
    files = 0
    with os.scandir(concepts) as folders:
        for folder in folders:
            if not folder.is_dir():
                continue
            with os.scandir(folder.path) as entries:
                for entry in entries:
                    if entry.name.startswith("window_") and entry.name.endswith(".json"):
                        # Malformed files cost a parse attempt too.
                        with open(entry.path, "rb") as fh, suppress(ValueError):
                            json.loads(fh.read())
                        files += 1
    return time.perf_counter() - started, files


REPEATS = 3


def best_pass1(corpus, folder: Path, source: str):
    """(seconds, result, database after it): pass 1's best of REPEATS fresh copies."""
    folder.mkdir(parents=True, exist_ok=True)
    best = None
    for i in range(REPEATS):
        db = folder / f"pass1-{i}.db"
        copy_database(corpus.recon_db, db, read_only=True)
        with ReconStore.open(db, source) as store:
            store.migrate()
            t0 = time.perf_counter()
            result = run_pass1(store, corpus.concepts_dir)
            seconds = time.perf_counter() - t0
        if best is None or seconds < best[0]:
            best = (seconds, result, db)
    assert best is not None
    return best


def best_tiebreaker(after_pass1: Path, concepts: Path, folder: Path, source: str):
    """(seconds, result): the tiebreaker's best of REPEATS copies of the pass-1 database."""
    best = None
    for i in range(REPEATS):
        db = folder / f"tiebreaker-{i}.db"
        copy_database(after_pass1, db, read_only=True)
        with ReconStore.open(db, source) as store:
            t0 = time.perf_counter()
            result = run_tiebreaker(store, concepts, DEFAULT_SKIP_CHANNELS)
            seconds = time.perf_counter() - t0
        if best is None or seconds < best[0]:
            best = (seconds, result)
    assert best is not None
    return best


WRITER_HOLD_S, WRITER_GAP_S = 0.5, 0.01  # issue 11: RECON's writer as the operator saw it
WRITER_PUSH_ITEMS = 1000
WRITER_PUSH_LATENCY_S = 0.02  # as bench_push: PeerTube answering after 20 ms
WRITER_PUSH_REPEATS = 2


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
             f"{nearby / alone:.2f}x pass 1 alone ({alone:.2f} s), best of {REPEATS} each; "
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
                 f"{nearby / alone:.2f}x the push alone ({alone:.2f} s), best of "
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
    """(best seconds alone, best next to the writer, RECON's longest wait): `repeats` runs
    of each, alternating, as this VM's timings vary run to run by tens of percent."""
    best = {False: math.inf, True: math.inf}
    waited = 0.0
    for i in range(2 * repeats):
        writer = bool(i % 2)
        seconds, figures = run_once(i, writer)
        best[writer] = min(best[writer], seconds)
        if figures is not None:
            waited = max(waited, figures.max_wait_s)
    return best[False], best[True], waited


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recon_domains.bench")
    parser.add_argument("--docs", type=int, default=22_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", default=".bench")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir).resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    source = DEFAULT_STREAM_SOURCE
    figures: list[tuple[str, str, str]] = []

    t0 = time.perf_counter()
    corpus = generate_corpus(workdir / "corpus", args.docs, seed=args.seed)
    figures.append(("generate corpus", f"{time.perf_counter() - t0:.2f} s",
                    f"{args.docs} documents"))

    # Same conditions for the floor and the passes: the corpus on disk and in the page
    # cache (otherwise the floor races the kernel's write-back of the files just written).
    # This VM's timings vary run to run by tens of percent: each figure is the best of
    # REPEATS, the passes each on a fresh copy of the database.
    os.sync()
    read_every_window_file(corpus.concepts_dir)
    floor, files = min(read_every_window_file(corpus.concepts_dir) for _ in range(REPEATS))
    figures.append(("floor: read+parse every window file once", f"{floor:.2f} s",
                    f"{files} files, best of {REPEATS}"))

    pass1_s, pass1, after_pass1 = best_pass1(corpus, workdir / "core", source)
    tie_s, tie = best_tiebreaker(after_pass1, corpus.concepts_dir, workdir / "core", source)
    figures.append(("pass 1 (read, decide, write)", f"{pass1_s:.2f} s",
                    f"{pass1_s / floor:.2f}x floor (target <= 1.5x); "
                    f"{pass1.candidates} candidates, {pass1.files_read} files"))
    figures.append(("tiebreaker (pass 2 + 3)", f"{tie_s:.2f} s",
                    f"target <= pass 1; {tie.tied_documents} tied, {tie.files_read} files "
                    f"read, {tie.channels_counted} channels"))
    figures.extend(writer_slowdown(corpus, workdir / "writer", source))

    t0 = time.perf_counter()
    report = rehearse(corpus.recon_db, corpus.concepts_dir, workdir / "rehearsal")
    total_s = time.perf_counter() - t0
    push_s = sum(s for label, s in report.step_seconds.items() if "push" in label)
    figures.append(("push, stages 1-3 (through Dagster)", f"{push_s:.2f} s",
                    f"{report.pushed_count} videos, "
                    f"{report.pushed_count / push_s if push_s else 0:.0f}/s, no added latency"))
    figures.append(("whole rehearsal", f"{total_s:.2f} s",
                    "every gate passed" if report.ok else f"STOPPED: {report.failure}"))
    figures.append(("peak RSS (this process)", f"{peak_rss_mb():.0f} MB", "target <= 500 MB"))

    width = max(len(f[0]) for f in figures)
    for name, value, note in figures:
        print(f"{name:<{width}}  {value:>10}  {note}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

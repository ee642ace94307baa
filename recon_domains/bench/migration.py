"""`make bench`: speed and memory on a corpus the size of the real deployment (SPEC §10).

Prints, from one run: the floor (read and parse every window file once), pass 1 (read,
decide, write), the tiebreaker, the push, the whole rehearsal, and peak memory, with the
targets of issue 4 beside them. Measured here, never asserted in timed tests.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from contextlib import suppress
from pathlib import Path

from recon_domains.assignment import run_pass1, run_tiebreaker
from recon_domains.recon.backup import copy_database
from recon_domains.recon.store import ReconStore
from recon_domains.rehearsal import rehearse
from recon_domains.sandbox.corpus import generate_corpus
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recon_domains.bench.migration")
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

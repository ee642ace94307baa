"""`make bench`: speed and memory on a corpus the size of the real deployment (SPEC §10).

Prints, from one run: the floor (read and parse every window file once), pass 1 (read,
decide, write) as a ratio to it, the tiebreaker, the fingerprint of what each decision was
made from (stat scan and content hash) and the re-assignment's dry run as ratios to pass 1
(recon_domains.bench.fingerprint), peak memory, pass 1 and the push next to
a RECON writer (recon_domains.bench.next_to_recon), pass 1 and the rehearsal with one 200 MB
window file planted, the push and the whole rehearsal, with each target beside it.
Measured here, never asserted in timed tests.

Two floors, so a faster parser fools nobody: the issue's floor reads each file with
`open().read()` and parses it with the standard library's `json.loads`; the orjson floor
reads and parses as pass 1 does (one `os.read` of the size fstat gives, `orjson.loads`).
Pass 1 / floor is the median of REPEATS alternating rounds (floor, orjson floor, pass 1, …):
drift on a shared VM hits all three alike.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import orjson

from recon_domains.assignment import run_pass1, run_tiebreaker
from recon_domains.bench.fingerprint import fingerprint_figures
from recon_domains.bench.next_to_recon import writer_slowdown
from recon_domains.recon.backup import copy_database
from recon_domains.recon.concepts import REASON_TOO_LARGE, concept_folder
from recon_domains.recon.store import ReconStore
from recon_domains.rehearsal import rehearse
from recon_domains.sandbox.corpus import generate_corpus
from recon_domains.taxonomy import DEFAULT_SKIP_CHANNELS, DEFAULT_STREAM_SOURCE


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _window_files(concepts: Path) -> Iterator[str]:
    """Every window_*.json of every concept folder (the floors' one walk)."""
    with os.scandir(concepts) as folders:
        for folder in folders:
            if not folder.is_dir():
                continue
            with os.scandir(folder.path) as entries:
                for entry in entries:
                    if entry.name.startswith("window_") and entry.name.endswith(".json"):
                        yield entry.path


def read_every_window_file(concepts: Path) -> tuple[float, int]:
    """The floor: open, read and parse (json.loads) every window_*.json once, nothing else."""
    started = time.perf_counter()
    files = 0
    for path in _window_files(concepts):
        # Malformed files cost a parse attempt too.
        with open(path, "rb") as fh, suppress(ValueError):
            json.loads(fh.read())
        files += 1
    return time.perf_counter() - started, files


def read_every_window_file_orjson(concepts: Path) -> float:
    """The orjson floor: every window_*.json read and parsed once as pass 1 does it."""
    started = time.perf_counter()
    for path in _window_files(concepts):
        fd = os.open(path, os.O_RDONLY)
        try:
            raw = os.read(fd, os.fstat(fd).st_size + 1)
        finally:
            os.close(fd)
        with suppress(ValueError):
            orjson.loads(raw)
    return time.perf_counter() - started


REPEATS = 3


def timed_pass1(corpus, db: Path, source: str):
    """(seconds, result): pass 1 on a fresh copy of the corpus's database at ``db``."""
    copy_database(corpus.recon_db, db, read_only=True)
    with ReconStore.open(db, source) as store:
        store.migrate()
        t0 = time.perf_counter()
        result = run_pass1(store, corpus.concepts_dir)
        return time.perf_counter() - t0, result


def alternating_rounds(corpus, folder: Path, source: str):
    """(rounds, the last pass 1's result, its database): REPEATS rounds of (floor, orjson
    floor, pass 1) seconds, in that order each round, pass 1 on a fresh copy each time."""
    folder.mkdir(parents=True, exist_ok=True)
    rounds = []
    for i in range(REPEATS):
        floor, _ = read_every_window_file(corpus.concepts_dir)
        floor_orjson = read_every_window_file_orjson(corpus.concepts_dir)
        db = folder / f"pass1-{i}.db"
        seconds, result = timed_pass1(corpus, db, source)
        rounds.append((floor, floor_orjson, seconds))
    return rounds, result, db


def median_tiebreaker(after_pass1: Path, concepts: Path, folder: Path, source: str):
    """(seconds, result): the tiebreaker's median over REPEATS copies of the pass-1 database."""
    runs = []
    for i in range(REPEATS):
        db = folder / f"tiebreaker-{i}.db"
        copy_database(after_pass1, db, read_only=True)
        with ReconStore.open(db, source) as store:
            t0 = time.perf_counter()
            result = run_tiebreaker(store, concepts, DEFAULT_SKIP_CHANNELS)
            runs.append((time.perf_counter() - t0, result))
    return sorted(runs, key=lambda run: run[0])[len(runs) // 2]


BIG_WINDOW_MB = 200


def plant_big_window_file(concepts: Path, doc_hash: str) -> Path:
    """A real 200 MB window file of valid concepts in one concept folder (json.load took
    pass 1 to 2.7 GB on such a file): the size cap must skip it unread."""
    path = concept_folder(concepts, doc_hash) / "window_9999.json"
    one = json.dumps({"concept": "padding", "domain": "Medical", "summary": "x" * 40})
    block = (", ".join([one] * 10_000) + ", ").encode()
    with open(path, "wb") as fh:
        fh.write(b"[")
        while fh.tell() < BIG_WINDOW_MB * 1024 * 1024:
            fh.write(block)
        fh.write(one.encode() + b"]")
    return path


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

    # Same conditions for the floors and the passes: the corpus on disk and in the page
    # cache (otherwise the floor races the kernel's write-back of the files just written).
    os.sync()
    _, files = read_every_window_file(corpus.concepts_dir)
    rounds, pass1, after_pass1 = alternating_rounds(corpus, workdir / "core", source)
    floor, floor_orjson, pass1_s = (statistics.median(r[i] for r in rounds) for i in range(3))
    vs_floor = statistics.median(r[2] / r[0] for r in rounds)
    vs_orjson = statistics.median(r[2] / r[1] for r in rounds)

    def each(i: int) -> str:
        return f"median of {REPEATS}: " + ", ".join(f"{r[i]:.2f}" for r in rounds) + " s"

    figures.append(("floor: open+read+json.loads every window file", f"{floor:.2f} s",
                    f"{files} files; {each(0)}"))
    figures.append(("floor, orjson: os.read+orjson.loads (pass 1's way)",
                    f"{floor_orjson:.2f} s", each(1)))
    figures.append(("pass 1 (read, decide, write)", f"{pass1_s:.2f} s",
                    f"{each(2)}; {pass1.candidates} candidates, {pass1.files_read} files"))
    figures.append(("pass 1 / floor", f"{vs_floor:.2f}x",
                    f"target <= 1.2x; median of the {REPEATS} rounds' ratios"))
    figures.append(("pass 1 / orjson floor", f"{vs_orjson:.2f}x",
                    "what pass 1 adds to reading and parsing: scanning, counting, deciding, "
                    "writing"))

    tie_s, tie = median_tiebreaker(after_pass1, corpus.concepts_dir, workdir / "core", source)
    figures.append(("tiebreaker (pass 2 + 3)", f"{tie_s:.2f} s",
                    f"{tie_s / pass1_s:.2f}x pass 1 (target <= 1x); median of {REPEATS}; "
                    f"{tie.tied_documents} tied, {tie.files_read} files read, "
                    f"{tie.channels_counted} channels"))
    figures.extend(
        fingerprint_figures(after_pass1, corpus.concepts_dir, workdir / "core", source, pass1_s)
    )
    rss_before = peak_rss_mb()
    figures.append(("peak RSS after the timed passes", f"{rss_before:.0f} MB",
                    f"target <= 500 MB; {args.docs} documents"))
    figures.extend(writer_slowdown(corpus, workdir / "writer", source))

    # An assigned document: its other files decide it again, the big one skipped.
    big = plant_big_window_file(
        corpus.concepts_dir, next(d.hash for d in pass1.decisions if d.domain is not None)
    )
    big_s, big_pass1 = timed_pass1(corpus, workdir / "core" / "pass1-big.db", source)
    skipped = big_pass1.skipped_files.get(REASON_TOO_LARGE, 0)
    figures.append((f"pass 1 with a {BIG_WINDOW_MB} MB window file", f"{big_s:.2f} s",
                    f"{big.stat().st_size:,} bytes, {skipped} file(s) skipped above the cap; "
                    f"peak RSS {rss_before:.0f} -> {peak_rss_mb():.0f} MB (target <= 500 MB)"))

    t0 = time.perf_counter()
    report = rehearse(corpus.recon_db, corpus.concepts_dir, workdir / "rehearsal")
    total_s = time.perf_counter() - t0
    push_s = sum(s for label, s in report.step_seconds.items() if "push" in label)
    figures.append(("push, stages 1-3 (through Dagster)", f"{push_s:.2f} s",
                    f"{report.pushed_count} videos, "
                    f"{report.pushed_count / push_s if push_s else 0:.0f}/s, no added latency"))
    figures.append(("whole rehearsal", f"{total_s:.2f} s",
                    "every gate passed" if report.ok else f"STOPPED: {report.failure}"))
    figures.append(("peak RSS, everything (this process)", f"{peak_rss_mb():.0f} MB",
                    f"target <= 500 MB; the rehearsal ran with the {BIG_WINDOW_MB} MB file"))

    width = max(len(f[0]) for f in figures)
    for name, value, note in figures:
        print(f"{name:<{width}}  {value:>10}  {note}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

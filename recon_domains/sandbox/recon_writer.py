"""A stand-in for RECON's own service writing recon.db: a separate process that takes the
write lock again and again.

Each cycle: `BEGIN IMMEDIATE`, update 20 catalogue rows (RECON's own table and column,
`path_updated_at`, which nothing of ours reads), hold the lock `hold_s`, `COMMIT`, sleep
`gap_s`, repeat. `gap_s = 0` re-takes the lock at once: the lock is free only for the
microseconds between COMMIT and the next BEGIN, the worst a continuously writing RECON
does; a long `hold_s` never lets go until stopped. Its own busy timeout is long, like a
service's that must not fail.

`python -m recon_domains.sandbox.recon_writer DB [--hold 0.5] [--gap 0.01]` prints
`holding` once it holds the lock the first time and, on SIGTERM or SIGINT, finishes its
cycle and prints one line of figures. `RunningWriter` starts and stops such a process.
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

ROWS_PER_CYCLE = 20
READY_LINE = "holding"


@dataclass(frozen=True)
class WriterFigures:
    """What one writer process did: cycles committed and its longest wait for the lock
    (how long our writes kept RECON waiting)."""

    cycles: int
    max_wait_s: float

    def line(self) -> str:
        return f"cycles={self.cycles} max_wait_s={self.max_wait_s:.4f}"

    @classmethod
    def parse(cls, line: str) -> WriterFigures:
        fields = dict(part.split("=", 1) for part in line.split())
        return cls(int(fields["cycles"]), float(fields["max_wait_s"]))


def write_forever(db: Path, hold_s: float, gap_s: float, *, ready=None, stop=lambda: False
                  ) -> WriterFigures:
    """The writer's loop until `stop()` is true (checked between cycles). `ready()` is
    called once, while the first lock is held."""
    conn = sqlite3.connect(db, timeout=600, isolation_level=None)
    rows = conn.execute("SELECT max(rowid) FROM catalogue").fetchone()[0] or 0
    cycles = 0
    max_wait = 0.0
    try:
        while not stop():
            asked = time.monotonic()
            conn.execute("BEGIN IMMEDIATE")
            max_wait = max(max_wait, time.monotonic() - asked)
            start = (cycles * ROWS_PER_CYCLE) % max(rows, 1)
            conn.execute(
                "UPDATE catalogue SET path_updated_at = strftime('%Y-%m-%dT%H:%M:%fZ') "
                "WHERE rowid > ? AND rowid <= ?",
                (start, start + ROWS_PER_CYCLE),
            )
            if ready is not None and cycles == 0:
                ready()
            held_until = time.monotonic() + hold_s
            while not stop() and time.monotonic() < held_until:  # a long hold ends on stop
                time.sleep(min(0.05, max(0.0, held_until - time.monotonic())))
            conn.execute("COMMIT")
            cycles += 1
            if gap_s > 0:
                time.sleep(gap_s)
    finally:
        conn.close()
    return WriterFigures(cycles, max_wait)


class RunningWriter:
    """A writer process on `db`, started holding the lock; `stop()` ends it and returns
    its figures. A context manager."""

    def __init__(self, db: Path, *, hold_s: float = 0.5, gap_s: float = 0.01) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", __name__, str(db), "--hold", str(hold_s), "--gap", str(gap_s)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().strip()
        if first != READY_LINE:
            self.proc.kill()
            _, err = self.proc.communicate()
            raise RuntimeError(f"the RECON writer stand-in did not start: {first} {err}")

    def stop(self) -> WriterFigures:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=30)
        if self.proc.returncode != 0:
            raise RuntimeError(f"the RECON writer stand-in failed: {err.strip()}")
        return WriterFigures.parse(out.strip().splitlines()[-1])

    def __enter__(self) -> RunningWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recon_domains.sandbox.recon_writer")
    parser.add_argument("db", type=Path)
    parser.add_argument("--hold", type=float, default=0.5, help="seconds each lock is held")
    parser.add_argument("--gap", type=float, default=0.01, help="seconds between locks")
    args = parser.parse_args(argv)
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    figures = write_forever(
        args.db, args.hold, args.gap,
        ready=lambda: print(READY_LINE, flush=True),
        stop=lambda: stopping,
    )
    print(figures.line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

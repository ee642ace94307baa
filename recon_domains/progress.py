"""Progress of the long loops (pass 1, the tiebreaker, each push stage, reprocess batches).

The core's loops take one plain callback, `on_progress(done, total)`, and know nothing of
who listens. A `Progress` turns those calls into `ProgressUpdate`s (done/total, rate, ETA)
for two kinds of listener:

- `lines`: told at a cadence — the start, every `every_fraction` of the total (10 %) or
  every `every_s` seconds, whichever comes first, and the end — for logs (Dagster's event
  log, a cron mail, a pipe);
- `live`: told at every call, for a live display (a progress bar on a terminal).

One total per loop, stated once and kept to the end: the push counts every selected item,
the ones it skips as unpushable counted as done, so "to push", the progress lines and the
summary share one denominator. Nothing here imports Dagster (DESIGN.md §1).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

ProgressCallback = Callable[[int, int], None]  # (done, total), what the core's loops call


def no_progress(done: int, total: int) -> None:
    """The callback of a loop nobody watches."""


@dataclass(frozen=True)
class ProgressUpdate:
    """Where one loop stands."""

    task: str  # e.g. "pass 1", "push stage-1"
    unit: str  # what is counted: "documents", "items"
    done: int
    total: int
    elapsed: float  # seconds since the loop started
    final: bool = False
    done_at_start: int = 0  # settled before any work (the push's skipped items)

    @property
    def rate(self) -> float | None:
        """Units worked per second so far (None before any time has passed)."""
        worked = self.done - self.done_at_start
        return worked / self.elapsed if self.elapsed > 0 and worked > 0 else None

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far (None when unknown)."""
        rate = self.rate
        if self.final or self.done >= self.total:
            return 0.0
        return (self.total - self.done) / rate if rate else None

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 100.0

    def line(self) -> str:
        """One line: `push stage-1: 547/5,450 items (10 %), 182.3/s, ETA 0:27`."""
        text = f"{self.task}: {self.done:,}/{self.total:,} {self.unit} ({self.percent:.0f} %)"
        rate = self.rate
        if rate is not None:
            text += f", {rate:,.1f}/s"
        if self.final:
            return f"{text}, done in {clock(self.elapsed)}"
        eta = self.eta
        return f"{text}, ETA {clock(eta)}" if eta is not None and self.done else text


def clock(seconds: float | None) -> str:
    """`0:27`, `12:05`, `1:02:09`."""
    if seconds is None:
        return "?"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


Listener = Callable[[ProgressUpdate], None]


class Progress:
    """One loop's progress, told to `lines` listeners at a cadence and to `live` ones at
    every step (see the module docstring). `callback` is what the core's loops take."""

    def __init__(
        self,
        task: str,
        unit: str = "items",
        *,
        lines: Iterable[Listener] = (),
        live: Iterable[Listener] = (),
        every_fraction: float = 0.1,
        every_s: float = 30.0,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.task, self.unit = task, unit
        self._lines: Sequence[Listener] = tuple(lines)
        self._live: Sequence[Listener] = tuple(live)
        self._every_fraction, self._every_s, self._now = every_fraction, every_s, now
        self._started: float | None = None
        self._done_at_start = 0
        self._last_line_at = 0.0
        self._last_line_done = -1
        self._last_bucket = -1
        self.done = self.total = 0
        self.finished = False

    def update(self, done: int, total: int) -> None:
        """`done` of `total` so far (the core's `on_progress`)."""
        now = self._now()
        first = self._started is None
        if self._started is None:
            self._started, self._done_at_start = now, done
        self.done, self.total = done, total
        update = ProgressUpdate(self.task, self.unit, done, total, now - self._started,
                                done_at_start=self._done_at_start)
        for listener in self._live:
            listener(update)
        due = (
            first
            or self._bucket(done, total) > self._last_bucket
            or now - self._last_line_at >= self._every_s
        )
        if due and done != self._last_line_done and done < total:
            self._tell_lines(update, now)
        if done >= total and total:
            self.finish()

    @property
    def callback(self) -> ProgressCallback:
        return self.update

    def finish(self) -> None:
        """The end (also of a loop that stopped early, or never started): one last line."""
        if self.finished:
            return
        self.finished = True
        now = self._now()
        started = self._started if self._started is not None else now
        update = ProgressUpdate(self.task, self.unit, self.done, self.total, now - started,
                                final=True, done_at_start=self._done_at_start)
        for listener in self._live:
            listener(update)
        self._tell_lines(update, now)

    def _bucket(self, done: int, total: int) -> int:
        """Which `every_fraction` slice of the total `done` is in (0, 1, … ; 10 % slices)."""
        if not total or self._every_fraction <= 0:
            return 0
        return math.floor(done / total / self._every_fraction + 1e-9)

    def _tell_lines(self, update: ProgressUpdate, now: float) -> None:
        self._last_line_at, self._last_line_done = now, update.done
        self._last_bucket = self._bucket(update.done, update.total)
        for listener in self._lines:
            listener(update)


# -- displays ---------------------------------------------------------------------------------
def print_line(stream: IO[str] | None = None) -> Listener:
    """A `lines` listener printing each update's line, flushed (cron, pipes)."""

    def listener(update: ProgressUpdate) -> None:
        out = stream if stream is not None else sys.stdout
        print(f"    {update.line()}", file=out, flush=True)

    return listener


class TerminalBars:
    """Live progress bars on a terminal (rich, installed with Dagster): one bar per loop,
    replaced by its final line when the loop ends. Use as a context manager."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import (
            Progress as RichProgress,
        )

        self.console = Console(file=stream if stream is not None else sys.stdout)
        self._bars = RichProgress(
            TextColumn("    {task.description}"), BarColumn(), MofNCompleteColumn(),
            TaskProgressColumn(), TimeElapsedColumn(), TextColumn("ETA"),
            TimeRemainingColumn(), console=self.console, transient=True,
        )
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> TerminalBars:
        self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bars.stop()

    def __call__(self, update: ProgressUpdate) -> None:
        task = self._tasks.get(update.task)
        if task is None:
            task = self._tasks[update.task] = self._bars.add_task(
                update.task, total=update.total or None
            )
        self._bars.update(task, completed=update.done, total=update.total or None)
        if update.final:
            self._bars.remove_task(task)
            del self._tasks[update.task]
            self._bars.console.print(f"    {update.line()}")


@contextmanager
def terminal_or_lines(stream: IO[str] | None = None) -> Iterator[tuple[Listener | None,
                                                                       Listener | None]]:
    """(live, lines) listeners for a command's own output: live bars when `stream` (default
    stdout) is a terminal, else plain flushed lines at the cadence."""
    out = stream if stream is not None else sys.stdout
    if out.isatty():
        with TerminalBars(out) as bars:
            yield bars, None
    else:
        yield None, print_line(out)

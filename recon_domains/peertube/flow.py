"""Push flow control: the fewest requests in flight that reach PeerTube's capacity.

Plain core, no Dagster, no HTTP: the PeerTube client tells a `FlowControl` about each
request it sends and each answer it gets (`before_request` / `after_request`, from any
thread), and the push submits no more items than `window`. Real PeerTube's push rate stops
growing at a few requests in flight while its serialization-failure 500s keep growing with
concurrency (PEERTUBE-FACTS.md, "Push capacity"), so more in flight than the server needs
only loads an instance that also serves viewers.

How the window moves. It is judged in epochs of whole rounds of the window (at least
`MIN_EPOCH` answers; two rounds while doubling), counted once the requests sent under the
previous window, and one round of the new one, have been answered, so each figure belongs
to one window. An epoch's rate is Little's law: mean requests in flight / mean latency.

- **Up only while throughput rises.** From 1, the window doubles while each doubling raises
  the rate by at least `GAIN` x what the added requests would bring at the current rate per
  request (or by `MIN_GAIN` of the rate per added request, if less: PeerTube's rate bends
  early); after a doubling that did not, it tries one above where it started. A step that
  does not pay is undone, and the next try waits `HOLD_EPOCHS` epochs, twice as long after
  each failed try (up to `MAX_HOLD_EPOCHS`).
- **Down when a request is not needed.** Tries up alternate with tries one fewer, kept when
  the rate fell by less than that gain, made only while requests queue at the server (by
  Little's law, from the latency above the least seen: `QUEUED_TO_TRY_FEWER`). When the
  mean latency at a held window rises by more than `LATENCY_RISE` over what it was at that
  window (the server slowed down: load from elsewhere), the window drops by one at once
  and tries fewer from there.
- **Back off at once** on a 429 or a request without an answer (timeout, reset) to
  `min(window - 1, window x BACKOFF)`, and on a 5xx to `window - 1`, at most once per
  epoch (one burst is one signal). A 5xx alone in `ISOLATED_5XX` answers is PeerTube's
  usual serialization failure, which the client's retry gets past: the second backs off.
  After one epoch the window climbs back, one at a time, to where it was.
- **Ceilings.** The window never leaves [`min_in_flight`, `max_in_flight`]; with
  `max_rate`, requests are spaced at least `1 / max_rate` seconds apart (no bursts), and
  the window never grows past what already reaches that rate.

Every change is logged and kept in `FlowReport.decisions` with its reason; the report also
gives the window over time, the achieved rate and the signals seen. The clock is injected,
so tests drive the controller with made-up times.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

GAIN = 0.5  # a larger window must bring at least this share of its proportional gain,
MIN_GAIN = 0.1  # or this share of the rate per added request, if that is less
BACKOFF = 0.75  # multiplicative decrease on a 429 or no answer (and at least -1)
LATENCY_RISE = 0.5  # +50 % mean latency at a held window: the server slowed down
HOLD_EPOCHS = 2
MAX_HOLD_EPOCHS = 32
MIN_EPOCH = 8  # answers per epoch, at least
AT_RATE = 0.95  # an epoch this close to max_rate has reached it
ISOLATED_5XX = 100  # answers: a 5xx this far from the previous one does not back off
QUEUED_TO_TRY_FEWER = 0.5  # requests waiting at the server before one fewer is worth a try


@dataclass(frozen=True)
class Decision:
    """One change of the window: when (seconds since the start), to what, and why."""

    at_s: float
    window: int
    reason: str


@dataclass
class FlowReport:
    """What the flow control did during one push."""

    max_in_flight: int
    max_rate: float | None
    elapsed_s: float = 0.0
    requests: int = 0  # answered or not
    answered: int = 0  # answers that are not congestion signals (2xx-4xx but 429)
    server_errors: int = 0  # 5xx answers
    rate_limited: int = 0  # 429 answers
    no_answer: int = 0  # timeouts and connection errors
    peak_in_flight: int = 0  # requests between before_request and after_request
    decisions: list[Decision] = field(default_factory=list)
    initial_window: int = 1
    final_window: int = 1
    mean_window: float = 0.0  # weighted by time
    settled_window: int = 1  # the window held longest

    @property
    def achieved_rate(self) -> float:
        """Requests answered per second (any answer but the congestion signals)."""
        return self.answered / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> str:
        """One phrase for the push's summary line."""
        rate = f", max {self.max_rate:g}/s" if self.max_rate else ""
        return (f"in flight {self.initial_window}→{self.final_window} (settled "
                f"{self.settled_window}, mean {self.mean_window:.1f}, peak "
                f"{self.peak_in_flight}, ceiling {self.max_in_flight}{rate}), "
                f"{self.achieved_rate:.1f} answers/s, {len(self.decisions)} window "
                f"change(s), signals: {self.server_errors} 5xx, {self.rate_limited} 429, "
                f"{self.no_answer} no answer")

    def as_metadata(self) -> dict[str, Any]:
        """Plain values for logs and asset metadata."""
        return {
            "in_flight_settled": self.settled_window,
            "in_flight_mean": round(self.mean_window, 2),
            "in_flight_peak": self.peak_in_flight,
            "in_flight_ceiling": self.max_in_flight,
            "max_rate_per_s": self.max_rate,
            "achieved_rate_per_s": round(self.achieved_rate, 2),
            "server_errors": self.server_errors,
            "rate_limited": self.rate_limited,
            "no_answer": self.no_answer,
            # (seconds since the start, window, why): the window over time
            "in_flight_over_time": [(round(d.at_s, 2), d.window, d.reason)
                                    for d in self.decisions[:50]],
        }


@dataclass
class _Probe:
    """A window being tried: the window before it and that window's rate."""

    before: int
    before_rate: float
    up: bool


class FlowControl:
    """The push's window (how many items may be in flight) and its request pacing.

    Thread-safe: the client calls before_request/after_request from its worker threads,
    the push reads `window` from its own.
    """

    def __init__(
        self,
        max_in_flight: int,
        max_rate: float | None = None,
        *,
        min_in_flight: int = 1,
        initial: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be 1 or more, got {max_in_flight}")
        if max_rate is not None and not max_rate > 0:
            raise ValueError(f"max_rate must be above 0 (or None), got {max_rate}")
        self.max_in_flight = max_in_flight
        self.max_rate = max_rate
        self.min_in_flight = max(1, min(min_in_flight, max_in_flight))
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        start = self.min_in_flight if initial is None else initial
        self._window = min(self.max_in_flight, max(self.min_in_flight, start))
        self._report = FlowReport(max_in_flight, max_rate, initial_window=self._window)
        self._in_flight = 0
        self._next_send = self._started
        self._slow_start = True  # doubling until a doubling does not pay off
        self._probe: _Probe | None = None
        self._try_up_next = True
        self._hold = HOLD_EPOCHS
        self._hold_left = HOLD_EPOCHS
        # (window, its latency when first held): a rise at the same window means the
        # server slowed down; kept across tries that came back to that window.
        self._held: tuple[int, float] | None = None
        self._recover_to = 0  # the window before the last back-off, until it is back
        self._base_latency = float("inf")  # the least epoch latency: nothing queued
        self._answers = 0  # every after_request
        self._last_5xx: int | None = None  # self._answers at the last 5xx
        self._quiet_until = 0  # no new back-off before this many answers
        self._measuring = True
        self._skip = 0  # answers still owed to the previous window
        self._epoch_start = self._area_at = self._started
        self._area = 0.0  # integral of the requests in flight over the epoch
        self._epoch_answered = 0
        self._epoch_latency = 0.0  # sum of the epoch's latencies
        self._window_since = self._started
        self._time_at: dict[int, float] = {}

    # -- what the push asks -----------------------------------------------------------------
    @property
    def window(self) -> int:
        """How many items the push may have in flight now."""
        return self._window

    def begin_phase(self) -> None:
        """A new batch of requests starts (a chunk's reads or PUTs): measure afresh."""
        with self._lock:
            self._measuring = True
            self._restart_epoch(self._clock(), skip=0)

    def end_phase(self) -> None:
        """Nothing more will be sent in this batch: the answers still to come drain a
        shrinking number in flight and say nothing about the window (a window being tried
        is judged in the next batch)."""
        with self._lock:
            self._measuring = False

    # -- what the client tells --------------------------------------------------------------
    def before_request(self) -> float:
        """A request is about to be sent: seconds to wait first (max_rate), its send time
        reserved. Its latency, given to after_request, counts from here (so a wait for its
        turn under max_rate is latency too, as a queue at the server would be)."""
        with self._lock:
            now = self._clock()
            self._advance(now)
            self._in_flight += 1
            self._report.requests += 1
            self._report.peak_in_flight = max(self._report.peak_in_flight, self._in_flight)
            if self.max_rate is None:
                return 0.0
            send = max(now, self._next_send)
            self._next_send = send + 1.0 / self.max_rate
            return send - now

    def after_request(self, status: int | None, seconds: float) -> None:
        """Its answer: HTTP status (None: no answer, e.g. a timeout) and how long it took."""
        with self._lock:
            now = self._clock()
            self._advance(now)
            self._in_flight -= 1
            self._answers += 1
            report = self._report
            owed = self._skip > 0  # an answer to a request sent under an earlier window
            if owed:
                self._skip -= 1
                if self._skip == 0:
                    self._restart_epoch(now, skip=0)
            if status is None or status == 429 or status >= 500:
                if status is None:
                    report.no_answer += 1
                elif status == 429:
                    report.rate_limited += 1
                else:
                    report.server_errors += 1
                self._back_off(status, now)
                return
            report.answered += 1
            if owed or not self._measuring:
                return
            self._epoch_answered += 1
            self._epoch_latency += seconds
            if self._epoch_answered >= self._epoch_size():
                self._end_epoch(now)

    # -- the report -------------------------------------------------------------------------
    def report(self) -> FlowReport:
        """The report so far (a copy)."""
        with self._lock:
            now = self._clock()
            report = dataclasses.replace(self._report, decisions=list(self._report.decisions))
            report.elapsed_s = now - self._started
            times = dict(self._time_at)
            times[self._window] = times.get(self._window, 0.0) + now - self._window_since
            total = sum(times.values())
            report.final_window = self._window
            report.settled_window = max(times, key=lambda w: (times[w], -w))
            report.mean_window = (sum(w * t for w, t in times.items()) / total if total > 0
                                  else float(self._window))
            return report

    # -- the rules --------------------------------------------------------------------------
    def _back_off(self, status: int | None, now: float) -> None:
        if status is not None and status != 429:
            # PeerTube loses about 1 % of concurrent PUTs to serialization failures that a
            # retry gets past: one 5xx in ISOLATED_5XX answers is not a signal, a second is.
            previous, self._last_5xx = self._last_5xx, self._answers
            if previous is None or self._answers - previous > ISOLATED_5XX:
                return
        if self._answers < self._quiet_until:
            return  # an answer to a request sent before the last back-off: the same burst
        self._quiet_until = self._answers + self._epoch_size()
        # Recover after one epoch: tries up, one at a time, back to where it was (before
        # the window being tried, if one was).
        held = self._window if self._probe is None else self._probe.before
        self._recover_to = max(self._recover_to, held)
        self._slow_start = False
        self._probe = None
        self._enter_hold()
        self._hold_left = 1
        what = "no answer" if status is None else f"HTTP {status}"
        factor = BACKOFF if status is None or status == 429 else 1.0
        lower = max(self.min_in_flight, min(self._window - 1, int(self._window * factor)))
        if lower < self._window:
            self._set_window(lower, f"back off after {what}", now)
        else:
            self._restart_epoch(now, skip=self._in_flight)

    def _end_epoch(self, now: float) -> None:
        # Little's law: answers per second = mean requests in flight / mean latency. Unlike
        # answers counted per second of the epoch, it does not depend on where in a burst of
        # answers the epoch starts and ends.
        elapsed = now - self._epoch_start
        latency = self._epoch_latency / self._epoch_answered
        rate = self._area / elapsed / latency if elapsed > 0 and latency > 0 else 0.0
        self._restart_epoch(now, skip=0)
        if rate <= 0:
            return  # no time passed (a coarse clock): nothing to judge
        self._base_latency = min(self._base_latency, latency)
        probe, self._probe = self._probe, None
        if probe is not None:
            self._judge(probe, rate, latency, now)
        elif self._slow_start:
            if not self._try_up(rate, now, f"{rate:.1f}/s at {self._window}"):
                self._slow_start = False
                self._enter_hold()
        else:
            self._hold_epoch(rate, latency, now)

    def _judge(self, probe: _Probe, rate: float, latency: float, now: float) -> None:
        """End of an epoch at a window being tried: keep it or go back."""
        tried, before = self._window, probe.before
        figures = f"{rate:.1f}/s at {tried} against {probe.before_rate:.1f}/s at {before}"
        if probe.up:
            if self._worth(before, probe.before_rate, tried, rate):
                self._hold = HOLD_EPOCHS  # conditions changed: look again sooner
                if not self._try_up(rate, now, f"{tried} paid off, {figures}"):
                    self._slow_start = False
                    self._enter_hold()
                return
            if self._slow_start and tried - before > 1:
                # The doubling overshot: try one step above where it started instead.
                self._slow_start = False
                self._probe = _Probe(before, probe.before_rate, up=True)
                self._set_window(before + 1, f"{tried} did not pay off, {figures}", now)
                return
            self._slow_start = False
            self._set_window(before, f"back: {tried} did not pay off, {figures}", now)
            self._enter_hold(failed=True)
            return
        if self._worth(tried, rate, before, probe.before_rate):
            self._set_window(before, f"back: {before} is needed, {figures}", now)
            self._enter_hold(failed=False)
            return
        self._hold = HOLD_EPOCHS
        if not self._try_down(rate, latency, now, f"{before} was not needed, {figures}"):
            self._enter_hold()

    def _hold_epoch(self, rate: float, latency: float, now: float) -> None:
        """End of an epoch at a held window: watch latency, try a neighbour when due."""
        if self._recover_to > self._window:
            # Additive increase back to where it was: no need to judge known ground.
            self._set_window(self._window + 1, f"recover towards {self._recover_to}", now)
            return
        self._recover_to = 0
        if self._held is None or self._held[0] != self._window:
            self._held = (self._window, latency)
        elif latency > self._held[1] * (1 + LATENCY_RISE) and self._window > self.min_in_flight:
            # The server slowed down (load from elsewhere): one fewer at once, then tries
            # down, judged on what is measured from now on.
            why = (f"latency rose to {latency * 1000:.0f} ms from {self._held[1] * 1000:.0f} "
                   f"ms at {self._window}")
            self._held = None
            self._hold = HOLD_EPOCHS
            self._enter_hold()
            self._try_up_next = False
            self._set_window(self._window - 1, why, now)
            return
        else:
            self._held = (self._window, min(self._held[1], latency))
        self._hold_left -= 1
        if self._hold_left > 0:
            return
        why = f"{rate:.1f}/s at {self._window}"
        tried = (self._try_up(rate, now, why) or self._try_down(rate, latency, now, why)
                 if self._try_up_next else
                 self._try_down(rate, latency, now, why) or self._try_up(rate, now, why))
        if not tried:
            self._enter_hold(failed=not self._try_up_next)

    def _worth(self, low: int, low_rate: float, high: int, high_rate: float) -> bool:
        """Whether `high` in flight earns its extra load over `low`: its rate is higher by
        GAIN x what the extra requests would add at low's rate per request, or by
        MIN_GAIN of low's rate per extra request if that is less (a server whose rate bends
        early); under max_rate, by GAIN x what is left below it at most."""
        needed = (high - low) * low_rate * min(GAIN / low, MIN_GAIN)
        if self.max_rate is not None:
            if low_rate >= AT_RATE * self.max_rate:
                return False  # the smaller window reaches the cap already
            needed = min(needed, GAIN * (self.max_rate - low_rate))
        return high_rate - low_rate >= needed

    def _try_up(self, rate: float, now: float, why: str) -> bool:
        at_rate = self.max_rate is not None and rate >= AT_RATE * self.max_rate
        if self._window >= self.max_in_flight or at_rate:
            return False
        step = self._window if self._slow_start else 1
        self._probe = _Probe(self._window, rate, up=True)
        self._set_window(min(self.max_in_flight, self._window + step), f"try more: {why}",
                         now)
        return True

    def _try_down(self, rate: float, latency: float, now: float, why: str) -> bool:
        # Little again: of `window` requests in flight, window x (1 - base / latency) wait
        # in a queue. With none waiting, every one is being served: none to spare.
        queued = self._window * (1 - self._base_latency / latency)
        if self._window <= self.min_in_flight or queued < QUEUED_TO_TRY_FEWER:
            return False
        self._probe = _Probe(self._window, rate, up=False)
        self._set_window(self._window - 1, f"try fewer: {why}", now)
        return True

    def _enter_hold(self, *, failed: bool | None = None) -> None:
        """Hold the window for a while; `failed`: a try up (True) or down (False) did not
        pay off, so wait twice as long and try the other way next."""
        if failed is not None:
            self._hold = min(MAX_HOLD_EPOCHS, self._hold * 2)
            self._try_up_next = not failed
        self._hold_left = self._hold

    def _set_window(self, window: int, reason: str, now: float) -> None:
        old = self._window
        self._time_at[old] = self._time_at.get(old, 0.0) + now - self._window_since
        self._window_since = now
        self._window = window
        self._report.decisions.append(Decision(now - self._started, window, reason))
        log.info("push flow: %d → %d in flight (%s)", old, window, reason)
        # Requests now in flight were sent under the old window: their answers come first,
        # then a round of the new window's, whose requests met a queue of the old length
        # (not while doubling: its gains are large, and a small stage needs them soon).
        settle = 0 if self._slow_start else window
        self._restart_epoch(now, skip=self._in_flight + settle)

    def _epoch_size(self) -> int:
        """Answers per epoch: whole rounds of the window, at least two and MIN_EPOCH (just
        two while doubling: the gains it looks for are large)."""
        if self._slow_start:
            return 2 * self._window
        return self._window * max(2, -(-MIN_EPOCH // self._window))

    def _advance(self, now: float) -> None:
        """Add the requests in flight since the last event to the epoch's area."""
        self._area += self._in_flight * (now - self._area_at)
        self._area_at = now

    def _restart_epoch(self, now: float, *, skip: int) -> None:
        self._skip = skip
        self._epoch_start = self._area_at = now
        self._area = 0.0
        self._epoch_answered = 0
        self._epoch_latency = 0.0

"""The push's flow control, driven with a made-up clock: deterministic, never timed.

Most tests run it against a simulated PeerTube (discrete events, no threads, no sleeping):
a server with `capacity` places each taking `service` seconds (jittered), requests beyond
them waiting in order, and PeerTube's serialization-failure 500 drawn with a chance that
rises with the PUTs in flight (the sandbox knob's model). The simulated push keeps as many
items in flight as the window says and retries a 500 at once, as the client does.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from recon_domains.peertube.flow import ISOLATED_5XX, FlowControl
from recon_domains.sandbox.peertube_knobs import PEERTUBE_8_CONFLICT_RATE

SERVICE = 0.05  # seconds per request: capacity N serves N / 0.05 per second


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Run:
    """What a simulated push saw."""

    elapsed: float = 0.0
    done: int = 0
    errors: int = 0  # 500s answered
    sends: list[float] = field(default_factory=list)  # when each request reached the server
    windows: list[tuple[float, int]] = field(default_factory=list)  # (time, window) per answer

    @property
    def rate(self) -> float:
        return self.done / self.elapsed

    def mean_window(self, start: float, end: float) -> float:
        values = [w for t, w in self.windows if start <= t < end]
        return sum(values) / len(values)


def simulate(
    flow: FlowControl,
    clock: Clock,
    items: int,
    *,
    capacity: Callable[[float], int],
    conflict_rate: float = 0.0,
    seed: int = 1,
    gap: float = 0.001,
) -> Run:
    """Push `items` through a simulated server; `gap`: the calling thread's time per
    finished item (it records the item before submitting the next)."""
    rng = random.Random(seed)
    run = Run()
    events: list[tuple[float, int, str, float]] = []
    counter = 0
    remaining, in_flight, busy, at_server = items, 0, 0, 0
    waiting: list[float] = []
    caller_free = 0.0

    def schedule(at: float, kind: str, sent: float) -> None:
        nonlocal counter
        counter += 1
        heapq.heappush(events, (at, counter, kind, sent))

    def send() -> None:
        delay = flow.before_request()
        schedule(clock.now + delay, "arrive", clock.now)

    def fill() -> None:
        nonlocal remaining, in_flight
        while in_flight < flow.window and remaining > 0:
            remaining -= 1
            in_flight += 1
            send()
        if remaining == 0:
            flow.end_phase()

    def service() -> float:
        return SERVICE * rng.uniform(0.8, 1.2)

    flow.begin_phase()
    fill()
    while events:
        clock.now, _, kind, sent = heapq.heappop(events)
        if kind == "arrive":
            run.sends.append(clock.now)
            at_server += 1
            if busy < capacity(clock.now):
                busy += 1
                schedule(clock.now + service(), "answer", sent)
            else:
                waiting.append(sent)
        elif kind == "answer":
            lost = rng.random() < 1 - (1 - conflict_rate) ** (at_server - 1)
            at_server -= 1
            if waiting and busy <= capacity(clock.now):
                schedule(clock.now + service(), "answer", waiting.pop(0))
            else:
                busy -= 1
            run.windows.append((clock.now, flow.window))
            flow.after_request(500 if lost else 204, clock.now - sent)
            if lost:
                run.errors += 1
                send()  # the client retries the same PUT
            else:
                caller_free = max(caller_free, clock.now) + gap
                schedule(caller_free, "recorded", 0.0)
        else:  # the calling thread recorded the item and submits the next
            in_flight -= 1
            run.done += 1
            fill()
    run.elapsed = clock.now
    return run


def _flow(ceiling: int = 8, **kwargs) -> tuple[FlowControl, Clock]:
    clock = Clock()
    return FlowControl(ceiling, clock=clock, **kwargs), clock


def _signals_only(initial: int) -> tuple[FlowControl, Clock]:
    """A controller that measures nothing (as while a batch drains): only the signals
    move its window."""
    flow, clock = _flow(initial=initial)
    flow.end_phase()
    return flow, clock


def _answer(flow: FlowControl, clock: Clock, status: int | None, latency: float = 0.05):
    flow.before_request()
    clock.now += latency
    flow.after_request(status, latency)


# -- backing off ------------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "after"), [(500, 7), (503, 7), (429, 6), (None, 6)],
                         ids=["500", "503", "429", "no-answer"])
def test_backs_off_on_5xx_429_and_no_answer(status, after) -> None:
    flow, clock = _signals_only(8)
    if status is not None and status >= 500:
        _answer(flow, clock, status)  # a 5xx alone is PeerTube's usual serialization failure
        assert flow.window == 8 and flow.report().decisions == []
        for _ in range(ISOLATED_5XX - 1):
            _answer(flow, clock, 204)
    _answer(flow, clock, status)
    assert flow.window == after
    report = flow.report()
    assert report.decisions[-1].window == after
    assert "back off" in report.decisions[-1].reason
    assert (report.server_errors, report.rate_limited, report.no_answer) == (
        2 * int(status is not None and status >= 500), int(status == 429), int(status is None))


def test_a_5xx_far_from_the_previous_one_does_not_back_off() -> None:
    flow, clock = _signals_only(8)
    for _ in range(3):
        _answer(flow, clock, 500)
        for _ in range(ISOLATED_5XX):
            _answer(flow, clock, 204)
    assert flow.window == 8 and flow.report().server_errors == 3


def test_one_burst_of_errors_is_one_back_off_and_the_floor_holds() -> None:
    flow, clock = _signals_only(8)

    def back_offs() -> int:
        return sum("back off" in d.reason for d in flow.report().decisions)

    for _ in range(6):  # answers to requests all sent before the back-off
        _answer(flow, clock, 500)
    assert flow.window == 7 and back_offs() == 1
    for _ in range(16):  # an epoch's worth of good answers later, a new signal counts
        _answer(flow, clock, 204)
    window = flow.window
    _answer(flow, clock, 500)
    assert flow.window == window - 1 and back_offs() == 2
    low, clock = _signals_only(1)
    _answer(low, clock, 429)
    assert low.window == 1 and low.report().rate_limited == 1


def test_client_errors_are_not_congestion() -> None:
    flow, clock = _signals_only(8)
    for status in (400, 401, 404):
        _answer(flow, clock, status)
    assert flow.window == 8 and flow.report().decisions == []


def test_a_fixed_window_never_moves() -> None:
    flow, clock = _flow(min_in_flight=8)
    assert flow.window == 8
    run = simulate(flow, clock, 1000, capacity=lambda _: 2, conflict_rate=0.01)
    assert run.errors > 0
    assert {w for _, w in run.windows} == {8}


# -- ceilings ---------------------------------------------------------------------------------
def test_never_exceeds_the_in_flight_ceiling() -> None:
    # Throughput rises all the way on a server with room for 100: the window climbs to the
    # ceiling and stays there.
    flow, clock = _flow(ceiling=6)
    run = simulate(flow, clock, 3000, capacity=lambda _: 100)
    report = flow.report()
    assert max(w for _, w in run.windows) == 6 and report.peak_in_flight == 6
    assert report.settled_window == 6
    assert run.rate >= 0.9 * 6 / SERVICE


def test_never_exceeds_the_rate_ceiling_and_reaches_it() -> None:
    flow, clock = _flow(max_rate=25.0)
    run = simulate(flow, clock, 1500, capacity=lambda _: 8)  # the server could do 160/s
    sends = run.sends
    # Requests are spaced 1/25 s apart at least: any second holds at most 26 of them.
    assert all(b - a >= 1 / 25 - 1e-9 for a, b in itertools.pairwise(sends))
    assert max(sum(1 for t in sends if s <= t < s + 1) for s in sends) <= 26
    assert run.rate >= 0.9 * 25
    # No more in flight than it takes to reach 25/s (2 at 20/s per request in flight).
    assert flow.report().settled_window <= 3


# -- convergence ------------------------------------------------------------------------------
@pytest.mark.parametrize("capacity", [1, 2, 4, 6])
def test_settles_at_the_least_window_that_reaches_capacity(capacity) -> None:
    flow, clock = _flow()
    run = simulate(flow, clock, 3000, capacity=lambda _: capacity)
    report = flow.report()
    assert report.settled_window == capacity, report.decisions
    assert run.rate >= 0.9 * capacity / SERVICE
    assert report.mean_window <= capacity + 0.5


def test_fewer_500s_than_a_fixed_eight_at_the_same_capacity() -> None:
    adaptive, clock = _flow()
    run = simulate(adaptive, clock, 3000, capacity=lambda _: 4,
                   conflict_rate=PEERTUBE_8_CONFLICT_RATE)
    fixed, clock = _flow(min_in_flight=8)
    run_fixed = simulate(fixed, clock, 3000, capacity=lambda _: 4,
                         conflict_rate=PEERTUBE_8_CONFLICT_RATE)
    assert run.rate >= 0.9 * 4 / SERVICE
    assert run.errors < run_fixed.errors / 1.5, (run.errors, run_fixed.errors)
    assert adaptive.report().server_errors == run.errors


def test_follows_the_capacity_down_and_back_up() -> None:
    # 8 places, then 2 for 20 s (e.g. the instance is busy serving viewers), then 8 again.
    def capacity(t: float) -> int:
        return 2 if 15 <= t < 35 else 8

    flow, clock = _flow()
    run = simulate(flow, clock, 9000, capacity=capacity)
    assert run.elapsed > 45
    assert run.mean_window(5, 15) >= 6.5  # at 8, where the rate still rises
    assert run.mean_window(20, 35) <= 3.0  # down: 2 do what 8 did
    assert run.mean_window(45, run.elapsed) >= 6.5  # back up
    reasons = " ".join(d.reason for d in flow.report().decisions)
    assert "latency rose" in reasons


# -- phases and the report --------------------------------------------------------------------
def test_the_drain_at_the_end_of_a_batch_is_not_judged() -> None:
    flow, clock = _flow()
    flow.begin_phase()
    for _ in range(4):  # an epoch at 1 ends: doubling to 2 is being tried
        _answer(flow, clock, 204)
    assert flow.window == 2
    flow.end_phase()
    for _ in range(40):  # slow answers while draining say nothing
        _answer(flow, clock, 204, latency=1.0)
    assert flow.window == 2 and len(flow.report().decisions) == 1
    flow.begin_phase()  # the next batch judges the try: 2 at 20/s against 1 at 20/s
    for _ in range(4):
        _answer(flow, clock, 204)
    assert flow.window == 1


def test_report_says_what_happened() -> None:
    flow, clock = _flow()
    run = simulate(flow, clock, 2000, capacity=lambda _: 4,
                   conflict_rate=PEERTUBE_8_CONFLICT_RATE)
    report = flow.report()
    assert report.requests == run.done + run.errors
    assert report.answered == run.done and report.server_errors == run.errors
    assert report.achieved_rate == pytest.approx(run.done / run.elapsed, rel=0.01)
    assert report.initial_window == 1 and report.decisions[0].window == 2
    assert all(1 <= d.window <= 8 for d in report.decisions)
    meta = report.as_metadata()
    assert meta["in_flight_settled"] == report.settled_window == 4
    assert meta["server_errors"] == run.errors
    assert meta["in_flight_over_time"][0][1] == 2
    assert "settled 4" in report.summary()


def test_rejects_impossible_ceilings() -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        FlowControl(0)
    with pytest.raises(ValueError, match="max_rate"):
        FlowControl(8, 0.0)

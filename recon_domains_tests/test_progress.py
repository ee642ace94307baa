"""recon_domains.progress: done/total, rate and ETA, lines at a cadence, live updates."""

from __future__ import annotations

import io

from recon_domains.progress import Progress, ProgressUpdate, clock, terminal_or_lines


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _progress(now: FakeClock, **kwargs) -> tuple[Progress, list[ProgressUpdate],
                                                 list[ProgressUpdate]]:
    lines: list[ProgressUpdate] = []
    live: list[ProgressUpdate] = []
    p = Progress("pass 1", "documents", lines=[lines.append], live=[live.append], now=now,
                 **kwargs)
    return p, lines, live


def test_lines_every_ten_percent_and_at_the_end_live_at_every_step() -> None:
    now = FakeClock()
    p, lines, live = _progress(now)
    for done in range(0, 1001):
        p.update(done, 1000)
        now.now += 0.01
    assert [u.done for u in lines] == [0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]
    assert lines[-1].final and not any(u.final for u in lines[:-1])
    assert len(live) == 1002  # every call, and the end
    assert lines[5].line() == "pass 1: 500/1,000 documents (50 %), 100.0/s, ETA 0:05"
    assert lines[-1].line() == "pass 1: 1,000/1,000 documents (100 %), 100.0/s, done in 0:10"


def test_a_slow_loop_gets_a_line_every_every_s_seconds() -> None:
    now = FakeClock()
    p, lines, _ = _progress(now, every_s=30.0)
    for done in range(0, 11):
        p.update(done, 1000)
        now.now += 10.0  # 0.1/s: 10 % would take 1,000 s
    assert [u.done for u in lines] == [0, 3, 6, 9]
    assert lines[1].eta == (1000 - 3) / (3 / 30.0)


def test_work_settled_before_the_start_counts_as_done_but_not_in_the_rate() -> None:
    """The push: unpushable items are done from the start; the rate is of the work."""
    now = FakeClock()
    p, lines, _ = _progress(now)
    p.update(27, 5477)
    now.now += 10.0
    p.update(27 + 1000, 5477)
    assert lines[0].line() == "pass 1: 27/5,477 documents (0 %)"
    assert lines[1].total == 5477 and lines[1].rate == 100.0


def test_a_loop_that_stops_early_or_never_starts_still_ends_with_one_line() -> None:
    now = FakeClock()
    p, lines, _ = _progress(now)
    p.update(0, 50)
    p.update(3, 50)  # under 10 %: no line yet
    p.finish()
    p.finish()
    assert [(u.done, u.final) for u in lines] == [(0, False), (3, True)]
    empty, lines, _ = _progress(FakeClock())
    empty.update(0, 0)
    empty.finish()
    assert [u.line() for u in lines] == ["pass 1: 0/0 documents (100 %), done in 0:00"]


def test_clock_and_plain_lines_off_a_terminal() -> None:
    assert (clock(7.4), clock(725), clock(3729), clock(None)) == ("0:07", "12:05", "1:02:09",
                                                                  "?")
    out = io.StringIO()  # not a terminal: no bars, flushed lines
    with terminal_or_lines(out) as (live, lines):
        assert live is None and lines is not None
        lines(ProgressUpdate("push stage-1", "items", 5, 10, 1.0))
    assert out.getvalue() == "    push stage-1: 5/10 items (50 %), 5.0/s, ETA 0:01\n"

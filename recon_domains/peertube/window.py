"""Requests in the flow's window: many GETs or PUTs in flight at once, as many as
recon_domains.peertube.flow allows, on a pool of threads sharing the client's keep-alive
connections. The push and the read-backs of its verification run through here."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

from recon_domains.peertube.client import PeerTubeClient, PeerTubeError
from recon_domains.peertube.flow import FlowControl

T = TypeVar("T")


def run_in_window(
    client: PeerTubeClient,
    flow: FlowControl,
    pool: ThreadPoolExecutor,
    call: Callable[[T], object],
    works: Iterable[T],
    on_done: Callable[[T, object, BaseException | None], None],
    *,
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """call(w) on the pool for each w, as many in flight as the flow's window (it moves as
    answers come, so a stop leaves little started); on_done runs here, in the calling
    thread, as each finishes. Returns how many were never started (left by a stop)."""
    queue = iter(works)
    pending: dict[Future[object], T] = {}
    exhausted = False

    def fill() -> None:
        nonlocal exhausted
        while not exhausted and len(pending) < flow.window and not stop():
            w = next(queue, None)
            if w is None:
                exhausted = True
                flow.end_phase()  # the rest only drains: nothing to learn from
                return
            pending[pool.submit(call, w)] = w

    with client.flow_controlled(flow):
        flow.begin_phase()
        fill()
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                w = pending.pop(future)
                exc = future.exception()
                on_done(w, None if exc is not None else future.result(), exc)
            fill()
    return sum(1 for _ in queue)


def read_categories(
    client: PeerTubeClient,
    video_ids: Iterable[str],
    *,
    max_in_flight: int | None = None,
    max_rate: float | None = None,
) -> dict[str, int | PeerTubeError | None]:
    """Each video's category read back through the API (one GET each), concurrently under
    the push's flow control, within max_in_flight (None: the client's pool) and max_rate;
    a video whose read failed maps to its error."""
    ids = list(dict.fromkeys(video_ids))
    found: dict[str, int | PeerTubeError | None] = {}
    if not ids:
        return found
    workers = max(1, min(max_in_flight or client.pool_size, client.pool_size))
    flow = FlowControl(workers, max_rate, min_in_flight=1)

    def on_read(video_id: str, category: object, exc: BaseException | None) -> None:
        if exc is not None and not isinstance(exc, PeerTubeError):
            raise exc
        found[video_id] = exc if exc is not None else category  # type: ignore[assignment]

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="peertube-read") as pool:
        run_in_window(client, flow, pool, client.video_category, ids, on_read)
    return found

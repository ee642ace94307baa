"""The push (runbook Step 5): categorized RECON documents -> PeerTube video categories.

Plain core, no Dagster. What it guarantees:

- **Stages** (SPEC §6): stage-1 = the first 100 categorized documents by assignment time,
  stage-2 = the next 1,000, stage-3 = the rest; only what is still unpushed is selected, so
  re-running a stage retries its leftovers and never eats into the next stage.
- **Kill-safe ledger**: before any PUT the intents (hash, video, category before, category
  after) are written in bulk; each successful PUT is completed in RECON's DB as soon as its
  write lock is free (with those finished meanwhile, in one transaction: PUTs never wait for
  RECON's writer), at the latest when the run ends. After a kill, an open intent whose
  video already shows the target category is completed without a new PUT; anything else is
  pushed again (a PUT is idempotent). Nothing is marked pushed that PeerTube does not have,
  and the category from before our first push is never lost.
- **Bounded concurrency** over one keep-alive client; only the calling thread touches the
  SQLite store (a connection must not be shared between threads): workers do HTTP only.
  Within the bound (PEERTUBE_PUSH_MAX_IN_FLIGHT, and PEERTUBE_PUSH_MAX_RATE when set) the
  number in flight adapts: the fewest that reach PeerTube's capacity, fewer on 5xx, 429
  and timeouts (recon_domains.peertube.flow).
- **Systemic failure** stops the run early with a cause an operator can act on: the first
  5 attempts all failing (they run before full concurrency), or later a long run of
  consecutive failures. A single 404 is that item's failure, not the run's.
- **recon.db locked** past RECON_LOCK_TIMEOUT_S (RECON writing without pause) stops the run
  the same way: no further PUT is sent, and videos PeerTube already has but RECON could not
  mark are counted (`unmarked`); their open intents make the next run mark them without a
  new PUT.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from recon_domains.peertube.client import (
    PeerTubeAuthError,
    PeerTubeClient,
    PeerTubeError,
    PeerTubeForbidden,
    PeerTubeHTTPError,
    PeerTubeNotFound,
    PeerTubeRateLimited,
    PeerTubeUnreachable,
)
from recon_domains.peertube.flow import FlowControl, FlowReport
from recon_domains.peertube.urls import parse_watch_url
from recon_domains.peertube.window import run_in_window
from recon_domains.recon.store import PushCandidate, ReconLocked, ReconStore
from recon_domains.runbook import step
from recon_domains.settings import DEFAULTS
from recon_domains.taxonomy import CATEGORY_ID_RANGE, DOMAIN_IDS, DOMAINS

log = logging.getLogger(__name__)

# The runbook's three stages (its table names the partitions).
STAGES: tuple[str, ...] = step("peertube_category_push").partition_keys
DEFAULT_FIRST_ATTEMPTS = 5
DEFAULT_MAX_CONSECUTIVE_FAILURES = 25
# Intents are recorded and categories read per chunk, and the PUTs drain at its end: few
# chunks per stage keep that fixed cost small (stage-2 is one chunk after the probe).
DEFAULT_CHUNK_SIZE = 1000


class CategoryReader(Protocol):
    """Bulk read of current categories: the port recon_domains.peertube.categories.
    PeerTubeCategories (PeerTube's database or its API), or PeerTubeDatabase itself."""

    def categories_of(self, uuids: Iterable[str]) -> Mapping[str, int | None]:
        """uuid -> category id (None when unset); videos PeerTube lacks are absent."""
        ...


# -- stage selection -----------------------------------------------------------------------
def _stage_bounds(sizes: Sequence[int]) -> dict[str, tuple[int, int | None]]:
    first, second = (int(s) for s in sizes)
    if first < 1 or second < 1:
        raise ValueError(f"stage sizes must be positive, got {tuple(sizes)}")
    return dict(zip(STAGES, [(0, first), (first, first + second), (first + second, None)],
                    strict=True))


def plan_stages(
    store: ReconStore, sizes: Sequence[int] = DEFAULTS.stage_sizes
) -> dict[str, list[PushCandidate]]:
    """Unpushed categorized documents of each stage, oldest assignment first (ties by hash).

    Stages are ranges of the whole categorized history ordered by (assigned_at, hash),
    pushed or not: stage-1 = ranks [0, 100), stage-2 = [100, 1100), stage-3 = the rest. Each
    stage lists only its still-unpushed members, so once stage-1 is pushed, stage-2 is the
    first 1,000 still unpushed, and once stage-2 is pushed too, stage-3 is everything
    unpushed; re-running a finished stage finds only its leftovers (failed items), never
    the next stage's work.
    """
    bounds = _stage_bounds(sizes)
    unpushed = store.unpushed_categorized()
    unpushed_hashes = {c.hash for c in unpushed}
    pushed = [c for c in store.pushed_documents() if c.hash not in unpushed_hashes]
    ranked = sorted([*pushed, *unpushed], key=lambda c: (c.assigned_at or "", c.hash))
    plan: dict[str, list[PushCandidate]] = {}
    for stage, (lo, hi) in bounds.items():
        plan[stage] = [c for c in ranked[lo:hi] if c.hash in unpushed_hashes]
    return plan


def select_stage_items(
    store: ReconStore, stage: str, sizes: Sequence[int] = DEFAULTS.stage_sizes
) -> list[PushCandidate]:
    """The unpushed documents of one stage (see plan_stages); 'all' = every unpushed one."""
    if stage == "all":
        return store.unpushed_categorized()
    if stage not in STAGES:
        raise ValueError(f"unknown push stage {stage!r}; expected one of {', '.join(STAGES)}"
                         " or 'all'")
    return plan_stages(store, sizes)[stage]


# -- result --------------------------------------------------------------------------------
@dataclass
class PushResult:
    """What a push did. `failed`/`skipped` hold (hash, reason) pairs."""

    stage: str
    total: int
    succeeded: list[str] = field(default_factory=list)  # PeerTube has the category now
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # never attempted: bad URL
    aborted: bool = False
    abort_reason: str | None = None
    login_count: int = 0  # logins (accepted password grants) during this push
    retried_after_500: int = 0  # requests the client retried after PeerTube answered 500
    elapsed: float = 0.0
    already_in_place: list[str] = field(default_factory=list)  # subset of succeeded, no PUT
    put_count: int = 0  # PUT requests that got an answer (or gave up)
    not_attempted: int = 0  # left for a later run because the push aborted
    # PeerTube has the category, recon.db stayed locked: the next run marks them
    unmarked: list[str] = field(default_factory=list)
    retries: int = 0  # every retry of the client: after a 5xx, a timeout or a reset
    rate_limited: int = 0  # 429 answers the client waited out
    flow: FlowReport | None = None  # how many were in flight, over time, and why

    @property
    def ok(self) -> bool:
        """True when nothing failed and the run was not aborted."""
        return not self.aborted and not self.failed

    @property
    def items_per_second(self) -> float:
        done = len(self.succeeded) + len(self.failed)
        return done / self.elapsed if self.elapsed > 0 else 0.0

    def summary(self) -> str:
        """One line for logs and metadata."""
        text = (f"{self.stage}: {len(self.succeeded)}/{self.total} pushed "
                f"({len(self.already_in_place)} already in place), {len(self.failed)} failed, "
                f"{len(self.skipped)} skipped, {self.not_attempted} not attempted, "
                f"{self.retried_after_500} retried after PeerTube 500, "
                f"{len(self.unmarked)} pushed but not yet marked, "
                f"{self.login_count} login(s), {self.elapsed:.1f}s")
        if self.flow is not None:
            text += f"; {self.flow.summary()}"
        if self.aborted:
            text += f"; ABORTED: {self.abort_reason}"
        return text

    def flow_metadata(self) -> dict[str, object]:
        """The push's concurrency and load on PeerTube, as plain values for metadata."""
        figures: dict[str, object] = {"retries": self.retries,
                                      "retried_after_500": self.retried_after_500,
                                      "rate_limited_answers": self.rate_limited}
        if self.flow is not None:
            figures.update(self.flow.as_metadata())
        return figures


# -- failure accounting --------------------------------------------------------------------
def _failure_kind(exc: BaseException) -> str:
    if isinstance(exc, PeerTubeHTTPError) and exc.status == 400 and "category" in (
        exc.invalid_params or {}
    ):
        return "category"
    if isinstance(exc, PeerTubeForbidden):
        return "forbidden"
    if isinstance(exc, PeerTubeAuthError):
        return "auth"
    if isinstance(exc, PeerTubeUnreachable):
        return "unreachable"
    if isinstance(exc, PeerTubeNotFound):
        return "not_found"
    if isinstance(exc, PeerTubeRateLimited):
        return "rate_limited"
    if isinstance(exc, PeerTubeHTTPError) and exc.status >= 500:
        return "server"
    return "other"


_CAUSES: dict[str, str] = {
    "category": "category id not registered in PeerTube: the recon-domains plugin is probably "
    "not installed (runbook steps 1–2). Install and enable peertube-plugin-recon-domains, "
    f"then check that GET /api/v1/videos/categories lists ids {CATEGORY_ID_RANGE}",
    "auth": "PeerTube refused our credentials or token: check PEERTUBE_USERNAME and "
    "PEERTUBE_PASSWORD (and PEERTUBE_HOST_HEADER when using the internal port)",
    "forbidden": "PeerTube answered 403: the account is not an administrator; set "
    "PEERTUBE_USERNAME/PEERTUBE_PASSWORD to an admin account (e.g. root)",
    "unreachable": "PeerTube is unreachable: check PEERTUBE_URL, PEERTUBE_HOST_HEADER, that "
    "PeerTube is running and the network between here and it",
    "not_found": "PeerTube does not know these videos (404): check that PEERTUBE_URL is the "
    "instance RECON_STREAM_SOURCE names, or whether the videos were deleted",
    "rate_limited": "PeerTube kept answering 429 (rate limited): the account is probably not "
    "an administrator (admin tokens bypass the limit), or the limit is set very low",
    "server": "PeerTube answers 5xx server errors: check PeerTube's log and health",
    "other": "unexpected failures: see the per-item reasons",
}
# The client's own messages for these already say what to check.
_SELF_EXPLAINED = frozenset({"auth", "forbidden", "unreachable"})


def _explain(exc: BaseException) -> str:
    """`exc` with its cause and what to do, each said once."""
    kind = _failure_kind(exc)
    return str(exc) if kind in _SELF_EXPLAINED else f"{_CAUSES[kind]}. {exc}"


class _FailureTracker:
    """Decides when failures are systemic: the first N attempts all failed, or a run of M."""

    def __init__(self, first_attempts: int, max_consecutive: int) -> None:
        self.first_attempts = first_attempts
        self.max_consecutive = max_consecutive
        self.attempts = 0
        self.successes = 0
        self.streak: list[BaseException] = []
        self.abort_reason: str | None = None

    def record(self, exc: BaseException | None) -> None:
        self.attempts += 1
        if exc is None:
            self.successes += 1
            self.streak.clear()
            return
        self.streak.append(exc)
        if self.abort_reason is not None:
            return
        if self.successes == 0 and self.attempts == self.first_attempts:
            self.abort_reason = self._reason(f"the first {self.first_attempts} attempts all "
                                             "failed")
        elif len(self.streak) >= self.max_consecutive:
            self.abort_reason = self._reason(f"{len(self.streak)} consecutive failures")

    def _reason(self, what: str) -> str:
        kinds = Counter(_failure_kind(e) for e in self.streak)
        kind = kinds.most_common(1)[0][0]
        example = next(e for e in self.streak if _failure_kind(e) == kind)
        return f"{what}: {_CAUSES[kind]}. Example: {example}"


# -- the push ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Work:
    item: PushCandidate
    video_id: str
    target: int


def _prepare(
    items: Iterable[PushCandidate], result: PushResult, hosts: Sequence[str]
) -> list[_Work]:
    """Parse watch URLs (on one of the stream's `hosts`) and domains; what cannot be pushed
    is skipped with a reason."""
    work: list[_Work] = []
    seen: set[str] = set()
    for item in items:
        if item.hash in seen:
            continue
        seen.add(item.hash)
        parsed = parse_watch_url(item.path, hosts)
        if parsed.video_id is None:
            result.skipped.append((item.hash, f"watch URL {item.path!r}: {parsed.reason}"))
            continue
        target = DOMAIN_IDS.get(item.domain)
        if target is None:
            reason = f"domain {item.domain!r} is not one of the {len(DOMAINS)}"
            result.skipped.append((item.hash, reason))
            continue
        work.append(_Work(item, parsed.video_id, target))
    return work


def _chunks(work: list[_Work], first: int, size: int) -> Iterable[list[_Work]]:
    # The first chunk is the probe: exactly `first` attempts before full concurrency, so a
    # systemic failure costs 5 requests, not a pool's worth.
    if work[:first]:
        yield work[:first]
    for start in range(first, len(work), size):
        yield work[start:start + size]


def push_items(
    store: ReconStore,
    client: PeerTubeClient,
    items: Iterable[PushCandidate],
    *,
    stage: str,
    database: CategoryReader | None = None,
    workers: int = DEFAULTS.peertube.push_max_in_flight,
    max_rate: float | None = DEFAULTS.peertube.push_max_rate,
    adaptive: bool = True,
    first_attempts: int = DEFAULT_FIRST_ATTEMPTS,
    max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    check_admin: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> PushResult:
    """Push each item's domain to its PeerTube video as its category id (the taxonomy's).

    database: when given, categories before the push (and the resume check) are read
    through it, one bulk read per chunk (the Dagster layer passes the port: PeerTube's
    PostgreSQL, or its API); otherwise with one API GET per video.
    check_admin: verify first that the account is an administrator (one GET) so a wrong
    account aborts before any attempt.
    workers: the most items in flight (PEERTUBE_PUSH_MAX_IN_FLIGHT); max_rate: the most
    requests per second (PEERTUBE_PUSH_MAX_RATE, None: no cap). adaptive: keep the fewest in
    flight that reach PeerTube's capacity (recon_domains.peertube.flow); False: always
    `workers` (the benchmark's comparison).
    on_progress(done, total) is called from this (the calling) thread; total is every item
    given (result.total, the summary's denominator), and the items skipped as unpushable
    count as done from the start.
    """
    started = time.monotonic()
    logins_before = client.login_count
    retried_before = client.retried_after_500
    retries_before, limited_before = client.retry_count, client.rate_limited_count
    flow = FlowControl(max(1, workers), max_rate,
                       min_in_flight=1 if adaptive else max(1, workers))
    items = list(items)
    result = PushResult(stage=stage, total=len(items))
    work = _prepare(items, result, store.watch_hosts)
    tracker = _FailureTracker(first_attempts, max_consecutive_failures)
    done = len(items) - len(work)  # skipped as unpushable: settled before any request

    def finish() -> PushResult:
        result.aborted = tracker.abort_reason is not None
        result.abort_reason = tracker.abort_reason
        result.login_count = client.login_count - logins_before
        result.retried_after_500 = client.retried_after_500 - retried_before
        result.retries = client.retry_count - retries_before
        result.rate_limited = client.rate_limited_count - limited_before
        result.flow = flow.report()
        result.elapsed = time.monotonic() - started
        log.log(logging.WARNING if result.aborted else logging.INFO, "push %s", result.summary())
        return result

    def progress(n: int = 1) -> None:
        nonlocal done
        done += n
        if on_progress is not None:
            on_progress(done, len(items))

    progress(0)
    if not work:
        return finish()
    if workers > client.pool_size:
        # More threads than pooled connections: urllib3 opens and drops extra connections
        # (no keep-alive for them) and says "Connection pool is full".
        log.warning("push: %d workers but the PeerTube client keeps only %d connections; "
                    "build it with pool_size >= workers", workers, client.pool_size)
    if check_admin:
        try:
            with client.flow_controlled(flow):
                client.require_admin()
        except PeerTubeError as exc:
            tracker.abort_reason = f"before any attempt: {_explain(exc)}"
            result.not_attempted = len(work)
            return finish()

    open_before = {row.hash: row.category_before for row in store.open_push_intents()}
    remaining = len(work)
    with ThreadPoolExecutor(max_workers=max(1, workers),
                            thread_name_prefix="peertube-push") as pool:
        run = _Run(store, client, database, pool, flow, stage, open_before, tracker, result,
                   progress)
        try:
            for chunk in _chunks(work, max(1, first_attempts), max(1, chunk_size)):
                if tracker.abort_reason is not None:
                    break
                remaining -= len(chunk)
                run.push_chunk(chunk)
                if tracker.abort_reason is not None:
                    result.not_attempted += remaining
        except BaseException:
            # Interrupted (Ctrl-C, a store error): start nothing more; PUTs already running
            # finish, and their open intents make the next run check them.
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    run.flush_marks(wait=True)
    if run.locked is not None:
        result.unmarked = [h for h, _ in run.to_mark]
        tracker.abort_reason = str(run.locked.after(
            f"the push stopped, sending no further PUT: {len(result.succeeded)} pushed and "
            f"marked, {len(result.unmarked)} in PeerTube but not yet marked in RECON (the "
            "next run's resume check marks them without a new PUT)"
        ))
    return finish()


@dataclass
class _Run:
    """One push_items call: what its chunks share. Only the calling thread touches the
    store and the result; pool threads run HTTP calls only."""

    store: ReconStore
    client: PeerTubeClient
    database: CategoryReader | None
    pool: ThreadPoolExecutor  # as many threads as the flow's ceiling
    flow: FlowControl
    stage: str
    open_before: dict[str, int | None]
    tracker: _FailureTracker
    result: PushResult
    progress: Callable[[int], None]
    # (hash, already in place) of videos PeerTube has and RECON has not marked yet
    to_mark: list[tuple[str, bool]] = field(default_factory=list)
    locked: ReconLocked | None = None  # recon.db stayed locked: the store is not written again

    def stop_for_lock(self, exc: ReconLocked) -> None:
        """Stop the run: nothing new is submitted (push_items words the reason at the end,
        when the PUTs in flight have finished)."""
        self.locked = exc
        self.tracker.abort_reason = str(exc)

    def flush_marks(self, *, wait: bool) -> None:
        """Mark what PeerTube has in one transaction; wait=False: only if RECON's write lock
        is free right now (else at a later try). After a ReconLocked nothing is tried again:
        each try would wait the whole deadline."""
        if not self.to_mark or self.locked is not None:
            return
        try:
            self.store.complete_pushes([h for h, _ in self.to_mark], wait=wait)
        except ReconLocked as exc:
            if wait:
                self.stop_for_lock(exc)
            return
        self.result.succeeded.extend(h for h, _ in self.to_mark)
        self.result.already_in_place.extend(h for h, in_place in self.to_mark if in_place)
        self.to_mark.clear()

    def run_concurrently(
        self,
        call: Callable[[_Work], object],
        works: Sequence[_Work],
        on_done: Callable[[_Work, object, BaseException | None], None],
    ) -> None:
        """call(w) for each w, in the flow's window; after an abort nothing new starts."""
        self.result.not_attempted += run_in_window(
            self.client, self.flow, self.pool, call, works, on_done,
            stop=lambda: self.tracker.abort_reason is not None,
        )

    def read_current(self, chunk: list[_Work]) -> dict[str, int | None] | None:
        """Current category of each video of the chunk (hash -> id or None).

        Through the reader in one bulk read when given (a video it lacks is left to the
        PUT, whose 404 says so); else one GET per video, whose failure is that item's
        failure. None when the reader itself failed (systemic: the run aborts).
        """
        if self.database is not None:
            try:
                found = self.database.categories_of([w.video_id for w in chunk])
            except Exception as exc:  # the reader's errors say what to check
                self.tracker.abort_reason = (
                    f"reading the categories before the push failed: {exc}")
                self.result.not_attempted += len(chunk)
                return None
            return {w.item.hash: found.get(w.video_id) for w in chunk}

        current: dict[str, int | None] = {}

        def on_read(w: _Work, category: object, exc: BaseException | None) -> None:
            if exc is None:
                current[w.item.hash] = category  # type: ignore[assignment]
                return
            self.result.failed.append((w.item.hash, str(exc)))
            self.tracker.record(exc)
            self.progress(1)

        self.run_concurrently(lambda w: self.client.video_category(w.video_id), chunk,
                              on_read)
        return current

    def push_chunk(self, chunk: list[_Work]) -> None:
        """Read, record intents, complete what is in place, PUT the rest."""
        result, tracker = self.result, self.tracker
        current = self.read_current(chunk)
        if current is None:
            return
        readable = [w for w in chunk if w.item.hash in current]
        if tracker.abort_reason is not None:
            result.not_attempted += len(readable)
            return
        # Intents first, in one transaction per batch: a kill after a PUT still knows what
        # the video had before. The store keeps an open intent's original category_before.
        try:
            self.store.record_push_intents(
                (w.item.hash, w.video_id, self.stage,
                 self.open_before.get(w.item.hash, current[w.item.hash]), w.target)
                for w in readable
            )
        except ReconLocked as exc:
            self.stop_for_lock(exc)
            result.not_attempted += len(readable)
            return
        to_put: list[_Work] = []
        for w in readable:
            if current[w.item.hash] == w.target:
                # PeerTube already shows our category (a killed run's PUT, or set by hand):
                # record it as pushed without a needless PUT.
                self.to_mark.append((w.item.hash, True))
                tracker.record(None)
                self.progress(1)
            else:
                to_put.append(w)
        self.flush_marks(wait=False)  # the lock was free a moment ago, for the intents

        def put(w: _Work) -> None:
            self.client.set_category(w.video_id, w.target)

        def on_put(w: _Work, _: object, exc: BaseException | None) -> None:
            result.put_count += 1
            if exc is None:
                self.to_mark.append((w.item.hash, False))
                self.flush_marks(wait=False)  # at once if RECON lets us: safe from now on
            else:
                result.failed.append((w.item.hash, str(exc)))
            tracker.record(exc)
            self.progress(1)

        self.run_concurrently(put, to_put, on_put)

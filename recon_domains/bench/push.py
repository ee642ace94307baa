"""Push benchmark: throughput against the sandbox PeerTube, its load, and rate limits.

`python -m recon_domains.bench.push [--items 5000] [--latency 0.02] [--json out.json]`

Every sandbox loses PUTs to PeerTube's serialization-failure 500 as PeerTube 8.0.1 does:
more the more PUTs are in flight (`--conflict-rate`, PEERTUBE-FACTS.md); the figures count
the 500s each push provoked ("server_errors") and its retries.

1. **Throughput**: N categorized documents, a sandbox PeerTube answering every request after
   `latency` seconds, the push engine at its defaults (adaptive, at most
   PEERTUBE_PUSH_MAX_IN_FLIGHT's default in flight), category reads from PeerTube's
   database (and once more through the API alone). Target: at least 150 items/s on 2
   cores with 20 ms latency. The same push with a fixed 8 in flight (the push before it
   adapted) gives the rate the ceiling allows and the 500s it provokes. The same push
   against a minimal PeerTube stand-in (OAuth, PUT 204 after `latency`, no database) gives
   the engine's own ceiling, apart from the sandbox's per-request cost.
2. **A server with a capacity**: the sandbox working on `--capacity` requests at once for
   `--service-time` each (4 x 0.1 s: 40 PUT/s, about a quiet real PeerTube's). Targets: the
   push >= 90 % of that with no item failed, and fewer 500s than a fixed 8 in flight. Then
   with PEERTUBE_PUSH_MAX_RATE (`--max-rate`, below the capacity): >= 90 % of it and never
   above, no 429, one login.
3. **A 100-item stage's overhead**: what the stage does besides its PUTs (login, admin and
   plugin checks, category-before reads, ledger writes, stage-1's read-back of every
   video), each in seconds and as a share of the PUTs' span.
4. **Rate limited**: the sandbox's API limit applied to the admin too (real PeerTube lets
   admins bypass it: this emulates a deployment where the push does hit it), PeerTube's
   default 50 requests per 10 s. Reports the settled rate against the allowed one (target
   >= 90 %), items failed by 429 (target 0) and logins (target exactly 1).

Also `run_benchmarks(...) -> dict` for `make bench`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg2 import sql

from recon_domains.peertube.categories import DatabaseCategories
from recon_domains.peertube.client import PeerTubeClient
from recon_domains.peertube.database import PeerTubeDatabase
from recon_domains.peertube.urls import uuid_to_short
from recon_domains.push import PushResult, push_items, select_stage_items
from recon_domains.recon.store import DomainDecision, ReconStore
from recon_domains.sandbox.corpus import write_recon_db
from recon_domains.sandbox.peertube_knobs import PEERTUBE_8_CONFLICT_RATE
from recon_domains.sandbox.peertube_server import start_server
from recon_domains.sandbox.peertube_store import seed_videos_from_recon
from recon_domains.sandbox.postgres import (
    autocommit_cursor,
    create_database,
    drop_database,
    embedded_or_system_postgres,
)
from recon_domains.settings import DEFAULTS
from recon_domains.taxonomy import DEFAULT_STREAM_SOURCE, DOMAINS, PLUGIN_NPM_NAME, Status
from recon_domains.verdicts.push import stage_verified

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "peertube-plugin" / PLUGIN_NPM_NAME
# The admin's PUTs use up the per-IP API quota (PEERTUBE-FACTS.md), so the next run's
# anonymous OAuth-client call would wait for the window: throughput runs lift the limits
# (the rate-limited run keeps them).
NO_LIMITS = {"rate_limit_max": 10**9, "login_limit_max": 10**9}


@dataclass(frozen=True)
class PushDoc:
    """One document of a push corpus: its RECON hash, PeerTube video and domain."""

    hash: str
    video_uuid: str | None  # None for a garbage watch URL
    path: str
    domain: str
    assigned_at: str


def build_push_corpus(
    db_path: Path,
    count: int,
    *,
    source: str = DEFAULT_STREAM_SOURCE,
    garbage: int = 0,
    seed: int = 7,
    same_time_groups: int = 10,
) -> list[PushDoc]:
    """A migrated RECON database of `count` categorized stream documents, ready to push.

    Watch URLs alternate short UUID / full UUID forms of version-4 UUIDs; `garbage` more
    documents carry an unparseable watch URL. Documents are assigned in groups of
    `same_time_groups` sharing one assigned_at (so ordering ties are broken by hash).
    Returned in push order (assigned_at, hash).
    """
    rng = random.Random(seed)
    docs: list[PushDoc] = []
    for i in range(count + garbage):
        doc_hash = hashlib.sha256(f"push-doc-{seed}-{i}".encode()).hexdigest()
        if i < count:
            video = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            vid = uuid_to_short(video) if i % 2 == 0 else video
            path = f"https://{source}/w/{vid}"
        else:
            video, path = None, f"https://{source}/about/instance#{i}"
        group = i // max(1, same_time_groups)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_767_225_600 + group * 60))
        docs.append(PushDoc(doc_hash, video, path, rng.choice(DOMAINS), stamp))
    write_recon_db(
        db_path,
        [(d.hash, f"{d.hash[:12]}.mp4", d.path, source, f"channel {i % 7}", "complete")
         for i, d in enumerate(docs)],
        [(d.hash, f"{d.hash[:12]}.mp4", "complete", "2026-01-01T00:00:00Z") for d in docs],
        catalogue_columns=("hash", "filename", "path", "source", "category", "status"),
        documents_columns=("hash", "filename", "status", "discovered_at"),
    )
    with ReconStore.open(db_path, source) as store:
        store.migrate()
        by_time: dict[str, list[DomainDecision]] = {}
        for d in docs:
            by_time.setdefault(d.assigned_at, []).append(
                DomainDecision(d.hash, Status.ASSIGNED, d.domain))
        for stamp, decisions in by_time.items():
            store.write_decisions(decisions, now=stamp)
    return sorted(docs, key=lambda d: (d.assigned_at, d.hash))


def _no_fsync_wait(dsn: str, name: str) -> None:
    """Commit without waiting for the WAL flush in this throwaway database.

    The latency knob stands for PeerTube's time per request; a loaded disk's fsync on every
    sandbox UPDATE would be added on top of it and measure the disk, not the push."""
    with autocommit_cursor(dsn) as cur:
        cur.execute(sql.SQL("ALTER DATABASE {} SET synchronous_commit = off")
                    .format(sql.Identifier(name)))


class _ChildServer:
    """A sandbox PeerTube in its own process (as in production, the client and the server
    must not share one interpreter lock: in one process the benchmark measures the GIL)."""

    def __init__(self, dsn: str, knobs: dict[str, Any]) -> None:
        self.dsn = dsn
        self.admin_username = "root"
        self.admin_password = "bench-admin-password"
        config = json.dumps({"dsn": dsn, "knobs": knobs,
                             "password": self.admin_password})
        self._proc = subprocess.Popen(
            [sys.executable, "-c", "from recon_domains.bench.push import _serve; _serve()",
             config], stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if not line.startswith("http://"):
            self.stop()
            raise RuntimeError(f"sandbox PeerTube did not start (said {line!r})")
        self.url = line

    def seed_videos_from_recon(self, db_path: Path, source: str, **kwargs: Any) -> Any:
        return seed_videos_from_recon(self.dsn, db_path, source, **kwargs)

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


def _serve() -> None:
    """Child process: start the sandbox, install the plugin, print the URL, serve until
    SIGTERM."""
    config = json.loads(sys.argv[1])
    running = start_server(config["dsn"], admin_password=config["password"],
                           **config["knobs"])
    running.install_plugin(PLUGIN_DIR)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(running.url, flush=True)
    stop.wait()
    running.stop()


class _NullPeerTube:
    """Just enough of PeerTube's API for a push (OAuth, users/me, PUT 204 after `latency`),
    with no database: measures the push engine's own ceiling on this machine, apart from
    the sandbox's per-request cost. Runs in its own process like _ChildServer."""

    def __init__(self, latency_s: float) -> None:
        self.admin_username, self.admin_password = "root", "null-admin-password"
        self._proc = subprocess.Popen(
            [sys.executable, "-c", "from recon_domains.bench.push import _serve_null; "
             "_serve_null()", str(latency_s)], stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        self.url = self._proc.stdout.readline().strip()

    def stop(self) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=10)


def _serve_null() -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    latency = float(sys.argv[1])

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: dict[str, Any] | None = None) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            time.sleep(latency)
            payload = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            if body is not None:
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            if self.path.endswith("/oauth-clients/local"):
                self._answer(200, {"client_id": "c", "client_secret": "s"})
            else:
                self._answer(200, {"username": "root", "role": {"id": 0}})

        def do_POST(self) -> None:
            self._answer(200, {"token_type": "Bearer", "access_token": "a",
                               "refresh_token": "r", "expires_in": 86399,
                               "refresh_token_expires_in": 1209599})

        def do_PUT(self) -> None:
            self._answer(204)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()


class _NoPriorCategories:
    """CategoryReader for the null server: every video exists, none has a category."""

    def categories_of(self, uuids: Any) -> dict[str, int | None]:
        return dict.fromkeys(uuids)


def _run_push(server: Any, workdir: Path, count: int, *, database: bool, workers: int,
              name: str, adaptive: bool = True,
              max_rate: float | None = None) -> tuple[PushResult, PeerTubeClient]:
    db_path = workdir / f"{name}.db"
    # A seed per run: runs sharing a server must not share videos (the second would find
    # every category already in place and push nothing).
    build_push_corpus(db_path, count, seed=zlib.crc32(name.encode()))
    reader: Any = None
    if isinstance(server, _NullPeerTube):
        reader = _NoPriorCategories()
    else:
        server.seed_videos_from_recon(db_path, DEFAULT_STREAM_SOURCE, prior_category_percent=5)
        reader = PeerTubeDatabase(server.dsn) if database else None
    client = PeerTubeClient(server.url, server.admin_username, server.admin_password,
                            pool_size=workers)
    with ReconStore.open(db_path, DEFAULT_STREAM_SOURCE) as store:
        items = select_stage_items(store, "all")
        result = push_items(store, client, items, stage="bench", database=reader,
                            workers=workers, adaptive=adaptive, max_rate=max_rate)
    return result, client


def run_benchmarks(
    *, items: int = 5000, latency_s: float = 0.02,
    workers: int = DEFAULTS.peertube.push_max_in_flight,
    rate_limit_items: int = 197, rate_limit_max: int = 50, rate_limit_window_s: float = 10.0,
    api_items: int = 1000, workdir: str | Path | None = None,
    serialization_failure_rate: float = 0.0,
    conflict_rate: float = PEERTUBE_8_CONFLICT_RATE,
    capacity: int = 4, service_time_s: float = 0.1, capacity_items: int = 1000,
    max_rate: float = 25.0, max_rate_items: int = 500,
) -> dict[str, Any]:
    """Run the benchmarks against fresh sandbox servers; returns the figures."""
    # Figures depend on what else the machine runs: keep the load next to them.
    figures: dict[str, Any] = {"items": items, "latency_s": latency_s, "workers": workers,
                               "serialization_failure_rate": serialization_failure_rate,
                               "serialization_conflict_rate": conflict_rate,
                               "cpus": os.cpu_count(),
                               "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    with tempfile.TemporaryDirectory(prefix="bench-push-", dir=workdir) as tmp, \
            embedded_or_system_postgres(tmp) as pg:
        work = Path(tmp)
        names: list[str] = []

        def server(**knobs: Any) -> _ChildServer:
            name = f"bench_push_{uuid.uuid4().hex[:10]}"
            names.append(name)
            dsn = create_database(pg.admin_dsn, name)
            _no_fsync_wait(dsn, name)
            return _ChildServer(dsn, {"serialization_failure_rate": serialization_failure_rate,
                                      "serialization_conflict_rate": conflict_rate, **knobs})

        try:
            # 1. throughput, database reads (the configuration the runbook uses)
            srv = server(latency_s=latency_s, **NO_LIMITS)
            try:
                result, client = _run_push(srv, work, items, database=True, workers=workers,
                                           name="throughput")
                figures["throughput_db"] = _figures(result, client)
                result, client = _run_push(srv, work, api_items, database=False,
                                           workers=workers, name="throughput_api")
                figures["throughput_api_only"] = _figures(result, client)
                figures["latency_vs_fixed"] = _against_fixed(srv, work, items, workers,
                                                             figures["throughput_db"])
            finally:
                srv.stop()
            # 2, 3. a sandbox with a fixed capacity: a small stage, the push against it,
            # and under PEERTUBE_PUSH_MAX_RATE
            srv = server(capacity=capacity, service_time_s=service_time_s, **NO_LIMITS)
            try:
                figures["stage_overhead"] = _stage_overhead(srv, work, workers)
                figures["capacity"] = _capacity_benchmark(
                    srv, work, capacity_items, workers, capacity / service_time_s)
                figures["max_rate"] = _max_rate_benchmark(srv, work, max_rate_items, workers,
                                                          max_rate)
            finally:
                srv.stop()
            # 1b. the engine alone, against a PeerTube stand-in with no database
            null = _NullPeerTube(latency_s)
            try:
                result, client = _run_push(null, work, items, database=True, workers=workers,
                                           name="throughput_null")
                figures["throughput_engine_only"] = _figures(result, client)
            finally:
                null.stop()
            # 4. rate limited
            # Real PeerTube exempts admins from the API limit; a proxy in front may not.
            srv = server(rate_limit_max=rate_limit_max, rate_limit_window_s=rate_limit_window_s,
                         admins_bypass_rate_limit=False)
            try:
                result, client = _run_push(srv, work, rate_limit_items, database=True,
                                           workers=workers, name="ratelimited")
            finally:
                srv.stop()
            allowed = rate_limit_max / rate_limit_window_s
            # Every request counts against the window: one PUT per item plus three for the
            # login (OAuth client, token) and the admin check. The first window's quota is
            # there at once, so an ideal client needs (windows - 1) full windows; the
            # settled rate is the allowed rate scaled by ideal time / real time.
            # (retries included: each one is a request the window has to hold).
            requests_made = result.flow.requests if result.flow else rate_limit_items + 3
            windows = math.ceil(requests_made / rate_limit_max)
            ideal_s = (windows - 1) * rate_limit_window_s
            efficiency = ideal_s / result.elapsed if result.elapsed > 0 else 0.0
            figures["rate_limited"] = {
                **_figures(result, client),
                "limit": f"{rate_limit_max} per {rate_limit_window_s:g}s",
                "allowed_per_s": allowed,
                "windows": windows,
                "ideal_elapsed_s": ideal_s,
                "settled_per_s": round(allowed * efficiency, 2),
                "settled_vs_allowed": round(efficiency, 3),
                "failed_by_429": sum(1 for _, r in result.failed if " 429" in r),
                "rate_limited_answers": client.rate_limited_count,
            }
        finally:
            for name in names:
                drop_database(pg.admin_dsn, name)
    figures["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return figures


def _figures(result: PushResult, client: PeerTubeClient) -> dict[str, Any]:
    flow = result.flow
    return {
        "pushed": len(result.succeeded),
        "failed": len(result.failed),
        "skipped": len(result.skipped),
        "aborted": result.aborted,
        "elapsed_s": round(result.elapsed, 2),
        "items_per_s": round(result.items_per_second, 1),
        "logins": client.login_count,
        "retries": client.retry_count,
        "retried_after_500": result.retried_after_500,
        # Every 5xx PeerTube answered: the serialization failures the push provoked.
        "server_errors": flow.server_errors if flow else None,
        "in_flight_settled": flow.settled_window if flow else None,
        "in_flight_mean": round(flow.mean_window, 2) if flow else None,
        "in_flight_peak": flow.peak_in_flight if flow else None,
        "window_changes": len(flow.decisions) if flow else None,
    }


def _against_fixed(server: _ChildServer, work: Path, items: int, workers: int,
                   adaptive: dict[str, Any]) -> dict[str, Any]:
    """The same push with a fixed `workers` in flight (what the push did before it adapted):
    its rate is the most the ceiling gives at this latency, the reference for the
    adaptive one."""
    result, client = _run_push(server, work, items, database=True, workers=workers,
                               name="latency_fixed", adaptive=False)
    fixed = _figures(result, client)
    return {
        "fixed": fixed,
        "rate_vs_fixed": round(adaptive["items_per_s"] / fixed["items_per_s"], 3),
        "server_errors_adaptive": adaptive["server_errors"],
        "server_errors_fixed": fixed["server_errors"],
    }


def _capacity_benchmark(server: _ChildServer, work: Path, items: int, workers: int,
                        capacity_per_s: float) -> dict[str, Any]:
    """The push against a server that does `capacity_per_s` at most, adaptive and fixed."""
    result, client = _run_push(server, work, items, database=True, workers=workers,
                               name="capacity_adaptive")
    adaptive = _figures(result, client)
    result, client = _run_push(server, work, items, database=True, workers=workers,
                               name="capacity_fixed", adaptive=False)
    fixed = _figures(result, client)
    return {
        "capacity_per_s": capacity_per_s,
        "adaptive": adaptive,
        "fixed": fixed,
        "rate_vs_capacity": round(adaptive["items_per_s"] / capacity_per_s, 3),
        "fixed_rate_vs_capacity": round(fixed["items_per_s"] / capacity_per_s, 3),
    }


def _max_rate_benchmark(server: _ChildServer, work: Path, items: int, workers: int,
                        max_rate: float) -> dict[str, Any]:
    """The push with PEERTUBE_PUSH_MAX_RATE below what the server could do."""
    result, client = _run_push(server, work, items, database=True, workers=workers,
                               name="max_rate", max_rate=max_rate)
    figures = _figures(result, client)
    # Every request counts: the PUTs, their retries, the login's two and the admin check.
    # n requests spaced 1/max_rate apart span (n - 1) / max_rate seconds at least.
    requests_made = result.flow.requests if result.flow else 0
    per_s = (requests_made - 1) / result.elapsed
    return {
        **figures,
        "max_rate_per_s": max_rate,
        "requests": requests_made,
        "requests_per_s": round(per_s, 2),
        "rate_vs_limit": round(per_s / max_rate, 3),
        "failed_by_429": sum(1 for _, r in result.failed if " 429" in r),
    }


class _TimedClient(PeerTubeClient):
    """A client that keeps the time of the calls a stage makes besides its PUTs, and the
    span of its PUTs (first sent to last answered)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seconds: dict[str, float] = {}
        self.put_span: list[float] = []  # [first PUT sent, last PUT answered]
        self._span_lock = threading.Lock()

    def timed(self, name: str, call: Any, *args: Any) -> Any:
        started = time.monotonic()
        try:
            return call(*args)
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.monotonic() - started

    def require_admin(self) -> dict[str, Any]:
        return self.timed("admin_check", super().require_admin)

    def set_category(self, video_id: str | int, category_id: int | None) -> None:
        started = time.monotonic()
        super().set_category(video_id, category_id)
        with self._span_lock:
            first = self.put_span[0] if self.put_span else started
            self.put_span = [min(first, started), time.monotonic()]


class _TimedStore(ReconStore):
    """RECON's store keeping the time of the push ledger's writes."""

    seconds: dict[str, float]

    def _timed(self, name: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return call(*args, **kwargs)
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.monotonic() - started

    def open_push_intents(self) -> Any:
        return self._timed("ledger_open_intents", super().open_push_intents)

    def record_push_intents(self, items: Any) -> None:
        self._timed("ledger_intents", super().record_push_intents, list(items))

    def complete_pushes(self, hashes: Any, **kwargs: Any) -> None:
        self._timed("ledger_completions", super().complete_pushes, hashes, **kwargs)


class _TimedDatabase(PeerTubeDatabase):
    """PeerTube's database keeping the time of the categories-before reads."""

    seconds = 0.0

    def categories_of(self, uuids: Any) -> dict[str, int | None]:
        started = time.monotonic()
        try:
            return super().categories_of(uuids)
        finally:
            self.seconds += time.monotonic() - started


def _stage_overhead(server: _ChildServer, work: Path, workers: int,
                    items: int = 100) -> dict[str, Any]:
    """What a stage of `items` does besides its PUTs, as the stage job does it: log in,
    check the admin and the plugin, read the categories before, write the ledger, push,
    then read every pushed video back (stage-1's verification). Each as seconds and as a
    share of the PUT span."""
    db_path = work / "stage_overhead.db"
    build_push_corpus(db_path, items, seed=zlib.crc32(b"stage_overhead"))
    server.seed_videos_from_recon(db_path, DEFAULT_STREAM_SOURCE, prior_category_percent=5)
    client = _TimedClient(server.url, server.admin_username, server.admin_password,
                          pool_size=workers)
    database = _TimedDatabase(server.dsn)
    started = time.monotonic()
    client.timed("login", client.login)
    client.timed("plugin_check", lambda: (client.find_plugin(PLUGIN_NPM_NAME),
                                          client.categories()))
    store = _TimedStore.open(db_path, DEFAULT_STREAM_SOURCE)
    store.seconds = {}
    with store:
        items_ = select_stage_items(store, "stage-1")
        result = push_items(store, client, items_, stage="stage-1", database=database,
                            workers=workers)
        verify_started = time.monotonic()
        # stage-1's gate as the stage job runs it: every pushed video read back, then
        # the ledger compared with PeerTube's database.
        verdict = stage_verified(store, client, "stage-1", DEFAULTS.stage_sizes,
                                 DatabaseCategories(database), max_in_flight=workers)
        verification = time.monotonic() - verify_started
    total = time.monotonic() - started
    put_span = client.put_span[1] - client.put_span[0] if client.put_span else 0.0
    parts = {
        "login": client.seconds.get("login", 0.0),
        "admin_check": client.seconds.get("admin_check", 0.0),
        "plugin_check": client.seconds.get("plugin_check", 0.0),
        "categories_before": database.seconds,
        **store.seconds,
        "verification_read_back": verification,
    }
    # Ledger completions happen between PUTs (the calling thread, while others are in
    # flight): inside the span. Everything else is outside it.
    outside = total - put_span
    return {
        "items": items,
        "pushed": len(result.succeeded),
        "failed": len(result.failed),
        "verified": verdict.passed,
        "put_span_s": round(put_span, 3),
        "stage_total_s": round(total, 3),
        "seconds": {k: round(v, 4) for k, v in parts.items()},
        "share_of_put_span": {k: round(v / put_span, 3) for k, v in parts.items()}
        if put_span else {},
        "overhead_vs_put_span": round(outside / put_span, 3) if put_span else None,
        "overhead_without_verification_vs_put_span":
            round((outside - verification) / put_span, 3) if put_span else None,
        "in_flight_settled": result.flow.settled_window if result.flow else None,
    }


def flow_lines(figures: dict[str, Any]) -> list[str]:
    """The flow control's figures, one line each, as ratios to what bounds them."""
    cap, lat, rate = figures["capacity"], figures["latency_vs_fixed"], figures["max_rate"]
    stage = figures["stage_overhead"]
    adaptive, fixed = cap["adaptive"], cap["fixed"]
    return [
        f"capacity sandbox ({cap['capacity_per_s']:g}/s): push / capacity "
        f"{cap['rate_vs_capacity']:.2f} at {adaptive['in_flight_settled']} in flight "
        f"(mean {adaptive['in_flight_mean']}), {adaptive['server_errors']} 500s; fixed "
        f"{fixed['in_flight_peak']}: {cap['fixed_rate_vs_capacity']:.2f}, "
        f"{fixed['server_errors']} 500s",
        f"20 ms latency: push / fixed {lat['fixed']['in_flight_peak']} in flight "
        f"{lat['rate_vs_fixed']:.2f} at {figures['throughput_db']['in_flight_settled']} in "
        f"flight, {lat['server_errors_adaptive']} 500s against {lat['server_errors_fixed']}",
        f"max rate {rate['max_rate_per_s']:g}/s: requests / limit {rate['rate_vs_limit']:.2f} "
        f"at {rate['in_flight_settled']} in flight, {rate['logins']} login(s)",
        f"{stage['items']}-item stage: overhead / PUT time "
        f"{stage['overhead_without_verification_vs_put_span']:.2f} (PUTs "
        f"{stage['put_span_s']:.2f}s), with stage-1's read-back of every video "
        f"{stage['overhead_vs_put_span']:.2f}",
    ]


def flow_targets(figures: dict[str, Any]) -> dict[str, bool]:
    """The flow control's targets (issue: push at PeerTube's capacity with the least load),
    met or not."""
    cap, fixed = figures["capacity"], figures["capacity"]["fixed"]
    rate = figures["max_rate"]
    return {
        f"capacity sandbox: >= 90 % of {cap['capacity_per_s']:g}/s":
            cap["rate_vs_capacity"] >= 0.9,
        "capacity sandbox: no item failed": cap["adaptive"]["failed"] == 0,
        "capacity sandbox: fewer 500s than a fixed "
        f"{fixed['in_flight_peak']} in flight":
            cap["adaptive"]["server_errors"] < fixed["server_errors"],
        "20 ms latency: no more 500s than a fixed ceiling":
            figures["latency_vs_fixed"]["server_errors_adaptive"]
            <= figures["latency_vs_fixed"]["server_errors_fixed"],
        f"max rate {rate['max_rate_per_s']:g}/s: >= 90 % of it, never above":
            0.9 <= rate["rate_vs_limit"] <= 1.0,
        "max rate: no item failed by 429, one login":
            rate["failed_by_429"] == 0 and rate["failed"] == 0 and rate["logins"] == 1,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the push benchmarks and print the figures (JSON)."""
    parser = argparse.ArgumentParser(prog="python -m recon_domains.bench.push")
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--workers", type=int, default=DEFAULTS.peertube.push_max_in_flight)
    parser.add_argument("--rate-limit-items", type=int, default=197)
    parser.add_argument("--serialization-failure-rate", type=float, default=0.0,
                        help="fraction of concurrent PUTs answered PeerTube's 500 (0: off)")
    parser.add_argument("--conflict-rate", type=float, default=PEERTUBE_8_CONFLICT_RATE,
                        help="PeerTube's 500 per other PUT in flight (default: as measured "
                        "on PeerTube 8.0.1)")
    parser.add_argument("--capacity", type=int, default=4,
                        help="requests the capacity sandbox works on at once")
    parser.add_argument("--service-time", type=float, default=0.1,
                        help="seconds each of them takes on the capacity sandbox")
    parser.add_argument("--max-rate", type=float, default=25.0,
                        help="PEERTUBE_PUSH_MAX_RATE for the max-rate run")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    figures = run_benchmarks(items=args.items, latency_s=args.latency, workers=args.workers,
                             rate_limit_items=args.rate_limit_items,
                             serialization_failure_rate=args.serialization_failure_rate,
                             conflict_rate=args.conflict_rate, capacity=args.capacity,
                             service_time_s=args.service_time, max_rate=args.max_rate)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    rate = figures["rate_limited"]
    targets = {
        "throughput with the sandbox >= 150 items/s": figures["throughput_db"]["items_per_s"]
        >= 150,
        "engine alone >= 150 items/s": figures["throughput_engine_only"]["items_per_s"] >= 150,
        "rate limited: settled >= 90 % of allowed": rate["settled_vs_allowed"] >= 0.9,
        "rate limited: no item failed by 429": rate["failed_by_429"] == 0,
        "rate limited: exactly one login": rate["logins"] == 1,
        **flow_targets(figures),
    }
    for line in flow_lines(figures):
        print(line)
    for name, met in targets.items():
        print(f"{'met    ' if met else 'NOT MET'}  {name}")
    ok = all(targets.values())
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

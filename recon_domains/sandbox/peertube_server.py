"""A PeerTube-compatible API server for tests, rehearsals and demos.

It speaks real HTTP/1.1 (keep-alive) on a loopback port and keeps its videos in PostgreSQL in
a ``video`` table shaped like PeerTube's, so the push, the verification queries, ``pg_dump``
and the rollback all run against the real thing's shapes. Its answers are derived from
PeerTube 8.0.1's source, route by route and branch by branch (peertube_app and the modules
it uses), and checked against what a real 8.0.1 answered (the conformance record, see
recon_domains.sandbox.conformance). It serves:

- ``GET  /api/v1/oauth-clients/local``; ``POST /api/v1/users/token`` (password and refresh
  grants, refresh revokes the old access token at once, ``Cache-Control: no-store``);
- ``GET  /api/v1/users/me``;
- ``GET  /api/v1/videos/categories`` (built-ins 1–18, then plugin ones), ``licences``,
  ``privacies``, ``languages``;
- ``GET  /api/v1/videos`` (listing with PeerTube's filters, paging and sorts);
- ``GET|PUT /api/v1/videos/{id|uuid|shortUUID}`` (JSON, multipart, urlencoded bodies);
- ``GET  /api/v1/plugins``, ``/plugins/available``, ``/plugins/{npmName}``; ``POST
  /api/v1/plugins/install`` (from a path: validated with plugin_check, ``register()`` run
  under Node) and ``/uninstall``;
- RFC 7807 error bodies, ``X-RateLimit-*`` headers, the API limit (admins and moderators
  bypass it but use up quota) and the login limit, both answering 429 as text.

Every other API path answers PeerTube's bare 400, as its API router does for unknown paths
(so also e.g. ``DELETE /api/v1/videos/{id}``, which real PeerTube serves). Tokens live in
memory (a sandbox restart logs everyone out; PeerTube keeps them in its database); the OAuth
client is persisted. A restart re-registers the categories recorded at install instead of
running ``register()`` again. No upload, federation or static files.

Test knobs (peertube_knobs.ServerKnobs): latency, injected 500s, dropped connections,
PeerTube's serialization-failure 500 under concurrent PUTs (flat, or rising with the number
in flight as measured), a fixed capacity (requests beyond it queue, each held for a service
time), token lifetimes, rate-limit windows and maxima, a required Host header. Change them
on a running server with ``RunningPeerTube.set_knobs(...)``; ``fail_next(n, mode)`` injects
deterministic faults.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg2

from recon_domains.commands import EXIT_CONFIG, EXIT_OK
from recon_domains.sandbox.peertube_app import PeerTubeApp, Request
from recon_domains.sandbox.peertube_auth import User
from recon_domains.sandbox.peertube_knobs import ServerKnobs, checked_knobs
from recon_domains.sandbox.peertube_store import SandboxStore, SeedReport, db_error_text

log = logging.getLogger("recon_domains.sandbox.peertube")

DEFAULT_ADMIN_PASSWORD = "sandbox-admin"

__all__ = ["DEFAULT_ADMIN_PASSWORD", "RunningPeerTube", "ServerKnobs", "start_server"]


# ---------------------------------------------------------------------------- HTTP layer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every answer carries Content-Length
    # Headers and body go out in two sends: with Nagle on, the body would wait for the
    # client's delayed ACK (~40 ms a request). Node (PeerTube) disables Nagle too.
    disable_nagle_algorithm = True
    server_version = "PeerTubeSandbox/8.0.1"
    app: PeerTubeApp  # set on the subclass made per server

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.client_address[0], format % args)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        app = self.app
        body = self._read_body()  # always drain it, or keep-alive desynchronises
        req = Request(self.command, self.path, self.headers, body, self.client_address[0])
        with app.in_flight(req):
            knobs = app.knobs
            if knobs.latency_s > 0:
                time.sleep(knobs.latency_s)
            with app.served():
                fault = app.fault_for(req.method, req.path)
                if fault == "drop":
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                status, headers, payload = app.handle(req, fault)
        self._send(status, headers, payload)

    def _send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if status not in (204, 304) and self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = _handle


class _SandboxHTTPServer(ThreadingHTTPServer):
    """Tracks open connections so stop() can close idle keep-alive ones too (a stopped
    sandbox must look stopped to a client holding a pooled connection)."""

    daemon_threads = True
    # socketserver's default backlog of 5 resets connections when a push opens a few dozen
    # at once; Node (PeerTube) listens with 511.
    request_queue_size = 511

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout, dropped connection) is routine, not a server bug.
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            log.debug("client %s went away: %s", client_address, exc)
            return
        log.exception("error while serving %s", client_address)

    def close_open_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class RunningPeerTube:
    """A sandbox PeerTube serving in a background thread; a context manager."""

    def __init__(self, app: PeerTubeApp, server: _SandboxHTTPServer, dsn: str) -> None:
        self.app = app
        self._server = server
        self.dsn = dsn
        host, port = server.server_address[:2]
        self.host = str(host)
        self.port = int(port)
        self.url = f"http://{self.host}:{self.port}"
        self._stopped = False
        self._thread = threading.Thread(
            target=server.serve_forever,
            name="peertube-sandbox",
            kwargs={"poll_interval": 0.1},
            daemon=True,
        )
        self._thread.start()

    @property
    def knobs(self) -> ServerKnobs:
        """A copy of the current knobs."""
        return self.app.knobs

    @property
    def admin_username(self) -> str:
        """The admin's user name."""
        return self.app.admin.username

    @property
    def admin_password(self) -> str:
        """The admin's password."""
        return self.app.admin.password

    @property
    def store(self) -> SandboxStore:
        """The PostgreSQL access of the server (videos, plugins)."""
        return self.app.store

    def set_knobs(self, **changes: Any) -> ServerKnobs:
        """Change knobs at once (thread-safe); see ServerKnobs."""
        return self.app.set_knobs(**changes)

    def reset_knobs(self) -> ServerKnobs:
        """Back to production defaults, counters and injected faults cleared."""
        self.app.clear_faults()
        self.reset_rate_limits()
        return self.app.set_knobs(**dataclasses.asdict(ServerKnobs()))

    def reset_rate_limits(self) -> None:
        """Forget the API and login limiter windows."""
        self.app.api_limiter.reset()
        self.app.login_limiter.reset()

    def fail_next(self, count: int = 1, mode: str = "error") -> None:
        """Deterministic faults: the next ``count`` matching requests 500 ("error") or lose
        their connection ("drop")."""
        self.app.fail_next(count, mode)

    def add_user(self, username: str, password: str, role: int | str = "user") -> User:
        """Create a user (role "user", "moderator" or "admin") who can log in."""
        return self.app.accounts.add_user(username, password, role)

    def install_plugin(self, path: str | Path) -> dict[str, Any]:
        """Install a plugin folder as ``POST /plugins/install {"path": ...}`` would; returns
        its ``plugin`` row. Raises ValueError when PeerTube would refuse it (the reason is
        logged)."""
        from recon_domains.sandbox.peertube_plugins import PluginInstallFailed

        try:
            return self.app.plugins.install_from_disk(str(path))
        except PluginInstallFailed:
            raise ValueError(f"Cannot install plugin {path} (see the log for why)") from None

    def add_video(self, name: str, **kwargs: Any) -> dict[str, Any]:
        """Create a video (see SandboxStore.add_video); returns its row."""
        return self.app.store.add_video(name, **kwargs)

    def seed_videos_from_recon(
        self, recon_db_path: str | Path, source: str, *, prior_category_percent: int = 5
    ) -> SeedReport:
        """A video for every stream row of a RECON database (see SandboxStore)."""
        return self.app.store.seed_videos_from_recon(
            recon_db_path, source, prior_category_percent=prior_category_percent
        )

    def simulate_restart(self) -> None:
        """What a PeerTube restart does that matters here: plugin categories re-registered
        from installed plugins only (clears the reinstall quirk) and every token dropped."""
        self.app.plugins.reload()
        self.app.accounts.revoke_all()

    def stop(self) -> None:
        """Stop serving and close the database pool (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._server.close_open_connections()
        self._thread.join(timeout=5)
        self.app.store.close()

    def __enter__(self) -> RunningPeerTube:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(
    dsn: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    admin_username: str = "root",
    admin_password: str = DEFAULT_ADMIN_PASSWORD,
    node: str | None = None,
    **knobs: Any,
) -> RunningPeerTube:
    """Start a sandbox PeerTube on ``host:port`` (0: any free port) backed by ``dsn``.

    Creates the tables if missing. ``knobs`` are ServerKnobs fields. Returns at once; the
    server answers from a background thread until ``stop()``.
    """
    checked = checked_knobs(knobs)
    store = SandboxStore(dsn)
    try:
        app = PeerTubeApp(
            store,
            ServerKnobs(**checked),
            admin_username=admin_username,
            admin_password=admin_password,
            node=node,
        )
        handler = type("PeerTubeHandler", (_Handler,), {"app": app})
        server = _SandboxHTTPServer((host, port), handler)
    except BaseException:
        store.close()
        raise
    return RunningPeerTube(app, server, dsn)


def _cli_knobs(args: argparse.Namespace) -> dict[str, Any]:
    """Knobs given on the command line (flags absent from an older parser are skipped)."""
    flags = {
        "latency": "latency_s",
        "error_rate": "error_rate",
        "drop_rate": "drop_rate",
        "token_lifetime": "token_lifetime_s",
        "rate_limit": "rate_limit_max",
        "rate_window": "rate_limit_window_s",
        "login_limit": "login_limit_max",
        "serialization_failure_rate": "serialization_failure_rate",
        "serialization_conflict_rate": "serialization_conflict_rate",
        "capacity": "capacity",
        "service_time": "service_time_s",
    }
    return {
        knob: getattr(args, flag)
        for flag, knob in flags.items()
        if getattr(args, flag, None) is not None
    }


def wait_for_stop() -> None:
    """Block until Ctrl-C or SIGTERM (a foreground server's main thread)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass


def cli_main(args: argparse.Namespace) -> int:
    """``recon-domains sandbox peertube``: serve until Ctrl-C."""
    from recon_domains.peertube.database import mask_dsn
    from recon_domains.sandbox.postgres import (
        embedded_postgres,
        ensure_database,
    )
    from recon_domains.settings import Settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    password = args.admin_password or DEFAULT_ADMIN_PASSWORD
    source = args.source or Settings.from_env().stream_source
    with contextlib.ExitStack() as stack:
        dsn = args.db_dsn
        if not dsn:
            # Embedded, so the sandbox never writes into a server the operator did not name.
            admin_dsn = stack.enter_context(embedded_postgres())
            dsn = ensure_database(admin_dsn, "peertube_sandbox")
            print(f"PostgreSQL (embedded, removed on exit): {mask_dsn(dsn)}")
        try:
            running = start_server(
                dsn, host=args.host, port=args.port, admin_password=password, **_cli_knobs(args)
            )
        except psycopg2.Error as exc:
            print(f"error: cannot use PostgreSQL at {mask_dsn(dsn)}: {db_error_text(exc)}")
            return EXIT_CONFIG
        except OSError as exc:
            print(f"error: cannot listen on {args.host}:{args.port}: {exc}")
            return EXIT_CONFIG
        stack.callback(running.stop)
        if args.videos_from:
            report = running.seed_videos_from_recon(args.videos_from, source)
            print(
                f"seeded {report.created} videos from {args.videos_from} (source {source}); "
                f"{report.already_present} already there, {report.with_prior_category} with a "
                f"prior built-in category, {report.skipped_garbage} garbage paths skipped"
            )
        print(f"PeerTube sandbox listening on {running.url}")
        print(f"admin user: {running.admin_username} (password from --admin-password)")
        changed = {
            k: v
            for k, v in dataclasses.asdict(running.knobs).items()
            if v != getattr(ServerKnobs(), k)
        }
        if changed:
            print(f"test knobs: {changed}")
        print("log in with curl:")
        print(f"  curl -s {running.url}/api/v1/oauth-clients/local")
        print(
            f"  curl -s {running.url}/api/v1/users/token -d client_id=ID -d client_secret=SECRET"
            f" -d grant_type=password -d username={running.admin_username} -d password=..."
        )
        print("Ctrl-C to stop.")
        wait_for_stop()
        print("stopping")
    return EXIT_OK

"""The tied-video review page (runbook Step 8), served with Starlette and Jinja2.

    GET  /          a page of tied_manual videos (filter by channel, sort, paginate)
    GET  /api/tied  the same page as JSON
    POST /assign    form fields hash, domain, csrf_token: tied_manual → manual_assigned,
                    then (when a push is configured) push that one video to PeerTube now

The page has no logic of its own: listing and assigning are recon_domains.review.tied, the
push is the push engine (ledger included). Safe by default:

- it listens on loopback; any other address needs RECON_REVIEW_TOKEN, which every request
  must then carry (once as ?token=..., then as a cookie; or an Authorization: Bearer header);
- on loopback it answers only loopback Host names (plus RECON_REVIEW_HOSTS), which defeats
  DNS rebinding;
- every POST carries a CSRF token bound to a SameSite=Strict cookie, and a POST whose Origin
  names another site is refused;
- Jinja2 escapes every value, and the Content-Security-Policy forbids scripts outright;
- only the 18 domains are accepted, and the token and the PeerTube password are never shown
  or logged (no access log: a URL may carry the token).
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import hmac
import ipaddress
import logging
import secrets
import socket
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jinja2
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from recon_domains.commands import EXIT_CONFIG, EXIT_OK
from recon_domains.recon.store import PushCandidate, ReconLocked, ReconStore, ReconStoreError
from recon_domains.review.tied import (
    SORTS,
    Assignment,
    ReviewError,
    ReviewQuery,
    TiedPage,
    assign_domain,
    tied_page,
)
from recon_domains.settings import DEFAULTS, ConfigError, Settings, require
from recon_domains.taxonomy import ALL_STATUSES

log = logging.getLogger(__name__)

# push(store, [candidate]): push these categorized items to PeerTube and record them in the
# store (ledger + peertube_category_pushed_at). Whatever it returns is only used to explain
# a failure: the page reads peertube_category_pushed_at back to say what really happened.
PushFn = Callable[[ReconStore, Sequence[PushCandidate]], object]

MAX_FORM_BYTES = 16 * 1024
MAX_FLASHES = 200
MIN_TOKEN_LENGTH = 16
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
AUTH_COOKIE = "recon_review_auth"
SESSION_COOKIE = "recon_review_session"
NEXT_RUN = "the steady-state push retries it on its next run"
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
STATUS_ORDER = (*ALL_STATUSES, "unassigned")


class ReviewConfigError(ValueError):
    """The page refuses to start this way (e.g. exposed without a token); says what to do."""


def is_loopback(host: str) -> bool:
    """True for loopback addresses and 'localhost'."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# -- the application ----------------------------------------------------------------------
class Review:
    """What the routes need: where RECON is, how to push, and the page's own secrets."""

    def __init__(
        self,
        store_path: Path,
        concepts_root: Path,
        source: str,
        *,
        push: PushFn | None,
        token: str | None,
        allowed_hosts: frozenset[str] | None,
        port: int,
        max_window_file_mb: float,
        lock_timeout_s: float = DEFAULTS.lock_timeout_s,
        accepted_hosts: Sequence[str] = (),
    ) -> None:
        self.store_path = store_path
        self.lock_timeout_s = lock_timeout_s  # RECON_LOCK_TIMEOUT_S
        self.accepted_hosts = tuple(accepted_hosts)  # RECON_ACCEPTED_HOSTS: what may be pushed
        self.concepts_root = concepts_root
        self.max_window_file_mb = max_window_file_mb
        self.source = source
        self.push = push
        self.token = token
        self.allowed_hosts = allowed_hosts  # None: any Host (exposed, so the token guards)
        self.port = port
        self._csrf_key = secrets.token_bytes(32)  # per process: a restart asks for a reload
        self.assign_lock = threading.Lock()  # a double click cannot assign or push twice
        self._flashes: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._flash_lock = threading.Lock()

    def csrf_token(self, session: str) -> str:
        """The form token for a session cookie: a planted cookie alone is not enough."""
        return hmac.new(self._csrf_key, session.encode(), hashlib.sha256).hexdigest()

    def put_flash(self, kind: str, message: str) -> str:
        key = secrets.token_urlsafe(9)
        with self._flash_lock:
            self._flashes[key] = (kind, message)
            while len(self._flashes) > MAX_FLASHES:
                self._flashes.popitem(last=False)
        return key

    def pop_flash(self, key: str | None) -> tuple[str, str] | None:
        if not key:
            return None
        with self._flash_lock:
            return self._flashes.pop(key, None)

    def open_store(self) -> ReconStore:
        """A short-lived store per request: RECON keeps writing the file meanwhile."""
        store = ReconStore.open(
            self.store_path,
            self.source,
            accepted_hosts=self.accepted_hosts,
            lock_timeout_s=self.lock_timeout_s,
        )
        try:
            store.require_migrated()
        except BaseException:
            store.close()
            raise
        return store


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("recon_domains.review", "templates"),
        autoescape=True,  # every value from RECON's data is escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["thousands"] = lambda n: f"{int(n):,}"
    return Jinja2Templates(env=env)


TEMPLATES = _templates()


def _error(
    request: Request, status: int, message: str, changed: str = "Nothing was changed."
) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=status)
    return TEMPLATES.TemplateResponse(
        request, "error.html",
        {"status": status, "message": message, "changed": changed},
        status_code=status,
    )


def _store_error(request: Request, exc: ReconStoreError) -> Response:
    """recon.db failed: 503 with Retry-After while RECON holds its write lock (a moment
    later works), else 500. Either way nothing of the request was written."""
    if isinstance(exc, ReconLocked):
        response = _error(request, 503, f"{exc} Try again in a moment.")
        response.headers["Retry-After"] = "5"
        return response
    return _error(request, 500, str(exc), changed="")


class Guard(BaseHTTPMiddleware):
    """Host check, the token, and security headers on every answer."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        review: Review = request.app.state.review
        response = self._refusal(request, review) or await call_next(request)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        # Never send our URLs to other sites; "no-referrer" would make Chromium send Origin: null
        # on our own form posts, which the Origin check then refuses.
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Content-Security-Policy"] = CSP
        return response

    @staticmethod
    def _refusal(request: Request, review: Review) -> Response | None:
        host = (request.headers.get("host") or "").strip()
        hostname = urlsplit("//" + host).hostname if host else None
        if review.allowed_hosts is not None and (
            hostname is None or hostname.lower() not in review.allowed_hosts
        ):
            return _error(request, 403, (
                f"refused: Host {host!r} does not name this server. Open "
                f"http://127.0.0.1:{review.port}/ instead (behind a reverse proxy, add its "
                "host name to RECON_REVIEW_HOSTS)."
            ))
        if review.token is None:
            return None
        offered = request.query_params.get("token")
        if offered is not None and request.method == "GET":
            if not hmac.compare_digest(offered.encode(), review.token.encode()):
                return _error(request, 401, "refused: that is not the review token.")
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            # Trade the URL's token for a cookie, so it leaves the address bar and history.
            target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
            response = RedirectResponse(target, status_code=303)
            response.set_cookie(AUTH_COOKIE, review.token, httponly=True, samesite="strict")
            return response
        bearer = request.headers.get("authorization", "")
        cookie = request.cookies.get(AUTH_COOKIE, "")
        for given in (cookie, bearer.removeprefix("Bearer ").strip()):
            if given and hmac.compare_digest(given.encode(), review.token.encode()):
                return None
        return _error(request, 401, (
            "this review page needs its token (RECON_REVIEW_TOKEN): open it once as "
            f"{request.url.path}?token=<the token>, or send Authorization: Bearer <the token>."
        ))


def _tied_page(request: Request) -> TiedPage | Response:
    """The requested page of tied videos, or the error answer (JSON under /api/)."""
    review: Review = request.app.state.review
    try:
        query = ReviewQuery.parse(request.query_params)
    except ReviewError as exc:
        return _error(request, 400, str(exc))
    try:
        with review.open_store() as store:
            return tied_page(
                store, review.concepts_root, query,
                max_window_file_mb=review.max_window_file_mb,
            )
    except ReconStoreError as exc:
        return _store_error(request, exc)


def page(request: Request) -> Response:
    """GET /: runs in Starlette's thread pool (SQLite and file reads block)."""
    review: Review = request.app.state.review
    data = _tied_page(request)
    if isinstance(data, Response):
        return data
    session = request.cookies.get(SESSION_COOKIE) or secrets.token_urlsafe(24)
    response = TEMPLATES.TemplateResponse(request, "page.html", {
        "data": data,
        "statuses": [(s, data.status_counts.get(s, 0)) for s in STATUS_ORDER],
        "sorts": SORTS,
        "source": review.source,
        "push_configured": review.push is not None,
        "flash": review.pop_flash(request.query_params.get("flash")),
        "csrf_token": review.csrf_token(session),
        "link": lambda **changes: "?" + urlencode(data.query.params(**changes)),
    })
    response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="strict")
    return response


def api_tied(request: Request) -> Response:
    review: Review = request.app.state.review
    data = _tied_page(request)
    if isinstance(data, Response):
        return data
    return JSONResponse({
        "source": review.source,
        "push_configured": review.push is not None,
        "status_counts": data.status_counts,
        "total": data.total,
        "page": data.query.page,
        "pages": data.pages,
        "per_page": data.query.per_page,
        "channels": [{"channel": c, "tied": n} for c, n in data.channels],
        "videos": [v.as_json() for v in data.videos],
    })


async def assign(request: Request) -> Response:
    """POST /assign: check the form, then assign and push in the thread pool."""
    review: Review = request.app.state.review
    origin = request.headers.get("origin")
    host = (request.headers.get("host") or "").lower()
    if origin is not None and origin.lower() not in (f"http://{host}", f"https://{host}"):
        return _error(request, 403, "refused: this form was submitted from another site.")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return _error(request, 413, "the form is too large.")
    form = {k: v[0].strip() for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    session = request.cookies.get(SESSION_COOKIE, "")
    given = form.get("csrf_token", "")
    if not session or not given or not hmac.compare_digest(
        given.encode(), review.csrf_token(session).encode()
    ):
        return _error(request, 403, (
            "refused: the form's CSRF token is missing or stale (the page may be older than "
            "the server). Reload the review page and assign again."
        ))
    try:
        back = ReviewQuery.parse(form)
    except ReviewError:
        back = ReviewQuery()
    try:
        kind, message = await run_in_threadpool(
            _assign_and_push, review, form.get("hash", ""), form.get("domain", "")
        )
    except ReviewError as exc:
        return _error(request, 400, str(exc))
    except ReconStoreError as exc:
        return _store_error(request, exc)
    params = {**back.params(), "flash": review.put_flash(kind, message)}
    return RedirectResponse(f"./?{urlencode(params)}", status_code=303)


def _assign_and_push(review: Review, doc_hash: str, domain: str) -> tuple[str, str]:
    """Assign, then push at once when configured: (flash kind, what happened)."""
    with review.assign_lock, review.open_store() as store:
        assignment = assign_domain(store, doc_hash, domain)
        log.info("review: %s assigned %r (manual_assigned)", doc_hash, domain)
        done = f"Assigned {domain} to {assignment.title!r} (manual_assigned). "
        kind, pushed = _push(review, store, assignment)
        return kind, done + pushed


def _push(review: Review, store: ReconStore, assignment: Assignment) -> tuple[str, str]:
    """Push the one assigned video; the assignment stands whatever PeerTube answers."""
    if review.push is None:
        return "ok", f"No PeerTube push is configured here: {NEXT_RUN}."
    doc_hash = assignment.candidate.hash
    try:
        outcome = review.push(store, [assignment.candidate])
    except Exception as exc:  # the steady state retries; say what happened, never a secret
        log.warning("review: push of %s failed: %s: %s", doc_hash, type(exc).__name__, exc)
        return "error", f"Pushing to PeerTube failed ({type(exc).__name__}: {exc}); {NEXT_RUN}."
    row = store.domain_row(doc_hash)
    if row is not None and row["peertube_category_pushed_at"]:
        return "ok", f"Pushed to PeerTube (category {assignment.category_id})."
    why = _push_problem(outcome, doc_hash)
    return "error", f"Not pushed to PeerTube{f' ({why})' if why else ''}; {NEXT_RUN}."


def _push_problem(outcome: object, doc_hash: str) -> str | None:
    """Why the push engine did not push doc_hash, from its PushResult (duck-typed)."""
    for attr in ("failed", "skipped"):
        for item_hash, reason in getattr(outcome, attr, None) or ():
            if item_hash == doc_hash:
                return str(reason)
    reason = getattr(outcome, "abort_reason", None)
    return str(reason) if reason else None


def favicon(request: Request) -> Response:
    return Response(status_code=204)


async def not_found(request: Request, exc: Exception) -> Response:
    return _error(request, 404, f"no page at {request.url.path}; the review page is /")


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    return _error(request, 405, f"{request.method} is not allowed on {request.url.path}.")


def create_app(review: Review) -> Starlette:
    """The Starlette application for one Review."""
    app = Starlette(
        routes=[
            Route("/", page, methods=["GET"]),
            Route("/api/tied", api_tied, methods=["GET"]),
            Route("/assign", assign, methods=["POST"]),
            Route("/favicon.ico", favicon, methods=["GET"]),
        ],
        middleware=[Middleware(Guard)],
        exception_handlers={404: not_found, 405: method_not_allowed},
    )
    app.state.review = review
    return app


# -- starting it --------------------------------------------------------------------------
@dataclass
class RunningReview:
    """A review server running in a background thread (tests, the demo)."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread
    review: Review

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> RunningReview:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def build(
    store_path: str | Path,
    concepts_root: str | Path,
    source: str,
    *,
    push: PushFn | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    extra_hosts: Sequence[str] = (),
    max_window_file_mb: float = DEFAULTS.max_window_file_mb,
    lock_timeout_s: float = DEFAULTS.lock_timeout_s,
    accepted_hosts: Sequence[str] = DEFAULTS.accepted_hosts,
) -> tuple[uvicorn.Server, socket.socket, Review]:
    """Check the settings and the database, bind the socket, and build the server.

    Raises ReviewConfigError for a non-loopback bind without a token (or a short token) or
    an address it cannot listen on (a port in use), and ReconStoreError when store_path is
    not a migrated RECON database: at start, not on the first page load.
    """
    token = token or None
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ReviewConfigError(
            f"RECON_REVIEW_TOKEN is too short (fewer than {MIN_TOKEN_LENGTH} characters); use "
            "e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    loopback = is_loopback(host)
    if not loopback and token is None:
        raise ReviewConfigError(
            f"refusing to listen on {host} without RECON_REVIEW_TOKEN: anyone who can reach "
            "it could assign domains and push them to PeerTube. Set RECON_REVIEW_TOKEN to a "
            "long random value, or listen on 127.0.0.1 and use an SSH tunnel."
        )
    store_path = Path(store_path).expanduser()
    with ReconStore.open(store_path, source, lock_timeout_s=lock_timeout_s) as store:
        store.require_migrated()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ReviewConfigError(
                f"port {port} on {host} is already in use: another process (maybe another "
                "`recon-domains review`) holds it. Stop that one, or choose a free port with "
                "--port."
            ) from None
        raise ReviewConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    bound_port = int(sock.getsockname()[1])
    # On loopback, answer loopback names only (any port, so an SSH tunnel works) and the
    # operator's extra names (a reverse proxy's). Exposed, any name: the token guards.
    allowed = (
        frozenset(n.strip().lower() for n in (*LOOPBACK_NAMES, host, *extra_hosts) if n.strip())
        if loopback else None
    )
    review = Review(
        store_path, Path(concepts_root).expanduser(), source,
        push=push, token=token, allowed_hosts=allowed, port=bound_port,
        max_window_file_mb=max_window_file_mb,
        lock_timeout_s=lock_timeout_s,
        accepted_hosts=accepted_hosts,
    )
    config = uvicorn.Config(
        create_app(review), log_level="warning", access_log=False, lifespan="off",
        server_header=False, timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(config), sock, review


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def start_review_server(
    store_path: str | Path, concepts_root: str | Path, source: str, **kwargs: Any
) -> RunningReview:
    """Serve the review page in a background thread; port 0 picks a free port.

    Takes build()'s keyword arguments (push, host, port, token, extra_hosts).
    """
    server, sock, review = build(store_path, concepts_root, source, **kwargs)
    host = kwargs.get("host", "127.0.0.1")
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="recon-review", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the review server did not start; see the log above")
        time.sleep(0.02)
    return RunningReview(_url(host, review.port), server, thread, review)


REVIEW_STAGE = "review"  # the push ledger's stage for pushes made from this page


def make_push(client: Any, **push_kwargs: Any) -> PushFn:
    """A PushFn over the push engine (recon_domains.push.push_items) and a PeerTubeClient.

    The engine writes the ledger intent before the PUT and completes it right after, exactly
    as the staged push does; its PushResult tells the page why an item was not pushed.
    """
    from recon_domains.push import push_items

    push_kwargs.setdefault("workers", 1)

    def push(store: ReconStore, items: Sequence[PushCandidate]) -> object:
        return push_items(store, client, list(items), stage=REVIEW_STAGE, **push_kwargs)

    return push


def push_from_settings(settings: Settings) -> tuple[PushFn | None, str]:
    """The push callable for `recon-domains review`, or None, with a note for the operator.

    Pushing needs PEERTUBE_URL and PEERTUBE_PASSWORD; without them the page still assigns
    and the next steady-state push sends the assignment.
    """
    peertube = settings.peertube
    if not peertube.url or peertube.password is None:
        return None, (
            "PeerTube push not configured (PEERTUBE_URL / PEERTUBE_PASSWORD unset): "
            "assignments are written to RECON and the steady-state push sends them"
        )
    from recon_domains.peertube.client import PeerTubeClient

    return make_push(PeerTubeClient.from_settings(peertube)), f"pushing at once to {peertube.url}"


def cli_main(args: argparse.Namespace) -> int:
    """`recon-domains review [--db PATH] [--host H] [--port P]`: serve until Ctrl-C.

    Reads RECON_DB_PATH (unless --db), RECON_CONCEPTS_DIR, RECON_STREAM_SOURCE, the PeerTube
    settings for the immediate push, RECON_REVIEW_TOKEN (required off loopback) and
    RECON_REVIEW_HOSTS (comma-separated extra Host names on loopback, a proxy's name).
    """
    try:
        settings = Settings.from_env()
        db = Path(args.db) if args.db else require(settings.db_path, "RECON_DB_PATH")
        concepts = require(settings.concepts_dir, "RECON_CONCEPTS_DIR")
        push, push_note = push_from_settings(settings)
        token = settings.review.token
        server, sock, review = build(
            db, concepts, settings.stream_source,
            push=push, host=args.host, port=args.port,
            token=token.get_secret_value() if token else None,
            extra_hosts=settings.review.hosts,
            max_window_file_mb=settings.max_window_file_mb,
            lock_timeout_s=settings.lock_timeout_s,
            accepted_hosts=settings.accepted_hosts,
        )
    except (ConfigError, ReviewConfigError, ReconStoreError, OSError) as exc:
        print(f"recon-domains review: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception as exc:  # e.g. PeerTubeConfigError: an operator-readable message
        print(f"recon-domains review: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    guarded = " (token required)" if review.token else ""
    print(f"Review page: {_url(args.host, review.port)}{guarded}  "
          f"(source {settings.stream_source}; {push_note})")
    # The link Dagster shows on tiebreaker_assignments; say it, so a mismatch is noticed.
    print(f"Dagster links operators to {settings.review.url} (RECON_REVIEW_URL)", flush=True)
    server.run(sockets=[sock])  # until Ctrl-C
    return EXIT_OK

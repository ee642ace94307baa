"""The tied-video review page (runbook Step 8): a small stdlib HTTP server.

    GET  /          every tied_manual video, its concept counts and a domain choice
    GET  /api/tied  the same data as JSON
    POST /assign    form fields hash, domain: tied_manual → manual_assigned, then (when a
                    push is configured) push that one video's category to PeerTube now

It is an admin tool bound to loopback by default. CSRF tokens are out of scope for that;
instead every request's Host header must name this server (which defeats DNS rebinding) and
a POST whose Origin (or Referer) names another site is refused. The page never shows a
secret: the PeerTube password stays inside the push callable.

Every request opens its own short-lived ReconStore (a store is not shared across threads;
RECON keeps writing the file meanwhile). Assignments are serialized by one lock so a double
click cannot assign and push the same video twice.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import os
import secrets
import socket
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from recon_domains.config import ConfigError, Settings
from recon_domains.recon.store import PushCandidate, ReconStore, ReconStoreError
from recon_domains.review.tied import (
    Assignment,
    ReviewError,
    TiedVideo,
    assign_domain,
    tied_videos,
)

log = logging.getLogger(__name__)

# push(store, [candidate]): push these categorized items to PeerTube and record them in the
# store (ledger + peertube_category_pushed_at). Whatever it returns is ignored: the page
# reads peertube_category_pushed_at back to tell the operator what really happened.
PushFn = Callable[[ReconStore, Sequence[PushCandidate]], object]

MAX_FORM_BYTES = 16 * 1024
MAX_FLASHES = 200
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
NEXT_RUN = "it will be pushed by the next steady-state run"


def _template(name: str) -> Template:
    return Template(resources.files("recon_domains.review").joinpath(name).read_text("utf-8"))


PAGE = _template("page.html")
ROW = _template("row.html")
ERROR = _template("error.html")


def esc(value: object) -> str:
    """HTML-escape anything (quotes too: values also land in attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


# -- rendering ----------------------------------------------------------------------------
def _rows(counts: Sequence[tuple[str, int]], highlight: Sequence[str]) -> str:
    """Table rows of (domain, count), the highlighted (tied) domains in bold."""
    out = []
    for domain, n in counts:
        css = ' class="tied"' if domain in highlight else ""
        out.append(f'<tr{css}><td>{esc(domain)}</td><td class="n">{int(n)}</td></tr>')
    return "".join(out)


def _counts_table(video: TiedVideo) -> str:
    if not video.counts:
        return f'<p class="warn">No valid concepts now ({esc(video.concept_state)}).</p>'
    rows = _rows(video.counts, video.top_domains)
    note = ""
    if not video.still_tied:
        note = (
            '<p class="warn">The concept files changed since the tiebreaker: '
            f"{esc(video.top_domains[0])} is now alone on top.</p>"
        )
    return f"<table>{rows}</table>{note}"


def _channel_table(video: TiedVideo) -> str:
    if not video.channel_top:
        return '<p class="note">No categorized videos in this channel yet.</p>'
    rows = _rows(video.channel_top, video.top_domains)
    return f"<table>{rows}</table>"


def _options(video: TiedVideo) -> str:
    parts: list[str] = []
    tied = [d for d in video.domain_options() if d in video.top_domains]
    rest = [d for d in video.domain_options() if d not in video.top_domains]
    if tied:
        inner = "".join(f'<option value="{esc(d)}">{esc(d)}</option>' for d in tied)
        parts.append(f'<optgroup label="Tied">{inner}</optgroup>')
    inner = "".join(f'<option value="{esc(d)}">{esc(d)}</option>' for d in rest)
    parts.append(f'<optgroup label="{"Other domains" if tied else "Domains"}">{inner}</optgroup>')
    return "".join(parts)


def _watch(video: TiedVideo) -> str:
    if video.watch_url:
        return (
            f'<a href="{esc(video.watch_url)}" target="_blank" rel="noopener noreferrer">'
            "watch on PeerTube</a>"
        )
    problem = esc(video.path_problem or video.path)
    return f'<span class="warn">no usable watch URL ({problem})</span>'


def render_video(video: TiedVideo) -> str:
    """One video's section of the page; every piece of data is escaped."""
    return ROW.substitute(
        hash=esc(video.hash),
        title=esc(video.title),
        channel=esc(video.channel if video.channel is not None else "(no channel)"),
        channel_videos=video.channel_videos,
        watch=_watch(video),
        filename=esc(video.filename),
        counts=_counts_table(video),
        channel_top=_channel_table(video),
        fallback=esc(video.fallback_domain or "none"),
        options=_options(video),
    )


def render_page(
    videos: Sequence[TiedVideo],
    source: str,
    *,
    flash: tuple[str, str] | None = None,
    push_configured: bool,
) -> str:
    """The whole review page."""
    flash_html = ""
    if flash is not None:
        kind, message = flash
        css = "flash error" if kind == "error" else "flash"
        flash_html = f'<p class="{css}" role="status">{esc(message)}</p>'
    body = "".join(render_video(v) for v in videos)
    if not videos:
        body = '<p class="empty">No tied videos are waiting for a domain.</p>'
    push_note = (
        "it is pushed to PeerTube at once."
        if push_configured
        else "the next steady-state run pushes it to PeerTube (no push configured here)."
    )
    return PAGE.substitute(
        count=len(videos),
        source=esc(source),
        push_note=push_note,
        flash=flash_html,
        videos=body,
    )


def render_error(status: HTTPStatus, message: str, *, changed: str = "Nothing was changed.") -> str:
    """An error page: what went wrong and whether anything changed."""
    return ERROR.substitute(
        status=int(status), reason=esc(status.phrase), message=esc(message), changed=esc(changed)
    )


# -- the server ---------------------------------------------------------------------------
class ReviewServer(ThreadingHTTPServer):
    """ThreadingHTTPServer holding what the handlers need."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        *,
        store_path: Path,
        concepts_root: Path,
        source: str,
        push: PushFn | None,
        extra_hosts: Sequence[str] = (),
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, ReviewHandler)
        self.store_path = store_path
        self.concepts_root = concepts_root
        self.source = source
        self.push = push
        self.assign_lock = threading.Lock()
        self._flashes: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._flash_lock = threading.Lock()
        host = address[0]
        self.port = int(self.server_address[1])
        # Host names we answer to. Bound to loopback: only loopback names (any port, so an
        # SSH tunnel works) plus the operator's extra names (a reverse proxy's); this is the
        # DNS-rebinding defence. Bound elsewhere, the operator chose to expose it: any name.
        if host in LOOPBACK_NAMES or host.startswith("127."):
            self.allowed_hosts: frozenset[str] | None = frozenset(
                n.strip().lower() for n in (*LOOPBACK_NAMES, host, *extra_hosts) if n.strip()
            )
        else:
            self.allowed_hosts = None

    def put_flash(self, kind: str, message: str) -> str:
        token = secrets.token_urlsafe(9)
        with self._flash_lock:
            self._flashes[token] = (kind, message)
            while len(self._flashes) > MAX_FLASHES:
                self._flashes.popitem(last=False)
        return token

    def pop_flash(self, token: str | None) -> tuple[str, str] | None:
        if not token:
            return None
        with self._flash_lock:
            return self._flashes.pop(token, None)


class ReviewHandler(BaseHTTPRequestHandler):
    server: ReviewServer
    server_version = "recon-domains-review"

    def version_string(self) -> str:
        return self.server_version  # no Python version in the Server header

    # -- plumbing ------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:
        log.info("review %s - %s", self.address_string(), format % args)

    def _send(self, status: HTTPStatus, body: str, content_type: str) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        # No script on the page at all: forbid it outright, defence in depth for escaping.
        self.send_header(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'",
        )
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _html(self, status: HTTPStatus, body: str) -> None:
        self._send(status, body, "text/html; charset=utf-8")

    def _json(self, status: HTTPStatus, payload: Any) -> None:
        self._send(status, json.dumps(payload, indent=1), "application/json")

    def _error(self, status: HTTPStatus, message: str, **kwargs: str) -> None:
        if self.path.startswith("/api/"):
            self._json(status, {"error": message})
        else:
            self._html(status, render_error(status, message, **kwargs))

    def _host_ok(self) -> bool:
        allowed = self.server.allowed_hosts
        if allowed is None:
            return True
        try:
            host = urlsplit("//" + (self.headers.get("Host") or "").strip()).hostname
        except ValueError:  # e.g. a malformed IPv6 literal
            return False
        return host is not None and host.lower() in allowed

    def _same_origin(self) -> bool:
        """A POST from a page of another site is refused (loopback tool: no CSRF tokens)."""
        host = (self.headers.get("Host") or "").strip().lower()
        origin = self.headers.get("Origin")
        if origin is not None:
            return origin.strip().lower() in (f"http://{host}", f"https://{host}")
        referer = self.headers.get("Referer")
        if referer:
            return urlsplit(referer).netloc.lower() == host
        return True  # a non-browser client (curl, tests) sends neither

    def _open_store(self) -> ReconStore:
        return ReconStore.open(self.server.store_path)

    # -- routes --------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if not self._host_ok():
            self._error(HTTPStatus.FORBIDDEN, self._bad_host_message())
            return
        parts = urlsplit(self.path)
        if parts.path == "/":
            token = (parse_qs(parts.query).get("flash") or [None])[0]
            self._page(self.server.pop_flash(token))
        elif parts.path == "/api/tied":
            self._api()
        elif parts.path == "/favicon.ico":
            self.send_response(HTTPStatus.NO_CONTENT)
            self.end_headers()
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no page at {parts.path}; the review page is /")

    def do_POST(self) -> None:
        if not self._host_ok():
            self._error(HTTPStatus.FORBIDDEN, self._bad_host_message())
            return
        if not self._same_origin():
            self._error(
                HTTPStatus.FORBIDDEN,
                "refused: this form was submitted from another site (Origin/Referer do not "
                "match this server). Use the review page itself.",
            )
            return
        if urlsplit(self.path).path != "/assign":
            self._error(HTTPStatus.NOT_FOUND, "POST only to /assign")
            return
        self._assign()

    def _bad_host_message(self) -> str:
        return (
            f"refused: Host header {self.headers.get('Host')!r} does not name this server. "
            f"Open http://127.0.0.1:{self.server.port}/ instead (behind a reverse proxy, add "
            "its host name to RECON_REVIEW_HOSTS)."
        )

    def _load(self) -> list[TiedVideo]:
        with self._open_store() as store:
            store.require_migrated()
            return tied_videos(store, self.server.concepts_root, self.server.source)

    def _page(self, flash: tuple[str, str] | None) -> None:
        try:
            videos = self._load()
        except ReconStoreError as exc:
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, str(exc), changed="")
            return
        self._html(
            HTTPStatus.OK,
            render_page(
                videos, self.server.source, flash=flash,
                push_configured=self.server.push is not None,
            ),
        )

    def _api(self) -> None:
        try:
            videos = self._load()
        except ReconStoreError as exc:
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": str(exc)})
            return
        self._json(
            HTTPStatus.OK,
            {
                "source": self.server.source,
                "count": len(videos),
                "push_configured": self.server.push is not None,
                "videos": [v.as_json() for v in videos],
            },
        )

    def _read_form(self) -> dict[str, str] | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_FORM_BYTES:
            self._error(HTTPStatus.BAD_REQUEST, "the form is missing or too large")
            return None
        raw = self.rfile.read(length).decode("utf-8", errors="replace")
        fields = parse_qs(raw, keep_blank_values=True)
        return {k: v[0].strip() for k, v in fields.items() if v}

    def _assign(self) -> None:
        form = self._read_form()
        if form is None:
            return
        doc_hash, domain = form.get("hash", ""), form.get("domain", "")
        with self.server.assign_lock:
            try:
                with self._open_store() as store:
                    store.require_migrated()
                    assignment = assign_domain(store, doc_hash, domain, self.server.source)
                    log.info("review: %s assigned %r (manual_assigned)", doc_hash, domain)
                    message = f"Assigned {domain} to {assignment.title!r} (manual_assigned). "
                    kind, pushed = self._push(store, assignment)
                    message += pushed
            except ReviewError as exc:
                self._error(HTTPStatus.BAD_REQUEST, str(exc))
                return
            except ReconStoreError as exc:
                self._error(HTTPStatus.INTERNAL_SERVER_ERROR, str(exc), changed="")
                return
        token = self.server.put_flash(kind, message)
        self.send_response(HTTPStatus.SEE_OTHER)
        self.send_header("Location", f"./?flash={quote(token)}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _push(self, store: ReconStore, assignment: Assignment) -> tuple[str, str]:
        """Push the one assigned video now when a push is configured.

        Returns (flash kind, what happened): "ok", or "error" when a push was tried and
        PeerTube does not have the category (the assignment stands either way).
        """
        push = self.server.push
        if push is None:
            return "ok", f"No PeerTube push is configured here: {NEXT_RUN}."
        doc_hash = assignment.candidate.hash
        try:
            outcome = push(store, [assignment.candidate])
        except Exception as exc:  # the assignment stands; the steady state retries the push
            log.warning("review: push of %s failed: %s: %s", doc_hash, type(exc).__name__, exc)
            return "error", f"Pushing to PeerTube failed ({type(exc).__name__}: {exc}); {NEXT_RUN}."
        row = store.domain_row(doc_hash)
        if row is not None and row["peertube_category_pushed_at"]:
            return "ok", f"Pushed to PeerTube (category {assignment.category_id})."
        why = _push_problem(outcome, doc_hash)
        return "error", f"Not pushed to PeerTube now{f' ({why})' if why else ''}; {NEXT_RUN}."


def _push_problem(outcome: object, doc_hash: str) -> str | None:
    """Why the push engine did not push doc_hash, from its PushResult (duck-typed)."""
    for attr in ("failed", "skipped"):
        for item_hash, reason in getattr(outcome, attr, None) or ():
            if item_hash == doc_hash:
                return str(reason)
    reason = getattr(outcome, "abort_reason", None)
    return str(reason) if reason else None


# -- starting it --------------------------------------------------------------------------
@dataclass
class RunningReview:
    """A review server running in a background thread."""

    url: str
    server: ReviewServer
    thread: threading.Thread

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def __enter__(self) -> RunningReview:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _check_store(store_path: Path) -> None:
    """Fail at start, not on the first page load, when the database is wrong or unmigrated."""
    with ReconStore.open(store_path) as store:
        store.require_migrated()


def start_review_server(
    store_path: str | Path,
    concepts_root: str | Path,
    source: str,
    *,
    push: PushFn | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    extra_hosts: Sequence[str] = (),
) -> RunningReview:
    """Serve the review page in a background thread; port 0 picks a free port.

    extra_hosts: Host names to answer besides the loopback ones when bound to loopback,
    e.g. the public name of a reverse proxy in front of the page (RECON_REVIEW_HOSTS).
    Raises ReconStoreError when store_path is not a migrated RECON database.
    """
    store_path = Path(store_path).expanduser()
    _check_store(store_path)
    server = ReviewServer(
        (host, port),
        store_path=store_path,
        concepts_root=Path(concepts_root).expanduser(),
        source=source,
        push=push,
        extra_hosts=extra_hosts,
    )
    # A short poll interval makes stop() quick; the loop is idle-cheap either way.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1},
        name="recon-review", daemon=True,
    )
    thread.start()
    shown = f"[{host}]" if ":" in host else host
    return RunningReview(f"http://{shown}:{server.port}/", server, thread)


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


def push_from_env(settings: Settings) -> tuple[PushFn | None, str]:
    """The push callable for `recon-domains review`, or None, with a note for the operator.

    Pushing needs PEERTUBE_URL and PEERTUBE_PASSWORD; without them the page still assigns
    and the next steady-state run pushes.
    """
    if not settings.peertube_url or not os.environ.get("PEERTUBE_PASSWORD"):
        return None, (
            "PeerTube push not configured (PEERTUBE_URL / PEERTUBE_PASSWORD unset): "
            f"assignments are written to RECON and {NEXT_RUN}"
        )
    from recon_domains.peertube.client import PeerTubeClient

    return make_push(PeerTubeClient.from_env()), f"pushing at once to {settings.peertube_url}"


def cli_main(args: argparse.Namespace) -> int:
    """`recon-domains review --db PATH --port P --host H`: serve until Ctrl-C.

    Reads RECON_DB_PATH (unless --db), RECON_CONCEPTS_DIR, RECON_STREAM_SOURCE, the PeerTube
    variables for the immediate push, and RECON_REVIEW_HOSTS: comma-separated extra Host
    names to answer on loopback (a reverse proxy's public name).
    """
    settings = Settings.from_env()
    try:
        db = Path(args.db) if args.db else settings.require("recon_db_path", "RECON_DB_PATH")
        concepts = settings.require("recon_concepts_dir", "RECON_CONCEPTS_DIR")
        push, push_note = push_from_env(settings)
        running = start_review_server(
            Path(str(db)), Path(str(concepts)), settings.stream_source,
            push=push, host=args.host, port=args.port,
            extra_hosts=[h for h in os.environ.get("RECON_REVIEW_HOSTS", "").split(",") if h],
        )
    except (ConfigError, ReconStoreError, OSError) as exc:
        print(f"recon-domains review: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # e.g. PeerTubeConfigError: an operator-readable message
        print(f"recon-domains review: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(f"Review page: {running.url}  (source {settings.stream_source}; {push_note})")
    if running.server.allowed_hosts is None:
        print(f"warning: listening on {args.host}, not loopback; anyone who can reach it can "
              "assign domains.", file=sys.stderr)
    try:
        running.thread.join()
    except KeyboardInterrupt:
        print("stopping")
    finally:
        running.stop()
    return 0

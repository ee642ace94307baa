"""The sandbox PeerTube's request handling: PeerTube 8.0.1's middleware order and routes.

Each route runs PeerTube's middlewares in PeerTube's order, because the order decides which
refusal a client sees first. Sources (github:vdynmx/ApTube, a fork carrying v8.0.1):

- server/server.ts: body parsers before the API router (a malformed JSON body is a 400
  ``SyntaxError`` on any path), the final error handler (``err.name`` as the type, e.g.
  ``SequelizeDatabaseError`` with PostgreSQL's message), 404 for paths outside the API;
- server/core/controllers/api/index.ts: an unknown API path is a bare 400;
- server/core/middlewares/rate-limiter.ts: every API router but ``/runners`` and ``/ping``
  runs the API limiter first; over the limit, a request carrying a token is authenticated
  (a bad token is a 401, an admin's or moderator's passes), any other is a 429;
- server/core/middlewares/auth.ts with @node-oauth/oauth2-server 5.2's authenticate handler:
  every authentication failure is worded "Token is invalid", typed by the library's error;
- server/core/middlewares/user-right.ts: a missing right names its number and the path
  inside the router;
- the controllers and validators of each route, cited on its method.

Answers the sandbox makes up rather than derives carry a comment starting "invented:".
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.parser
import email.policy
import heapq
import json
import logging
import math
import random
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

import psycopg2

from recon_domains.peertube.urls import uuid_to_short
from recon_domains.sandbox.peertube_auth import (
    RIGHT_MANAGE_ANY_VIDEO_CHANNEL,
    RIGHT_MANAGE_PLUGINS,
    RIGHT_SEE_ALL_VIDEOS,
    RIGHT_UPDATE_ANY_VIDEO,
    ROLE_ADMINISTRATOR,
    ROLE_LABELS,
    Accounts,
    FixedWindowLimiter,
    LimitState,
    User,
)
from recon_domains.sandbox.peertube_knobs import ServerKnobs, checked_knobs
from recon_domains.sandbox.peertube_plugins import (
    CategoryRegistry,
    PluginInstallFailed,
    SandboxPlugins,
    split_npm_name,
)
from recon_domains.sandbox.peertube_problems import (
    ABSENT,
    ApiError,
    decode_uri_component,
    is_int_string,
    js_string,
    js_truthy,
    operation_docs,
    validation_error,
)
from recon_domains.sandbox.peertube_store import SandboxStore, channel_handle, db_error_text
from recon_domains.sandbox.peertube_validators import (
    COMMENTS_POLICIES,
    LICENCES,
    PAGINATION_COUNT_DEFAULT,
    PLUGIN_SORTS,
    PRIVACIES,
    PRIVACY_INTERNAL,
    PRIVACY_PASSWORD,
    PRIVACY_PRIVATE,
    PRIVACY_PUBLIC,
    PRIVACY_UNLISTED,
    STATE_PUBLISHED,
    STATE_TO_TRANSCODE,
    STATE_WAITING_FOR_LIVE,
    VIDEO_INCLUDE_NOT_PUBLISHED_STATE,
    VIDEO_SORTS,
    VIDEO_STATES,
    Checked,
    UploadedFile,
    check_npm_name,
    check_pagination,
    check_plugin_install,
    check_plugin_list,
    check_sort,
    check_video_filters,
    check_video_id,
    check_video_update,
    first_number,
    is_uuid_v4,
    nsfw_conflict,
    password_privacy_problem,
    schedule_conflict,
)

log = logging.getLogger("recon_domains.sandbox.peertube")

TOO_MANY_REQUESTS = "Too many requests, please try again later."
SERIALIZATION_FAILURE = (
    "could not serialize access due to read/write dependencies among transactions"
)
# Routers of PeerTube's API that run the API limiter first (all but /runners and /ping).
RATE_LIMITED_ROUTERS = frozenset({
    "server", "abuses", "bulk", "oauth-clients", "config", "users", "accounts",
    "video-channels", "video-channel-syncs", "video-playlists", "videos", "jobs", "metrics",
    "search", "overviews", "player-settings", "plugins", "custom-pages", "blocklist",
    "watched-words", "automatic-tags", "client-config",
})
JSON_LIMIT_BYTES = 500 * 1024  # express.json({limit: '500kb'})
URLENCODED_LIMIT_BYTES = 100 * 1024  # body-parser's default
# invented: PeerTube lists the ~180 ISO 639 languages of the iso-639-3 package; the
# sandbox knows only these.
LANGUAGES = {"en": "English", "fr": "French", "de": "German", "es": "Spanish"}
_BEARER = re.compile(r"^Bearer ([0-9a-zA-Z\-._~+/]+=*)$")

Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Request:
    """What PeerTube's middlewares know about a request.

    target: the request target as sent (PeerTube's ``req.originalUrl``); path and query
    are split from it, the query parsed like Express's qs parser. ``body`` is the raw body;
    ``form`` what the body parsers made of it (``req.body``); ``docs`` the route's
    documentation link once the route set it.
    """

    method: str
    target: str
    headers: Any
    body: bytes
    client_ip: str
    path: str = ""
    query: dict[str, Any] = field(default_factory=dict)
    form: Any = None
    docs: str | None = None
    files: dict[str, UploadedFile] = field(default_factory=dict)
    _auth: tuple[User | None, ApiError | None] | None = None

    def __post_init__(self) -> None:
        path, _, query = self.target.partition("?")
        self.path = path
        self.query = parse_query(query)

    @property
    def content_type(self) -> str:
        """The media type of the body, lower case, without parameters."""
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    @property
    def form_fields(self) -> dict[str, Any]:
        """req.body as an object (a JSON array or nothing reads as no field)."""
        return self.form if isinstance(self.form, dict) else {}


def parse_query(text: str, *, brackets: bool = True) -> dict[str, Any]:
    """Express's query parser (qs): repeated keys make arrays, and so does ``key[]``; with
    ``brackets=False``, node's querystring as express.urlencoded({extended: false}) uses
    (``key[]`` stays a key of its own)."""
    fields: dict[str, Any] = {}
    for part in text.split("&"):
        if not part:
            continue
        raw_key, _, raw_value = part.partition("=")
        key, value = unquote_plus(raw_key), unquote_plus(raw_value)
        as_list = brackets and key.endswith("[]")
        key = key[:-2] if as_list else key
        if key in fields:
            previous = fields[key]
            fields[key] = [*(previous if isinstance(previous, list) else [previous]), value]
        else:
            fields[key] = [value] if as_list else value
    return fields


def _json(status: int, obj: Any) -> Answer:
    # invented: no ETag (Express adds one to every JSON answer of a GET).
    return (
        status,
        {"Content-Type": "application/json; charset=utf-8"},
        json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
    )


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class PeerTubeApp:
    """State and routes of the sandbox; the HTTP layer calls ``handle``."""

    def __init__(
        self,
        store: SandboxStore,
        knobs: ServerKnobs,
        *,
        admin_username: str,
        admin_password: str,
        node: str | None = None,
    ) -> None:
        self.store = store
        self._knobs = knobs
        self._knob_lock = threading.Lock()
        self._rng = random.Random(knobs.random_seed)
        self._forced_faults: list[str] = []
        self._puts_in_flight = 0
        self._places_lock = threading.Lock()
        self._places: list[float] = []  # when each place of the capacity knob frees (heap)
        self._serving: list[tuple[float, float]] = []  # (start, finish) being served
        self.peak_in_service = 0  # the most requests served at once (service_time_s)
        self.accounts = Accounts()
        self.admin = self.accounts.add_user(admin_username, admin_password, ROLE_ADMINISTRATOR)
        self.api_limiter = FixedWindowLimiter()
        self.login_limiter = FixedWindowLimiter()
        self.categories = CategoryRegistry()
        self.plugins = SandboxPlugins(store, self.categories, node)
        self.client_id, self.client_secret = store.oauth_client(
            secrets.token_hex(16), secrets.token_hex(16)
        )
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Answer]]] = [
            (m, re.compile(rf"^/api/v1{p}/?$", re.IGNORECASE), h)
            for m, p, h in (
                ("GET", "/oauth-clients/local", self.get_oauth_client),
                ("POST", "/users/token", self.post_token),
                ("GET", "/users/me", self.get_me),
                ("GET", "/videos/categories", self.get_constants(self.categories.snapshot)),
                ("GET", "/videos/licences", self.get_constants(lambda: LICENCES)),
                ("GET", "/videos/languages", self.get_constants(lambda: LANGUAGES)),
                ("GET", "/videos/privacies", self.get_constants(lambda: PRIVACIES)),
                ("GET", "/videos", self.list_videos),
                ("GET", "/videos/([^/]+?)", self.get_video),
                ("PUT", "/videos/([^/]+?)", self.put_video),
                ("GET", "/plugins/available", self.list_available_plugins),
                ("GET", "/plugins", self.list_plugins),
                ("GET", "/plugins/([^/]+?)", self.get_plugin),
                ("POST", "/plugins/install", self.post_install),
                ("POST", "/plugins/uninstall", self.post_uninstall),
            )
        ]

    # knobs ------------------------------------------------------------------------------------
    @property
    def knobs(self) -> ServerKnobs:
        """A copy of the current knobs."""
        with self._knob_lock:
            return dataclasses.replace(self._knobs)

    def set_knobs(self, **changes: Any) -> ServerKnobs:
        """Change knobs (thread-safe); unknown names raise TypeError. Returns the new knobs."""
        changes = checked_knobs(changes)
        with self._knob_lock:
            self._knobs = dataclasses.replace(self._knobs, **changes)
            if "random_seed" in changes:
                self._rng = random.Random(self._knobs.random_seed)
            return dataclasses.replace(self._knobs)

    def clear_faults(self) -> None:
        """Forget the faults fail_next queued."""
        with self._knob_lock:
            self._forced_faults.clear()

    def fail_next(self, count: int = 1, mode: str = "error") -> None:
        """The next ``count`` requests matching the fault filter fail: ``mode`` "error"
        (500) or "drop" (connection closed without an answer). Deterministic."""
        if mode not in ("error", "drop"):
            raise ValueError(f"mode must be 'error' or 'drop', not {mode!r}")
        with self._knob_lock:
            self._forced_faults.extend([mode] * count)

    def fault_for(self, method: str, path: str) -> str | None:
        """Which fault (if any) this request suffers: None, "error" or "drop"."""
        with self._knob_lock:
            k = self._knobs
            if not path.startswith(k.fault_path_prefix):
                return None
            if k.fault_methods is not None and method not in k.fault_methods:
                return None
            if self._forced_faults:
                return self._forced_faults.pop(0)
            if k.drop_rate and self._rng.random() < k.drop_rate:
                return "drop"
            if k.error_rate and self._rng.random() < k.error_rate:
                return "error"
            return None

    @contextlib.contextmanager
    def in_flight(self, req: Request) -> Iterator[None]:
        """Count the video PUTs being served (the serialization-failure knob needs two)."""
        is_put = req.method == "PUT" and _is_video_path(req.path)
        if is_put:
            with self._knob_lock:
                self._puts_in_flight += 1
        try:
            yield
        finally:
            if is_put:
                with self._knob_lock:
                    self._puts_in_flight -= 1

    @contextlib.contextmanager
    def served(self) -> Iterator[None]:
        """Work on a request for `service_time_s`, on one of `capacity` places (knobs).

        A request takes the place that frees first (first come, first served), waits until
        then, is handled, and answers when its service time is over. The places' times are
        booked, not measured: a thread that wakes late answers late but never delays the
        next, so the capacity is exactly capacity / service_time_s however busy the machine.
        """
        knobs = self.knobs
        if not knobs.service_time_s:
            yield
            return
        now = time.monotonic()
        with self._places_lock:
            places = self._places
            while len(places) > knobs.capacity > 0:  # the capacity knob went down
                heapq.heappop(places)
            start = now
            if knobs.capacity and len(places) == knobs.capacity:
                start = max(now, heapq.heappop(places))
            finish = start + knobs.service_time_s
            if knobs.capacity:
                heapq.heappush(places, finish)
            self._serving = [(s, f) for s, f in self._serving if f > start]
            self._serving.append((start, finish))
            self.peak_in_service = max(self.peak_in_service, len(self._serving))
        if start > now:
            time.sleep(start - now)
        try:
            yield
        finally:
            rest = finish - time.monotonic()
            if rest > 0:
                time.sleep(rest)

    def _loses_serialization(self) -> bool:
        """Whether this PUT's transaction loses against a concurrent one (knobs)."""
        with self._knob_lock:
            others = self._puts_in_flight - 1
            if others < 1:
                return False
            chance = 1 - ((1 - self._knobs.serialization_failure_rate)
                          * (1 - self._knobs.serialization_conflict_rate) ** others)
            return chance > 0 and self._rng.random() < chance

    # the pipeline -------------------------------------------------------------------------------
    def handle(self, req: Request, fault: str | None = None) -> Answer:
        """Answer a request: body parsers, the API router and its limiter, the route."""
        headers: dict[str, str] = {}
        try:
            self._parse_body(req)
            if not re.match(r"^/api/v1(/|$)", req.path, re.IGNORECASE):
                # invented: PeerTube serves its web client, feeds, ActivityPub and static
                # files there; the sandbox serves none, so every such path is server.ts's
                # final "404, empty body".
                return 404, {}, b""
            router = req.path[len("/api/v1/"):].split("/")[0].lower()
            if router in RATE_LIMITED_ROUTERS:
                blocked = self._rate_limit(req, self.api_limiter, headers, login=False)
                if blocked is not None:
                    return blocked
            if fault == "error":
                # invented: a fault test's 500 (the knob error_rate / fail_next).
                raise ApiError(500, "Sandbox: injected server error")
            status, extra, payload = self._route(req, headers)
            headers.update(extra)
            return status, headers, payload
        except ApiError as err:
            return self._problem(err, headers)
        except psycopg2.Error as exc:
            # server.ts's error handler: Sequelize wraps PostgreSQL's error, keeps its
            # message and names itself SequelizeDatabaseError. invented: for a lost
            # connection or a full pool Sequelize has other names (SequelizeConnection...).
            log.error("database error on %s %s: %s", req.method, req.path, db_error_text(exc))
            detail = getattr(getattr(exc, "diag", None), "message_primary", None)
            return self._problem(
                ApiError(500, detail or db_error_text(exc), code="SequelizeDatabaseError",
                         docs=req.docs),
                headers,
            )
        except Exception:
            log.exception("unexpected error on %s %s", req.method, req.path)
            # invented: a sandbox bug is answered as server.ts's error handler answers a
            # plain Error, with a sentence of the sandbox's own.
            return self._problem(
                ApiError(500, "Sandbox: unexpected error, see its log", code="Error"), headers
            )

    @staticmethod
    def _problem(err: ApiError, headers: dict[str, str]) -> Answer:
        return (
            err.status,
            {**headers, "Content-Type": "application/problem+json; charset=utf-8"},
            json.dumps(err.body(), separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
        )

    def _parse_body(self, req: Request) -> None:
        """express.urlencoded({extended: false}) and express.json, as server.ts mounts them
        before any router; other bodies (multipart: the route's multer) leave req.body {}."""
        req.form = {}
        if not req.body:
            return
        ctype = req.content_type
        if ctype == "application/json" or (ctype.startswith("application/") and
                                            ctype.endswith("+json")):
            if len(req.body) > JSON_LIMIT_BYTES:
                raise ApiError(413, "request entity too large", code="PayloadTooLargeError")
            text = req.body.decode("utf-8", "replace")
            stripped = text.lstrip(" \t\n\r")
            # body-parser's strict mode: only an object or an array. invented: the detail
            # is V8's JSON.parse message in PeerTube (it depends on its Node version), the
            # sandbox words it its own way; status, type and code are body-parser's.
            if not stripped or stripped[0] not in "{[":
                raise ApiError(400, f"Unexpected token in JSON at position "
                               f"{len(text) - len(stripped)}", code="SyntaxError")
            try:
                req.form = json.loads(text, parse_constant=_refuse_js_constant)
            except ValueError as exc:
                position = exc.pos if isinstance(exc, json.JSONDecodeError) else 0
                raise ApiError(400, f"Unexpected token in JSON at position {position}",
                               code="SyntaxError") from None
        elif ctype == "application/x-www-form-urlencoded":
            if len(req.body) > URLENCODED_LIMIT_BYTES:
                raise ApiError(413, "request entity too large", code="PayloadTooLargeError")
            req.form = parse_query(req.body.decode("utf-8", "replace"), brackets=False)

    def _parse_multipart(self, req: Request) -> None:
        """multer.fields([thumbnailfile, previewfile]) of the video update route: text
        parts become req.body, files must be one of those two, once each."""
        if req.content_type != "multipart/form-data" or not req.body:
            return
        header = req.headers.get("Content-Type") or ""
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + header.encode("latin-1") + b"\r\n\r\n" + req.body
        )
        if not message.is_multipart():
            return
        fields: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not name:
                continue
            payload = part.get_payload(decode=True) or b""
            if part.get_filename() is None:
                fields[str(name)] = payload.decode("utf-8", "replace")
                continue
            if name not in ("thumbnailfile", "previewfile") or name in req.files:
                # multer's LIMIT_UNEXPECTED_FILE reaches the final error handler: no status,
                # so a 500 typed MulterError.
                raise ApiError(500, "Unexpected field", code="MulterError", docs=req.docs)
            # invented: the image is checked (type, size) but never stored.
            req.files[str(name)] = UploadedFile(str(part.get_filename()),
                                                part.get_content_type(), len(payload))
        req.form = fields

    def _rate_limit(self, req: Request, limiter: FixedWindowLimiter, headers: dict[str, str],
                    *, login: bool) -> Answer | None:
        """express-rate-limit with PeerTube's handler: headers always, over the limit a 429
        unless a valid admin or moderator token goes with the request."""
        k = self.knobs
        limit, window = (k.login_limit_max, k.login_limit_window_s) if login \
            else (k.rate_limit_max, k.rate_limit_window_s)
        state: LimitState = limiter.hit(req.client_ip, limit=limit, window_s=window)
        headers.update({
            "X-RateLimit-Limit": str(state.limit),
            "X-RateLimit-Remaining": str(state.remaining),
            "X-RateLimit-Reset": str(state.reset_epoch),
        })
        if not state.exceeded:
            return None
        headers["Retry-After"] = str(state.retry_after_s)
        if req.headers.get("Authorization"):
            # optionalAuthenticate: a bad token fails here, before the route set its docs.
            user = self._authenticate(req, docs=None)
            if k.admins_bypass_rate_limit and user.bypasses_rate_limit:
                return None
        # res.status(429).send(message): Express labels a string text/html.
        return 429, {**headers, "Content-Type": "text/html; charset=utf-8"}, \
            TOO_MANY_REQUESTS.encode()

    def _route(self, req: Request, headers: dict[str, str]) -> Answer:
        method = "GET" if req.method == "HEAD" else req.method
        for route_method, pattern, handler in self._routes:
            match = pattern.match(req.path)
            if match is None or route_method != method:
                continue
            params = []
            for raw in match.groups():
                decoded = decode_uri_component(raw)
                if decoded is None:  # Express's decode_param: a 400 URIError
                    raise ApiError(400, f"Failed to decode param '{raw}'", code="URIError")
                params.append(decoded)
            if handler == self.post_token:
                blocked = self._rate_limit(req, self.login_limiter, headers, login=True)
                if blocked is not None:
                    return blocked
            return handler(req, *params)
        # api/index.ts's badRequest: res.type('json').status(400).end().
        # invented for the API routes PeerTube serves and the sandbox does not (upload,
        # DELETE /videos/:id, /ping, the other routers): they get this 400 too.
        return 400, {"Content-Type": "application/json; charset=utf-8"}, b""

    # authentication and rights ------------------------------------------------------------------
    def _authenticate(self, req: Request, docs: str | None) -> User:
        """PeerTube's authenticate middleware; raises its ApiError (with ``docs``)."""
        if req._auth is None:
            req._auth = self._oauth_authenticate(req)
        user, error = req._auth
        if error is not None:
            raise _with_docs(error, docs)
        assert user is not None
        return user

    def _optional_user(self, req: Request, docs: str) -> User | None:
        """optionalAuthenticate: anonymous without an Authorization header."""
        if not req.headers.get("Authorization"):
            return None
        return self._authenticate(req, docs)

    def _oauth_authenticate(self, req: Request) -> tuple[User | None, ApiError | None]:
        """oauth2-server's AuthenticateHandler: one token, from the header, the query or a
        form body; every failure is reworded "Token is invalid"."""

        def fail(status: int, code: str) -> tuple[None, ApiError]:
            return None, ApiError(status, "Token is invalid", code=code)

        header = req.headers.get("Authorization")
        query_token = req.query.get("access_token")
        body_token = req.form_fields.get("access_token")
        if js_truthy(header) + js_truthy(query_token) + js_truthy(body_token) > 1:
            return fail(400, "invalid_request")  # "only one authentication method"
        if js_truthy(header):
            match = _BEARER.match(header)
            if match is None:
                return fail(400, "invalid_request")  # "malformed authorization header"
            token = match.group(1)
        elif js_truthy(query_token):
            return fail(400, "invalid_request")  # "do not send bearer tokens in query URLs"
        elif js_truthy(body_token):
            if req.method == "GET" or req.content_type != "application/x-www-form-urlencoded":
                return fail(400, "invalid_request")
            token = js_string(body_token)
        else:
            return fail(401, "unauthorized_request")  # "no authentication given"
        user = self.accounts.authenticate(token)
        if user is None:
            return fail(401, "invalid_token")  # unknown, revoked or expired
        return user, None

    @staticmethod
    def _require_right(req: Request, user: User, right: int, router: str) -> None:
        """ensureUserHasRight: req.path is the path inside the router."""
        if not user.has_right(right):
            inner = req.path[len("/api/v1/" + router):] or "/"
            raise ApiError(
                403,
                f"User {user.username} does not have right (No. {right}) to access to {inner}.",
                docs=req.docs,
            )

    def _owns(self, user: User) -> bool:
        # invented: every sandbox video and channel belongs to the admin's account.
        return user.id == self.admin.id

    # OAuth (controllers/api/oauth-clients.ts, users/token.ts, lib/auth/oauth.ts) ---------------
    def get_oauth_client(self, req: Request) -> Answer:
        """GET /oauth-clients/local; the Host check of a production instance is a knob."""
        req.docs = operation_docs("getOAuthClient")
        expected = self.knobs.expected_host
        host = req.headers.get("Host", "")
        if expected and host != expected:
            raise ApiError(403, f"Getting client tokens for host {host} is forbidden",
                           docs=req.docs)
        return _json(200, {"client_id": self.client_id, "client_secret": self.client_secret})

    def post_token(self, req: Request) -> Answer:
        """POST /users/token: handleOAuthToken's checks in its order."""
        req.docs = operation_docs("getOAuthToken")

        def oauth_error(code: str, detail: str) -> ApiError:
            return ApiError(400, detail, code=code, docs=req.docs)

        has_body = "Transfer-Encoding" in req.headers or is_int_string(
            req.headers.get("Content-Length") or "x")
        if req.content_type != "application/x-www-form-urlencoded" or not has_body:
            raise oauth_error("invalid_request",
                              "Invalid request: content must be application/x-www-form-urlencoded")
        # invented: a repeated form field (an array) is read as its text, e.g. "a,b".
        form = {k: js_string(v) for k, v in req.form_fields.items()}
        if not form.get("client_id") or not form.get("client_secret"):
            raise oauth_error("invalid_client",
                              "Invalid client: cannot retrieve client credentials")
        if (form["client_id"], form["client_secret"]) != (self.client_id, self.client_secret):
            raise oauth_error("invalid_client", "Invalid client: client is invalid")
        grant = form.get("grant_type")
        if not grant:
            raise oauth_error("invalid_request", "Missing parameter: `grant_type`")
        k = self.knobs
        if grant == "password":
            if not form.get("username"):
                raise oauth_error("invalid_request", "Missing parameter: `username`")
            if not form.get("password"):
                raise oauth_error("invalid_request", "Missing parameter: `password`")
            user = self.accounts.check_password(form["username"], form["password"])
            if user is None:
                raise oauth_error("invalid_grant", "Invalid grant: user credentials are invalid")
            pair = self.accounts.issue(user, k.token_lifetime_s, k.refresh_token_lifetime_s)
        elif grant == "refresh_token":
            if not form.get("refresh_token"):
                raise oauth_error("invalid_request", "Missing parameter: `refresh_token`")
            refreshed = self.accounts.refresh(
                form["refresh_token"], k.token_lifetime_s, k.refresh_token_lifetime_s
            )
            if refreshed == "expired":
                raise oauth_error("invalid_grant", "Invalid grant: refresh token has expired")
            if isinstance(refreshed, str):
                raise oauth_error("invalid_grant", "Invalid grant: refresh token is invalid")
            pair = refreshed
        else:
            raise oauth_error("unsupported_grant_type",
                              "Unsupported grant type: `grant_type` is invalid")
        now = time.time()
        status, headers, body = _json(
            200,
            {
                "token_type": "Bearer",
                "access_token": pair.access_token,
                "refresh_token": pair.refresh_token,
                # oauth-model.ts buildExpiresIn: whole seconds left, floored.
                "expires_in": math.floor(pair.access_expires_at - now),
                "refresh_token_expires_in": math.floor(pair.refresh_expires_at - now),
            },
        )
        headers["Cache-Control"] = "no-store"
        headers["Pragma"] = "no-cache"
        return status, headers, body

    def get_me(self, req: Request) -> Answer:
        """GET /users/me (controllers/api/users/me.ts: authenticate, no operation docs)."""
        user = self._authenticate(req, docs=None)
        # invented: PeerTube answers the whole user (email, quotas, settings, account...);
        # the sandbox only what a client checks.
        return _json(200, {"id": user.id, "username": user.username,
                           "role": {"id": user.role, "label": ROLE_LABELS[user.role]}})

    # videos (controllers/api/videos/index.ts, update.ts) -----------------------------------------
    @staticmethod
    def get_constants(table: Callable[[], dict[int, str] | dict[str, str]]
                      ) -> Callable[[Request], Answer]:
        """GET /videos/categories | licences | languages | privacies: the constant table
        (integer keys ascending, as Node orders them)."""
        return lambda req: _json(200, {str(k): v for k, v in table().items()})

    def _load_video(self, value: str) -> dict[str, Any]:
        """doesVideoExist: the video of a sanitized id or UUID, else 404. A numeric id goes
        to PostgreSQL as the string sent, as PeerTube's query sends it."""
        if is_int_string(value):
            row = self.store.find_video(video_id=value)
        else:
            row = self.store.find_video(uuid=value.lower())
        if row is None:
            raise ApiError(404, "Video not found")
        return row

    def get_video(self, req: Request, raw_id: str) -> Answer:
        """GET /videos/:id — optionalAuthenticate, videosCustomGetValidator('for-api'):
        the id, the video, then checkCanSeeVideo
        (server/core/middlewares/validators/shared/videos.ts)."""
        req.docs = operation_docs("getVideo")
        user = self._optional_user(req, req.docs)
        checked = Checked()
        video_id = check_video_id(checked, raw_id)
        if checked.errors:
            raise validation_error(req.target, checked.errors, req.docs)
        row = self._find(req, video_id)
        self._check_can_see(req, row, video_id, user)
        return _json(200, self._video_json(row, req, details=True))

    def _find(self, req: Request, video_id: str) -> dict[str, Any]:
        try:
            return self._load_video(video_id)
        except ApiError as err:
            err.docs = req.docs
            raise

    def _check_can_see(self, req: Request, row: dict[str, Any], param_id: str,
                       user: User | None) -> None:
        """checkCanSeeVideo: private and internal videos need a user; private (and unlisted
        ones asked by numeric id) need their owner or the right to see all videos."""
        privacy = row["privacy"]
        needs_user = privacy in (PRIVACY_PRIVATE, PRIVACY_INTERNAL) or (
            privacy == PRIVACY_UNLISTED and not is_uuid_v4(param_id)
        )
        if needs_user:
            if user is None:
                raise ApiError(401, "Authentication is required", docs=req.docs)
            if privacy == PRIVACY_INTERNAL:
                return
            if not (self._owns(user) or user.has_right(RIGHT_SEE_ALL_VIDEOS)):
                raise ApiError(403, "Cannot fetch information of private/internal/blocked video",
                               docs=req.docs)
            return
        if privacy == PRIVACY_PASSWORD:
            if req.headers.get("X-PeerTube-Video-Password") is None:
                message = "Please provide a password to access this password protected video"
                if user is None:
                    raise ApiError(401, message, code="video_requires_password", docs=req.docs)
                if self._owns(user) or user.has_right(RIGHT_SEE_ALL_VIDEOS):
                    return
                raise ApiError(403, message, code="video_requires_password", docs=req.docs)
            # invented: the sandbox keeps no video passwords, so every one is incorrect.
            raise ApiError(403, "Incorrect video password. Access to the video is denied",
                           code="incorrect_video_password", docs=req.docs)

    def put_video(self, req: Request, raw_id: str) -> Answer:
        """PUT /videos/:id — authenticate, multer, videosUpdateValidator, then the update
        in a serializable transaction (asyncRetryTransactionMiddleware)."""
        req.docs = operation_docs("putVideo")
        user = self._authenticate(req, req.docs)
        self._parse_multipart(req)
        body = req.form_fields
        checked, video_id = check_video_update(body, req.files, raw_id,
                                               self.categories.snapshot)
        if checked.errors:
            raise validation_error(req.target, checked.errors, req.docs)
        values = checked.values
        conflict = schedule_conflict(body, values) or nsfw_conflict(values)
        if conflict:
            raise ApiError(400, conflict, docs=req.docs)
        row = self._find(req, video_id)
        privacy = values.get("privacy")
        problem = password_privacy_problem(body, privacy if privacy is not None
                                           else row["privacy"])
        if problem:
            raise ApiError(400, problem, docs=req.docs)
        if (privacy is not None and row["isLive"] and row["privacy"] != privacy
                and row["state"] != STATE_WAITING_FOR_LIVE):
            raise ApiError(400, "Cannot update privacy of a live that has already started",
                           docs=req.docs)
        if row["remote"]:
            raise ApiError(403, "Cannot manage a video of another server.", docs=req.docs)
        if not (self._owns(user) or user.has_right(RIGHT_UPDATE_ANY_VIDEO)):
            raise ApiError(403, "Cannot manage a video of another user.", docs=req.docs)
        channel_id = values.get("channelId")
        if js_truthy(channel_id):
            if not self.store.channel_exists(int(channel_id)):
                raise ApiError(404, "Video channel not found", docs=req.docs)
            if not (self._owns(user) or user.has_right(RIGHT_MANAGE_ANY_VIDEO_CHANNEL)):
                raise ApiError(403, "This user cannot manage this channel", docs=req.docs)
        if self._loses_serialization():
            raise ApiError(500, SERIALIZATION_FAILURE, code="SequelizeDatabaseError",
                           docs=req.docs)
        self.store.update_video(row["id"], _video_changes(values))
        return 204, {}, b""

    def list_videos(self, req: Request) -> Answer:
        """GET /videos — paginationValidator, videosSortValidator, the defaults,
        optionalAuthenticate, commonVideosFiltersValidatorFactory, then listForApi
        (server/core/models/video/sql/video/videos-id-list-query-builder.ts)."""
        req.docs = operation_docs("getVideos")
        q = req.query
        for checked in (check_pagination(q), check_sort(q, VIDEO_SORTS)):
            if checked.errors:
                raise validation_error(req.target, checked.errors, req.docs)
        sort = js_string(q["sort"]) if js_truthy(q.get("sort")) else "-publishedAt"
        start = first_number(q["start"]) if js_truthy(q.get("start")) else 0
        count = first_number(q["count"]) if js_truthy(q.get("count")) \
            else PAGINATION_COUNT_DEFAULT
        user = self._optional_user(req, req.docs)
        filters = check_video_filters(q)
        if filters.errors:
            raise validation_error(req.target, filters.errors, req.docs)
        f = filters.values
        if (int(f.get("nsfwFlagsExcluded") or 0) & int(f.get("nsfwFlagsIncluded") or 0)) != 0:
            raise ApiError(400, "Cannot use same flags in nsfwFlagsIncluded and "
                           "nsfwFlagsExcluded at the same time", docs=req.docs)
        if (user is None or not user.has_right(RIGHT_SEE_ALL_VIDEOS)) and any(
            js_truthy(f.get(k)) for k in ("include", "privacyOneOf", "autoTagOneOf")
        ):
            raise ApiError(401, "You are not allowed to see all videos, specify a custom "
                           "include or auto tags filter", docs=req.docs)
        if user is None and f.get("excludeAlreadyWatched") is not None:
            raise ApiError(400, "Cannot use excludeAlreadyWatched parameter when auth token "
                           "is not provided", docs=req.docs)
        if js_truthy(q.get("filter")):
            raise ApiError(400, '"filter" query parameter is not supported anymore by '
                           'PeerTube. Please use "isLocal" and "include" instead',
                           docs=req.docs)
        where, params = _video_list_conditions(f, q, user)
        total, rows = self.store.list_videos(
            where=where, params=params, order=_video_order(sort), start=start, count=count,
            with_total=f.get("skipCount") is not True,
        )
        page: dict[str, Any] = {} if total is None else {"total": total}
        page["data"] = [self._video_json(r, req, details=False) for r in rows]
        return _json(200, page)

    # plugins (controllers/api/plugins.ts) ---------------------------------------------------------
    def _plugin_admin(self, req: Request, docs: str | None) -> User:
        req.docs = docs
        user = self._authenticate(req, docs)
        self._require_right(req, user, RIGHT_MANAGE_PLUGINS, "plugins")
        return user

    def list_available_plugins(self, req: Request) -> Answer:
        """GET /plugins/available: PeerTube asks its plugin index on the Internet."""
        self._plugin_admin(req, operation_docs("getAvailablePlugins"))
        # invented: the query is not validated; the answer is what PeerTube says when the
        # index cannot be reached, as from the sandbox's machine.
        raise ApiError(503, "Plugin index unavailable. Please retry later", docs=req.docs)

    def list_plugins(self, req: Request) -> Answer:
        """GET /plugins — listPluginsValidator, pagination, sort (default -createdAt)."""
        self._plugin_admin(req, operation_docs("getPlugins"))
        q = req.query
        listing = check_plugin_list(q)
        for checked in (listing, check_pagination(q), check_sort(q, PLUGIN_SORTS)):
            if checked.errors:
                raise validation_error(req.target, checked.errors, req.docs)
        values = listing.values
        plugin_type = values.get("pluginType") or None
        uninstalled = bool(values.get("uninstalled"))
        sort = js_string(q["sort"]) if js_truthy(q.get("sort")) else "-createdAt"
        start = first_number(q["start"]) if js_truthy(q.get("start")) else 0
        count = first_number(q["count"]) if js_truthy(q.get("count")) \
            else PAGINATION_COUNT_DEFAULT
        direction = "DESC" if sort.startswith("-") else "ASC"
        order = f'"{sort.lstrip("-")}" {direction}, id ASC'
        rows = self.store.plugins(uninstalled=uninstalled, plugin_type=plugin_type,
                                  order=order, start=start, count=count)
        total = self.store.count_plugins(uninstalled=uninstalled, plugin_type=plugin_type)
        return _json(200, {"total": total, "data": [_plugin_json(r) for r in rows]})

    def get_plugin(self, req: Request, npm_name: str) -> Answer:
        """GET /plugins/:npmName — existingPluginValidator (installed or not)."""
        self._plugin_admin(req, None)
        checked = check_npm_name(npm_name, "params")
        if checked.errors:
            raise validation_error(req.target, checked.errors, None)
        row = self.store.plugin(*split_npm_name(npm_name))
        if row is None:
            raise ApiError(404, "Plugin not found")
        return _json(200, _plugin_json(row))

    def post_install(self, req: Request) -> Answer:
        """POST /plugins/install — installOrUpdatePluginValidator, then PluginManager.install
        (a failure of any kind is a 400 naming what was to be installed)."""
        self._plugin_admin(req, operation_docs("addPlugin"))
        body = req.form_fields
        checked = check_plugin_install(body)
        if checked.errors:
            raise validation_error(req.target, checked.errors, req.docs)
        path, npm_name = body.get("path"), body.get("npmName")
        if not js_truthy(path) and not js_truthy(npm_name):
            raise ApiError(400, "Should have either a npmName or a path", docs=req.docs)
        if js_truthy(body.get("pluginVersion")) and not js_truthy(npm_name):
            raise ApiError(400, "Should have a npmName when specifying a pluginVersion",
                           docs=req.docs)
        to_install = js_string(npm_name if js_truthy(npm_name) else path)
        failure = ApiError(400, f"Cannot install plugin {to_install}", docs=req.docs)
        if not js_truthy(path):
            # invented: PeerTube would `yarn add` the package from npm; the sandbox has no
            # registry, as an offline PeerTube, so the install fails.
            log.warning("Cannot install plugin %s: the sandbox cannot reach npm", to_install)
            raise failure
        try:
            # With both given, PeerTube installs "from disk" at the npm name.
            return _json(200, _plugin_json(self.plugins.install_from_disk(to_install)))
        except PluginInstallFailed:
            raise failure from None

    def post_uninstall(self, req: Request) -> Answer:
        """POST /plugins/uninstall — uninstallPluginValidator, PluginManager.uninstall: 204
        whether or not the plugin was installed."""
        self._plugin_admin(req, operation_docs("uninstallPlugin"))
        npm_name = req.form_fields.get("npmName", ABSENT)
        checked = check_npm_name(npm_name, "body")
        if checked.errors:
            raise validation_error(req.target, checked.errors, req.docs)
        self.plugins.uninstall(npm_name)
        return 204, {}, b""

    # rendering ------------------------------------------------------------------------------------
    def _video_json(self, row: dict[str, Any], req: Request, *, details: bool) -> dict[str, Any]:
        """videoModelToFormattedJSON (and the details' extra fields), in PeerTube's key order.
        invented: no thumbnails, files, tags or viewers: the sandbox has none."""
        category = row["category"]
        host = req.headers.get("Host") or "localhost"
        handle = channel_handle(row["channelName"])
        base = f"http://{host}"
        description = row["description"]
        truncated = description[:247] + "..." if description and len(description) > 250 \
            else description
        account = {"id": self.admin.id, "name": self.admin.username,
                   "displayName": self.admin.username, "url": f"{base}/accounts/"
                   f"{self.admin.username}", "host": host, "avatars": []}
        channel = {"id": row["channelId"], "name": handle, "displayName": row["channelName"],
                   "url": f"{base}/video-channels/{handle}", "host": host, "avatars": []}
        video: dict[str, Any] = {
            "id": row["id"],
            "uuid": row["uuid"],
            "shortUUID": uuid_to_short(row["uuid"]),
            "url": row["url"],
            "name": row["name"],
            "category": {
                "id": category,
                "label": (self.categories.label(category) if category is not None else None)
                or "Unknown",
            },
            "licence": {"id": row["licence"], "label": LICENCES.get(row["licence"], "Unknown")},
            "language": {"id": row["language"],
                         "label": LANGUAGES.get(row["language"] or "", "Unknown")},
            "privacy": {"id": row["privacy"], "label": PRIVACIES.get(row["privacy"], "Unknown")},
            "nsfw": row["nsfw"],
            "nsfwFlags": 0,
            "nsfwSummary": None,
            "truncatedDescription": truncated,
            "description": description if details else truncated,
            "isLocal": not row["remote"],
            "duration": row["duration"],
            "aspectRatio": None,
            "views": row["views"],
            "viewers": 0,
            "likes": row["likes"],
            "dislikes": row["dislikes"],
            "thumbnailPath": None,
            "previewPath": None,
            "embedPath": f"/videos/embed/{row['uuid']}",
            "createdAt": _iso(row["createdAt"]),
            "updatedAt": _iso(row["updatedAt"]),
            "publishedAt": _iso(row["publishedAt"]),
            "originallyPublishedAt": _iso(row["originallyPublishedAt"]),
            "isLive": row["isLive"],
            "account": account,
            "channel": channel,
        }
        if details:
            video.update({
                "support": row["support"],
                "descriptionPath": None,
                "tags": [],
                "commentsPolicy": {"id": row["commentsPolicy"],
                                   "label": COMMENTS_POLICIES.get(row["commentsPolicy"],
                                                                  "Unknown")},
                "downloadEnabled": row["downloadEnabled"],
                "waitTranscoding": row["waitTranscoding"],
                "state": {"id": row["state"], "label": VIDEO_STATES.get(row["state"],
                                                                        "Unknown")},
                "trackerUrls": [],
                "files": [],
                "streamingPlaylists": [],
            })
        return video


def _refuse_js_constant(name: str) -> Any:
    """NaN and Infinity are Python's JSON extensions, not JSON."""
    raise ValueError(f"{name} is not JSON")


def _with_docs(error: ApiError, docs: str | None) -> ApiError:
    """A copy of an authentication failure carrying the route's docs (it is computed once
    per request and may be raised twice: by the limiter, then by the route)."""
    return ApiError(error.status, error.detail, code=error.code, docs=docs)


def _is_video_path(path: str) -> bool:
    return bool(re.match(r"^/api/v1/videos/[^/]+/?$", path, re.IGNORECASE))


def _video_changes(values: dict[str, Any]) -> dict[str, Any]:
    """The columns an update sets from the sanitized body (update.ts's keysToUpdate, plus
    commentsPolicy, originallyPublishedAt, privacy and the channel)."""
    changes: dict[str, Any] = {}
    for key in ("name", "category", "licence", "language", "nsfw", "waitTranscoding",
                "support", "description", "downloadEnabled", "privacy"):
        if key in values:
            value = values[key]
            changes[key] = int(value) if isinstance(value, float) else value
    if values.get("commentsPolicy") is not None:
        # invented: a null commentsPolicy is ignored (PeerTube's NOT NULL column refuses it).
        changes["commentsPolicy"] = int(js_string(values["commentsPolicy"]))
    if "originallyPublishedAt" in values:
        # invented: PostgreSQL reads the date where PeerTube uses JavaScript's Date.
        changes["originallyPublishedAt"] = values["originallyPublishedAt"]
    if js_truthy(values.get("channelId")):
        changes["channelId"] = int(values["channelId"])
    # invented: privacy changes skip PeerTube's side effects (publishedAt, federation), and
    # tags, nsfwFlags, nsfwSummary, scheduleUpdate and video passwords are not stored.
    return changes


def _video_list_conditions(
    f: dict[str, Any], q: dict[str, Any], user: User | None
) -> tuple[list[str], list[Any]]:
    """The WHERE of VideosIdListQueryBuilder for the filters the sandbox has data for."""
    where: list[str] = []
    params: list[Any] = []
    include = int(js_string(f["include"])) if "include" in f else 0
    if not include & VIDEO_INCLUDE_NOT_PUBLISHED_STATE:
        where.append(f'(v.state = {STATE_PUBLISHED} OR (v.state = {STATE_TO_TRANSCODE} '
                     'AND v."waitTranscoding" IS false))')
    if f.get("isLocal") is not None:
        where.append(f"v.remote IS {'FALSE' if f['isLocal'] else 'TRUE'}")
    if "privacyOneOf" in f:
        where.append("v.privacy = ANY(%s::text[]::integer[])")
        params.append([js_string(v) for v in f["privacyOneOf"]])
    elif user is not None:
        # wherePrivacyAvailable: a user also sees internal videos. PEERTUBE-FACTS.md says
        # "with a token but no privacy filter, only public videos count": what it observed
        # was a private video left out, which this agrees with.
        where.append(f"v.privacy IN ({PRIVACY_PUBLIC}, {PRIVACY_INTERNAL})")
    else:
        where.append(f"v.privacy = {PRIVACY_PUBLIC}")
    nsfw = q.get("nsfw")
    # Anonymous: the instance's default policy; users: theirs (default "do_not_list").
    if nsfw == "true":
        where.append("v.nsfw IS TRUE")
    elif nsfw != "both":
        where.append("v.nsfw IS FALSE")
    if f.get("isLive") is not None:
        where.append(f'v."isLive" IS {"TRUE" if f["isLive"] else "FALSE"}')
    for name, column in (("categoryOneOf", "category"), ("licenceOneOf", "licence")):
        if name in f:
            # Given as text, read by PostgreSQL as PeerTube's IN (:values) is.
            where.append(f"v.{column} = ANY(%s::text[]::integer[])")
            params.append([js_string(v) for v in f[name]])
    if "languageOneOf" in f:
        languages = [v for v in f["languageOneOf"] if v and v != "_unknown"]
        parts = ["v.language = ANY(%s)"] if languages else []
        params.extend([languages] if languages else [])
        if "_unknown" in f["languageOneOf"]:
            parts.append("v.language IS NULL")
        where.append("(" + " OR ".join(parts) + ")" if parts else "FALSE")
    for name in ("tagsOneOf", "tagsAllOf", "autoTagOneOf"):
        if f.get(name):
            where.append("FALSE")  # sandbox videos have no tags
    # invented: `search` and the NSFW flag filters are accepted and not applied.
    return where, params


def _video_order(sort: str) -> str:
    """VideosIdListQueryBuilder.buildOrder for the sandbox's columns."""
    direction = "DESC" if sort.startswith("-") else "ASC"
    column = sort.lstrip("-")
    expression = {
        "name": "v.name", "duration": "v.duration", "createdAt": 'v."createdAt"',
        "publishedAt": 'v."publishedAt"', "views": "v.views", "likes": "v.likes",
        "originallyPublishedAt": 'COALESCE(v."originallyPublishedAt", v."publishedAt")',
        # invented: no comments, no view history, no files, no search: these sort by views
        # (trending, hot, best) or keep the id order.
        "trending": "v.views", "hot": "v.views", "best": "v.views",
    }.get(column)
    if expression is None:
        return "v.id ASC"
    return f"{expression} {direction}, v.id ASC"


def _plugin_json(row: dict[str, Any]) -> dict[str, Any]:
    """PluginModel.toFormattedJSON."""
    return {
        "name": row["name"],
        "type": row["type"],
        "version": row["version"],
        "latestVersion": row["latestVersion"],
        "enabled": row["enabled"],
        "uninstalled": row["uninstalled"],
        "peertubeEngine": row["peertubeEngine"],
        "description": row["description"],
        "homepage": row["homepage"],
        "settings": row["settings"],
        "createdAt": _iso(row["createdAt"]),
        "updatedAt": _iso(row["updatedAt"]),
    }


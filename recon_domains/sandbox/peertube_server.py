"""A PeerTube-compatible API server for tests, rehearsals and demos.

It speaks real HTTP/1.1 (keep-alive) on a loopback port and keeps its videos in PostgreSQL in
a ``video`` table shaped like PeerTube's, so the push, the verification queries, ``pg_dump``
and the rollback all run against the real thing's shapes. It reproduces PeerTube 8.0.1 on the
calls the project makes, as recorded in PEERTUBE-FACTS.md and the conformance record:

- ``GET  /api/v1/oauth-clients/local``; ``POST /api/v1/users/token`` (password and refresh
  grants, refresh revokes the old access token at once, ``Cache-Control: no-store``);
- ``GET  /api/v1/videos/categories`` (built-ins 1–18, then plugin ones);
- ``GET|PUT /api/v1/videos/{id|uuid|shortUUID}`` (JSON, multipart, urlencoded bodies);
- ``GET  /api/v1/users/me``; ``GET /api/v1/plugins``; ``POST /api/v1/plugins/install``
  (validated with plugin_check, ``register()`` run under Node) and ``/uninstall``;
- RFC 7807 error bodies, ``X-RateLimit-*`` headers on every answer, the API limit (admins and
  moderators bypass it but use up quota) and the login limit, both answering 429 as text.

Test knobs (ServerKnobs): latency, injected 500s, dropped connections, token lifetimes,
rate-limit windows and maxima, a required Host header. Change them on a running server with
``RunningPeerTube.set_knobs(...)``; ``fail_next(n, mode)`` injects deterministic faults.

Where PeerTube's behaviour is not recorded, the sandbox errs toward strictness and says so in
a comment marked "Sandbox:". Known differences from real PeerTube:

- a malformed video id answers 400 in express-validator's shape (detail "Incorrect request
  parameters: id", the sentence "Should have a valid video id (id, short UUID or UUID)" in
  ``invalid-params.id.msg``); the record only fixes status and content type. As in PeerTube,
  a UUID must be version 4, and any 22-character id is decoded as a short UUID first;
- tokens live in memory (a sandbox restart logs everyone out; PeerTube keeps them in its
  database); the OAuth client is persisted;
- the 429 body is the plain sentence, labelled ``text/html`` like Express's ``res.send``;
  ``Retry-After`` is the whole window (express-rate-limit);
- PUT understands ``category``, ``name`` and ``licence``; other fields are accepted and ignored;
  ``"updatedAt"`` moves only when a value changes (Sequelize skips unchanged saves);
- every video belongs to the admin: a plain user gets 403 on PUT and on private videos;
- plugins install from a path only (no npm registry); a restart (``simulate_restart`` or a
  new server on the same database) re-registers the categories recorded at install instead
  of running ``register()`` again; uninstalling a plugin that is not installed answers 404
  (not recorded);
- unknown API paths answer a bare 400 "Bad Request" (PeerTube's API router fallback);
- no upload, listing, federation or static files.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import email.parser
import email.policy
import json
import logging
import math
import os
import random
import re
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import psycopg2

from recon_domains.peertube.urls import SHORT_UUID_LENGTH, short_to_uuid, uuid_to_short
from recon_domains.sandbox.peertube_auth import (
    ROLE_ADMINISTRATOR,
    ROLE_LABELS,
    ROLE_MODERATOR,
    ROLE_USER,
    Accounts,
    FixedWindowLimiter,
    LimitState,
    User,
)
from recon_domains.sandbox.peertube_store import (
    SandboxStore,
    SeedReport,
    channel_handle,
    db_error_text,
    is_uuid_v4,
)
from recon_domains.taxonomy import PEERTUBE_BUILT_IN_CATEGORIES

log = logging.getLogger("recon_domains.sandbox.peertube")

DOCS = "https://docs.joinpeertube.org/api-rest-reference.html"
DEFAULT_ADMIN_PASSWORD = "sandbox-admin"
PLUGIN_TYPE_PLUGIN = 1
PLUGIN_TYPE_THEME = 2
TOO_MANY_REQUESTS = "Too many requests, please try again later."

LICENCES = {
    1: "Attribution",
    2: "Attribution - Share Alike",
    3: "Attribution - No Derivatives",
    4: "Attribution - Non Commercial",
    5: "Attribution - Non Commercial - Share Alike",
    6: "Attribution - Non Commercial - No Derivatives",
    7: "Public Domain Dedication",
}
LANGUAGES = {"en": "English", "fr": "French", "de": "German", "es": "Spanish"}
PRIVACIES = {1: "Public", 2: "Unlisted", 3: "Private", 4: "Internal", 5: "Password protected"}
STATES = {1: "Published", 2: "To transcode", 3: "To import"}
_NPM_NAME = re.compile(r"^[a-z\-._0-9]+$")
_JS_INT = re.compile(r"^\s*([+-]?\d+)")
_INT_ID = re.compile(r"^[+-]?\d+$")


# ---------------------------------------------------------------------------- knobs


@dataclass
class ServerKnobs:
    """Behaviour a test can change. Defaults are PeerTube's production defaults.

    latency_s: sleep before answering each request.
    error_rate: fraction of matching requests answered 500 (problem+json).
    drop_rate: fraction of matching requests whose connection is closed without an answer.
    fault_methods: HTTP methods the two faults apply to (None: every method).
    fault_path_prefix: path prefix the faults apply to.
    token_lifetime_s / refresh_token_lifetime_s: OAuth lifetimes (1 day / 2 weeks).
    rate_limit_window_s / rate_limit_max: the API limit per IP (10 s / 50).
    login_limit_window_s / login_limit_max: the token endpoint limit per IP (5 min / 15).
    expected_host: when set, ``GET /oauth-clients/local`` answers 403 unless the Host header
        equals it (production PeerTube's check: why the client has a Host override).
    random_seed: seed of the fault dice, so a run is reproducible.
    admins_bypass_rate_limit: PeerTube's behaviour (True); False makes the API limit refuse
        admins and moderators too (benchmarks of a client's 429 handling).
    """

    latency_s: float = 0.0
    error_rate: float = 0.0
    drop_rate: float = 0.0
    fault_methods: frozenset[str] | None = None
    fault_path_prefix: str = "/api/v1/"
    token_lifetime_s: float = 86400.0
    refresh_token_lifetime_s: float = 1209600.0
    rate_limit_window_s: float = 10.0
    rate_limit_max: int = 50
    login_limit_window_s: float = 300.0
    login_limit_max: int = 15
    expected_host: str | None = None
    random_seed: int = 0
    admins_bypass_rate_limit: bool = True


KNOB_NAMES = frozenset(f.name for f in dataclasses.fields(ServerKnobs))


def _checked_knobs(changes: dict[str, Any]) -> dict[str, Any]:
    """Knob values as ServerKnobs takes them: unknown names raise TypeError, fault_methods
    become an upper-case frozenset."""
    unknown = set(changes) - KNOB_NAMES
    if unknown:
        raise TypeError(f"unknown knob(s) {sorted(unknown)}; known: {sorted(KNOB_NAMES)}")
    methods = changes.get("fault_methods")
    if methods is not None:
        changes = {**changes, "fault_methods": frozenset(m.upper() for m in methods)}
    return changes


class CategoryRegistry:
    """PeerTube's video category table: built-ins plus what plugins' register() added.

    Mirrors PeerTube's VideoConstantManager: addConstant refuses an id that exists; each
    registration of a plugin starts a fresh record of what it added, and unregistering
    removes only what is in that record. Reinstalling an installed plugin therefore records
    nothing (every id exists already), and a later uninstall leaves its categories until a
    restart: the quirk PEERTUBE-FACTS.md describes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._table: dict[int, str] = dict(PEERTUBE_BUILT_IN_CATEGORIES)
        self._added_by: dict[str, dict[int, str]] = {}

    def snapshot(self) -> dict[int, str]:
        """The current table, ids ascending (how Node serialises integer keys)."""
        with self._lock:
            return dict(sorted(self._table.items()))

    def label(self, category_id: int) -> str | None:
        """The label of a registered id, else None."""
        with self._lock:
            return self._table.get(category_id)

    def register(self, npm_name: str, categories: dict[int, str]) -> dict[int, str]:
        """Run a plugin's addConstant calls; returns what was really added."""
        with self._lock:
            added: dict[int, str] = {}
            for key, label in categories.items():
                if key in self._table:
                    log.warning("Cannot add video category %s by %s: already exists", key, npm_name)
                    continue
                self._table[key] = label
                added[key] = label
            self._added_by[npm_name] = added
            return added

    def unregister(self, npm_name: str) -> None:
        """Remove what the plugin's last registration added."""
        with self._lock:
            for key in self._added_by.pop(npm_name, {}):
                self._table.pop(key, None)

    def reset(self) -> None:
        """Back to the built-ins (a restart, before plugins register again)."""
        with self._lock:
            self._table = dict(PEERTUBE_BUILT_IN_CATEGORIES)
            self._added_by.clear()


# ---------------------------------------------------------------------------- errors


class ApiError(Exception):
    """An answer other than success, raised by a route and rendered by the handler."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str | None = None,
        instance: str | None = None,
        extra: dict[str, Any] | None = None,
        docs: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code
        self.instance = instance
        self.extra = extra or {}
        self.docs = docs

    def body(self) -> dict[str, Any]:
        """The RFC 7807 document, keys in PeerTube's order."""
        doc: dict[str, Any] = {}
        if self.code:
            doc["type"] = f"{DOCS}#section/Errors/{self.code}"
        else:
            # http-problem-details: no type -> about:blank with the status phrase as title.
            doc["type"] = "about:blank"
            doc["title"] = HTTPStatus(self.status).phrase
        doc["detail"] = self.detail
        if self.instance:
            doc["instance"] = self.instance
        doc["status"] = self.status
        doc.update(self.extra)
        if self.docs:
            doc["docs"] = self.docs
        if self.code:
            doc["code"] = self.code
        return doc


def _validation_error(instance: str, errors: dict[str, dict[str, Any]], docs: str) -> ApiError:
    """express-validator's failure as PeerTube renders it (areValidationErrors)."""
    return ApiError(
        400,
        "Incorrect request parameters: " + ", ".join(errors),
        instance=instance,
        extra={"invalid-params": errors},
        docs=docs,
    )


def _field_error(value: Any, msg: str, path: str, location: str) -> dict[str, Any]:
    return {"type": "field", "value": value, "msg": msg, "path": path, "location": location}


def js_to_int_or_null(value: Any) -> Any:
    """PeerTube's toIntOrNull sanitizer: 'null'/None -> None, numbers stay, strings go
    through parseInt (NaN, rendered as JSON null, for garbage)."""
    if value is None or value == "null":
        return None
    if isinstance(value, bool):
        return float("nan")
    if isinstance(value, int | float):
        return value
    match = _JS_INT.match(str(value))
    return int(match.group(1)) if match else float("nan")


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None  # JSON.stringify(NaN) is null
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# ---------------------------------------------------------------------------- the app


@dataclass
class Request:
    """What a route needs to know about the request."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Any
    body: bytes
    client_ip: str
    user: User | None = None
    auth_error: ApiError | None = None


class PeerTubeApp:
    """State and routes of the sandbox; the HTTP handler calls ``dispatch``."""

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
        self.accounts = Accounts()
        self.admin = self.accounts.add_user(admin_username, admin_password, ROLE_ADMINISTRATOR)
        self.api_limiter = FixedWindowLimiter()
        self.login_limiter = FixedWindowLimiter()
        self.categories = CategoryRegistry()
        self.node = node
        self._plugin_lock = threading.Lock()
        self.client_id, self.client_secret = store.oauth_client(
            _random_token(32), _random_token(32)
        )
        self.reload_plugins()

    # knobs ------------------------------------------------------------------------------------
    @property
    def knobs(self) -> ServerKnobs:
        """A copy of the current knobs."""
        with self._knob_lock:
            return dataclasses.replace(self._knobs)

    def set_knobs(self, **changes: Any) -> ServerKnobs:
        """Change knobs (thread-safe); unknown names raise TypeError. Returns the new knobs."""
        changes = _checked_knobs(changes)
        with self._knob_lock:
            self._knobs = dataclasses.replace(self._knobs, **changes)
            if "random_seed" in changes:
                self._rng = random.Random(self._knobs.random_seed)
            return dataclasses.replace(self._knobs)

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

    # plugins ----------------------------------------------------------------------------------
    def reload_plugins(self) -> None:
        """What a PeerTube restart does to plugins: built-ins, then every installed plugin's
        categories again. Sandbox: registers the categories recorded at install instead of
        running register() under Node again."""
        with self._plugin_lock:
            self.categories.reset()
            for row in self.store.plugins(uninstalled=False, plugin_type=PLUGIN_TYPE_PLUGIN):
                recorded = row.get("sandboxCategories") or {}
                self.categories.register(
                    "peertube-plugin-" + row["name"], {int(k): v for k, v in recorded.items()}
                )

    def install_plugin(self, path: str) -> dict[str, Any]:
        """Install a plugin from a folder like PeerTube does; raises ApiError 400 on failure."""
        from recon_domains.peertube import plugin_check

        failure = ApiError(400, f"Cannot install plugin {path}", docs=f"{DOCS}#operation/addPlugin")
        folder = Path(path)
        npm_name = folder.name
        # PeerTube logs the reason and answers only "Cannot install plugin"; so do we.
        if not folder.is_absolute() or not folder.is_dir():
            log.warning("Cannot install plugin %s: not an existing absolute folder", path)
            raise failure
        if not npm_name.startswith("peertube-plugin-"):
            log.warning("Cannot install plugin %s: %s is not a plugin npm name", path, npm_name)
            raise failure
        problems, added = plugin_check.check_and_register(folder, node=self.node)
        if problems:
            log.warning("Cannot install plugin %s: %s", path, "; ".join(problems))
            raise failure
        package = json.loads((folder / "package.json").read_text(encoding="utf-8"))
        with self._plugin_lock:
            # Sandbox: like PeerTube 8.0.1, reinstalling an installed plugin registers it
            # again without unregistering it first (see CategoryRegistry).
            self.categories.register(npm_name, added)
            row = self.store.upsert_plugin(
                {
                    "name": npm_name[len("peertube-plugin-") :],
                    "type": PLUGIN_TYPE_PLUGIN,
                    "version": str(package.get("version", "0.0.0")),
                    "peertubeEngine": str((package.get("engine") or {}).get("peertube", "")),
                    "description": str(package.get("description", ""))[:255],
                    "homepage": str(package.get("homepage", ""))[:255],
                    "path": str(folder),
                    "categories": {str(k): v for k, v in added.items()},
                }
            )
        return _plugin_json(row)

    def uninstall_plugin(self, npm_name: str) -> None:
        """Uninstall: unregister its categories at once, keep the row as uninstalled."""
        short = npm_name[len("peertube-plugin-") :]
        with self._plugin_lock:
            installed = {r["name"] for r in self.store.plugins(uninstalled=False, plugin_type=None)}
            if short not in installed:
                # Sandbox: PeerTube's answer for a plugin that is not installed is not
                # recorded; a 404 is the strict choice.
                raise ApiError(
                    404,
                    f"Plugin {npm_name} does not exist",
                    docs=f"{DOCS}#operation/uninstallPlugin",
                )
            self.categories.unregister(npm_name)
            self.store.mark_uninstalled(short, PLUGIN_TYPE_PLUGIN)

    # request handling ---------------------------------------------------------------------------
    def authenticate(self, req: Request) -> None:
        """Fill req.user / req.auth_error from the Authorization header (oauth2-server)."""
        header = req.headers.get("Authorization")
        if header is None:
            req.auth_error = ApiError(401, "Token is invalid", code="unauthorized_request")
            return
        match = re.match(r"^Bearer\s+(\S+)$", header.strip())
        if not match:
            req.auth_error = ApiError(400, "Token is invalid", code="invalid_request")
            return
        user = self.accounts.authenticate(match.group(1))
        if user is None:
            req.auth_error = ApiError(401, "Token is invalid", code="invalid_token")
            return
        req.user = user

    def rate_limit(self, req: Request) -> tuple[LimitState, bool]:
        """Count the request against the API limit (and the login limit on the token route).
        Returns the state to put in headers and whether to answer 429."""
        k = self.knobs
        state = self.api_limiter.hit(
            req.client_ip, limit=k.rate_limit_max, window_s=k.rate_limit_window_s
        )
        # Admins and moderators bypass the limiter's 429 (their requests still count).
        blocked = state.exceeded and not (
            k.admins_bypass_rate_limit and req.user is not None and req.user.bypasses_rate_limit
        )
        if req.method == "POST" and req.path == "/api/v1/users/token":
            login = self.login_limiter.hit(
                req.client_ip, limit=k.login_limit_max, window_s=k.login_limit_window_s
            )
            # The login limiter runs second: its headers overwrite the API limiter's.
            return login, blocked or login.exceeded
        return state, blocked

    def dispatch(self, req: Request) -> tuple[int, dict[str, str], bytes]:
        """Route a request; returns (status, headers, body)."""
        path = req.path
        routes: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = [
            ("GET", re.compile(r"^/api/v1/oauth-clients/local/?$"), self.get_oauth_client),
            ("POST", re.compile(r"^/api/v1/users/token/?$"), self.post_token),
            ("GET", re.compile(r"^/api/v1/users/me/?$"), self.get_me),
            ("GET", re.compile(r"^/api/v1/videos/categories/?$"), self.get_categories),
            ("GET", re.compile(r"^/api/v1/videos/([^/]+)/?$"), self.get_video),
            ("PUT", re.compile(r"^/api/v1/videos/([^/]+)/?$"), self.put_video),
            ("GET", re.compile(r"^/api/v1/plugins/?$"), self.list_plugins),
            ("POST", re.compile(r"^/api/v1/plugins/install/?$"), self.post_install),
            ("POST", re.compile(r"^/api/v1/plugins/uninstall/?$"), self.post_uninstall),
        ]
        for method, pattern, handler in routes:
            match = pattern.match(path)
            if match and method == req.method:
                return handler(req, *[unquote(g) for g in match.groups()])
        # PeerTube's API router ends with `badRequest` (a bare 400) for unknown API paths.
        return 400, {"Content-Type": "text/plain; charset=utf-8"}, b"Bad Request"

    # routes -------------------------------------------------------------------------------------
    def get_oauth_client(self, req: Request) -> tuple[int, dict[str, str], bytes]:
        expected = self.knobs.expected_host
        host = req.headers.get("Host", "")
        if expected and host != expected:
            raise ApiError(
                403,
                f"Getting client tokens for host {host} is forbidden",
                docs=f"{DOCS}#operation/getOAuthClient",
            )
        return _json(200, {"client_id": self.client_id, "client_secret": self.client_secret})

    def post_token(self, req: Request) -> tuple[int, dict[str, str], bytes]:
        docs = f"{DOCS}#operation/getOAuthToken"

        def oauth_error(status: int, code: str, detail: str) -> ApiError:
            return ApiError(status, detail, code=code, docs=docs)

        ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise oauth_error(
                400,
                "invalid_request",
                "Invalid request: content must be application/x-www-form-urlencoded",
            )
        form = {k: v[0] for k, v in parse_qs(req.body.decode("utf-8", "replace")).items()}
        grant = form.get("grant_type")
        if not grant:
            raise oauth_error(400, "invalid_request", "Missing parameter: `grant_type`")
        if (
            form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
        ):
            raise oauth_error(400, "invalid_client", "Invalid client: client is invalid")
        k = self.knobs
        if grant == "password":
            if not form.get("username") or not form.get("password"):
                raise oauth_error(400, "invalid_request", "Missing parameter: `username`")
            user = self.accounts.check_password(form["username"], form["password"])
            if user is None:
                raise oauth_error(
                    400, "invalid_grant", "Invalid grant: user credentials are invalid"
                )
            pair = self.accounts.issue(user, k.token_lifetime_s, k.refresh_token_lifetime_s)
        elif grant == "refresh_token":
            if not form.get("refresh_token"):
                raise oauth_error(400, "invalid_request", "Missing parameter: `refresh_token`")
            refreshed = self.accounts.refresh(
                form["refresh_token"], k.token_lifetime_s, k.refresh_token_lifetime_s
            )
            if refreshed is None:
                raise oauth_error(400, "invalid_grant", "Invalid grant: refresh token is invalid")
            pair = refreshed
        else:
            raise oauth_error(
                400, "unsupported_grant_type", "Unsupported grant type: `grant_type` is invalid"
            )
        now = time.time()
        status, headers, body = _json(
            200,
            {
                "token_type": "Bearer",
                "access_token": pair.access_token,
                "refresh_token": pair.refresh_token,
                # PeerTube floors the milliseconds left: a 1-day token says 86399.
                "expires_in": max(0, math.ceil(pair.access_expires_at - now) - 1),
                "refresh_token_expires_in": max(0, math.ceil(pair.refresh_expires_at - now) - 1),
            },
        )
        headers["Cache-Control"] = "no-store"
        headers["Pragma"] = "no-cache"
        return status, headers, body

    def _require_user(self, req: Request, docs: str) -> User:
        if req.user is None:
            err = req.auth_error or ApiError(401, "Token is invalid", code="unauthorized_request")
            err.docs = docs
            raise err
        return req.user

    def _require_admin(self, req: Request, docs: str, right: str) -> User:
        user = self._require_user(req, docs)
        if user.role != ROLE_ADMINISTRATOR:
            raise ApiError(
                403,
                f"User {user.username} does not have right {right} to access to {req.path}.",
                docs=docs,
            )
        return user

    def get_me(self, req: Request) -> tuple[int, dict[str, str], bytes]:
        user = self._require_user(req, f"{DOCS}#operation/getUserInfo")
        return _json(
            200,
            {
                "id": user.id,
                "username": user.username,
                "role": {"id": user.role, "label": ROLE_LABELS[user.role]},
            },
        )

    def get_categories(self, req: Request) -> tuple[int, dict[str, str], bytes]:
        return _json(200, {str(k): v for k, v in self.categories.snapshot().items()})

    def _resolve_video_id(self, raw: str) -> tuple[str, int | None, str | None, bool]:
        """(sanitized value, numeric id, uuid, valid) like PeerTube's isValidVideoIdParam."""
        value = raw
        if len(raw) == SHORT_UUID_LENGTH:  # toCompleteUUID: any 22-char string is short
            try:
                value = short_to_uuid(raw)
            except ValueError:
                return "", None, None, False
        if _INT_ID.match(value):
            return value, int(value), None, True
        lowered = value.lower()
        if is_uuid_v4(lowered):
            return value, None, lowered, True
        return value, None, None, False

    def _find_video(
        self,
        req: Request,
        raw: str,
        docs: str,
        body_errors: dict[str, dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        value, numeric, uuid, valid = self._resolve_video_id(raw)
        errors: dict[str, dict[str, Any]] = {}
        if not valid:
            errors["id"] = _field_error(
                value, "Should have a valid video id (id, short UUID or UUID)", "id", "params"
            )
        errors.update(body_errors or {})
        if errors:
            raise _validation_error(req.path, errors, docs)
        row = None
        if numeric is not None:
            if 0 < numeric < 2**31:
                row = self.store.find_video(video_id=numeric)
        else:
            row = self.store.find_video(uuid=uuid)
        if row is None:
            raise ApiError(404, "Video not found", docs=docs)
        return row

    def get_video(self, req: Request, raw: str) -> tuple[int, dict[str, str], bytes]:
        docs = f"{DOCS}#operation/getVideo"
        if req.auth_error is not None and req.headers.get("Authorization") is not None:
            # optionalAuthenticate: a bad token given is an error, no token is anonymous.
            req.auth_error.docs = docs
            raise req.auth_error
        row = self._find_video(req, raw, docs)
        if row["privacy"] in (3, 4) and req.user is None:
            # Sandbox: message wording not recorded; status 401 is (PEERTUBE-FACTS).
            raise ApiError(401, "Cannot get this private video: please log in", docs=docs)
        if row["privacy"] == 3 and req.user is not None and req.user.role == ROLE_USER:
            # Sandbox videos belong to the admin: a plain user may not see private ones.
            raise ApiError(403, "Cannot get this private video of another user", docs=docs)
        return _json(200, self._video_json(row, req))

    def put_video(self, req: Request, raw: str) -> tuple[int, dict[str, str], bytes]:
        docs = f"{DOCS}#operation/putVideo"
        user = self._require_user(req, docs)
        fields = _parse_body_fields(req, docs)
        changes: dict[str, Any] = {}
        errors: dict[str, dict[str, Any]] = {}
        if "category" in fields:
            value = js_to_int_or_null(fields["category"])
            valid = value is None or (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and value == value
                and float(value).is_integer()
                and self.categories.label(int(value)) is not None
            )
            if valid:
                changes["category"] = None if value is None else int(value)
            else:
                errors["category"] = _field_error(
                    _json_safe(value), "Invalid value", "category", "body"
                )
        if "name" in fields:
            name = fields["name"]
            if isinstance(name, str) and 3 <= len(name) <= 120:
                changes["name"] = name
            else:
                errors["name"] = _field_error(name, "Should have a valid name", "name", "body")
        if "licence" in fields:
            value = js_to_int_or_null(fields["licence"])
            if value is None or (isinstance(value, int) and value in LICENCES):
                changes["licence"] = value
            else:
                errors["licence"] = _field_error(
                    _json_safe(value), "Invalid value", "licence", "body"
                )
        # Sandbox: other PeerTube video fields are accepted and ignored.
        row = self._find_video(req, raw, docs, errors)
        if user.role not in (ROLE_ADMINISTRATOR, ROLE_MODERATOR):
            # Every sandbox video belongs to the admin's channels.
            raise ApiError(403, "Cannot manage a video of another user.", docs=docs)
        self.store.update_video(row["id"], changes)
        return 204, {}, b""

    def list_plugins(self, req: Request) -> tuple[int, dict[str, str], bytes]:
        docs = f"{DOCS}#operation/getPlugins"
        self._require_admin(req, docs, "MANAGE_PLUGINS")
        errors: dict[str, dict[str, Any]] = {}
        plugin_type = None
        raw_type = (req.query.get("pluginType") or [None])[0]
        if raw_type is not None:
            if raw_type in ("1", "2"):
                plugin_type = int(raw_type)
            else:
                errors["pluginType"] = _field_error(
                    raw_type, "Should have a valid plugin type", "pluginType", "query"
                )
        raw_uninstalled = (req.query.get("uninstalled") or ["false"])[0]
        if raw_uninstalled not in ("true", "false"):
            errors["uninstalled"] = _field_error(
                raw_uninstalled, "Should have a valid uninstalled attribute", "uninstalled", "query"
            )
        start = _query_int(req, "start", 0, errors)
        count = _query_int(req, "count", 15, errors)
        if errors:
            raise _validation_error(req.path, errors, docs)
        rows = self.store.plugins(uninstalled=raw_uninstalled == "true", plugin_type=plugin_type)
        page = rows[start : start + min(count, 100)]
        return _json(200, {"total": len(rows), "data": [_plugin_json(r) for r in page]})

    def post_install(self, req: Request) -> tuple[int, dict[str, str], bytes]:
        docs = f"{DOCS}#operation/addPlugin"
        self._require_admin(req, docs, "MANAGE_PLUGINS")
        fields = _parse_body_fields(req, docs)
        path, npm_name = fields.get("path"), fields.get("npmName")
        if path is None and npm_name is None:
            raise ApiError(400, "Should have either a npmName or a path", docs=docs)
        if path is None:
            # Sandbox: no npm registry here; installing by name always fails.
            log.warning("Cannot install plugin %s: the sandbox cannot reach npm", npm_name)
            raise ApiError(400, f"Cannot install plugin {npm_name}", docs=docs)
        return _json(200, self.install_plugin(str(path)))

    def post_uninstall(self, req: Request) -> tuple[int, dict[str, str], bytes]:
        docs = f"{DOCS}#operation/uninstallPlugin"
        self._require_admin(req, docs, "MANAGE_PLUGINS")
        fields = _parse_body_fields(req, docs)
        npm_name = fields.get("npmName")
        if (
            not isinstance(npm_name, str)
            or not _NPM_NAME.match(npm_name)
            or not (
                npm_name.startswith("peertube-plugin-") or npm_name.startswith("peertube-theme-")
            )
        ):
            raise _validation_error(
                req.path,
                {
                    "npmName": _field_error(
                        npm_name, "Should have a valid npm name", "npmName", "body"
                    )
                },
                docs,
            )
        self.uninstall_plugin(npm_name)
        return 204, {}, b""

    # rendering ----------------------------------------------------------------------------------
    def _video_json(self, row: dict[str, Any], req: Request) -> dict[str, Any]:
        category = row["category"]
        host = req.headers.get("Host") or "localhost"
        handle = channel_handle(row["channelName"])
        base = f"http://{host}"
        return {
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
            "language": {
                "id": row["language"],
                "label": LANGUAGES.get(row["language"] or "", "Unknown"),
            },
            "privacy": {"id": row["privacy"], "label": PRIVACIES.get(row["privacy"], "Unknown")},
            "nsfw": row["nsfw"],
            "description": row["description"],
            "support": row["support"],
            "isLocal": True,
            "isLive": row["isLive"],
            "duration": row["duration"],
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
            "state": {"id": row["state"], "label": STATES.get(row["state"], "Unknown")},
            "commentsPolicy": {"id": row["commentsPolicy"], "label": "Enabled"},
            "downloadEnabled": row["downloadEnabled"],
            "waitTranscoding": row["waitTranscoding"],
            "tags": [],
            "files": [],
            "streamingPlaylists": [],
            "trackerUrls": [],
            "account": {
                "id": self.admin.id,
                "name": self.admin.username,
                "displayName": self.admin.username,
                "host": host,
                "url": f"{base}/accounts/{self.admin.username}",
                "avatars": [],
            },
            "channel": {
                "id": row["channelId"],
                "name": handle,
                "displayName": row["channelName"],
                "url": f"{base}/video-channels/{handle}",
                "host": host,
                "isLocal": True,
                "avatars": [],
            },
        }


def _query_int(req: Request, name: str, default: int, errors: dict[str, Any]) -> int:
    raw = (req.query.get(name) or [None])[0]
    if raw is None:
        return default
    if not re.fullmatch(r"\d+", raw):
        errors[name] = _field_error(raw, f"Should have a number {name}", name, "query")
        return default
    return int(raw)


def _parse_body_fields(req: Request, docs: str) -> dict[str, Any]:
    """Body fields of a JSON, urlencoded or multipart request (files are ignored)."""
    ctype_header = req.headers.get("Content-Type") or ""
    ctype = ctype_header.split(";")[0].strip().lower()
    if not req.body:
        return {}
    if ctype == "application/json" or ctype.endswith("+json"):
        try:
            data = json.loads(req.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            # Sandbox: Express's body-parser error; PeerTube renders it as a 400.
            raise ApiError(400, "Invalid JSON body", docs=docs) from None
        if not isinstance(data, dict):
            raise ApiError(400, "Invalid JSON body: an object was expected", docs=docs)
        return data
    if ctype == "application/x-www-form-urlencoded":
        parsed = parse_qs(req.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[0] for k, v in parsed.items()}
    if ctype == "multipart/form-data":
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + ctype_header.encode("latin-1") + b"\r\n\r\n" + req.body
        )
        fields: dict[str, Any] = {}
        if message.is_multipart():
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if name and part.get_filename() is None:
                    payload = part.get_payload(decode=True) or b""
                    fields[str(name)] = payload.decode("utf-8", "replace")
        return fields
    return {}


def _plugin_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "type": row["type"],
        "latestVersion": row["latestVersion"],
        "version": row["version"],
        "enabled": row["enabled"],
        "uninstalled": row["uninstalled"],
        "peertubeEngine": row["peertubeEngine"],
        "description": row["description"],
        "homepage": row["homepage"],
        "settings": row["settings"] or {},
        "createdAt": _iso(row["createdAt"]),
        "updatedAt": _iso(row["updatedAt"]),
    }


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json(status: int, obj: Any) -> tuple[int, dict[str, str], bytes]:
    return (
        status,
        {"Content-Type": "application/json; charset=utf-8"},
        json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
    )


def _random_token(length: int) -> str:
    return secrets.token_hex(length // 2)


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
        split = urlsplit(self.path)
        req = Request(
            self.command,
            split.path,
            parse_qs(split.query),
            self.headers,
            body,
            self.client_address[0],
        )
        knobs = app.knobs
        if knobs.latency_s > 0:
            time.sleep(knobs.latency_s)
        fault = app.fault_for(req.method, req.path)
        if fault == "drop":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        headers: dict[str, str] = {}
        try:
            app.authenticate(req)
            state, blocked = app.rate_limit(req)
            headers.update(
                {
                    "X-RateLimit-Limit": str(state.limit),
                    "X-RateLimit-Remaining": str(state.remaining),
                    "X-RateLimit-Reset": str(state.reset_epoch),
                }
            )
            if blocked:
                headers["Retry-After"] = str(state.retry_after_s)
                # express-rate-limit's res.send(string): Express labels it text/html.
                self._send(
                    429,
                    {**headers, "Content-Type": "text/html; charset=utf-8"},
                    TOO_MANY_REQUESTS.encode(),
                )
                return
            if fault == "error":
                raise ApiError(500, "Sandbox: injected server error")
            status, extra, payload = app.dispatch(req)
            headers.update(extra)
        except ApiError as err:
            status = err.status
            headers["Content-Type"] = "application/problem+json; charset=utf-8"
            payload = json.dumps(err.body(), separators=(",", ":")).encode()
        except psycopg2.Error as exc:
            log.error("database error on %s %s: %s", req.method, req.path, db_error_text(exc))
            status = 500
            headers["Content-Type"] = "application/problem+json; charset=utf-8"
            payload = json.dumps(ApiError(500, "Internal server error").body()).encode()
        except Exception:
            log.exception("unexpected error on %s %s", req.method, req.path)
            status = 500
            headers["Content-Type"] = "application/problem+json; charset=utf-8"
            payload = json.dumps(ApiError(500, "Internal server error").body()).encode()
        self._send(status, headers, payload)

    def _send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if status != 204:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if status != 204 and self.command != "HEAD":
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
        with self.app._knob_lock:
            self.app._forced_faults.clear()
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
        self.app.reload_plugins()
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
    checked = _checked_knobs(knobs)
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
    }
    return {
        knob: getattr(args, flag)
        for flag, knob in flags.items()
        if getattr(args, flag, None) is not None
    }


def cli_main(args: argparse.Namespace) -> int:
    """``recon-domains sandbox peertube``: serve until Ctrl-C."""
    from recon_domains.peertube.database import mask_dsn
    from recon_domains.sandbox.postgres import (
        embedded_postgres,
        ensure_database,
    )
    from recon_domains.taxonomy import DEFAULT_STREAM_SOURCE

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    password = args.admin_password or DEFAULT_ADMIN_PASSWORD
    source = args.source or os.environ.get("RECON_STREAM_SOURCE") or DEFAULT_STREAM_SOURCE
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
            return 2
        except OSError as exc:
            print(f"error: cannot listen on {args.host}:{args.port}: {exc}")
            return 2
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
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        print("stopping")
    return 0

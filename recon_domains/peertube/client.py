"""PeerTube's REST API, as the push and the plugin steps use it.

One `requests.Session` (keep-alive, a connection pool as large as the push's concurrency),
timeouts on every call, OAuth password grant with refresh, and typed errors an operator can
act on. Behaviour follows PEERTUBE-FACTS.md (observed on PeerTube 8.0.1):

- a wrong password is a **400 invalid_grant**, not a 401;
- refreshing revokes the old access token at once, and a spent refresh token is 400;
- logins are limited to 15 per 5 minutes per IP, successes included: tokens are reused
  (and optionally cached on disk, mode 0600) so repeated runs do not log in again;
- 429 answers carry `Retry-After` (seconds); admin tokens bypass the API limit.

While a flow control is attached (`flow_controlled`, the push's), every request attempt,
retries and the login included, is announced to it first (it may make the request wait
for its turn) and reported to it with its status and latency.

The password is kept in one private attribute and sent only in the token request body: it
never appears in logs, exception messages, reprs or the token cache.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import os
import random
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter

from recon_domains.settings import DEFAULTS

if TYPE_CHECKING:
    from recon_domains.settings import PeerTubeSettings

log = logging.getLogger(__name__)

ADMIN_ROLE_ID = 0  # PeerTube UserRole: 0 admin, 1 moderator, 2 user
PLUGIN_TYPE_PLUGIN = 1
_CACHE_VERSION = 1
# GET /api/v1/videos filters for every video: the five privacies (public, unlisted,
# private, internal, password), VideoInclude NOT_PUBLISHED_STATE | BLACKLISTED |
# BLOCKED_OWNER, NSFW or not; oldest first, so pages stay put while videos are uploaded.
_EVERY_VIDEO: dict[str, Any] = {
    "privacyOneOf": [1, 2, 3, 4, 5], "include": 1 | 2 | 4, "nsfw": "both", "sort": "createdAt",
}


# -- errors --------------------------------------------------------------------------------
class PeerTubeError(RuntimeError):
    """Base of every error this client raises; the message is meant for an operator."""


class PeerTubeConfigError(PeerTubeError):
    """The client cannot be built: a setting is missing or malformed."""


class PeerTubeUnreachable(PeerTubeError):
    """No HTTP answer at all (connection refused/reset, DNS, timeout) after the retries."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class PeerTubeHTTPError(PeerTubeError):
    """PeerTube answered with an error status; RFC 7807 fields are kept when present."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        method: str,
        path: str,
        detail: str | None = None,
        code: str | None = None,
        invalid_params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.method = method
        self.path = path
        self.detail = detail
        self.code = code
        self.invalid_params: dict[str, Any] = dict(invalid_params or {})


class PeerTubeAuthError(PeerTubeHTTPError):
    """The credentials were refused (PeerTube: 400 invalid_grant) or a token kept failing."""


class PeerTubeForbidden(PeerTubeHTTPError):
    """403: the account is valid but not allowed (the push needs an administrator)."""


class PeerTubeNotFound(PeerTubeHTTPError):
    """404: no such video (or plugin)."""


class PeerTubeRateLimited(PeerTubeHTTPError):
    """429 that did not clear within the client's rate-limit wait budget."""


# -- settings ------------------------------------------------------------------------------
class RequestFlow(Protocol):
    """What a flow control (recon_domains.peertube.flow.FlowControl) hears of requests."""

    def before_request(self) -> float:
        """A request is about to be sent: seconds to wait first."""
        ...

    def after_request(self, status: int | None, seconds: float) -> None:
        """Its HTTP status (None: no answer) and seconds since before_request."""
        ...


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one call tries before giving up.

    max_retries: extra attempts after a 5xx, a connection error or a timeout.
    backoff_base/backoff_max: exponential backoff (seconds) with jitter between them.
    rate_limit_max_wait: total seconds one call may spend waiting on 429s.
    """

    max_retries: int = 4
    backoff_base: float = 0.25
    backoff_max: float = 8.0
    rate_limit_max_wait: float = 330.0  # the login limit's window is 5 minutes

    def backoff(self, attempt: int) -> float:
        """Delay before retry number `attempt` (0-based): half fixed, half jitter."""
        ceiling = min(self.backoff_max, self.backoff_base * (2**attempt))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


@dataclass
class _Tokens:
    access_token: str
    refresh_token: str | None
    access_expires_at: float | None
    refresh_expires_at: float | None

    @classmethod
    def from_cache_entry(cls, entry: Mapping[str, Any]) -> _Tokens:
        """The tokens of a token-cache entry (one holding an access_token)."""
        return cls(
            access_token=str(entry["access_token"]),
            refresh_token=entry.get("refresh_token"),
            access_expires_at=entry.get("access_expires_at"),
            refresh_expires_at=entry.get("refresh_expires_at"),
        )


def _now() -> float:
    return time.time()


# -- the client ----------------------------------------------------------------------------
class PeerTubeClient:
    """A PeerTube API client, safe to share between threads.

    base_url: e.g. `http://192.168.1.170:9000` (no trailing `/api/v1`).
    host_header: send this `Host` header (PeerTube in production mode refuses OAuth client
        discovery for any other host, so talking to the internal port needs it).
    token_cache: optional JSON file (mode 0600) keeping tokens between runs, keyed by URL,
        Host header and user; it never holds the password.
    pool_size: connections kept alive; make it at least the concurrency it is used with
        (the push's workers, per-video reads and restores).
    timeout: (connect, read) seconds for every request.
    """

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        host_header: str | None = None,
        token_cache: str | os.PathLike[str] | None = None,
        pool_size: int = DEFAULTS.peertube.push_max_in_flight,
        timeout: tuple[float, float] = (5.0, 30.0),
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urlsplit(base_url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise PeerTubeConfigError(
                f"PeerTube URL {base_url!r} is not an http(s) URL; set PEERTUBE_URL to e.g. "
                "http://192.168.1.170:9000"
            )
        if not username:
            raise PeerTubeConfigError("PeerTube username is empty; set PEERTUBE_USERNAME")
        if not password:
            raise PeerTubeConfigError("PeerTube password is empty; set PEERTUBE_PASSWORD")
        self.base_url = base_url.strip().rstrip("/")
        if self.base_url.endswith("/api/v1"):  # a common slip: our paths carry /api/v1
            self.base_url = self.base_url[: -len("/api/v1")]
        self.username = username
        self.__password = password  # name-mangled: kept out of vars()-style dumps
        self.host_header = host_header or None
        self.token_cache = Path(token_cache).expanduser() if token_cache else None
        self.timeout = timeout
        self.pool_size = max(1, pool_size)
        self.retry = retry or RetryPolicy()
        self._sleep = sleep

        self.session = requests.Session()
        # Our own retry loop decides what is safe to retry; urllib3 must not retry behind it.
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=self.pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["Accept"] = "application/json"
        self.session.headers["User-Agent"] = "recon-domains"
        if self.host_header:
            self.session.headers["Host"] = self.host_header

        self._auth_lock = threading.Lock()
        # (tokens, generation) swapped as one tuple so readers never see a mismatched pair;
        # the generation tells a thread that hit 401 whether someone already renewed.
        self._auth_state: tuple[_Tokens | None, int] = (None, 0)
        self._client_credentials: tuple[str, str] | None = None
        self._pause_lock = threading.Lock()
        self._pause_until = 0.0  # shared 429 pause: every thread waits, not just the one hit
        self._counter_lock = threading.Lock()
        self.login_count = 0  # logins (password grants PeerTube accepted) by this client
        self.refresh_count = 0  # refresh grants attempted by this client
        self.rate_limited_count = 0  # 429 answers seen (then waited out)
        self.retry_count = 0  # retries after 5xx / connection errors / timeouts
        # Of those, retries after a 500: under concurrent PUTs PeerTube's serializable
        # transactions answer some with a 500 that the same PUT retried gets past.
        self.retried_after_500 = 0
        self._flow: RequestFlow | None = None
        self._load_cached_tokens()

    # -- representation: never the password or a token -------------------------------------
    def __repr__(self) -> str:
        host = f", host_header={self.host_header!r}" if self.host_header else ""
        return f"PeerTubeClient({self.base_url!r}, user={self.username!r}{host})"

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()

    @contextlib.contextmanager
    def flow_controlled(self, flow: RequestFlow) -> Iterator[None]:
        """Announce and report every request to `flow` until the block ends."""
        self._flow = flow
        try:
            yield
        finally:
            self._flow = None

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One attempt on the session, told to the flow control when one is attached."""
        flow = self._flow
        if flow is None:
            return self.session.request(method, url, **kwargs)
        started = time.monotonic()
        delay = flow.before_request()
        if delay > 0:
            self._sleep(delay)
        status: int | None = None
        try:
            resp = self.session.request(method, url, **kwargs)
            status = resp.status_code
            return resp
        finally:
            flow.after_request(status, time.monotonic() - started)

    def __enter__(self) -> PeerTubeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- construction from the settings ----------------------------------------------------
    @classmethod
    def from_settings(cls, settings: PeerTubeSettings, **kwargs: Any) -> PeerTubeClient:
        """Build from the PeerTube settings (PEERTUBE_URL, PEERTUBE_HOST_HEADER,
        PEERTUBE_USERNAME, PEERTUBE_PASSWORD, PEERTUBE_TOKEN_CACHE); the connection pool
        holds PEERTUBE_PUSH_MAX_IN_FLIGHT connections. `kwargs` override the constructor's."""
        if not settings.url:
            raise PeerTubeConfigError(
                "PEERTUBE_URL is not set: set it to PeerTube's base URL, e.g. "
                "http://192.168.1.170:9000 (and PEERTUBE_HOST_HEADER=stream.echo6.co when "
                "that is PeerTube's internal port)"
            )
        if settings.password is None:
            raise PeerTubeConfigError(
                "PEERTUBE_PASSWORD is not set: export the PeerTube admin password in the "
                "environment (never put it in a file in the repository)"
            )
        kwargs.setdefault("host_header", settings.host_header)
        kwargs.setdefault("token_cache", settings.token_cache)
        kwargs.setdefault("pool_size", settings.push_max_in_flight)
        return cls(settings.url, settings.username, settings.password.get_secret_value(),
                   **kwargs)

    # -- token cache --------------------------------------------------------------------------
    @property
    def _cache_key(self) -> str:
        return f"{self.base_url}|{self.host_header or ''}|{self.username}"

    def _read_cache(self) -> dict[str, Any]:
        if self.token_cache is None:
            return {}
        try:
            mode = self.token_cache.stat().st_mode
            text = self.token_cache.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.warning("cannot read PeerTube token cache %s (%s); ignoring it",
                        self.token_cache, exc)
            return {}
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            # Tokens are secrets: tighten a file someone loosened, and say so.
            log.warning("PeerTube token cache %s was readable by others; setting mode 0600",
                        self.token_cache)
            with contextlib.suppress(OSError):
                os.chmod(self.token_cache, 0o600)
        try:
            data = json.loads(text)
        except ValueError:
            log.warning("PeerTube token cache %s is not JSON; ignoring it", self.token_cache)
            return {}
        if not isinstance(data, dict) or data.get("version") != _CACHE_VERSION:
            return {}
        entries = data.get("entries")
        return entries if isinstance(entries, dict) else {}

    def _load_cached_tokens(self) -> None:
        entry = self._read_cache().get(self._cache_key)
        if not isinstance(entry, dict) or not entry.get("access_token"):
            return
        refresh_expires = entry.get("refresh_expires_at")
        if isinstance(refresh_expires, int | float) and refresh_expires <= _now():
            return  # nothing usable: both tokens are dead
        self._set_tokens(_Tokens.from_cache_entry(entry), save=False)
        if entry.get("client_id") and entry.get("client_secret"):
            self._client_credentials = (str(entry["client_id"]), str(entry["client_secret"]))

    def _save_cached_tokens(self) -> None:
        """Write our entry (atomically, mode 0600), keeping other URL/user entries."""
        if self.token_cache is None or self._tokens is None:
            return
        entries = self._read_cache()
        entry: dict[str, Any] = {
            "access_token": self._tokens.access_token,
            "refresh_token": self._tokens.refresh_token,
            "access_expires_at": self._tokens.access_expires_at,
            "refresh_expires_at": self._tokens.refresh_expires_at,
            "saved_at": _now(),
        }
        if self._client_credentials:
            entry["client_id"], entry["client_secret"] = self._client_credentials
        entries[self._cache_key] = entry
        payload = json.dumps({"version": _CACHE_VERSION, "entries": entries}, indent=1)
        try:
            self.token_cache.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".peertube-token-", dir=self.token_cache.parent)
            try:
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(payload)
                os.replace(tmp, self.token_cache)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            log.warning("cannot write PeerTube token cache %s (%s); tokens will not be "
                        "reused by the next run", self.token_cache, exc)

    # -- OAuth ------------------------------------------------------------------------------
    def _oauth_client(self) -> tuple[str, str]:
        if self._client_credentials is None:
            data = self._json("GET", "/api/v1/oauth-clients/local", auth=False)
            try:
                self._client_credentials = (str(data["client_id"]), str(data["client_secret"]))
            except (KeyError, TypeError):
                raise PeerTubeError(
                    f"PeerTube at {self.base_url} answered /api/v1/oauth-clients/local "
                    "without client_id/client_secret: is this a PeerTube server?"
                ) from None
        return self._client_credentials

    def _token_request(self, form: dict[str, str]) -> _Tokens:
        client_id, client_secret = self._oauth_client()
        form = {"client_id": client_id, "client_secret": client_secret, **form}
        # Not retried on 5xx/connection errors for refresh (a lost answer spends the
        # refresh token); a password grant is safe to retry but costs login quota.
        body = self._json("POST", "/api/v1/users/token", auth=False, data=form,
                          retry_unsafe=form["grant_type"] == "password")
        now = _now()
        expires_in = body.get("expires_in")
        refresh_in = body.get("refresh_token_expires_in")
        return _Tokens(
            access_token=str(body["access_token"]),
            refresh_token=body.get("refresh_token"),
            access_expires_at=now + expires_in if isinstance(expires_in, int | float) else None,
            refresh_expires_at=now + refresh_in if isinstance(refresh_in, int | float) else None,
        )

    def _login(self) -> _Tokens:
        """Password grant. Caller holds _auth_lock."""
        log.info("logging in to PeerTube at %s as %s", self.base_url, self.username)
        form = {"grant_type": "password", "username": self.username,
                "password": self.__password}
        try:
            tokens = self._token_request(form)
        except PeerTubeAuthError as exc:
            if exc.code != "invalid_client" or self._client_credentials is None:
                raise
            # Cached OAuth client from another PeerTube install: fetch it again once.
            self._client_credentials = None
            tokens = self._token_request(form)
        with self._counter_lock:
            self.login_count += 1
        return tokens

    def _refresh(self, refresh_token: str) -> _Tokens:
        with self._counter_lock:
            self.refresh_count += 1
        log.info("refreshing the PeerTube access token")
        return self._token_request({"grant_type": "refresh_token",
                                    "refresh_token": refresh_token})

    @property
    def _tokens(self) -> _Tokens | None:
        return self._auth_state[0]

    @property
    def _token_generation(self) -> int:
        return self._auth_state[1]

    def _current_token(self) -> tuple[str, int]:
        """(access token, generation), logging in when there is none yet."""
        tokens, generation = self._auth_state  # one read: token and generation agree
        if tokens is not None:
            return tokens.access_token, generation
        with self._auth_lock:
            if self._tokens is None:
                self._set_tokens(self._login())
            tokens, generation = self._auth_state
            assert tokens is not None
            return tokens.access_token, generation

    def _set_tokens(self, tokens: _Tokens, *, save: bool = True) -> None:
        """Install new tokens (caller holds _auth_lock, or is the constructor)."""
        self._auth_state = (tokens, self._auth_state[1] + 1)
        if save:
            self._save_cached_tokens()

    def _renew_token(self, seen_generation: int) -> None:
        """After a 401: refresh, or log in when the refresh token is spent.

        Only one thread renews; others that saw the same (now stale) token just wait for the
        lock and retry with the new one (the generation tells them it already happened).
        """
        with self._auth_lock:
            if self._token_generation != seen_generation:
                return
            # Another process sharing the cache may have refreshed (which revoked ours).
            cached = self._read_cache().get(self._cache_key)
            if (
                isinstance(cached, dict)
                and self._tokens is not None
                and cached.get("access_token")
                and cached.get("access_token") != self._tokens.access_token
            ):
                self._set_tokens(_Tokens.from_cache_entry(cached), save=False)
                return
            old = self._tokens
            if old is not None and old.refresh_token and not (
                old.refresh_expires_at is not None and old.refresh_expires_at <= _now()
            ):
                try:
                    self._set_tokens(self._refresh(old.refresh_token))
                    return
                except PeerTubeAuthError:  # 400 invalid_grant: spent or expired refresh token
                    log.info("PeerTube refused the refresh token; logging in again")
            self._set_tokens(self._login())

    # -- the request loop -------------------------------------------------------------------
    def _wait_for_rate_limit(self) -> None:
        delay = self._pause_until - _now()
        if delay > 0:
            self._sleep(delay)

    @staticmethod
    def _retry_after(resp: requests.Response) -> tuple[float | None, float | None]:
        """(seconds to wait after a 429, the announced reset epoch when that was used).

        `Retry-After` (seconds or an HTTP date) is an upper bound: express-rate-limit, which
        PeerTube uses, sends the whole window length there even when the window ends sooner.
        `X-RateLimit-Reset` (epoch seconds; a small number is read as seconds) says when the
        window really ends, so the sooner of the two is used, unless the reset lies in the
        past by our clock (skew): then it cannot be trusted and Retry-After wins.
        """
        retry_after: float | None = None
        value = (resp.headers.get("Retry-After") or "").strip()
        if value:
            try:
                retry_after = max(0.0, float(value))
            except ValueError:
                with contextlib.suppress(TypeError, ValueError):
                    retry_after = max(0.0, email.utils.parsedate_to_datetime(value).timestamp()
                                      - _now())
        reset = (resp.headers.get("X-RateLimit-Reset") or "").strip()
        if reset:
            with contextlib.suppress(ValueError):
                number = float(reset)
                is_epoch = number > 1_000_000_000
                until_reset = number - _now() if is_epoch else number
                if until_reset > 0 and (retry_after is None or until_reset <= retry_after):
                    return until_reset, number if is_epoch else None
        return retry_after, None

    def _request(
        self,
        method: str,
        path: str,
        *,
        auth: bool | str = True,
        json_body: Any = None,
        data: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        retry_unsafe: bool = True,
    ) -> requests.Response:
        """One API call with auth, 429 waits and bounded retries; raises typed errors.

        auth: True (log in if needed), False (anonymous), "if-available" (use a token we
        already hold, never log in for it).
        retry_unsafe: retry after a timeout/reset/5xx even though the request may have been
        processed (true for idempotent calls).
        """
        url = self.base_url + path
        policy = self.retry
        attempt = 0
        renewals = 0
        waited_for_rate_limit = 0.0
        probed_reset: float | None = None
        while True:
            headers: dict[str, str] = {}
            generation = -1
            if auth is True or (auth == "if-available" and self._tokens is not None):
                token, generation = self._current_token()
                headers["Authorization"] = f"Bearer {token}"
            self._wait_for_rate_limit()
            try:
                resp = self._send(
                    method, url, headers=headers, json=json_body, data=data, params=params,
                    timeout=self.timeout,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                safe = retry_unsafe or isinstance(exc, requests.ConnectTimeout)
                if safe and attempt < policy.max_retries:
                    delay = policy.backoff(attempt)
                    attempt += 1
                    with self._counter_lock:
                        self.retry_count += 1
                    log.debug("%s %s: %s; retry %d in %.2fs", method, path,
                              type(exc).__name__, attempt, delay)
                    self._sleep(delay)
                    continue
                raise self._unreachable(method, path, exc, attempt) from None

            status = resp.status_code
            if status == 401 and generation >= 0 and renewals < 3:
                renewals += 1
                self._renew_token(generation)
                continue
            if status == 429:
                delay, reset_epoch = self._retry_after(resp)
                if delay is None:
                    delay = policy.backoff(min(attempt, 6))
                elif reset_epoch is not None and reset_epoch != probed_reset and delay > 0.5:
                    # The announced reset is rounded up to a whole second, so the window
                    # really ends during the second before it: try half a second early, once
                    # per window (a 429 then just waits out the rest). Worth ~5 % of the
                    # allowed rate with PeerTube's 10 s window.
                    delay -= 0.5
                    probed_reset = reset_epoch
                delay += random.uniform(0, 0.05)  # spread the herd a little
                with self._counter_lock:
                    self.rate_limited_count += 1
                if waited_for_rate_limit + delay <= policy.rate_limit_max_wait:
                    waited_for_rate_limit += delay
                    with self._pause_lock:
                        self._pause_until = max(self._pause_until, _now() + delay)
                    log.info("PeerTube rate limit (429) on %s %s; waiting %.1fs",
                             method, path, delay)
                    continue
            elif status >= 500 and retry_unsafe and attempt < policy.max_retries:
                delay = policy.backoff(attempt)
                attempt += 1
                with self._counter_lock:
                    self.retry_count += 1
                    self.retried_after_500 += status == 500
                log.debug("%s %s: HTTP %d; retry %d in %.2fs", method, path, status,
                          attempt, delay)
                self._sleep(delay)
                continue
            if status < 400:
                return resp
            raise self._http_error(method, path, resp, waited_for_rate_limit)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        """_request, then the JSON body; a non-JSON answer is a PeerTubeError that says the
        URL probably is not PeerTube's API (e.g. a proxy's HTML page)."""
        resp = self._request(method, path, **kwargs)
        try:
            return resp.json()
        except ValueError:
            kind = resp.headers.get("Content-Type") or "no content type"
            raise PeerTubeError(
                f"{self.base_url} answered {method} {path} with {resp.status_code} and a "
                f"non-JSON body ({kind}): is PEERTUBE_URL PeerTube's address (and "
                "PEERTUBE_HOST_HEADER right when a proxy sits in front)?"
            ) from None

    def _unreachable(self, method: str, path: str, exc: Exception, retries: int) -> PeerTubeError:
        kind = {
            requests.ConnectTimeout: "connection timed out",
            requests.ReadTimeout: f"no answer within {self.timeout[1]:g}s (read timeout)",
        }.get(type(exc), f"connection failed ({type(exc).__name__})")
        host = f" with Host: {self.host_header}" if self.host_header else ""
        return PeerTubeUnreachable(
            f"PeerTube unreachable at {self.base_url}{host}: {method} {path}: {kind} after "
            f"{retries + 1} attempt(s). Check PEERTUBE_URL (scheme, host, port), "
            "PEERTUBE_HOST_HEADER when using the internal port, that PeerTube is running, "
            "and the network/firewall between here and it.",
            url=self.base_url,
        )

    def _http_error(
        self, method: str, path: str, resp: requests.Response, waited: float
    ) -> PeerTubeHTTPError:
        status = resp.status_code
        detail = code = None
        invalid: dict[str, Any] = {}
        try:
            body = resp.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            detail = body.get("detail") or body.get("error") or body.get("title")
            code = body.get("code")
            raw_invalid = body.get("invalid-params")
            if isinstance(raw_invalid, dict):
                invalid = raw_invalid
        elif resp.text:
            detail = resp.text.strip()[:300]
        detail = self._redact(detail)
        where = f"PeerTube {method} {path} answered {status}"
        text = f"{where}: {detail or resp.reason or 'no detail'}"
        if code:
            text += f" (code {code})"
        if invalid:
            fields = ", ".join(
                f"{name}={self._redact(str(v.get('value')) if isinstance(v, dict) else '?')}"
                for name, v in invalid.items()
            )
            text += f"; invalid parameters: {fields}"
        kwargs: dict[str, Any] = dict(status=status, method=method, path=path, detail=detail,
                                      code=code, invalid_params=invalid)
        if status == 400 and code in ("invalid_grant", "invalid_client"):
            return PeerTubeAuthError(
                f"{text}. PeerTube refused the credentials of user {self.username!r}: check "
                "PEERTUBE_USERNAME and PEERTUBE_PASSWORD.", **kwargs)
        if status == 401:
            return PeerTubeAuthError(
                f"{text}. A freshly issued token was refused too: check the account "
                f"{self.username!r} is not blocked, and PEERTUBE_HOST_HEADER.", **kwargs)
        if status == 403:
            return PeerTubeForbidden(
                f"{text}. User {self.username!r} is not allowed to do this: the push and the "
                "plugin steps need an administrator account (e.g. root).", **kwargs)
        if status == 404:
            return PeerTubeNotFound(text, **kwargs)
        if status == 429:
            login = " (PeerTube allows 15 logins per 5 minutes per IP; use " \
                    "PEERTUBE_TOKEN_CACHE to reuse tokens)" if path.endswith("/token") else ""
            return PeerTubeRateLimited(
                f"{text}: still rate limited after waiting {waited:.0f}s{login}.", **kwargs)
        return PeerTubeHTTPError(text, **kwargs)

    def _redact(self, text: str | None) -> str | None:
        if text and self.__password and self.__password in text:
            return text.replace(self.__password, "***")
        return text

    # -- API calls ----------------------------------------------------------------------------
    def login(self) -> None:
        """Make sure we hold a token (from the cache, or by logging in once)."""
        self._current_token()

    def categories(self) -> dict[int, str]:
        """Registered video categories, id -> label (built-in 1–18 plus plugin ones)."""
        data = self._json("GET", "/api/v1/videos/categories", auth="if-available")
        return {int(key): str(label) for key, label in data.items()}

    @staticmethod
    def _video_path(video_id: str | int) -> str:
        return "/api/v1/videos/" + quote(str(video_id), safe="")

    def get_video(self, video_id: str | int) -> dict[str, Any]:
        """A video by numeric id, UUID or short UUID (always authenticated: private videos
        answer 401 to anonymous calls)."""
        return self._json("GET", self._video_path(video_id))

    def video_category(self, video_id: str | int) -> int | None:
        """The video's category id, None when unset."""
        category = self.get_video(video_id).get("category") or {}
        value = category.get("id") if isinstance(category, dict) else None
        return int(value) if value is not None else None

    def set_category(self, video_id: str | int, category_id: int | None) -> None:
        """PUT the video's category (None clears it). Idempotent, so retried on 5xx."""
        self._request("PUT", self._video_path(video_id), json_body={"category": category_id})

    def list_videos(
        self, category_ids: Sequence[int] = (), *, start: int = 0, count: int = 0
    ) -> tuple[int, list[dict[str, Any]]]:
        """(total, one page) of GET /api/v1/videos over every video an administrator can
        see, oldest first; `category_ids` (categoryOneOf) narrows it, `count=0` only counts.

        PEERTUBE-FACTS "Counting videos by category": without privacyOneOf=1…5 (admin
        token) private videos do not count. `include` adds videos not published yet,
        blocked ones and those of muted accounts; `nsfw=both` the sensitive ones.
        """
        params: dict[str, Any] = {**_EVERY_VIDEO, "start": start, "count": count}
        if category_ids:
            params["categoryOneOf"] = [int(c) for c in category_ids]
        body = self._json("GET", "/api/v1/videos", params=params)
        return int(body.get("total") or 0), list(body.get("data") or [])

    def list_plugins(self, uninstalled: bool = False) -> list[dict[str, Any]]:
        """Installed (or, with uninstalled=True, uninstalled) plugins of type plugin."""
        plugins: list[dict[str, Any]] = []
        start = 0
        while True:
            params: dict[str, Any] = {"pluginType": PLUGIN_TYPE_PLUGIN, "start": start,
                                      "count": 50}
            if uninstalled:
                params["uninstalled"] = "true"
            body = self._json("GET", "/api/v1/plugins", params=params)
            page = body.get("data") or []
            plugins.extend(page)
            start += len(page)
            if not page or start >= int(body.get("total") or 0):
                return plugins

    def find_plugin(self, npm_name: str) -> dict[str, Any] | None:
        """The installed plugin `npm_name` as PeerTube lists it, None when not installed.
        Matched by npmName, or by name with or without the peertube-plugin- prefix."""
        short = npm_name.removeprefix("peertube-plugin-")
        for plugin in self.list_plugins():
            if plugin.get("npmName") == npm_name or plugin.get("name") in (short, npm_name):
                return plugin
        return None

    def install_plugin(self, path: str) -> dict[str, Any]:
        """Install a plugin from a folder on PeerTube's host (folder named like the npm
        package). Not retried after a timeout: a second install changes PeerTube's state."""
        return self._json("POST", "/api/v1/plugins/install", json_body={"path": path},
                          retry_unsafe=False)

    def uninstall_plugin(self, npm_name: str) -> None:
        """Uninstall a plugin by npm name (peertube-plugin-…)."""
        self._request("POST", "/api/v1/plugins/uninstall", json_body={"npmName": npm_name},
                      retry_unsafe=False)

    def whoami(self) -> dict[str, Any]:
        """The logged-in user (GET /api/v1/users/me)."""
        return self._json("GET", "/api/v1/users/me")

    def require_admin(self) -> dict[str, Any]:
        """The logged-in user, or PeerTubeForbidden when it is not an administrator."""
        me = self.whoami()
        role = me.get("role")
        role_id = role.get("id") if isinstance(role, dict) else role
        if role_id != ADMIN_ROLE_ID:
            label = role.get("label") if isinstance(role, dict) else role
            raise PeerTubeForbidden(
                f"PeerTube user {self.username!r} has role {label!r}, not Administrator: "
                "setting categories on every video and installing plugins need an admin "
                "account. Set PEERTUBE_USERNAME/PEERTUBE_PASSWORD to an administrator "
                "(e.g. root).",
                status=403, method="GET", path="/api/v1/users/me",
            )
        return me

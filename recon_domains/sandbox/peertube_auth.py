"""Users, rights, OAuth tokens and rate limiters of the sandbox PeerTube (in memory,
thread-safe).

Rights per role: packages/core-utils/src/users/user-role.ts and
packages/models/src/users/user-right.enum.ts. Logins: server/core/lib/auth/oauth-model.ts
(user names match case-insensitively; a refresh token past its lifetime is refused as
expired, and kept). Limiters: express-rate-limit 8's memory store.

invented: tokens live in memory, so restarting the sandbox logs everybody out (real
PeerTube keeps them in its database). The OAuth client itself is persisted (see
peertube_store).
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from dataclasses import dataclass

# PeerTube's UserRole.
ROLE_ADMINISTRATOR = 0
ROLE_MODERATOR = 1
ROLE_USER = 2
ROLE_LABELS = {ROLE_ADMINISTRATOR: "Administrator", ROLE_MODERATOR: "Moderator", ROLE_USER: "User"}
ROLE_BY_NAME = {"admin": 0, "administrator": 0, "moderator": 1, "user": 2}

# PeerTube's UserRight numbers the sandbox's routes check.
RIGHT_MANAGE_ANY_VIDEO_CHANNEL = 13
RIGHT_UPDATE_ANY_VIDEO = 17
RIGHT_SEE_ALL_VIDEOS = 20
RIGHT_MANAGE_PLUGINS = 23
# What a moderator may do (an administrator may do everything, a user nothing special).
MODERATOR_RIGHTS = frozenset({12, 6, 13, 14, 15, 16, 17, 20, 10, 11, 1, 21, 28, 32, 33})


def has_right(role: int, right: int) -> bool:
    """hasUserRight: administrators have every right, moderators a fixed list."""
    return role == ROLE_ADMINISTRATOR or (role == ROLE_MODERATOR and right in MODERATOR_RIGHTS)


@dataclass(frozen=True)
class User:
    """An account of the sandbox."""

    id: int
    username: str
    password: str
    role: int

    @property
    def bypasses_rate_limit(self) -> bool:
        """Admins and moderators skip the API rate limit (PeerTube's limiter handler)."""
        return self.role in (ROLE_ADMINISTRATOR, ROLE_MODERATOR)

    def has_right(self, right: int) -> bool:
        """PeerTube's user.hasRight."""
        return has_right(self.role, right)


@dataclass(frozen=True)
class TokenPair:
    """One login: an access token and the refresh token that can replace it."""

    access_token: str
    refresh_token: str
    user: User
    access_expires_at: float
    refresh_expires_at: float


class Accounts:
    """Users and their tokens."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: dict[str, User] = {}
        self._by_access: dict[str, TokenPair] = {}
        self._by_refresh: dict[str, TokenPair] = {}

    def add_user(self, username: str, password: str, role: int | str = ROLE_USER) -> User:
        """Create (or replace) a user; role is 0/1/2 or admin/moderator/user."""
        role_id = ROLE_BY_NAME[role.lower()] if isinstance(role, str) else int(role)
        if role_id not in ROLE_LABELS:
            raise ValueError(f"unknown role {role!r}; use admin, moderator or user")
        with self._lock:
            existing = self._users.get(username)
            user_id = existing.id if existing else len(self._users) + 1
            user = User(user_id, username, password, role_id)
            self._users[username] = user
            return user

    def check_password(self, username: str, password: str) -> User | None:
        """The user when the credentials match, else None. The name matches
        case-insensitively, and only when exactly one user has it."""
        with self._lock:
            found = [u for u in self._users.values() if u.username.lower() == username.lower()]
        if len(found) != 1 or not secrets.compare_digest(found[0].password, password):
            return None
        return found[0]

    def issue(self, user: User, access_lifetime_s: float, refresh_lifetime_s: float) -> TokenPair:
        """A new token pair for ``user``."""
        now = time.time()
        pair = TokenPair(
            access_token=secrets.token_hex(20),
            refresh_token=secrets.token_hex(20),
            user=user,
            access_expires_at=now + access_lifetime_s,
            refresh_expires_at=now + refresh_lifetime_s,
        )
        with self._lock:
            self._by_access[pair.access_token] = pair
            self._by_refresh[pair.refresh_token] = pair
        return pair

    def refresh(
        self, refresh_token: str, access_lifetime_s: float, refresh_lifetime_s: float
    ) -> TokenPair | str:
        """Spend a refresh token: revoke its pair at once and issue a new one. Refused:
        "invalid" (unknown or spent) or "expired" (past its lifetime, left as it is)."""
        with self._lock:
            old = self._by_refresh.get(refresh_token)
            if old is None:
                return "invalid"
            if old.refresh_expires_at < time.time():
                return "expired"
            del self._by_refresh[refresh_token]
            self._by_access.pop(old.access_token, None)
            user = self._users.get(old.user.username, old.user)
        return self.issue(user, access_lifetime_s, refresh_lifetime_s)

    def authenticate(self, access_token: str) -> User | None:
        """The user of a valid, unexpired access token, else None."""
        with self._lock:
            pair = self._by_access.get(access_token)
        if pair is None or pair.access_expires_at < time.time():
            return None
        with self._lock:
            return self._users.get(pair.user.username)

    def revoke_all(self) -> None:
        """Forget every token (what a restart would do to an in-memory store)."""
        with self._lock:
            self._by_access.clear()
            self._by_refresh.clear()


@dataclass(frozen=True)
class LimitState:
    """Where a client stands in a rate-limit window."""

    limit: int
    remaining: int
    reset_epoch: int
    exceeded: bool
    retry_after_s: int


class FixedWindowLimiter:
    """express-rate-limit's memory store: per key, a window opens at the first hit and counts
    every request (successful or not) until it ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, key: str, *, limit: int, window_s: float) -> LimitState:
        """Count one request of ``key`` and say whether it is over ``limit``."""
        now = time.time()
        with self._lock:
            start, count = self._windows.get(key, (now, 0))
            if now - start >= window_s:
                start, count = now, 0
            count += 1
            self._windows[key] = (start, count)
        reset = start + window_s
        return LimitState(
            limit=limit,
            remaining=max(0, limit - count),
            reset_epoch=math.ceil(reset),
            exceeded=count > limit,
            # express-rate-limit 8 (source/headers.ts): the seconds left in the window.
            retry_after_s=max(0, math.ceil(reset - now)),
        )

    def reset(self) -> None:
        """Forget every window."""
        with self._lock:
            self._windows.clear()

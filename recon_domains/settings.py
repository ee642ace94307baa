"""The project's settings: one typed model, read from the environment in one place.

`Settings.from_env()` is the only reader of the RECON_* and PEERTUBE_* variables of the
README's configuration table. The CLI (`status`, `review`) and the rehearsal use a Settings;
the Dagster layer builds its resources from one (`recon_domains.defs.resources`). Every
default is the default of its field here (the stream source and the skip list are the
taxonomy's constants); `DEFAULTS` is the model with nothing set, for code that needs a
default without an environment (e.g. the push engine's).

An invalid value (a non-number, a negative stage size, a tolerance below 0, …) raises one
`ConfigError` naming the variable, what it holds and what to set.

Secrets. PEERTUBE_PASSWORD, RECON_REVIEW_TOKEN and PEERTUBE_DB_DSN (which may carry a
password) are held as pydantic `SecretStr`: its repr and str are `**********`, so a
Settings printed, logged or put into an error message never shows them, and the value is
taken with `get_secret_value()` only where it is sent (the PeerTube token request, the
review page's token check). They are kept in the model rather than read apart so that
configuration has exactly one reader; no error message here ever repeats a secret's value.
The Definitions' resources do not take secrets from here: they stay `dg.EnvVar`s, resolved
when a run starts and never shown in the UI or run config (only the rehearsal hands its
throwaway sandbox's password over directly, outside any stored config).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import SecretStr

from recon_domains.peertube.urls import host_key
from recon_domains.taxonomy import DEFAULT_SKIP_CHANNELS, DEFAULT_STREAM_SOURCE, parse_skip_channels

T = TypeVar("T")

# A typo such as 800 for 8 would open that many threads and connections against PeerTube.
MAX_PUSH_IN_FLIGHT = 64


class ConfigError(RuntimeError):
    """A missing or invalid setting; the message names the variable and what to set.

    `variable` is that variable's name (`recon-domains check` reports each one)."""

    def __init__(self, message: str, *, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


@dataclass(frozen=True)
class Benchmarks:
    """Runbook Step 4's expected pass-1 distribution (percent) and the deviation that halts
    the rollout (percentage points): the investigation's numbers (SPEC §4)."""

    assigned: float = 94.8  # % of documents with valid concepts
    tied: float = 5.2  # % of documents with valid concepts
    needs_reprocess: float = 19.5  # % of candidates
    tolerance: float = 5.0

    def expected(self) -> dict[str, float]:
        """The expected percentages, keyed like `Pass1Result.percentages()`."""
        return {
            "assigned": self.assigned,
            "tied": self.tied,
            "needs_reprocess": self.needs_reprocess,
        }


@dataclass(frozen=True)
class ReviewSettings:
    """The tied-video review page (`recon-domains review`)."""

    # Where operators open it; the default is `recon-domains review`'s own bind.
    url: str = "http://127.0.0.1:8765/"
    hosts: tuple[str, ...] = ()  # extra Host names it answers to on loopback (a proxy's)
    token: SecretStr | None = None  # required to listen off loopback


@dataclass(frozen=True)
class PeerTubeSettings:
    """PeerTube's API (admin user) and PostgreSQL."""

    url: str | None = None
    host_header: str | None = None
    username: str = "root"
    password: SecretStr | None = None
    token_cache: Path | None = None
    plugin_path: str | None = None  # a folder on PeerTube's host, not necessarily this one
    db_dsn: SecretStr | None = None
    db_dump_command: str | None = None
    # The most PUTs the push keeps in flight at once (and the client's connection pool):
    # the ceiling of its adaptive concurrency.
    push_max_in_flight: int = 8
    # The most requests per second the push sends (a busy production instance); None: no cap.
    push_max_rate: float | None = None


def default_backup_dir(db_path: Path) -> Path:
    """Where backups go when RECON_BACKUP_DIR is not set: a folder beside recon.db."""
    return db_path.parent / "backups"


def default_quarantine_dir(concepts_dir: Path) -> Path:
    """Where reprocess quarantines concept folders when RECON_QUARANTINE_DIR is not set:
    beside the concepts, on their file system (a move, not a copy)."""
    return concepts_dir.parent / f"{concepts_dir.name}.quarantine"


@dataclass(frozen=True)
class Settings:
    """Every setting of the README's configuration table, typed."""

    db_path: Path | None = None
    concepts_dir: Path | None = None
    stream_source: str = DEFAULT_STREAM_SOURCE
    # Other host names of our PeerTube that watch URLs may carry: the push writes only to
    # videos whose URL names the stream source or one of these.
    accepted_hosts: tuple[str, ...] = ()
    backup_dir: Path | None = None  # None: beside recon.db
    offsite_concepts_dir: Path | None = None
    quarantine_dir: Path | None = None  # None: <concepts_dir>.quarantine
    skip_channels: frozenset[str] = DEFAULT_SKIP_CHANNELS
    benchmarks: Benchmarks = field(default_factory=Benchmarks)
    offsite_max_lag_hours: float = 6.0
    stage_sizes: tuple[int, int] = (100, 1000)  # stage-1, stage-2; stage-3 is the rest
    # How long one write waits for RECON's write lock. Next to a writer holding it 0.5 s
    # with 10 ms gaps every wait measured under one hold (0.5 s); 30 s outlasts any
    # transaction RECON should hold, and a step that cannot get in ends within it.
    lock_timeout_s: float = 30.0
    # Window files above this many MB (1 MB = 1,048,576 bytes) are skipped unread: RECON's
    # are kilobytes, and parsing one takes several times its size in memory.
    max_window_file_mb: int = 16
    # The scheduled re-assignment halts when more than this share (percent) of the
    # categorized documents would change: something upstream changed, a human looks first.
    reassign_max_change_pct: float = 5.0
    is_copy: bool = False
    node: str = "node"
    pg_bin_dir: Path | None = None  # None: pg_dump / pg_restore from PATH (or Debian's dirs)
    review: ReviewSettings = field(default_factory=ReviewSettings)
    peertube: PeerTubeSettings = field(default_factory=PeerTubeSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings from `env` (default: the process environment); unset or blank
        variables take their defaults. Raises ConfigError for an invalid value."""
        read = _Reader(os.environ if env is None else env)
        d = DEFAULTS
        return cls(
            db_path=read.path("RECON_DB_PATH"),
            concepts_dir=read.path("RECON_CONCEPTS_DIR"),
            stream_source=read.text("RECON_STREAM_SOURCE") or d.stream_source,
            accepted_hosts=read.hosts("RECON_ACCEPTED_HOSTS"),
            backup_dir=read.path("RECON_BACKUP_DIR"),
            offsite_concepts_dir=read.path("RECON_OFFSITE_CONCEPTS_DIR"),
            quarantine_dir=read.path("RECON_QUARANTINE_DIR"),
            skip_channels=parse_skip_channels(read.text("RECON_SKIP_CHANNELS")),
            benchmarks=Benchmarks(
                assigned=read.percent("RECON_BENCHMARK_ASSIGNED_PCT", d.benchmarks.assigned),
                tied=read.percent("RECON_BENCHMARK_TIED_PCT", d.benchmarks.tied),
                needs_reprocess=read.percent(
                    "RECON_BENCHMARK_NEEDS_REPROCESS_PCT", d.benchmarks.needs_reprocess
                ),
                tolerance=read.number(
                    "RECON_BENCHMARK_TOLERANCE_PP", d.benchmarks.tolerance, "percentage points"
                ),
            ),
            offsite_max_lag_hours=read.number(
                "RECON_OFFSITE_MAX_LAG_HOURS", d.offsite_max_lag_hours, "hours"
            ),
            stage_sizes=(
                read.count("RECON_PUSH_STAGE1_SIZE", d.stage_sizes[0], "documents"),
                read.count("RECON_PUSH_STAGE2_SIZE", d.stage_sizes[1], "documents"),
            ),
            lock_timeout_s=read.number("RECON_LOCK_TIMEOUT_S", d.lock_timeout_s, "seconds"),
            max_window_file_mb=read.count(
                "RECON_MAX_WINDOW_FILE_MB", d.max_window_file_mb, "megabytes"
            ),
            reassign_max_change_pct=read.percent(
                "RECON_REASSIGN_MAX_CHANGE_PCT", d.reassign_max_change_pct
            ),
            is_copy=read.flag("RECON_IS_COPY", d.is_copy),
            node=read.text("RECON_NODE") or d.node,
            pg_bin_dir=read.path("RECON_PG_BIN_DIR"),
            review=ReviewSettings(
                url=read.text("RECON_REVIEW_URL") or d.review.url,
                hosts=read.names("RECON_REVIEW_HOSTS"),
                token=read.secret("RECON_REVIEW_TOKEN"),
            ),
            peertube=PeerTubeSettings(
                url=read.text("PEERTUBE_URL"),
                host_header=read.text("PEERTUBE_HOST_HEADER"),
                username=read.text("PEERTUBE_USERNAME") or d.peertube.username,
                password=read.secret("PEERTUBE_PASSWORD"),
                token_cache=read.path("PEERTUBE_TOKEN_CACHE"),
                plugin_path=read.text("PEERTUBE_PLUGIN_PATH"),
                db_dsn=read.secret("PEERTUBE_DB_DSN"),
                db_dump_command=read.text("PEERTUBE_DB_DUMP_COMMAND"),
                push_max_in_flight=read.count(
                    "PEERTUBE_PUSH_MAX_IN_FLIGHT",
                    d.peertube.push_max_in_flight,
                    "PUT requests",
                    maximum=MAX_PUSH_IN_FLIGHT,
                ),
                push_max_rate=read.rate("PEERTUBE_PUSH_MAX_RATE", "requests per second"),
            ),
        )


DEFAULTS = Settings()  # every setting at its default: what an empty environment gives


def settings_env(settings: Settings) -> dict[str, str]:
    """The variables that give `settings` back from `Settings.from_env` (the inverse of
    it; an unset optional setting is left out). Secrets are written out: for a `.env` the
    caller keeps at mode 0600 (the demo's, for its throwaway sandbox)."""
    b, r, p = settings.benchmarks, settings.review, settings.peertube

    def secret(value: SecretStr | None) -> str | None:
        return value.get_secret_value() if value is not None else None

    values: dict[str, object | None] = {
        "RECON_DB_PATH": settings.db_path,
        "RECON_CONCEPTS_DIR": settings.concepts_dir,
        "RECON_STREAM_SOURCE": settings.stream_source,
        "RECON_ACCEPTED_HOSTS": ",".join(settings.accepted_hosts),
        "RECON_BACKUP_DIR": settings.backup_dir,
        "RECON_OFFSITE_CONCEPTS_DIR": settings.offsite_concepts_dir,
        "RECON_QUARANTINE_DIR": settings.quarantine_dir,
        "RECON_SKIP_CHANNELS": ",".join(sorted(settings.skip_channels)),
        "RECON_BENCHMARK_ASSIGNED_PCT": b.assigned,
        "RECON_BENCHMARK_TIED_PCT": b.tied,
        "RECON_BENCHMARK_NEEDS_REPROCESS_PCT": b.needs_reprocess,
        "RECON_BENCHMARK_TOLERANCE_PP": b.tolerance,
        "RECON_OFFSITE_MAX_LAG_HOURS": settings.offsite_max_lag_hours,
        "RECON_PUSH_STAGE1_SIZE": settings.stage_sizes[0],
        "RECON_PUSH_STAGE2_SIZE": settings.stage_sizes[1],
        "RECON_LOCK_TIMEOUT_S": settings.lock_timeout_s,
        "RECON_MAX_WINDOW_FILE_MB": settings.max_window_file_mb,
        "RECON_IS_COPY": "1" if settings.is_copy else "0",
        "RECON_NODE": settings.node,
        "RECON_PG_BIN_DIR": settings.pg_bin_dir,
        "RECON_REVIEW_URL": r.url,
        "RECON_REVIEW_HOSTS": ",".join(r.hosts),
        "RECON_REVIEW_TOKEN": secret(r.token),
        "PEERTUBE_URL": p.url,
        "PEERTUBE_HOST_HEADER": p.host_header,
        "PEERTUBE_USERNAME": p.username,
        "PEERTUBE_PASSWORD": secret(p.password),
        "PEERTUBE_TOKEN_CACHE": p.token_cache,
        "PEERTUBE_PLUGIN_PATH": p.plugin_path,
        "PEERTUBE_DB_DSN": secret(p.db_dsn),
        "PEERTUBE_DB_DUMP_COMMAND": p.db_dump_command,
        "PEERTUBE_PUSH_MAX_IN_FLIGHT": p.push_max_in_flight,
        "PEERTUBE_PUSH_MAX_RATE": p.push_max_rate,
    }
    return {k: str(v) for k, v in values.items() if v is not None and str(v) != ""}


def setting_names() -> tuple[str, ...]:
    """Every variable `Settings.from_env` reads, in its order (`recon-domains check` names
    each one)."""
    env = _RecordingEnv()
    Settings.from_env(env)
    return tuple(dict.fromkeys(env.asked))


def require(value: T | None, variable: str) -> T:
    """`value`, or a ConfigError naming the unset `variable`."""
    if value is None or value == "":
        raise ConfigError(f"{variable} is not set. Set it in the environment or in .env.",
                          variable=variable)
    return value


class _RecordingEnv(dict[str, str]):
    """An empty environment that notes each variable asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        self.asked.append(key)
        return default


class _Reader:
    """Typed reads of one environment mapping; blank counts as unset."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def text(self, name: str) -> str | None:
        return (self._env.get(name) or "").strip() or None

    def path(self, name: str) -> Path | None:
        value = self.text(name)
        return Path(value).expanduser() if value else None

    def names(self, name: str) -> tuple[str, ...]:
        """A comma-separated list, blanks dropped."""
        return tuple(part.strip() for part in (self._env.get(name) or "").split(",")
                     if part.strip())

    def hosts(self, name: str) -> tuple[str, ...]:
        """A comma-separated list of bare host names (no scheme, user, port or path)."""
        hosts = self.names(name)
        for host in hosts:
            if host_key(host) is None or any(c in host for c in ":/@[]\\ "):
                raise _invalid(
                    name, self._env.get(name) or "",
                    f"host names separated by commas, e.g. stream.example.org ({host!r} is "
                    "not one)", "none: only RECON_STREAM_SOURCE",
                )
        return hosts

    def secret(self, name: str) -> SecretStr | None:
        value = self._env.get(name) or ""  # not stripped: a password may end in a space
        return SecretStr(value) if value else None

    def flag(self, name: str, default: bool) -> bool:
        value = self.text(name)
        if value is None:
            return default
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise _invalid(name, value, "1 (yes) or 0 (no)", "1" if default else "0")

    def number(
        self, name: str, default: float, unit: str, *, maximum: float | None = None
    ) -> float:
        """A finite number from 0 (to `maximum`)."""
        value = self.text(name)
        if value is None:
            return default
        number = _float(value)
        upper = math.inf if maximum is None else maximum
        if not (math.isfinite(number) and 0 <= number <= upper):
            limit = "or more" if maximum is None else f"to {maximum:g}"
            raise _invalid(name, value, f"a number of {unit}, 0 {limit}", f"{default:g}")
        return number

    def rate(self, name: str, unit: str) -> float | None:
        """A finite number above 0, or None when unset."""
        value = self.text(name)
        if value is None:
            return None
        number = _float(value)
        if not (math.isfinite(number) and number > 0):
            raise _invalid(name, value, f"a number of {unit} above 0", "no limit")
        return number

    def percent(self, name: str, default: float) -> float:
        return self.number(name, default, "percent", maximum=100)

    def count(self, name: str, default: int, unit: str, *, maximum: int | None = None) -> int:
        """A whole number from 1 (to `maximum`)."""
        value = self.text(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            number = 0
        if not 1 <= number <= (maximum or number):
            limit = "or more" if maximum is None else f"to {maximum}"
            raise _invalid(name, value, f"a whole number of {unit}, 1 {limit}", str(default))
        return number


def _float(value: str) -> float:
    """The number `value` says, NaN when it is none."""
    try:
        return float(value)
    except ValueError:
        return math.nan


def _invalid(name: str, value: str, expected: str, default: str) -> ConfigError:
    return ConfigError(
        f"{name} is {value!r}, which is not valid: expected {expected}. Set {name} to such a "
        f"value, or unset it for the default ({default}).",
        variable=name,
    )

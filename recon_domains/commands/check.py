"""`recon-domains check`: the preflight, like `dbt debug`.

It reads every setting of recon_domains.settings (present, valid, what a missing optional
one disables) and looks at what each points to: the Dagster instance in DAGSTER_HOME (read
as files: the plain core never imports dagster), RECON's database and its migration state,
the concept folders and their off-site mirror, and PeerTube: reachable, one login (none when
PEERTUBE_TOKEN_CACHE holds a valid token), the admin role, the plugin and its categories,
PeerTube's database or the dump command. Each line is OK, WARN or FAIL with what to do; any
FAIL is a configuration problem (exit 3).

It changes nothing: no dump is run and nothing is installed or written, except what using
the settings always does (recon.db is opened as the store opens it, in RECON's WAL mode, and
a login updates PEERTUBE_TOKEN_CACHE). No secret's value is ever printed: each output line
is scrubbed of them.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg2
import yaml
from psycopg2.extensions import parse_dsn
from pydantic import SecretStr

from recon_domains.backups import BackupError, choose_pg_dump, offsite_freshness, server_version_num
from recon_domains.commands import EXIT_CONFIG, EXIT_OK
from recon_domains.peertube.categories import category_problems, recon_categories
from recon_domains.peertube.client import (
    PeerTubeAuthError,
    PeerTubeClient,
    PeerTubeError,
    PeerTubeForbidden,
    PeerTubeHTTPError,
    PeerTubeRateLimited,
    RetryPolicy,
)
from recon_domains.peertube.database import PeerTubeDatabase, PeerTubeDatabaseError
from recon_domains.recon.store import (
    DROP_COLUMN_MIN_SQLITE,
    ReconStore,
    ReconStoreError,
    sqlite_version,
)
from recon_domains.settings import ConfigError, PeerTubeSettings, Settings, setting_names
from recon_domains.taxonomy import CATEGORY_ID_RANGE, DOMAIN_BY_ID, PLUGIN_NPM_NAME

if TYPE_CHECKING:
    from recon_domains.cli import EnvFile

T = TypeVar("T")

OK, WARN, FAIL = "OK", "WARN", "FAIL"
SUBJECT_WIDTH = 27  # the longest setting name, PEERTUBE_PUSH_MAX_IN_FLIGHT
# A preflight must answer in seconds: one retry, no long waits on PeerTube's limits.
CHECK_TIMEOUT = (5.0, 15.0)
CHECK_RETRY = RetryPolicy(max_retries=1, backoff_max=1.0, rate_limit_max_wait=10.0)
DAGSTER_TEMP_HOME_PREFIX = ".tmp_dagster_home_"  # what `dagster dev` makes without one
# Secrets outside the settings model (dagster.postgres.yaml reads it).
OTHER_SECRET_VARIABLES = ("DAGSTER_PG_PASSWORD",)


@dataclass(frozen=True)
class Line:
    """One verdict: what was checked, and what was found (with what to do)."""

    verdict: str  # OK, WARN or FAIL
    subject: str  # a setting's name, or what was checked (plugin, categories, …)
    text: str

    def render(self) -> str:
        return f"{self.verdict:<4}  {self.subject:<{SUBJECT_WIDTH}} {self.text}"


@dataclass
class Report:
    """The lines so far; each is scrubbed of `secrets` and handed to `echo` as it comes."""

    secrets: tuple[str, ...] = ()
    echo: Callable[[Line], None] | None = None
    lines: list[Line] = field(default_factory=list)

    def add(self, verdict: str, subject: str, text: str) -> None:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        line = Line(verdict, subject, text)
        self.lines.append(line)
        if self.echo is not None:
            self.echo(line)

    def ok(self, subject: str, text: str) -> None:
        self.add(OK, subject, text)

    def warn(self, subject: str, text: str) -> None:
        self.add(WARN, subject, text)

    def fail(self, subject: str, text: str) -> None:
        self.add(FAIL, subject, text)

    @property
    def failed(self) -> bool:
        return any(line.verdict == FAIL for line in self.lines)

    def summary(self) -> str:
        counts = {v: sum(line.verdict == v for line in self.lines) for v in (OK, WARN, FAIL)}
        text = f"{counts[OK]} OK, {counts[WARN]} WARN, {counts[FAIL]} FAIL"
        if counts[FAIL]:
            return text + ": fix each FAIL line, then run `recon-domains check` again (exit 3)"
        return text


# -- the checks, in runbook order ------------------------------------------------------------
def run_checks(
    env: Mapping[str, str],
    env_file: EnvFile | None,
    cwd: Path,
    echo: Callable[[Line], None] | None = None,
) -> Report:
    """Every check against `env` (the process environment, `.env` already read into it)."""
    settings, invalid = _read_settings(env)
    report = Report(secrets=_secret_values(settings, env), echo=echo)
    _env_file(report, env_file, cwd)
    for exc in invalid:
        report.fail(str(exc.variable), f"{exc} (The checks below use the default.)")
    if not invalid:
        report.ok("settings", f"all {len(setting_names())} settings read; every value set "
                  "is valid")
    _guarded(report, "DAGSTER_HOME", _dagster_home, env)
    migrated = _guarded(report, "RECON_DB_PATH", _recon_db, settings, env)
    _guarded(report, "SQLite", _sqlite)
    _guarded(report, "RECON_CONCEPTS_DIR", _concepts, settings)
    _guarded(report, "RECON_OFFSITE_CONCEPTS_DIR", _offsite, settings)
    _guarded(report, "RECON_BACKUP_DIR", _backup_dir, settings)
    _guarded(report, "RECON_QUARANTINE_DIR", _quarantine_dir, settings)
    _guarded(report, "rollout settings", _rollout_settings, settings, env)
    _guarded(report, "RECON_NODE", _node, settings)
    _guarded(report, "review page", _review, settings)
    _guarded(report, "PeerTube", _peertube, settings, migrated)
    _guarded(report, "PeerTube's database", _peertube_database, settings)
    mentioned = " ".join(f"{line.subject} {line.text}" for line in report.lines)
    for name in setting_names():  # a setting no line above speaks of still gets one
        if name not in mentioned:
            report.ok(name, "set" if (env.get(name) or "").strip() else "not set (default)")
    return report


def _guarded(report: Report, subject: str, check: Callable[..., T], *args: Any) -> T | None:
    """`check(report, *args)`; an unexpected error becomes a FAIL line: a preflight reports,
    it never stops half-way."""
    try:
        return check(report, *args)
    except Exception as exc:
        report.fail(subject, f"the check itself failed ({type(exc).__name__}: {exc}); please "
                    "report this")
        return None


def _read_settings(env: Mapping[str, str]) -> tuple[Settings, list[ConfigError]]:
    """The settings, and the error of each invalid value (its default is used instead)."""
    remaining = dict(env)
    invalid: list[ConfigError] = []
    while True:
        try:
            return Settings.from_env(remaining), invalid
        except ConfigError as exc:
            if exc.variable is None or exc.variable not in remaining:
                raise
            invalid.append(exc)
            del remaining[exc.variable]


def _env_file(report: Report, env_file: EnvFile | None, cwd: Path) -> None:
    path = cwd / ".env"
    if env_file is None:
        if path.is_file():
            report.warn(".env", f"{path} was not read (recon-domains was called from Python "
                        "with arguments, not as the command)")
        else:
            report.ok(".env", f"none in {cwd}: the settings come from the environment alone")
        return
    text = f"{env_file.path}: {len(env_file.loaded)} variable(s) set from it"
    if env_file.kept:
        text += f"; {', '.join(env_file.kept)} also set in the environment, which wins"
    if env_file.path.stat().st_mode & 0o077:
        report.warn(".env", f"{text}; readable by other users, and it holds the settings "
                    f"(PEERTUBE_PASSWORD among them): chmod 600 {env_file.path}")
    else:
        report.ok(".env", text)


def _dagster_home(report: Report, env: Mapping[str, str]) -> None:
    subject = "DAGSTER_HOME"
    value = (env.get(subject) or "").strip()
    if not value:
        report.fail(subject, "not set: Dagster would use a throwaway instance, so every gate "
                    "would look never passed and the jobs refuse. Set DAGSTER_HOME to a "
                    "persistent folder holding a copy of the repository's dagster.yaml "
                    "(`make ui` makes ./dagster_home)")
        return
    home = Path(value)
    fix = f"mkdir -p {home} && cp dagster.yaml {home}/"
    if not home.is_absolute():
        report.fail(subject, f"{value} is not an absolute path, which Dagster requires: set "
                    "it to the folder's full path")
    elif home.name.startswith(DAGSTER_TEMP_HOME_PREFIX):
        report.fail(subject, f"{home} is a temporary instance `dagster dev` made; it is "
                    "deleted when dagster dev stops: set DAGSTER_HOME to a persistent folder")
    elif not home.is_dir():
        what = "is not a folder" if home.exists() else "does not exist"
        report.fail(subject, f"{home} {what}: {fix}")
    elif not os.access(home, os.W_OK | os.X_OK):
        report.fail(subject, f"{home} is not writable by this user: Dagster records every "
                    "run and gate result there")
    elif not (home / "dagster.yaml").is_file():
        report.fail(subject, f"{home} holds no dagster.yaml: cp dagster.yaml {home}/ (its "
                    "concurrency pool lets only one writing step run at a time)")
    else:
        _dagster_yaml(report, home, env)


def _dagster_yaml(report: Report, home: Path, env: Mapping[str, str]) -> None:
    subject = "DAGSTER_HOME"
    path = home / "dagster.yaml"
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        report.fail(subject, f"{path} cannot be read as YAML ({exc}): copy the repository's "
                    "dagster.yaml there again")
        return
    if not isinstance(config, dict):
        report.fail(subject, f"{path} is not a YAML mapping: copy the repository's "
                    "dagster.yaml there again")
        return
    if any("InMemory" in text for text in _strings(config)):
        report.fail(subject, f"{path} configures in-memory storage: nothing would persist, "
                    "so the gates could not be read back. Remove it (SQLite files under "
                    "DAGSTER_HOME are the default)")
        return
    unset = [name for name in _env_references(config) if not (env.get(name) or "").strip()]
    if unset:
        report.fail(subject, f"{path} reads {', '.join(unset)} from the environment, and "
                    f"{'it is' if len(unset) == 1 else 'they are'} not set: set "
                    f"{'it' if len(unset) == 1 else 'them'} (see dagster.postgres.yaml)")
        return
    storage = config.get("storage")
    postgres = isinstance(storage, dict) and "postgres" in storage
    kind = "PostgreSQL storage" if postgres else "SQLite files in it"
    if not postgres:
        history = "runs recorded" if (home / "history" / "runs.db").is_file() else "no run yet"
        kind += f", {history}"
    pools = (config.get("concurrency") or {}).get("pools") or {}
    if pools.get("default_limit") != 1:
        report.warn(subject, f"{home}: a persistent instance ({kind}), but its dagster.yaml "
                    "sets no writers' limit (concurrency: pools: default_limit: 1), so two "
                    "runs could write at once: copy the repository's dagster.yaml there")
        return
    report.ok(subject, f"{home}: a persistent instance ({kind}); dagster.yaml lets one "
              "writing step run at a time")


def _recon_db(report: Report, settings: Settings, env: Mapping[str, str]) -> bool | None:
    """Reports recon.db and the stream source; whether recon.db is migrated (None: unknown)."""
    subject, path, source = "RECON_DB_PATH", settings.db_path, settings.stream_source
    source_text = f"{source}{_default_mark(env, 'RECON_STREAM_SOURCE')}"
    problem = "not set: set it to RECON's recon.db, e.g. /opt/recon/data/recon.db"
    if path is not None:
        try:
            with ReconStore.open(path, source) as store:
                pipeline = store.pipeline_status_counts()
                migration = store.verify_migration()
            problem = None
        except ReconStoreError as exc:
            problem = str(exc)
        except sqlite3.Error as exc:
            problem = (f"{path} cannot be used ({exc}): it must be RECON's recon.db, readable "
                       "and writable by this user")
    if problem is not None:
        report.fail(subject, problem)
        report.ok("RECON_STREAM_SOURCE", f"{source_text} (not compared with recon.db)")
        return None
    if migration.ok:
        report.ok(subject, f"{path}: RECON's database, migrated (runbook Step 3 done)")
    elif any(p.startswith("ALERT") for p in migration.problems):
        report.fail(subject, f"{path}: {'; '.join(migration.problems)}. RECON's own columns "
                    "changed: restore the pre-deploy backup (runbook Pre-Deploy 1) and report "
                    "this")
    else:
        report.warn(subject, f"{path}: RECON's database, not migrated yet "
                    f"({'; '.join(migration.problems)}): runbook Step 3 (schema_job) migrates "
                    "it")
    stream = sum(pipeline.values())
    if stream:
        report.ok("RECON_STREAM_SOURCE", f"{source_text}: {stream} stream documents in "
                  f"recon.db ({pipeline.get('complete', 0)} complete)")
    else:
        report.warn("RECON_STREAM_SOURCE", f"{source_text}: no document in recon.db comes "
                    "from this source: set RECON_STREAM_SOURCE to PeerTube's host name as "
                    "RECON records it (catalogue.source)")
    return migration.ok


def _sqlite(report: Report) -> None:
    found = ".".join(map(str, sqlite_version()))
    needed = ".".join(map(str, DROP_COLUMN_MIN_SQLITE[:2]))
    if sqlite_version() >= DROP_COLUMN_MIN_SQLITE:
        report.ok("SQLite", f"{found} ({needed} or newer: rollback_schema can drop the "
                  "columns)")
    else:
        report.warn("SQLite", f"{found} is older than {needed}: rollback_schema cannot drop "
                    f"the four columns; run recon_domains on a Python whose SQLite is {needed} "
                    "or newer before you may need that rollback")


def _concept_folder_count(root: Path) -> int:
    with os.scandir(root) as entries:
        return sum(1 for entry in entries if entry.is_dir(follow_symlinks=False))


def _concepts(report: Report, settings: Settings) -> None:
    subject = "RECON_CONCEPTS_DIR"
    root = settings.concepts_dir
    if root is None:
        report.fail(subject, "not set: set it to RECON's concept folders "
                    "(<dir>/<hash>/window_*.json)")
    elif not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        report.fail(subject, f"{root} {what}: set RECON_CONCEPTS_DIR to RECON's concepts "
                    "folder")
    elif not os.access(root, os.R_OK | os.X_OK):
        report.fail(subject, f"{root} is not readable by this user: pass 1 reads every "
                    "concept folder")
    else:
        count = _concept_folder_count(root)
        if count == 0:
            report.warn(subject, f"{root} holds no concept folder: is it RECON's concepts "
                        "folder?")
        elif not os.access(root, os.W_OK):
            report.warn(subject, f"{root}: {count} concept folders, readable but not writable "
                        "by this user: Step 7 (reprocess) moves stale folders out of it")
        else:
            report.ok(subject, f"{root}: {count} concept folders, readable and writable")


def _offsite(report: Report, settings: Settings) -> None:
    subject = "RECON_OFFSITE_CONCEPTS_DIR"
    mirror, limit = settings.offsite_concepts_dir, settings.offsite_max_lag_hours
    limit_text = f"limit {limit:g} h, RECON_OFFSITE_MAX_LAG_HOURS"
    if mirror is None:
        report.warn(subject, "not set: Pre-deploy 3 (offsite_concept_backup) cannot pass, so "
                    "the migration stops there, and restore_concepts cannot copy from the "
                    "mirror. Set it to the off-site concept mirror as mounted here")
        return
    if not mirror.is_dir():
        what = "is not a folder" if mirror.exists() else "does not exist"
        report.fail(subject, f"{mirror} {what}: mount the off-site mirror there, or set "
                    "RECON_OFFSITE_CONCEPTS_DIR to where it is mounted")
        return
    concepts = settings.concepts_dir
    if concepts is None or not concepts.is_dir():
        report.warn(subject, f"{mirror}: its lag not measured ({limit_text}): "
                    "RECON_CONCEPTS_DIR above is not usable")
        return
    result = offsite_freshness(concepts, mirror, limit)
    if result.problems:
        report.warn(subject, f"{mirror}: {'; '.join(result.problems)} ({limit_text}; runbook "
                    "Pre-deploy 3 would stop)")
        return
    lag = result.lag_hours or 0.0
    behind = f"{lag:.1f} h behind the local concepts" if lag > 0 else "up to date"
    present = len(result.sampled) - len(result.missing)
    report.ok(subject, f"{mirror}: {behind} ({limit_text}); {present}/{len(result.sampled)} "
              "sampled concept folders present")


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _backup_dir(report: Report, settings: Settings) -> None:
    subject = "RECON_BACKUP_DIR"
    if settings.backup_dir is not None:
        folder, how = settings.backup_dir, ""
    elif settings.db_path is not None:
        folder, how = settings.db_path.parent / "backups", " (not set: beside recon.db)"
    else:
        report.ok(subject, "not set: backups go to a folder beside recon.db")
        return
    existing = _nearest_existing(folder)
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        report.fail(subject, f"{folder}{how} cannot be written by this user ({existing} is "
                    "not a writable folder): Pre-deploy 1–2 write the backups and the dump "
                    "there, and every rollback its audit log. Set RECON_BACKUP_DIR to a "
                    "writable folder")
        return
    free = shutil.disk_usage(existing).free
    needed = settings.db_path.stat().st_size if settings.db_path and settings.db_path.is_file() \
        else 0
    state = "exists" if folder.is_dir() else "created on first use"
    text = f"{folder}{how}: {state}, writable, {free / 2**30:.1f} GiB free"
    if free < needed:
        report.warn(subject, f"{text}, less than recon.db's {needed / 2**30:.1f} GiB: "
                    "Pre-deploy 1's copy would not fit; free space or set RECON_BACKUP_DIR")
    else:
        report.ok(subject, text)


def _quarantine_dir(report: Report, settings: Settings) -> None:
    subject = "RECON_QUARANTINE_DIR"
    concepts = settings.concepts_dir
    if settings.quarantine_dir is not None:
        folder, how = settings.quarantine_dir, ""
    elif concepts is not None:
        folder, how = concepts.parent / f"{concepts.name}.quarantine", " (not set: the default)"
    else:
        report.ok(subject, "not set: <RECON_CONCEPTS_DIR>.quarantine")
        return
    if concepts is None or not concepts.is_dir():
        report.ok(subject, f"{folder}{how}")
        return
    if folder.resolve().is_relative_to(concepts.resolve()):
        report.fail(subject, f"{folder} is inside RECON_CONCEPTS_DIR, where it would be read "
                    "as a concept folder: set RECON_QUARANTINE_DIR outside the concepts")
        return
    existing = _nearest_existing(folder)
    if existing.stat().st_dev != concepts.stat().st_dev:
        report.warn(subject, f"{folder}{how} is on another file system than the concepts: "
                    "Step 7 then copies each stale folder instead of moving it (slower, and it "
                    "needs the space); prefer a folder on the concepts' file system")
        return
    report.ok(subject, f"{folder}{how}: outside the concepts, on their file system (Step 7 "
              "moves stale folders there)")


def _rollout_settings(report: Report, settings: Settings, env: Mapping[str, str]) -> None:
    """The settings that are only values: what each is, and whether it is the default."""
    channels = ", ".join(sorted(settings.skip_channels)) or "none"
    report.ok("RECON_SKIP_CHANNELS", f"{channels}{_default_mark(env, 'RECON_SKIP_CHANNELS')}: "
              "their tied videos go to a human")
    b = settings.benchmarks
    report.ok("benchmarks (Step 4)", "; ".join((
        _shown(env, "RECON_BENCHMARK_ASSIGNED_PCT", f"{b.assigned:g} %"),
        _shown(env, "RECON_BENCHMARK_TIED_PCT", f"{b.tied:g} %"),
        _shown(env, "RECON_BENCHMARK_NEEDS_REPROCESS_PCT", f"{b.needs_reprocess:g} %"),
        _shown(env, "RECON_BENCHMARK_TOLERANCE_PP", f"{b.tolerance:g} percentage points"),
    )))
    first, second = settings.stage_sizes
    report.ok("push stages (Step 5)", "; ".join((
        _shown(env, "RECON_PUSH_STAGE1_SIZE", f"{first} documents"),
        _shown(env, "RECON_PUSH_STAGE2_SIZE", f"{second} documents"),
    )) + "; stage-3 the rest")
    report.ok("PEERTUBE_PUSH_MAX_IN_FLIGHT", f"{settings.peertube.push_max_in_flight}"
              f"{_default_mark(env, 'PEERTUBE_PUSH_MAX_IN_FLIGHT')}: category PUTs in flight "
              "at once")
    if settings.is_copy:
        report.ok("RECON_IS_COPY", "1: a rehearsal copy, no RECON workers (stale mid-pipeline "
                  "statuses are reported, not a failure); never set it for the live RECON")
    else:
        report.ok("RECON_IS_COPY", f"0{_default_mark(env, 'RECON_IS_COPY')}: a live RECON "
                  "(Pre-deploy 4 waits until its workers are idle)")


def _node(report: Report, settings: Settings) -> None:
    found = shutil.which(settings.node)
    if found is None:
        report.warn("RECON_NODE", f"{settings.node!r} not found: plugin_job cannot check a "
                    "plugin folder before installing it from PEERTUBE_PLUGIN_PATH. Install "
                    "Node.js 20 or newer, or set RECON_NODE to the node executable")
        return
    try:
        answer = subprocess.run([found, "--version"], capture_output=True, text=True,
                                timeout=10, check=False)
        version = answer.stdout.strip() or f"exit code {answer.returncode}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        version = f"no version: {exc}"
    report.ok("RECON_NODE", f"{found} ({version}): checks a plugin folder before plugin_job "
              "installs it")


def _review(report: Report, settings: Settings) -> None:
    review = settings.review
    hosts = ", ".join(review.hosts) or "none"
    text = (f"RECON_REVIEW_URL {review.url}; RECON_REVIEW_HOSTS {hosts}; RECON_REVIEW_TOKEN "
            + ("set (hidden)" if review.token else "not set (needed only to listen off "
               "loopback)"))
    if review.token is not None:
        from recon_domains.review.server import MIN_TOKEN_LENGTH

        if len(review.token.get_secret_value()) < MIN_TOKEN_LENGTH:
            report.fail("review page", f"{text}, but shorter than {MIN_TOKEN_LENGTH} "
                        "characters: the page refuses it. Use e.g. python3 -c 'import secrets; "
                        "print(secrets.token_urlsafe(32))'")
            return
    report.ok("review page", text)


# -- PeerTube -----------------------------------------------------------------------------------
def _peertube(report: Report, settings: Settings, migrated: bool | None) -> None:
    pt = settings.peertube
    report.ok("PEERTUBE_HOST_HEADER", f"{pt.host_header}: sent as the Host header" if
              pt.host_header else "not set: requests carry PEERTUBE_URL's host")
    report.ok("PEERTUBE_PLUGIN_PATH", f"{pt.plugin_path}: plugin_job installs the plugin from "
              "this folder on PeerTube's host" if pt.plugin_path else "not set: plugin_job "
              "verifies a plugin installed by hand")
    _token_cache(report, pt.token_cache)
    if not pt.url:
        report.fail("PEERTUBE_URL", "not set: set it to PeerTube's base URL, e.g. "
                    "http://192.168.1.170:9000; PeerTube was not checked")
    if pt.password is None:
        report.fail("PEERTUBE_PASSWORD", "not set: export the PeerTube admin's password (in "
                    "the environment or .env, never in a file of the repository); PeerTube's "
                    "login, admin role and plugin were not checked")
    if not pt.url or pt.password is None:
        return
    try:
        client = PeerTubeClient.from_settings(pt, timeout=CHECK_TIMEOUT, retry=CHECK_RETRY)
    except PeerTubeError as exc:
        report.fail("PEERTUBE_URL", str(exc))
        return
    with client:
        _peertube_api(report, client, settings, migrated)


def _token_cache(report: Report, cache: Path | None) -> None:
    subject = "PEERTUBE_TOKEN_CACHE"
    if cache is None:
        report.ok(subject, "not set: every run logs in once (PeerTube allows 15 logins per 5 "
                  "minutes per IP)")
        return
    existing = _nearest_existing(cache.parent)
    if cache.exists() and not cache.is_file():
        report.fail(subject, f"{cache} is not a file: set PEERTUBE_TOKEN_CACHE to a file path")
    elif not cache.exists() and not os.access(existing, os.W_OK | os.X_OK):
        report.warn(subject, f"{cache} cannot be created ({existing} is not writable): "
                    "tokens are not kept, so every run logs in")
    else:
        state = "holds tokens" if cache.is_file() else "created at the first login"
        report.ok(subject, f"{cache}: {state} (mode 0600; never the password), so runs "
                  "reuse tokens instead of logging in")


def _peertube_api(report: Report, client: PeerTubeClient, settings: Settings,
                  migrated: bool | None) -> None:
    pt = settings.peertube
    where = f"{client.base_url}" + (f" (Host: {pt.host_header})" if pt.host_header else "")
    try:
        categories = client.categories()  # anonymous, unless a cached token is at hand
    except PeerTubeAuthError as exc:  # a stale cached token was renewed with the password
        report.ok("PEERTUBE_URL", f"{where}: PeerTube answers")
        report.fail("PEERTUBE_PASSWORD", _login_refused(exc, pt.username))
        return
    except PeerTubeError as exc:  # unreachable, or not PeerTube's API
        report.fail("PEERTUBE_URL", f"{exc} (login, admin role, plugin and categories were "
                    "not checked)")
        return
    report.ok("PEERTUBE_URL", f"{where}: PeerTube answers ({len(categories)} video categories "
              "registered)")
    plugin: dict[str, Any] | None = None
    plugin_known = False
    if _admin_login(report, client, pt):
        try:
            plugin = client.find_plugin(PLUGIN_NPM_NAME)
            plugin_known = True
        except PeerTubeError as exc:
            report.fail("plugin", f"PeerTube's plugin list could not be read: {exc}")
    else:
        report.warn("plugin", "not checked: PeerTube lists plugins to an administrator only "
                    "(see the login above)")
    if plugin_known:
        _plugin_line(report, plugin, pt, migrated)
    _categories_line(report, categories, plugin, plugin_known, migrated)


def _admin_login(report: Report, client: PeerTubeClient, pt: PeerTubeSettings) -> bool:
    """One login (none with a valid cached token) and the admin role; True when both hold."""
    try:
        client.require_admin()  # logs in first, unless a cached token works
    except PeerTubeForbidden as exc:
        report.ok("PEERTUBE_PASSWORD", _login_text(client, pt))
        report.fail("PEERTUBE_USERNAME", str(exc))
        return False
    except PeerTubeAuthError as exc:
        report.fail("PEERTUBE_PASSWORD", _login_refused(exc, pt.username))
        return False
    except PeerTubeRateLimited as exc:
        report.warn("PEERTUBE_PASSWORD", f"set (hidden), not tried now: {exc}")
        return False
    except PeerTubeError as exc:
        report.fail("PEERTUBE_PASSWORD", f"logging in as {pt.username!r} failed: {exc}")
        return False
    report.ok("PEERTUBE_PASSWORD", _login_text(client, pt))
    report.ok("PEERTUBE_USERNAME", f"{pt.username}: an Administrator (the push and the "
              "plugin steps need one)")
    return True


def _plugin_line(report: Report, plugin: dict[str, Any] | None, pt: PeerTubeSettings,
                 migrated: bool | None) -> None:
    how = (f"plugin_job installs it from PEERTUBE_PLUGIN_PATH ({pt.plugin_path})"
           if pt.plugin_path else "install it in PeerTube (Administration → Plugins/Themes), "
           "or set PEERTUBE_PLUGIN_PATH so plugin_job installs it")
    if plugin is None and migrated:
        report.fail("plugin", f"{PLUGIN_NPM_NAME} is not installed in PeerTube, yet recon.db "
                    "is migrated (Step 3 comes after the plugin): PeerTube refuses RECON's "
                    f"categories without it. {how}, then run plugin_job")
    elif plugin is None:
        report.warn("plugin", f"{PLUGIN_NPM_NAME} is not installed in PeerTube yet: runbook "
                    f"Steps 1–2 — {how}, then run plugin_job")
    elif plugin.get("enabled") is False:
        report.fail("plugin", f"{PLUGIN_NPM_NAME} is installed but disabled: enable it in "
                    "PeerTube (Administration → Plugins/Themes)")
    else:
        version = plugin.get("version") or "(version unknown)"
        report.ok("plugin", f"{PLUGIN_NPM_NAME} {version} installed and enabled")


def _categories_line(report: Report, categories: Mapping[int, str],
                     plugin: dict[str, Any] | None, plugin_known: bool,
                     migrated: bool | None) -> None:
    expected = f"{len(DOMAIN_BY_ID)} RECON categories {CATEGORY_ID_RANGE}"
    if not recon_categories(categories):
        if plugin_known and plugin is None:
            return  # the plugin line says it all
        text = f"none of the {expected} is registered"
        if plugin is not None:
            report.fail("categories", f"{text}, though the plugin is installed: check "
                        "PeerTube's log for plugin errors and reinstall it (runbook Rollback "
                        "'Plugin install fails')")
        elif migrated:
            report.fail("categories", f"{text}, yet recon.db is migrated: install the plugin "
                        "(runbook Steps 1–2)")
        else:
            report.warn("categories", f"{text}: the plugin is not installed yet (runbook "
                        "Steps 1–2)")
        return
    problems = category_problems(categories)
    if problems:
        shown = "; ".join(problems[:5]) + ("; …" if len(problems) > 5 else "")
        report.fail("categories", f"{len(problems)} of the {expected} are not as the taxonomy "
                    f"says: {shown}. Check PeerTube's log for plugin errors and reinstall the "
                    "plugin (runbook Rollback 'Plugin install fails')")
    else:
        report.ok("categories", f"all {expected} registered with exactly the taxonomy's "
                  "labels")


def _login_refused(exc: PeerTubeHTTPError, username: str) -> str:
    if exc.path.endswith("/users/token"):
        return (f"PeerTube refused the login of {username!r} ({exc.status} {exc.code}): set "
                f"PEERTUBE_PASSWORD to that account's password (and PEERTUBE_USERNAME, if "
                f"{username!r} is not the admin account)")
    return str(exc)  # a fresh token refused: the client's message says what to check


def _login_text(client: PeerTubeClient, pt: PeerTubeSettings) -> str:
    if client.login_count:
        kept = " and kept its token in PEERTUBE_TOKEN_CACHE" if pt.token_cache else ""
        return (f"set (hidden); PeerTube accepted it: logged in once as {pt.username}{kept} "
                "(PeerTube allows 15 logins per 5 minutes per IP)")
    return ("set (hidden), not tried: the token kept in PEERTUBE_TOKEN_CACHE is valid, so no "
            "login was needed")


def _peertube_database(report: Report, settings: Settings) -> None:
    pt = settings.peertube
    connected = False
    if pt.db_dsn is None:
        report.warn("PEERTUBE_DB_DSN", "not set: verification (each push stage, Step 6), "
                    "drift and the rollbacks' read-back go through PeerTube's API instead, "
                    "and the pre-deploy dump needs PEERTUBE_DB_DUMP_COMMAND")
    else:
        database = PeerTubeDatabase(pt.db_dsn.get_secret_value())
        try:
            videos = database.video_count()
        except PeerTubeDatabaseError as exc:
            report.fail("PEERTUBE_DB_DSN", str(exc))
        else:
            connected = True
            report.ok("PEERTUBE_DB_DSN", f"{database.masked_dsn}: connected; PeerTube's "
                      f"table video holds {videos} videos (read in a read-only transaction)")

    subject = "PEERTUBE_DB_DUMP_COMMAND"
    if pt.db_dump_command:
        program = _program_of(pt.db_dump_command)
        found = shutil.which(program) if program else None
        if program is None:
            report.fail(subject, "set, but it names no program: set it to a shell command "
                        "printing `pg_dump -Fc` to stdout")
        elif found is None:
            report.fail(subject, f"set, but its program {program!r} is not found: install it "
                        "or give its full path (the command was not run)")
        else:
            report.ok(subject, f"set; its program {program} is {found} (not run here: "
                      "Pre-deploy 2 runs it)")
    elif connected and pt.db_dsn is not None:
        try:
            version = server_version_num(pt.db_dsn.get_secret_value())
            tool = choose_pg_dump(version, settings.pg_bin_dir)
        except BackupError as exc:
            report.fail("pg_dump", f"PEERTUBE_DB_DUMP_COMMAND not set, and {exc}")
            return
        report.ok("pg_dump", f"PEERTUBE_DB_DUMP_COMMAND not set: Pre-deploy 2 dumps with "
                  f"{tool.path} ({tool.version}; RECON_PG_BIN_DIR "
                  f"{settings.pg_bin_dir or 'not set'}), fit for PeerTube's PostgreSQL "
                  f"{version // 10000}")
    elif pt.db_dsn is None:
        report.fail(subject, "not set, nor PEERTUBE_DB_DSN: Pre-deploy 2 cannot dump "
                    "PeerTube's database. Set PEERTUBE_DB_DUMP_COMMAND to a command printing "
                    "`pg_dump -Fc` to stdout (e.g. ssh pve 'pct exec 110 -- sudo -u postgres "
                    "pg_dump -Fc peertube_prod'), or PEERTUBE_DB_DSN")
    else:
        report.warn(subject, "not set, and pg_dump not checked: PEERTUBE_DB_DSN above does "
                    "not connect")


_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def _program_of(command: str) -> str | None:
    """The program a shell command starts with (leading VAR=value words skipped)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    return next((word for word in words if not _ASSIGNMENT.match(word)), None)


# -- helpers -------------------------------------------------------------------------------------
def _default_mark(env: Mapping[str, str], name: str) -> str:
    return "" if (env.get(name) or "").strip() else " (default)"


def _shown(env: Mapping[str, str], name: str, value: str) -> str:
    return f"{name} {value}{_default_mark(env, name)}"


def _strings(value: Any) -> Iterator[str]:
    """Every string in a parsed YAML document."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _env_references(value: Any) -> list[str]:
    """The variables a dagster.yaml reads (`{env: NAME}`), in order."""
    if isinstance(value, dict):
        if set(value) == {"env"} and isinstance(value["env"], str):
            return [value["env"]]
        return [name for item in value.values() for name in _env_references(item)]
    if isinstance(value, list):
        return [name for item in value for name in _env_references(item)]
    return []


def _secret_values(settings: Settings, env: Mapping[str, str]) -> tuple[str, ...]:
    """The values no line may show, longest first (a secret holding another is hidden
    whole): the settings' secrets (of PEERTUBE_DB_DSN, its password: the rest is shown
    masked) and the instance's password."""
    dsn = settings.peertube.db_dsn
    found = [s.get_secret_value() for s in _secrets_in(settings) if s is not dsn]
    if dsn is not None:
        found.append(_dsn_password(dsn.get_secret_value()))
    found += [env[name] for name in OTHER_SECRET_VARIABLES if env.get(name)]
    return tuple(sorted({s for s in found if s}, key=len, reverse=True))


def _dsn_password(dsn: str) -> str:
    try:
        return parse_dsn(dsn).get("password") or ""
    except psycopg2.Error:  # not a DSN psycopg2 can read: hide all of it
        return dsn


def _secrets_in(value: Any) -> Iterator[SecretStr]:
    if isinstance(value, SecretStr):
        yield value
    elif is_dataclass(value) and not isinstance(value, type):
        for f in fields(value):
            yield from _secrets_in(getattr(value, f.name))


# -- the command ---------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    """`recon-domains check`: print each line as it is found, then the summary."""
    from recon_domains.cli import package_version

    cwd = Path.cwd()
    print(f"recon-domains {package_version()} check, in {cwd}", flush=True)
    report = run_checks(os.environ, args.env_file, cwd,
                        echo=lambda line: print(line.render(), flush=True))
    print(report.summary())
    if report.failed:
        print("recon-domains check: configuration problems (see the FAIL lines)",
              file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_OK

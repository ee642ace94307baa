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
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg2
from psycopg2.extensions import parse_dsn
from pydantic import SecretStr

from recon_domains.commands import EXIT_CONFIG, EXIT_OK
from recon_domains.commands.check import instance, peertube, recon
from recon_domains.commands.check.report import Line, Report
from recon_domains.settings import ConfigError, Settings, setting_names

if TYPE_CHECKING:
    from recon_domains.cli import EnvFile

T = TypeVar("T")
# Secrets outside the settings model (dagster.postgres.yaml reads it).
OTHER_SECRET_VARIABLES = ("DAGSTER_PG_PASSWORD",)


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
    instance.env_file_line(report, env_file, cwd)
    for exc in invalid:
        report.fail(str(exc.variable), f"{exc} (The checks below use the default.)")
    if not invalid:
        report.ok("settings", f"all {len(setting_names())} settings read; every value set "
                  "is valid")
    _guarded(report, "DAGSTER_HOME", instance.dagster_home, env)
    migrated = _guarded(report, "RECON_DB_PATH", recon.recon_db, settings, env)
    _guarded(report, "SQLite", recon.sqlite)
    _guarded(report, "RECON_CONCEPTS_DIR", recon.concepts, settings)
    _guarded(report, "RECON_OFFSITE_CONCEPTS_DIR", recon.offsite, settings)
    _guarded(report, "RECON_BACKUP_DIR", recon.backup_dir, settings)
    _guarded(report, "RECON_QUARANTINE_DIR", recon.quarantine_dir, settings)
    _guarded(report, "rollout settings", recon.rollout_settings, settings, env)
    _guarded(report, "RECON_NODE", recon.node, settings)
    _guarded(report, "review page", recon.review, settings)
    _guarded(report, "PeerTube", peertube.peertube, settings, migrated)
    _guarded(report, "PeerTube's database", peertube.peertube_database, settings)
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

"""The check's lines on PeerTube: its API (reachable, one login, the admin role, the plugin
and the categories), its database, and how Pre-deploy 2 will dump it."""

from __future__ import annotations

import os
import re
import shlex
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recon_domains.backups import BackupError, choose_pg_dump, server_version_num
from recon_domains.commands.check.report import Report, nearest_existing
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
from recon_domains.settings import PeerTubeSettings, Settings
from recon_domains.taxonomy import CATEGORY_ID_RANGE, DOMAIN_BY_ID, PLUGIN_NPM_NAME

# A preflight must answer in seconds: one retry, no long waits on PeerTube's limits.
CHECK_TIMEOUT = (5.0, 15.0)
CHECK_RETRY = RetryPolicy(max_retries=1, backoff_max=1.0, rate_limit_max_wait=10.0)


def peertube(report: Report, settings: Settings, migrated: bool | None) -> None:
    """PeerTube's settings and API: reachable, one login, the admin role, the plugin,
    the categories (`migrated`: whether recon.db is, which makes a missing plugin a FAIL)."""
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
    existing = nearest_existing(cache.parent)
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


def peertube_database(report: Report, settings: Settings) -> None:
    """PEERTUBE_DB_DSN (connect and read) and how Pre-deploy 2 will dump the
    database: PEERTUBE_DB_DUMP_COMMAND's program, or a pg_dump fit for the server."""
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

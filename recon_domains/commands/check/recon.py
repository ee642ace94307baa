"""The check's lines on RECON's side: recon.db and its migration, SQLite, the concept folders
and their off-site mirror, the backup and quarantine folders, and the settings that are
plain values (benchmarks, stage sizes, …)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Mapping
from pathlib import Path

from recon_domains.backups import offsite_freshness
from recon_domains.commands.check.report import Report, default_mark, nearest_existing, shown
from recon_domains.recon.store import (
    DROP_COLUMN_MIN_SQLITE,
    ReconStore,
    ReconStoreError,
    sqlite_version,
)
from recon_domains.settings import Settings, default_backup_dir, default_quarantine_dir


def recon_db(report: Report, settings: Settings, env: Mapping[str, str]) -> bool | None:
    """Reports recon.db and the stream source; whether recon.db is migrated (None: unknown)."""
    subject, path, source = "RECON_DB_PATH", settings.db_path, settings.stream_source
    source_text = f"{source}{default_mark(env, 'RECON_STREAM_SOURCE')}"
    problem = "not set: set it to RECON's recon.db, e.g. /opt/recon/data/recon.db"
    if path is not None:
        try:
            with ReconStore.open(path, source, lock_timeout_s=settings.lock_timeout_s) as store:
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


def sqlite(report: Report) -> None:
    """Python's SQLite: 3.35 or newer, so rollback_schema can drop columns."""
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


def concepts(report: Report, settings: Settings) -> None:
    """RECON_CONCEPTS_DIR: a readable (and writable) folder of concept folders."""
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


def offsite(report: Report, settings: Settings) -> None:
    """RECON_OFFSITE_CONCEPTS_DIR: mounted, and within RECON_OFFSITE_MAX_LAG_HOURS."""
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


def backup_dir(report: Report, settings: Settings) -> None:
    """RECON_BACKUP_DIR (or its default): writable, with room for recon.db's copy."""
    subject = "RECON_BACKUP_DIR"
    if settings.backup_dir is not None:
        folder, how = settings.backup_dir, ""
    elif settings.db_path is not None:
        folder, how = default_backup_dir(settings.db_path), " (not set: beside recon.db)"
    else:
        report.ok(subject, "not set: backups go to a folder beside recon.db")
        return
    existing = nearest_existing(folder)
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


def quarantine_dir(report: Report, settings: Settings) -> None:
    """RECON_QUARANTINE_DIR (or its default): outside the concepts, on their
    file system."""
    subject = "RECON_QUARANTINE_DIR"
    concepts = settings.concepts_dir
    if settings.quarantine_dir is not None:
        folder, how = settings.quarantine_dir, ""
    elif concepts is not None:
        folder, how = default_quarantine_dir(concepts), " (not set: the default)"
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
    existing = nearest_existing(folder)
    if existing.stat().st_dev != concepts.stat().st_dev:
        report.warn(subject, f"{folder}{how} is on another file system than the concepts: "
                    "Step 7 then copies each stale folder instead of moving it (slower, and it "
                    "needs the space); prefer a folder on the concepts' file system")
        return
    report.ok(subject, f"{folder}{how}: outside the concepts, on their file system (Step 7 "
              "moves stale folders there)")


def rollout_settings(report: Report, settings: Settings, env: Mapping[str, str]) -> None:
    """The settings that are only values: what each is, and whether it is the default."""
    channels = ", ".join(sorted(settings.skip_channels)) or "none"
    report.ok("RECON_SKIP_CHANNELS", f"{channels}{default_mark(env, 'RECON_SKIP_CHANNELS')}: "
              "their tied videos go to a human")
    b = settings.benchmarks
    report.ok("benchmarks (Step 4)", "; ".join((
        shown(env, "RECON_BENCHMARK_ASSIGNED_PCT", f"{b.assigned:g} %"),
        shown(env, "RECON_BENCHMARK_TIED_PCT", f"{b.tied:g} %"),
        shown(env, "RECON_BENCHMARK_NEEDS_REPROCESS_PCT", f"{b.needs_reprocess:g} %"),
        shown(env, "RECON_BENCHMARK_TOLERANCE_PP", f"{b.tolerance:g} percentage points"),
    )))
    first, second = settings.stage_sizes
    report.ok("push stages (Step 5)", "; ".join((
        shown(env, "RECON_PUSH_STAGE1_SIZE", f"{first} documents"),
        shown(env, "RECON_PUSH_STAGE2_SIZE", f"{second} documents"),
    )) + "; stage-3 the rest")
    report.ok("PEERTUBE_PUSH_MAX_IN_FLIGHT", f"{settings.peertube.push_max_in_flight}"
              f"{default_mark(env, 'PEERTUBE_PUSH_MAX_IN_FLIGHT')}: category PUTs in flight "
              "at once")
    if settings.is_copy:
        report.ok("RECON_IS_COPY", "1: a rehearsal copy, no RECON workers (stale mid-pipeline "
                  "statuses are reported, not a failure); never set it for the live RECON")
    else:
        report.ok("RECON_IS_COPY", f"0{default_mark(env, 'RECON_IS_COPY')}: a live RECON "
                  "(Pre-deploy 4 waits until its workers are idle)")


def node(report: Report, settings: Settings) -> None:
    """RECON_NODE: the node that checks a plugin folder before it is installed."""
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


def review(report: Report, settings: Settings) -> None:
    """The review page's settings; a token must be long enough for the page to take."""
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

"""Pre-deploy backups (runbook "Pre-Deploy Backups" 1–3): RECON's database, PeerTube's
PostgreSQL and the freshness of the off-site concept mirror.

Plain core: no Dagster. The Dagster assets `recon_db_backup`, `peertube_db_backup` and
`offsite_concept_backup` call these functions and turn the results into gates.
"""

from __future__ import annotations

import glob
import os
import random
import re
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from recon_domains.recon.backup import copy_database, inspect_copy, table_counts
from recon_domains.settings import DEFAULTS

BACKUP_PREFIX = "recon.db.pre-domain-feature."
BACKUP_SUFFIX = ".bak"
DUMP_SUFFIX = ".dump"
TIMESTAMP_FORMAT = "%Y%m%d_%H%M%S"


class BackupError(RuntimeError):
    """A backup could not be made or verified; the message says what to do."""


# --------------------------------------------------------------------------------------------
# 1. RECON database
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupResult:
    """A finished copy of recon.db."""

    source: Path
    path: Path
    size_bytes: int
    created_at: str  # ISO-8601 UTC
    # Row count of every table *in the snapshot that was copied* (read in the same read
    # transaction as the copy, so they match the backup even while RECON keeps writing).
    table_counts: dict[str, int]


@dataclass(frozen=True)
class TableCount:
    table: str
    expected: int | None  # the source (or the counts recorded at backup time)
    actual: int | None  # the backup

    @property
    def ok(self) -> bool:
        return self.expected == self.actual


@dataclass(frozen=True)
class BackupVerification:
    """Result of verify_recon_backup: integrity_check and per-table row counts."""

    path: Path
    integrity: str  # "ok" or the first problems PRAGMA integrity_check reported
    tables: list[TableCount]
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def backup_file_name(now: datetime) -> str:
    """`recon.db.pre-domain-feature.<UTC %Y%m%d_%H%M%S>.bak` (the runbook's name)."""
    return f"{BACKUP_PREFIX}{_utc(now).strftime(TIMESTAMP_FORMAT)}{BACKUP_SUFFIX}"


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    return now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)


def _require_file(path: Path) -> Path:
    """recon.db must exist: a backup never creates (or copies) an empty database."""
    if not path.is_file():
        raise BackupError(
            f"RECON database not found at {path}: expected recon.db there. Check RECON_DB_PATH."
        )
    return path


def backup_recon_db(
    db_path: str | os.PathLike[str], backup_dir: str | os.PathLike[str], now: datetime | None = None
) -> BackupResult:
    """Copy recon.db online with SQLite's backup API (safe while RECON writes, WAL included).

    Writes `backup_dir/recon.db.pre-domain-feature.<UTC timestamp>.bak`. The copy is made
    under a temporary name and linked into place, so a half-written file never carries the
    final name and an existing backup is never overwritten (BackupError instead).
    """
    source = Path(db_path)
    target_dir = Path(backup_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    stamp = _utc(now)
    final = target_dir / backup_file_name(stamp)
    if final.exists():
        raise BackupError(
            f"a backup named {final} already exists; backups are never overwritten. "
            "Run the backup again a second later."
        )
    _require_file(source)
    fd, tmp_name = tempfile.mkstemp(prefix=".recon-backup-", suffix=".tmp", dir=target_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        counts = copy_database(source, tmp)
        try:
            os.link(tmp, final)  # fails if `final` appeared meanwhile: never overwrite
        except FileExistsError:
            raise BackupError(
                f"a backup named {final} appeared while copying; it was left untouched. "
                "Run the backup again."
            ) from None
        except OSError:
            # Filesystems without hard links: an exclusive check + rename is the next best.
            if final.exists():
                raise BackupError(f"a backup named {final} already exists") from None
            os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return BackupResult(
        source=source,
        path=final,
        size_bytes=final.stat().st_size,
        created_at=stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        table_counts=counts,
    )


def verify_recon_backup(
    db_path: str | os.PathLike[str],
    backup_path: str | os.PathLike[str],
    expected_counts: dict[str, int] | None = None,
) -> BackupVerification:
    """Check a backup: `PRAGMA integrity_check` is ok and every table's row count matches.

    Counts are compared with `expected_counts` when given (BackupResult.table_counts: the
    snapshot actually copied, the right reference while RECON keeps writing), else with
    the live database at `db_path`.
    """
    backup = Path(backup_path)
    problems: list[str] = []
    if not backup.is_file() or backup.stat().st_size == 0:
        return BackupVerification(
            path=backup,
            integrity="missing",
            tables=[],
            problems=[f"backup file {backup} is missing or empty: run the backup again"],
        )
    try:
        integrity, actual = inspect_copy(backup)
    except sqlite3.DatabaseError as exc:
        return BackupVerification(
            path=backup,
            integrity=str(exc),
            tables=[],
            problems=[f"{backup} is not a readable SQLite database ({exc}): back up again"],
        )
    if integrity != "ok":
        problems.append(f"integrity_check of {backup} failed: {integrity}")
    if expected_counts is None:
        expected = table_counts(_require_file(Path(db_path)))
    else:
        expected = dict(expected_counts)
    tables = [
        TableCount(table=t, expected=expected.get(t), actual=actual.get(t))
        for t in sorted(set(expected) | set(actual))
    ]
    for tc in tables:
        if not tc.ok:
            problems.append(
                f"table {tc.table}: {tc.expected} rows in the source, {tc.actual} in the backup"
            )
    return BackupVerification(path=backup, integrity=integrity, tables=tables, problems=problems)


# --------------------------------------------------------------------------------------------
# 2. PeerTube PostgreSQL
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DumpResult:
    """A finished dump of PeerTube's database."""

    path: Path
    size_bytes: int
    created_at: str
    method: str  # "pg_dump <path> (<version>)" or "PEERTUBE_DB_DUMP_COMMAND"
    server_version_num: int | None  # None when dumped through a command


@dataclass(frozen=True)
class DumpCheck:
    """Result of verify_dump."""

    path: Path
    size_bytes: int
    entries: int  # TOC entries listed by `pg_restore --list`
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class PgTool:
    path: str
    major: int
    version: str


_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


def _tool_version(path: str) -> PgTool | None:
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except OSError:
        return None
    m = _VERSION_RE.search(out)
    if not m:
        return None
    major, minor = int(m.group(1)), m.group(2)
    return PgTool(path=path, major=major, version=f"{major}.{minor}" if minor else str(major))


def find_pg_tools(name: str, bin_dir: str | os.PathLike[str] | None = None) -> list[PgTool]:
    """Every `name` binary (pg_dump, pg_restore) in `bin_dir` (RECON_PG_BIN_DIR, or an
    embedded server's, when given), on PATH and in /usr/lib/postgresql/*/bin, newest major
    first."""
    seen: set[str] = set()
    tools: list[PgTool] = []
    paths = [os.path.join(bin_dir, name)] if bin_dir else []
    paths += [p for p in [shutil.which(name)] if p]
    paths += [os.path.join(d, name) for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"))]
    for p in paths:
        if not os.path.isfile(p) or not os.access(p, os.X_OK):
            continue
        real = os.path.realpath(p)
        if real in seen:
            continue
        seen.add(real)
        tool = _tool_version(p)
        if tool:
            tools.append(tool)
    tools.sort(key=lambda t: t.major, reverse=True)
    return tools


def choose_pg_dump(
    server_version_num: int, bin_dir: str | os.PathLike[str] | None = None
) -> PgTool:
    """The oldest pg_dump whose major version is >= the server's (pg_dump refuses to dump a
    newer server; the closest match keeps the archive readable by that server's tools)."""
    server_major = server_version_num // 10000
    tools = find_pg_tools("pg_dump", bin_dir)
    fit = [t for t in tools if t.major >= server_major]
    if not fit:
        found = ", ".join(f"{t.path} ({t.major})" for t in tools) or "none"
        raise BackupError(
            f"no pg_dump at least as new as the PeerTube server (PostgreSQL {server_major}) "
            f"was found; found: {found}. Install postgresql-client-{server_major} or newer "
            "(or set RECON_PG_BIN_DIR to the folder of one), or set PEERTUBE_DB_DUMP_COMMAND "
            "to a command that prints `pg_dump -Fc` output."
        )
    return min(fit, key=lambda t: t.major)


def _dsn_env(dsn: str) -> tuple[dict[str, str], str | None, str]:
    """libpq environment for a DSN (URL or key=value), its password, and the database name.

    Passing the connection as PG* variables keeps the password out of the process list.
    """
    from psycopg2.extensions import parse_dsn

    try:
        parts = parse_dsn(dsn)
    except Exception:
        raise BackupError(
            "PEERTUBE_DB_DSN is not a valid PostgreSQL connection string "
            "(expected postgresql://user@host:port/dbname or 'host=… dbname=…')"
        ) from None
    mapping = {
        "host": "PGHOST",
        "port": "PGPORT",
        "user": "PGUSER",
        "password": "PGPASSWORD",
        "dbname": "PGDATABASE",
        "sslmode": "PGSSLMODE",
        "hostaddr": "PGHOSTADDR",
        "passfile": "PGPASSFILE",
        "connect_timeout": "PGCONNECT_TIMEOUT",
    }
    env = {mapping[k]: str(v) for k, v in parts.items() if k in mapping}
    return env, parts.get("password"), parts.get("dbname", "peertube")


def _redact(text: str, secret: str | None) -> str:
    if secret:
        text = text.replace(secret, "***")
    return text


def server_version_num(dsn: str) -> int:
    """`SHOW server_version_num` of the PeerTube database (e.g. 150020)."""
    import psycopg2

    _, password, _ = _dsn_env(dsn)
    try:
        conn = psycopg2.connect(dsn, connect_timeout=10)
    except psycopg2.Error as exc:
        raise BackupError(
            "cannot connect to PeerTube's database (PEERTUBE_DB_DSN): "
            f"{_redact(str(exc).strip(), password)}. Check the DSN, or set "
            "PEERTUBE_DB_DUMP_COMMAND when the database is reachable only over SSH."
        ) from None
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version_num")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def dump_peertube_db(
    dsn: str | None,
    out_dir: str | os.PathLike[str],
    dump_command: str | None = None,
    now: datetime | None = None,
    pg_bin_dir: str | os.PathLike[str] | None = None,
) -> DumpResult:
    """Dump PeerTube's database in pg_dump's custom format (`-Fc`).

    With `dump_command` (PEERTUBE_DB_DUMP_COMMAND), its stdout is the dump: it must print
    `pg_dump -Fc` output, e.g. `ssh root@host 'pct exec 110 -- sudo -u postgres pg_dump -Fc
    peertube_prod'`. Otherwise `pg_dump` runs against `dsn`, choosing a binary at least as new
    as the server, looked for in `pg_bin_dir` (when given), on PATH and in Debian's
    /usr/lib/postgresql/*/bin. The file is written under a temporary name and renamed when
    complete; the DSN's password never appears in errors.
    """
    target_dir = Path(out_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    stamp = _utc(now)
    ts = stamp.strftime(TIMESTAMP_FORMAT)
    if dump_command:
        name, env_extra, password, version = "peertube", {}, None, None
        argv: Sequence[str] | str = dump_command
        method = "PEERTUBE_DB_DUMP_COMMAND"
    else:
        if not dsn:
            raise BackupError(
                "no dump of PeerTube's database could be taken: neither "
                "PEERTUBE_DB_DUMP_COMMAND nor PEERTUBE_DB_DSN is set. Set "
                "PEERTUBE_DB_DUMP_COMMAND to a command printing `pg_dump -Fc` to stdout (e.g. "
                "ssh pve 'pct exec 110 -- sudo -u postgres pg_dump -Fc peertube_prod'), or "
                "PEERTUBE_DB_DSN when this machine reaches PeerTube's PostgreSQL; nothing "
                "after the pre-deploy backups runs without this dump"
            )
        env_extra, password, name = _dsn_env(dsn)
        version = server_version_num(dsn)
        tool = choose_pg_dump(version, pg_bin_dir)
        argv = [tool.path, "-Fc", "--no-password"]
        method = f"pg_dump {tool.path} ({tool.version})"
    final = target_dir / f"{_safe(name)}.pre-domain-feature.{ts}{DUMP_SUFFIX}"
    if final.exists():
        raise BackupError(f"a dump named {final} already exists; dumps are never overwritten")
    fd, tmp_name = tempfile.mkstemp(prefix=".peertube-dump-", suffix=".tmp", dir=target_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            proc = subprocess.run(
                argv,
                shell=isinstance(argv, str),
                stdout=out,
                stderr=subprocess.PIPE,
                env={**os.environ, **env_extra},
                check=False,
            )
        if proc.returncode != 0:
            err = _redact(proc.stderr.decode(errors="replace").strip(), password)[-800:]
            raise BackupError(
                f"{'PEERTUBE_DB_DUMP_COMMAND' if dump_command else 'pg_dump'} exited with "
                f"code {proc.returncode}: {err or '(no error output)'}"
            )
        if tmp.stat().st_size == 0:
            raise BackupError(
                f"{method} produced an empty dump: check that it prints `pg_dump -Fc` output "
                "to stdout"
            )
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return DumpResult(
        path=final,
        size_bytes=final.stat().st_size,
        created_at=stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        method=method,
        server_version_num=version,
    )


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "peertube"


def verify_dump(
    path: str | os.PathLike[str], pg_bin_dir: str | os.PathLike[str] | None = None
) -> DumpCheck:
    """A dump is good when it is non-empty and `pg_restore --list` reads its table of contents
    (tried with every pg_restore found, in `pg_bin_dir` too, newest first: an archive from a
    newer pg_dump needs a pg_restore at least as new)."""
    p = Path(path)
    if not p.is_file() or p.stat().st_size == 0:
        return DumpCheck(p, 0, 0, [f"dump {p} is missing or empty: take the dump again"])
    size = p.stat().st_size
    with p.open("rb") as fh:
        head = fh.read(5)
    if head != b"PGDMP":
        return DumpCheck(
            p,
            size,
            0,
            [
                f"{p} is not a pg_dump custom-format archive (plain SQL?): pg_restore cannot "
                "verify it. Dump with `pg_dump -Fc` (also in PEERTUBE_DB_DUMP_COMMAND)."
            ],
        )
    tools = find_pg_tools("pg_restore", pg_bin_dir)
    if not tools:
        problem = "no pg_restore found: install postgresql-client (or set RECON_PG_BIN_DIR)"
        return DumpCheck(p, size, 0, [problem])
    last_err = ""
    for tool in tools:
        proc = subprocess.run(
            [tool.path, "--list", str(p)], capture_output=True, text=True, check=False
        )
        if proc.returncode == 0:
            entries = sum(
                1 for line in proc.stdout.splitlines() if line.strip() and not line.startswith(";")
            )
            if entries == 0:
                return DumpCheck(p, size, 0, [f"{p} lists no entries: the dump is empty"])
            return DumpCheck(p, size, entries, [])
        last_err = proc.stderr.strip()[-400:]
    return DumpCheck(p, size, 0, [f"pg_restore --list failed on {p}: {last_err}"])


# --------------------------------------------------------------------------------------------
# 3. Off-site concept mirror
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FreshnessResult:
    """Result of offsite_freshness."""

    local_newest: str | None  # ISO-8601 UTC mtime of the newest file
    offsite_newest: str | None
    lag_hours: float | None  # local newest - offsite newest (<= 0: the mirror is newer)
    max_lag_hours: float
    local_folders: int
    offsite_folders: int
    sampled: list[str]
    missing: list[str]  # sampled folders absent off-site
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _scan(root: Path) -> tuple[float | None, list[str]]:
    """Newest file mtime anywhere under root, and the names of its top-level folders.

    os.scandir reads each directory once and gives file types without extra stat calls;
    only regular files are stat'ed (22k folders x ~10 files in a few seconds)."""
    newest: float | None = None
    folders: list[str] = []
    stack = [str(root)]
    top = str(root)
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as it:
                for entry in it:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                            if current == top:
                                folders.append(entry.name)
                        elif entry.is_file(follow_symlinks=False):
                            m = entry.stat(follow_symlinks=False).st_mtime
                            if newest is None or m > newest:
                                newest = m
                    except OSError:  # vanished while scanning (RECON writes concurrently)
                        continue
        except OSError:
            continue
    return newest, folders


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def offsite_freshness(
    local_dir: str | os.PathLike[str],
    offsite_dir: str | os.PathLike[str],
    max_lag_hours: float = DEFAULTS.offsite_max_lag_hours,
    sample: int = 20,
    seed: int | None = None,
) -> FreshnessResult:
    """Runbook pre-deploy 3: the off-site mirror's newest file is within `max_lag_hours` of
    the local newest, and a random sample of local concept folders exists off-site."""
    local, offsite = Path(local_dir), Path(offsite_dir)
    problems: list[str] = []
    for label, d, var in (
        ("local concept", local, "RECON_CONCEPTS_DIR"),
        ("off-site concept", offsite, "RECON_OFFSITE_CONCEPTS_DIR"),
    ):
        if not d.is_dir():
            problems.append(f"{label} folder {d} does not exist: check {var}")
    if problems:
        return FreshnessResult(None, None, None, max_lag_hours, 0, 0, [], [], problems)
    local_newest, local_folders = _scan(local)
    offsite_newest, offsite_folders = _scan(offsite)
    lag: float | None = None
    if local_newest is None:
        problems.append(
            f"no files under {local}: nothing to compare (is RECON_CONCEPTS_DIR right?)"
        )
    elif offsite_newest is None:
        problems.append(f"the off-site mirror {offsite} holds no files: run the rsync first")
    else:
        lag = (local_newest - offsite_newest) / 3600.0
        if lag > max_lag_hours:
            problems.append(
                f"the off-site mirror is {lag:.1f} h behind the local concepts (limit "
                f"{max_lag_hours:g} h): newest local {_iso(local_newest)}, newest off-site "
                f"{_iso(offsite_newest)}. Run the off-site rsync, then check again."
            )
    rng = random.Random(seed)
    picked = sorted(rng.sample(local_folders, min(sample, len(local_folders))))
    offsite_set = set(offsite_folders)
    missing = [h for h in picked if h not in offsite_set]
    if missing:
        problems.append(
            f"{len(missing)} of {len(picked)} sampled concept folders are missing off-site "
            f"(e.g. {', '.join(missing[:5])}): the mirror is incomplete; rsync it again"
        )
    return FreshnessResult(
        local_newest=_iso(local_newest),
        offsite_newest=_iso(offsite_newest),
        lag_hours=None if lag is None else round(lag, 3),
        max_lag_hours=max_lag_hours,
        local_folders=len(local_folders),
        offsite_folders=len(offsite_folders),
        sampled=picked,
        missing=missing,
        problems=problems,
    )


__all__ = [
    "BackupError",
    "BackupResult",
    "BackupVerification",
    "DumpCheck",
    "DumpResult",
    "FreshnessResult",
    "TableCount",
    "backup_recon_db",
    "choose_pg_dump",
    "dump_peertube_db",
    "find_pg_tools",
    "offsite_freshness",
    "server_version_num",
    "verify_dump",
    "verify_recon_backup",
]

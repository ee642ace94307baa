"""RECON's SQLite database: safe access, the schema migration of SPEC §4, and our queries.

RECON's service writes this file concurrently (WAL mode), so every connection here uses a
busy timeout and short `BEGIN IMMEDIATE` transactions, and writes go in batches: one
transaction per few hundred rows, never one commit per row and never one giant lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from recon_domains.taxonomy import CATEGORIZED, DOMAIN_IDS, MID_PIPELINE_STATUSES

DOMAIN_COLUMNS: tuple[str, ...] = (
    "recon_domain",
    "recon_domain_status",
    "recon_domain_assigned_at",
    "peertube_category_pushed_at",
)
STATUS_INDEX = "idx_documents_recon_domain_status"
LEDGER_TABLE = "recon_domains_push_ledger"
AUDIT_TABLE = "recon_domains_reprocess_audit"
OUR_TABLES: tuple[str, ...] = (LEDGER_TABLE, AUDIT_TABLE)
REQUIRED_RECON_TABLES: tuple[str, ...] = ("documents", "catalogue")
DROP_COLUMN_MIN_SQLITE = (3, 35, 0)

# Plain INTEGER PRIMARY KEY, not AUTOINCREMENT: AUTOINCREMENT creates sqlite_sequence,
# which SQLite never lets us drop, so the revert would not give back RECON's exact schema.
_OUR_DDL: tuple[str, ...] = (
    f"""CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (
        id INTEGER PRIMARY KEY,
        hash TEXT NOT NULL,
        video_id TEXT NOT NULL,
        stage TEXT NOT NULL,
        category_before INTEGER,
        category_after INTEGER,
        intended_at TEXT NOT NULL,
        pushed_at TEXT,
        restored_at TEXT
    )""",
    f"CREATE INDEX IF NOT EXISTS idx_{LEDGER_TABLE}_hash ON {LEDGER_TABLE}(hash)",
    f"CREATE INDEX IF NOT EXISTS idx_{LEDGER_TABLE}_video ON {LEDGER_TABLE}(video_id)",
    f"""CREATE TABLE IF NOT EXISTS {AUDIT_TABLE} (
        id INTEGER PRIMARY KEY,
        hash TEXT NOT NULL,
        original_path TEXT NOT NULL,
        quarantine_path TEXT NOT NULL,
        file_count INTEGER NOT NULL,
        reason TEXT NOT NULL,
        quarantined_at TEXT NOT NULL,
        restored_at TEXT
    )""",
    f"CREATE INDEX IF NOT EXISTS idx_{AUDIT_TABLE}_hash ON {AUDIT_TABLE}(hash)",
)

# documents joined with its catalogue row: the stream documents of one source.
_STREAM_FROM = "FROM documents d JOIN catalogue c ON c.hash = d.hash WHERE c.source = ?"


class ReconStoreError(RuntimeError):
    """A problem with RECON's database an operator can act on (the message says how)."""


@dataclass(frozen=True)
class StreamDocument:
    """A stream video: its documents row joined with its catalogue row."""

    hash: str
    channel: str | None  # catalogue.category: the PeerTube channel name
    path: str | None  # catalogue.path: the watch URL


@dataclass(frozen=True)
class DomainDecision:
    """The outcome of a pass for one document, ready to be written."""

    hash: str
    status: str
    domain: str | None


@dataclass(frozen=True)
class PushCandidate:
    hash: str
    path: str | None
    domain: str
    status: str
    assigned_at: str


@dataclass(frozen=True)
class LedgerRow:
    id: int
    hash: str
    video_id: str
    stage: str
    category_before: int | None
    category_after: int | None
    intended_at: str
    pushed_at: str | None
    restored_at: str | None


@dataclass(frozen=True)
class MigrationReport:
    added_columns: tuple[str, ...]
    created: tuple[str, ...]  # index and tables created by this call

    @property
    def changed(self) -> bool:
        return bool(self.added_columns or self.created)


@dataclass(frozen=True)
class MigrationCheck:
    ok: bool
    problems: tuple[str, ...] = ()
    columns: tuple[str, ...] = field(default=())


def utc_now() -> str:
    """ISO-8601 UTC timestamp, second precision (what recon_domain_assigned_at holds)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sqlite_version() -> tuple[int, int, int]:
    major, minor, patch = (int(p) for p in sqlite3.sqlite_version.split(".")[:3])
    return major, minor, patch


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class ReconStore:
    """One connection to an existing recon.db. Not shared across threads."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.conn = conn
        self._original_columns: tuple[tuple, ...] | None = None

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, *, busy_timeout_ms: int = 30_000) -> ReconStore:
        """Open an existing recon.db; refuse anything that is not RECON's database.

        RECON's own tables are never created here: a wrong path must not silently yield an
        empty database that every later step would then "migrate".
        """
        db_path = Path(path).expanduser()
        if not db_path.is_file():
            raise ReconStoreError(
                f"RECON database not found at {db_path}. Set RECON_DB_PATH (or --db) to the "
                "path of RECON's recon.db, e.g. /opt/recon/data/recon.db."
            )
        try:
            conn = sqlite3.connect(
                f"file:{db_path}?mode=rw",
                uri=True,
                timeout=busy_timeout_ms / 1000,
                isolation_level=None,  # autocommit; transactions are explicit
                check_same_thread=False,
            )
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            tables = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        except sqlite3.DatabaseError as exc:
            raise ReconStoreError(
                f"{db_path} is not a readable SQLite database ({exc}). Check RECON_DB_PATH."
            ) from None
        missing = [t for t in REQUIRED_RECON_TABLES if t not in tables]
        if missing:
            conn.close()
            raise ReconStoreError(
                f"{db_path} has no {' or '.join(missing)} table: it is not RECON's database. "
                "Point RECON_DB_PATH at the recon.db the RECON service uses."
            )
        # RECON runs in WAL mode; make sure we never fall back to a rollback journal that
        # would block its readers while we write.
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        # A pass writes thousands of rows in batches; checkpointing the WAL every 1,000
        # pages (the default) makes every other batch commit wait for an fsync. 8,000 pages
        # (32 MB) still keeps the WAL small; readers are never blocked by its size.
        conn.execute("PRAGMA wal_autocheckpoint = 8000")
        return cls(db_path, conn)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> ReconStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction. IMMEDIATE takes the write lock up front, so a busy
        RECON writer makes us wait (busy timeout) instead of failing half-way."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- schema migration (runbook Step 3) -------------------------------------------------
    def _columns(self, table: str = "documents") -> list[sqlite3.Row]:
        return self.conn.execute(f"PRAGMA table_info({table})").fetchall()

    def _column_names(self, table: str = "documents") -> list[str]:
        return [r["name"] for r in self._columns(table)]

    def _index_names(self) -> set[str]:
        return {r["name"] for r in self.conn.execute("PRAGMA index_list(documents)")}

    def _table_names(self) -> set[str]:
        rows = self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        return {r[0] for r in rows}

    def is_migrated(self) -> bool:
        """True when every column, the index and our tables exist."""
        return self.verify_migration().ok

    def migrate(self) -> MigrationReport:
        """Add the four nullable columns, the status index and our tables. Idempotent."""
        before = [tuple(r) for r in self._columns()]
        if self._original_columns is None:
            # RECON's own columns as we found them: verify_migration proves we left them alone.
            self._original_columns = tuple(c for c in before if c[1] not in DOMAIN_COLUMNS)
        existing = {r[1] for r in before}
        added: list[str] = []
        created: list[str] = []
        with self.transaction() as conn:
            for col in DOMAIN_COLUMNS:
                if col not in existing:
                    conn.execute(f"ALTER TABLE documents ADD COLUMN {col} TEXT")
                    added.append(col)
            if STATUS_INDEX not in self._index_names():
                conn.execute(f"CREATE INDEX {STATUS_INDEX} ON documents(recon_domain_status)")
                created.append(STATUS_INDEX)
            tables = self._table_names()
            for ddl in _OUR_DDL:
                conn.execute(ddl)
            created.extend(t for t in OUR_TABLES if t not in tables)
        after = [tuple(r) for r in self._columns()]
        # No pre-existing column may have been dropped or changed by us.
        if after[: len(before)] != before:
            raise ReconStoreError(
                "schema migration changed existing columns of documents; restore the "
                "pre-deploy backup (runbook Pre-Deploy 1) and report this."
            )
        return MigrationReport(tuple(added), tuple(created))

    def verify_migration(
        self, expected_existing: Iterable[str] = ("hash", "status", "filename", "discovered_at")
    ) -> MigrationCheck:
        """Runbook Step 3's verification: our columns and index exist, RECON's are intact."""
        columns = self._columns()
        names = [r["name"] for r in columns]
        problems: list[str] = []
        for col in DOMAIN_COLUMNS:
            if col not in names:
                problems.append(f"missing column documents.{col}")
            else:
                info = next(r for r in columns if r["name"] == col)
                if info["type"].upper() != "TEXT" or info["notnull"]:
                    problems.append(f"documents.{col} should be nullable TEXT")
        if STATUS_INDEX not in self._index_names():
            problems.append(f"missing index {STATUS_INDEX}")
        tables = self._table_names()
        problems.extend(f"missing table {t}" for t in OUR_TABLES if t not in tables)
        for col in expected_existing:
            if col not in names:
                problems.append(f"ALERT: existing column documents.{col} is missing")
        if self._original_columns is not None:
            now = {r[1]: tuple(r) for r in columns}
            for orig in self._original_columns:
                if now.get(orig[1]) != orig:
                    problems.append(f"ALERT: existing column documents.{orig[1]} changed")
        return MigrationCheck(not problems, tuple(problems), tuple(names))

    def revert_migration(self) -> list[str]:
        """Drop our columns, index and tables (rollback). Needs SQLite >= 3.35."""
        if sqlite_version() < DROP_COLUMN_MIN_SQLITE:
            raise ReconStoreError(
                f"SQLite {sqlite3.sqlite_version} cannot DROP COLUMN (needs 3.35.0+). Upgrade "
                "SQLite (Ubuntu 24.04 ships 3.45) or restore the pre-deploy backup instead."
            )
        actions: list[str] = []
        with self.transaction() as conn:
            if STATUS_INDEX in self._index_names():
                conn.execute(f"DROP INDEX {STATUS_INDEX}")
                actions.append(f"dropped index {STATUS_INDEX}")
            names = set(self._column_names())
            for col in DOMAIN_COLUMNS:
                if col in names:
                    conn.execute(f"ALTER TABLE documents DROP COLUMN {col}")
                    actions.append(f"dropped column documents.{col}")
            tables = self._table_names()
            for table in OUR_TABLES:
                if table in tables:
                    conn.execute(f"DROP TABLE {table}")
                    actions.append(f"dropped table {table}")
        return actions

    def require_migrated(self) -> None:
        check = self.verify_migration()
        if not check.ok:
            raise ReconStoreError(
                "RECON's database is not migrated for domain assignment ("
                + "; ".join(check.problems)
                + "). Run runbook Step 3 (asset recon_schema) first."
            )

    # -- queries ---------------------------------------------------------------------------
    def _stream_documents(self, where: str, params: tuple) -> list[StreamDocument]:
        sql = f"SELECT d.hash, c.category, c.path {_STREAM_FROM} {where} ORDER BY d.hash"
        return [StreamDocument(*row) for row in self.conn.execute(sql, params)]

    def backfill_candidates(self, source: str) -> list[StreamDocument]:
        """Complete stream documents with no domain yet (SPEC §4 pass 1 candidates)."""
        return self._stream_documents(
            "AND d.status = 'complete' AND d.recon_domain IS NULL "
            "AND d.recon_domain_status IS NULL",
            (source,),
        )

    def documents_with_status(self, status: str, source: str) -> list[StreamDocument]:
        return self._stream_documents("AND d.recon_domain_status = ?", (source, status))

    def domain_row(self, doc_hash: str) -> sqlite3.Row | None:
        return self.conn.execute(
            "SELECT hash, status, " + ", ".join(DOMAIN_COLUMNS) + " FROM documents WHERE hash=?",
            (doc_hash,),
        ).fetchone()

    def status_counts(self, source: str) -> dict[str, int]:
        """recon_domain_status -> count over stream documents; NULL is 'unassigned'."""
        rows = self.conn.execute(
            f"SELECT COALESCE(d.recon_domain_status, 'unassigned'), count(*) {_STREAM_FROM} "
            "GROUP BY 1 ORDER BY 1",
            (source,),
        )
        return {status: n for status, n in rows}

    def pipeline_status_counts(self, source: str | None = None) -> dict[str, int]:
        """RECON's own documents.status counts (all documents, or one source's)."""
        if source is None:
            rows = self.conn.execute("SELECT status, count(*) FROM documents GROUP BY 1")
        else:
            rows = self.conn.execute(
                f"SELECT d.status, count(*) {_STREAM_FROM} GROUP BY 1", (source,)
            )
        return {str(status): n for status, n in rows}

    def domain_distribution(
        self, source: str, statuses: Iterable[str] = CATEGORIZED
    ) -> dict[str, int]:
        wanted = sorted(statuses)
        marks = ",".join("?" * len(wanted))
        rows = self.conn.execute(
            f"SELECT d.recon_domain, count(*) {_STREAM_FROM} "
            f"AND d.recon_domain_status IN ({marks}) AND d.recon_domain IS NOT NULL "
            "GROUP BY 1 ORDER BY 2 DESC, 1",
            (source, *wanted),
        )
        return {domain: n for domain, n in rows}

    def pushed_distribution(self, source: str) -> dict[str, int]:
        """Domain -> count of documents whose category PeerTube has (pushed_at set)."""
        rows = self.conn.execute(
            f"SELECT d.recon_domain, count(*) {_STREAM_FROM} "
            "AND d.peertube_category_pushed_at IS NOT NULL GROUP BY 1 ORDER BY 1",
            (source,),
        )
        return {domain: n for domain, n in rows}

    def pushed_category_histogram(self, source: str) -> dict[int, int]:
        """pushed_distribution as PeerTube category ids: what PeerTube's category histogram
        should show. A stored value that is not a RECON domain has no id and is left out."""
        return {
            DOMAIN_IDS[d]: n for d, n in self.pushed_distribution(source).items() if d in DOMAIN_IDS
        }

    def _push_candidates(self, where: str, params: tuple, limit: int | None, offset: int):
        sql = (
            "SELECT d.hash, c.path, d.recon_domain, d.recon_domain_status, "
            f"d.recon_domain_assigned_at {_STREAM_FROM} {where} "
            "ORDER BY d.recon_domain_assigned_at, d.hash"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
        return [PushCandidate(*row) for row in self.conn.execute(sql, params)]

    def unpushed_categorized(
        self, source: str, limit: int | None = None, offset: int = 0
    ) -> list[PushCandidate]:
        """Categorized documents PeerTube does not have yet, oldest assignment first."""
        marks = ",".join("?" * len(CATEGORIZED))
        return self._push_candidates(
            f"AND d.recon_domain_status IN ({marks}) AND d.recon_domain IS NOT NULL "
            "AND d.peertube_category_pushed_at IS NULL",
            (source, *sorted(CATEGORIZED)),
            limit,
            offset,
        )

    def pushed_documents(self, source: str) -> list[PushCandidate]:
        return self._push_candidates(
            "AND d.peertube_category_pushed_at IS NOT NULL", (source,), None, 0
        )

    def watch_paths(self, hashes: Iterable[str]) -> dict[str, str | None]:
        """hash -> catalogue.path (the watch URL) of just these documents."""
        paths: dict[str, str | None] = {}
        for batch in _chunks(hashes, 500):
            rows = self.conn.execute(
                f"SELECT hash, path FROM catalogue WHERE hash IN ({','.join('?' * len(batch))})",
                batch,
            )
            paths.update((h, path) for h, path in rows)
        return paths

    def channel_members_map(
        self, source: str, channels: Iterable[str] | None = None
    ) -> dict[str, list[str]]:
        """channel -> member hashes, for every channel of the source (or the given ones).

        One scan of catalogue for a whole run: RECON has no index on its category column,
        so a query per channel would scan the table once per tied channel.
        """
        wanted = None if channels is None else set(channels)
        members: dict[str, list[str]] = {}
        rows = self.conn.execute(
            "SELECT category, hash FROM catalogue WHERE source = ? ORDER BY category, hash",
            (source,),
        )
        for channel, doc_hash in rows:
            if wanted is None or channel in wanted:
                members.setdefault(channel, []).append(doc_hash)
        return members

    def channel_members(self, channel: str, source: str) -> list[str]:
        rows = self.conn.execute(
            "SELECT hash FROM catalogue WHERE category = ? AND source = ? ORDER BY hash",
            (channel, source),
        )
        return [r[0] for r in rows]

    def mid_pipeline_documents(self) -> list[tuple[str, str]]:
        """Documents a RECON worker holds right now (runbook Pre-Deploy 4)."""
        statuses = sorted(MID_PIPELINE_STATUSES)
        marks = ",".join("?" * len(statuses))
        rows = self.conn.execute(
            f"SELECT hash, status FROM documents WHERE status IN ({marks}) ORDER BY hash",
            statuses,
        )
        return [(h, s) for h, s in rows]

    def audit_counts(self) -> tuple[int, int]:
        """(reprocess audit rows, how many of them are restored): folders quarantined by
        runbook Step 7 and folders put back since. Needs the migration (the audit table)."""
        rows, restored = self.conn.execute(
            f"SELECT count(*), count(restored_at) FROM {AUDIT_TABLE}"
        ).fetchone()
        return int(rows), int(restored)

    # -- writes ----------------------------------------------------------------------------
    def write_decisions(
        self,
        decisions: Iterable[DomainDecision],
        *,
        batch_size: int = 500,
        now: str | None = None,
        only_from: tuple[str | None, ...] | None = None,
    ) -> int:
        """Write pass results, one transaction per batch (RECON keeps writing meanwhile).

        only_from: write a row only while its status is still one of these (None = NULL),
        so a pass never overwrites what a human chose on the review page meanwhile.
        Returns the number of rows written.
        """
        stamp = now or utc_now()
        sql = (
            "UPDATE documents SET recon_domain = ?, recon_domain_status = ?, "
            "recon_domain_assigned_at = ? WHERE hash = ?"
        )
        guard: tuple[str | None, ...] = ()
        if only_from is not None:
            guard = tuple(only_from)
            sql += " AND (" + " OR ".join("recon_domain_status IS ?" for _ in guard) + ")"
        written = 0
        for batch in _chunks(decisions, batch_size):
            with self.transaction() as conn:
                cur = conn.executemany(
                    sql, [(d.domain, d.status, stamp, d.hash, *guard) for d in batch]
                )
                written += cur.rowcount
        return written

    # -- push ledger -----------------------------------------------------------------------
    def record_push_intents(
        self, items: Iterable[tuple[str, str, str, int | None, int | None]]
    ) -> None:
        """Record (hash, video_id, stage, category_before, category_after) before the PUTs.

        Written before PeerTube is touched, so a kill between the PUT and its completion
        still knows what the video had before. An open intent for the same hash keeps its
        category_before (on resume PeerTube may already show our value).
        """
        stamp = utc_now()
        for batch in _chunks(items, 500):
            with self.transaction() as conn:
                open_rows = {
                    r[0]: r[1]
                    for r in conn.execute(
                        f"SELECT hash, id FROM {LEDGER_TABLE} WHERE pushed_at IS NULL "
                        f"AND hash IN ({','.join('?' * len(batch))})",
                        [b[0] for b in batch],
                    )
                }
                for doc_hash, video_id, stage, before, after in batch:
                    if doc_hash in open_rows:
                        conn.execute(
                            f"UPDATE {LEDGER_TABLE} SET stage = ?, category_after = ?, "
                            "video_id = ? WHERE id = ?",
                            (stage, after, video_id, open_rows[doc_hash]),
                        )
                    else:
                        conn.execute(
                            f"INSERT INTO {LEDGER_TABLE} (hash, video_id, stage, "
                            "category_before, category_after, intended_at) "
                            "VALUES (?, ?, ?, ?, ?, ?)",
                            (doc_hash, video_id, stage, before, after, stamp),
                        )

    def _ledger_rows(self, where: str = "", params: tuple = ()) -> list[LedgerRow]:
        rows = self.conn.execute(
            "SELECT id, hash, video_id, stage, category_before, category_after, intended_at, "
            f"pushed_at, restored_at FROM {LEDGER_TABLE} {where} ORDER BY id",
            params,
        )
        return [LedgerRow(*r) for r in rows]

    def open_push_intents(self) -> list[LedgerRow]:
        return self._ledger_rows("WHERE pushed_at IS NULL")

    def complete_push(self, doc_hash: str, *, pushed_at: str | None = None) -> None:
        """Mark one push done: the document's timestamp and its ledger row, atomically."""
        stamp = pushed_at or utc_now()
        with self.transaction() as conn:
            conn.execute(
                "UPDATE documents SET peertube_category_pushed_at = ? WHERE hash = ?",
                (stamp, doc_hash),
            )
            conn.execute(
                f"UPDATE {LEDGER_TABLE} SET pushed_at = ? WHERE hash = ? AND pushed_at IS NULL",
                (stamp, doc_hash),
            )

    def ledger(self) -> list[LedgerRow]:
        return self._ledger_rows()

    def pushed_ledger(self, stage: str) -> list[LedgerRow]:
        """Ledger rows of one stage whose push completed and was not restored since."""
        return self._ledger_rows(
            "WHERE stage = ? AND pushed_at IS NOT NULL AND restored_at IS NULL", (stage,)
        )

    def original_categories(self) -> dict[str, int | None]:
        """video_id -> the category it had before our FIRST push to it (rollback target)."""
        rows = self.conn.execute(
            f"SELECT video_id, category_before FROM {LEDGER_TABLE} l WHERE id = "
            f"(SELECT min(id) FROM {LEDGER_TABLE} WHERE video_id = l.video_id)"
        )
        return {video_id: before for video_id, before in rows}

    def clear_push_timestamps(self) -> int:
        """Forget every push (after PeerTube's categories were restored), batch-safe."""
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE documents SET peertube_category_pushed_at = NULL "
                "WHERE peertube_category_pushed_at IS NOT NULL"
            )
            conn.execute(
                f"UPDATE {LEDGER_TABLE} SET restored_at = ? WHERE restored_at IS NULL",
                (utc_now(),),
            )
        return cur.rowcount

"""RECON's SQLite database: the one place that talks SQL to recon.db.

`ReconStore.open(path, source)` opens an existing recon.db for one stream source; its
methods are the runbook's questions and writes. They are grouped by concern:

- connection.py: opening rules, short `BEGIN IMMEDIATE` transactions, the stream join;
- schema.py: the migration of SPEC §4 and its revert;
- this module: stream documents, counts and distributions, and the domain decisions;
- ledger.py: the push ledger and push timestamps;
- reprocess_audit.py: row snapshots, the reprocess reset, the reprocess audit table;
- review_queries.py: the review page's tied list and channel context;
- sources.py: what each decision was made from (its concept files' fingerprint);
- backup.py: online copies of the file and their verification (no store needed).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from recon_domains.recon.connection import (
    STREAM_FROM,
    ReconLocked,
    ReconStoreError,
    chunks,
    marks,
    utc_now,
)
from recon_domains.recon.ledger import LedgerQueries, LedgerRow
from recon_domains.recon.reprocess_audit import ReprocessQueries
from recon_domains.recon.review_queries import ReviewQueries
from recon_domains.recon.schema import (
    AUDIT_TABLE,
    DOMAIN_COLUMNS,
    DROP_COLUMN_MIN_SQLITE,
    LEDGER_TABLE,
    OUR_TABLES,
    REQUIRED_RECON_TABLES,
    SOURCES_TABLE,
    STATUS_INDEX,
    MigrationCheck,
    MigrationReport,
    SchemaMigration,
    sqlite_version,
)
from recon_domains.recon.sources import SourceQueries
from recon_domains.settings import DEFAULTS
from recon_domains.taxonomy import CATEGORIZED, MID_PIPELINE_STATUSES

__all__ = [
    "AUDIT_TABLE",
    "DOMAIN_COLUMNS",
    "DROP_COLUMN_MIN_SQLITE",
    "LEDGER_TABLE",
    "OUR_TABLES",
    "SOURCES_TABLE",
    "STATUS_INDEX",
    "DomainDecision",
    "LedgerRow",
    "MigrationCheck",
    "MigrationReport",
    "PushCandidate",
    "ReconLocked",
    "ReconStore",
    "ReconStoreError",
    "StreamDocument",
    "sqlite_version",
    "utc_now",
]


@dataclass(frozen=True)
class StreamDocument:
    """A stream video: its documents row joined with its catalogue row."""

    hash: str
    channel: str | None  # catalogue.category: the PeerTube channel name
    path: str | None  # catalogue.path: the watch URL


@dataclass(frozen=True)
class DomainDecision:
    """The outcome of a pass for one document, ready to be written, with the fingerprint of
    the concept files it was decided from (None: nothing to record)."""

    hash: str
    status: str
    domain: str | None
    fingerprint: str | None = None


@dataclass(frozen=True)
class Redecision:
    """A decided document decided again: written only while it still holds `old_*`."""

    hash: str
    old_status: str | None
    old_domain: str | None
    status: str
    domain: str | None
    fingerprint: str
    # Its category changes: PeerTube does not show it yet, so the push timestamp is cleared
    # with the write (the push sets it again; a failed push is the steady state's to retry).
    unpush: bool = False


@dataclass(frozen=True)
class PushCandidate:
    hash: str
    path: str | None
    domain: str
    status: str
    assigned_at: str


class ReconStore(SchemaMigration, LedgerQueries, ReprocessQueries, ReviewQueries, SourceQueries):
    """One connection to an existing recon.db, bound to one stream source."""

    def __init__(
        self, path: Path, conn: sqlite3.Connection, source: str, lock_timeout_s: float,
        accepted_hosts: Iterable[str] = (),
    ) -> None:
        super().__init__(path, conn, source, lock_timeout_s)
        # The hosts a watch URL of this stream may name: the stream source (the PeerTube
        # host name) and RECON_ACCEPTED_HOSTS. The push writes only to those videos.
        self.watch_hosts: tuple[str, ...] = (source, *accepted_hosts)

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(
        cls, path: str | Path, source: str, *, accepted_hosts: Iterable[str] = (),
        lock_timeout_s: float = DEFAULTS.lock_timeout_s,
    ) -> ReconStore:
        """Open an existing recon.db for the stream source `source` (and the stream's
        `accepted_hosts`); refuse anything that is not RECON's database.

        lock_timeout_s (RECON_LOCK_TIMEOUT_S): how long a write waits for RECON's write
        lock before ReconLocked; also the busy timeout of reads (which WAL rarely makes
        wait at all).

        RECON's own tables are never created here: a wrong path must not silently yield an
        empty database that every later step would then "migrate".
        """
        db_path = Path(path).expanduser()
        if db_path.is_dir():
            raise ReconStoreError(
                f"{db_path} is a folder, not RECON's database. Set RECON_DB_PATH (or --db) to "
                "the recon.db file itself, e.g. /opt/recon/data/recon.db."
            )
        if not db_path.is_file():
            raise ReconStoreError(
                f"RECON database not found at {db_path}. Set RECON_DB_PATH (or --db) to the "
                "path of RECON's recon.db, e.g. /opt/recon/data/recon.db."
            )
        try:
            conn = sqlite3.connect(
                f"file:{db_path}?mode=rw",
                uri=True,
                timeout=lock_timeout_s,
                isolation_level=None,  # autocommit; transactions are explicit
                check_same_thread=False,
            )
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(lock_timeout_s * 1000)}")
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
        return cls(db_path, conn, source, lock_timeout_s, accepted_hosts)

    @classmethod
    def open_readonly(
        cls, path: str | Path, source: str, *, accepted_hosts: Iterable[str] = (),
        timeout_s: float = 2.0,
    ) -> ReconStore:
        """Open recon.db read-only with a short busy timeout, writing nothing, not even a
        pragma (a sensor tick must never block RECON). sqlite3 errors propagate: the caller
        decides whether "locked" means "try again later"."""
        db_path = Path(path).expanduser()
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=timeout_s)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
        except BaseException:
            conn.close()
            raise
        return cls(db_path, conn, source, timeout_s, accepted_hosts)

    def __enter__(self) -> ReconStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- stream documents ------------------------------------------------------------------
    def _stream_documents(self, where: str, params: tuple) -> list[StreamDocument]:
        sql = f"SELECT d.hash, c.category, c.path {STREAM_FROM} {where} ORDER BY d.hash"
        return [StreamDocument(*row) for row in self.conn.execute(sql, (self.source, *params))]

    def backfill_candidates(self) -> list[StreamDocument]:
        """Complete stream documents with no domain yet (SPEC §4 pass 1 candidates)."""
        return self._stream_documents(
            "AND d.status = 'complete' AND d.recon_domain IS NULL "
            "AND d.recon_domain_status IS NULL",
            (),
        )

    def documents_with_status(self, status: str) -> list[StreamDocument]:
        return self._stream_documents("AND d.recon_domain_status = ?", (status,))

    def domain_row(self, doc_hash: str) -> sqlite3.Row | None:
        return self.conn.execute(
            "SELECT hash, status, " + ", ".join(DOMAIN_COLUMNS) + " FROM documents WHERE hash=?",
            (doc_hash,),
        ).fetchone()

    def channel_of(self, doc_hash: str) -> str | None:
        """catalogue.category (the PeerTube channel) of one document; None without one."""
        found = self.conn.execute(
            "SELECT category FROM catalogue WHERE hash = ?", (doc_hash,)
        ).fetchone()
        return None if found is None else found[0]

    def watch_paths(self, hashes: Iterable[str]) -> dict[str, str | None]:
        """hash -> catalogue.path (the watch URL) of just these documents."""
        paths: dict[str, str | None] = {}
        for batch in chunks(hashes):
            rows = self.conn.execute(
                f"SELECT hash, path FROM catalogue WHERE hash IN ({marks(len(batch))})", batch
            )
            paths.update((h, path) for h, path in rows)
        return paths

    def channel_members_map(self, channels: Iterable[str] | None = None) -> dict[str, list[str]]:
        """channel -> member hashes, for every channel of the source (or the given ones).

        One scan of catalogue for a whole run: RECON has no index on its category column,
        so a query per channel would scan the table once per tied channel.
        """
        wanted = None if channels is None else set(channels)
        members: dict[str, list[str]] = {}
        rows = self.conn.execute(
            "SELECT category, hash FROM catalogue WHERE source = ? ORDER BY category, hash",
            (self.source,),
        )
        for channel, doc_hash in rows:
            if wanted is None or channel in wanted:
                members.setdefault(channel, []).append(doc_hash)
        return members

    def channel_members(self, channel: str) -> list[str]:
        rows = self.conn.execute(
            "SELECT hash FROM catalogue WHERE category = ? AND source = ? ORDER BY hash",
            (channel, self.source),
        )
        return [r[0] for r in rows]

    def mid_pipeline_documents(self) -> list[tuple[str, str]]:
        """Documents a RECON worker holds right now, any source (runbook Pre-Deploy 4)."""
        statuses = sorted(MID_PIPELINE_STATUSES)
        rows = self.conn.execute(
            f"SELECT hash, status FROM documents WHERE status IN ({marks(len(statuses))}) "
            "ORDER BY hash",
            statuses,
        )
        return [(h, s) for h, s in rows]

    # -- counts and distributions ----------------------------------------------------------
    def status_counts(self) -> dict[str, int]:
        """recon_domain_status -> count over stream documents; NULL is 'unassigned'."""
        rows = self.conn.execute(
            f"SELECT COALESCE(d.recon_domain_status, 'unassigned'), count(*) {STREAM_FROM} "
            "GROUP BY 1 ORDER BY 1",
            (self.source,),
        )
        return {status: n for status, n in rows}

    def pipeline_status_counts(self, *, every_source: bool = False) -> dict[str, int]:
        """RECON's own documents.status counts over the stream documents (or, with
        `every_source`, over every document)."""
        if every_source:
            rows = self.conn.execute("SELECT status, count(*) FROM documents GROUP BY 1")
        else:
            rows = self.conn.execute(
                f"SELECT d.status, count(*) {STREAM_FROM} GROUP BY 1", (self.source,)
            )
        return {str(status): n for status, n in rows}

    def domain_distribution(self, statuses: Iterable[str] = CATEGORIZED) -> dict[str, int]:
        wanted = sorted(statuses)
        rows = self.conn.execute(
            f"SELECT d.recon_domain, count(*) {STREAM_FROM} "
            f"AND d.recon_domain_status IN ({marks(len(wanted))}) AND d.recon_domain IS NOT NULL "
            "GROUP BY 1 ORDER BY 2 DESC, 1",
            (self.source, *wanted),
        )
        return {domain: n for domain, n in rows}

    def pushed_distribution(self) -> dict[str, int]:
        """Domain -> count of documents whose category PeerTube has (pushed_at set)."""
        rows = self.conn.execute(
            f"SELECT d.recon_domain, count(*) {STREAM_FROM} "
            "AND d.peertube_category_pushed_at IS NOT NULL GROUP BY 1 ORDER BY 1",
            (self.source,),
        )
        return {domain: n for domain, n in rows}

    # -- push candidates -------------------------------------------------------------------
    def _push_candidates(self, where: str, params: tuple, limit: int | None, offset: int):
        sql = (
            "SELECT d.hash, c.path, d.recon_domain, d.recon_domain_status, "
            f"d.recon_domain_assigned_at {STREAM_FROM} {where} "
            "ORDER BY d.recon_domain_assigned_at, d.hash"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
        return [PushCandidate(*row) for row in self.conn.execute(sql, (self.source, *params))]

    def unpushed_categorized(
        self, limit: int | None = None, offset: int = 0
    ) -> list[PushCandidate]:
        """Categorized documents PeerTube does not have yet, oldest assignment first."""
        return self._push_candidates(
            f"AND d.recon_domain_status IN ({marks(len(CATEGORIZED))}) "
            "AND d.recon_domain IS NOT NULL AND d.peertube_category_pushed_at IS NULL",
            tuple(sorted(CATEGORIZED)),
            limit,
            offset,
        )

    def pushed_documents(self) -> list[PushCandidate]:
        return self._push_candidates("AND d.peertube_category_pushed_at IS NOT NULL", (), None, 0)

    # -- domain decisions ------------------------------------------------------------------
    def write_decisions(
        self,
        decisions: Iterable[DomainDecision],
        *,
        batch_size: int = 500,
        now: str | None = None,
        only_from: tuple[str | None, ...] | None = None,
        wait: bool = True,
    ) -> int:
        """Write pass results, one transaction per batch (RECON keeps writing meanwhile).

        only_from: write a row only while its status is still one of these (None = NULL),
        so a pass never overwrites what a human chose on the review page meanwhile.
        wait: see StoreConnection.transaction (ReconLocked: the batches before are written).
        Each written decision's fingerprint goes into the decisions' sources in the same
        transaction (when recon.db has that table). Returns the number of rows written.
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
        sources: bool | None = None  # looked up at the first batch that has fingerprints
        for batch in chunks(decisions, batch_size):
            with self.transaction(wait=wait) as conn:
                cur = conn.executemany(
                    sql, [(d.domain, d.status, stamp, d.hash, *guard) for d in batch]
                )
                written += cur.rowcount
                prints = [
                    (d.hash, d.fingerprint, d.status, d.domain)
                    for d in batch
                    if d.fingerprint is not None
                ]
                if prints and sources is None:
                    sources = self.has_sources()
                if prints and sources:
                    self.record_sources(conn, prints, stamp=stamp)
        return written

    def write_redecisions(self, items: Iterable[Redecision]) -> list[str]:
        """Write re-decided documents (the scheduled re-assignment), one transaction per
        batch, each only while it still holds the decision it was re-decided from (a
        human's assignment meanwhile wins), with its fingerprint. Returns the hashes
        written."""
        stamp = utc_now()
        written: list[str] = []
        for batch in chunks(items):
            with self.transaction() as conn:
                done: list[Redecision] = []
                for r in batch:
                    cur = conn.execute(
                        "UPDATE documents SET recon_domain = ?, recon_domain_status = ?, "
                        "recon_domain_assigned_at = ?, peertube_category_pushed_at = "
                        "CASE WHEN ? THEN NULL ELSE peertube_category_pushed_at END "
                        "WHERE hash = ? AND recon_domain_status IS ? AND recon_domain IS ?",
                        (r.domain, r.status, stamp, r.unpush, r.hash, r.old_status,
                         r.old_domain),
                    )
                    if cur.rowcount:
                        done.append(r)
                self.record_sources(
                    conn, [(r.hash, r.fingerprint, r.status, r.domain) for r in done],
                    stamp=stamp,
                )
            written.extend(r.hash for r in done)
        return written

    def refresh_sources(self, rows: Iterable[tuple[str, str, str | None, str | None]]) -> None:
        """(hash, fingerprint, status, domain): documents whose files changed but whose
        decision did not; only their fingerprint is recorded (while they hold it)."""
        for batch in chunks(rows):
            with self.transaction() as conn:
                self.record_sources(conn, batch)

    def push_candidates(self, hashes: Iterable[str]) -> list[PushCandidate]:
        """These stream documents as the push takes them (categorized or not, pushed or not)."""
        out: list[PushCandidate] = []
        for batch in chunks(hashes):
            out += self._push_candidates(
                f"AND d.hash IN ({marks(len(batch))})", tuple(batch), None, 0
            )
        return out

    def _assignment_filter(self, statuses: Collection[str] | None) -> tuple[str, tuple]:
        if statuses is None:
            return " OR ".join(f"{c} IS NOT NULL" for c in DOMAIN_COLUMNS), ()
        wanted = tuple(sorted(statuses))
        return f"recon_domain_status IN ({marks(len(wanted))})", wanted

    def assignment_rows(self, statuses: Collection[str] | None = None) -> list[sqlite3.Row]:
        """Every document, any source, with some domain column set (or, given `statuses`,
        with one of those statuses): hash and the four domain columns, by hash."""
        where, params = self._assignment_filter(statuses)
        return self.conn.execute(
            f"SELECT hash, {', '.join(DOMAIN_COLUMNS)} FROM documents WHERE {where} "
            "ORDER BY hash",
            params,
        ).fetchall()

    def clear_assignments(
        self, statuses: Collection[str] | None = None, *, status_after: str | None = None
    ) -> int:
        """The rows assignment_rows(statuses) lists get every domain column NULL, except
        the status, which becomes `status_after` (e.g. tied_pass_1 for a tiebreaker
        re-run). One transaction; returns the rows changed."""
        where, params = self._assignment_filter(statuses)
        update = ", ".join(
            f"{c} = ?" if c == "recon_domain_status" else f"{c} = NULL" for c in DOMAIN_COLUMNS
        )
        with self.transaction() as conn:
            # Cleared decisions were made from nothing any more: their sources go too.
            self.forget_sources(conn, where, params)
            cur = conn.execute(
                f"UPDATE documents SET {update} WHERE {where}", (status_after, *params)
            )
        return cur.rowcount

"""The push ledger (runbook Step 5, SPEC §6): one row per intended push, written before
PeerTube is touched, completed with the document's push timestamp in one transaction (with
the other pushes finished meanwhile), and marked restored when a rollback puts PeerTube's
category back."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from recon_domains.peertube.urls import canonical_video_id
from recon_domains.recon.connection import StoreConnection, chunks, marks, utc_now
from recon_domains.recon.schema import LEDGER_TABLE


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


class LedgerQueries(StoreConnection):
    """The push ledger and the documents' push timestamps."""

    def record_push_intents(
        self, items: Iterable[tuple[str, str, str, int | None, int | None]]
    ) -> None:
        """Record (hash, video_id, stage, category_before, category_after) before the PUTs.

        Written before PeerTube is touched, so a kill between the PUT and its completion
        still knows what the video had before. An open intent for the same hash keeps its
        category_before (on resume PeerTube may already show our value).
        """
        stamp = utc_now()
        for batch in chunks(items):
            with self.transaction() as conn:
                open_rows = {
                    r[0]: r[1]
                    for r in conn.execute(
                        f"SELECT hash, id FROM {LEDGER_TABLE} WHERE pushed_at IS NULL "
                        f"AND hash IN ({marks(len(batch))})",
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

    def has_ledger(self) -> bool:
        """False before the migration and after the schema rollback."""
        return LEDGER_TABLE in self.table_names()

    def open_push_intents(self) -> list[LedgerRow]:
        return self._ledger_rows("WHERE pushed_at IS NULL")

    def complete_pushes(self, hashes: Collection[str], *, wait: bool = True) -> None:
        """Mark pushes done, in one transaction: the documents' timestamps and their ledger
        rows together. wait=False: ReconLocked at once, nothing written, unless RECON's
        write lock is free right now."""
        if not hashes:
            return
        stamp = utc_now()
        with self.transaction(wait=wait) as conn:
            for batch in chunks(hashes):
                conn.execute(
                    "UPDATE documents SET peertube_category_pushed_at = ? "
                    f"WHERE hash IN ({marks(len(batch))})",
                    [stamp, *batch],
                )
                conn.execute(
                    f"UPDATE {LEDGER_TABLE} SET pushed_at = ? WHERE pushed_at IS NULL "
                    f"AND hash IN ({marks(len(batch))})",
                    [stamp, *batch],
                )

    def ledger(self) -> list[LedgerRow]:
        """Every ledger row, oldest first."""
        return self._ledger_rows()

    def pushed_ledger(self, stage: str) -> list[LedgerRow]:
        """Ledger rows of one stage whose push completed and was not restored since."""
        return self._ledger_rows(
            "WHERE stage = ? AND pushed_at IS NOT NULL AND restored_at IS NULL", (stage,)
        )

    def original_categories(self) -> dict[str, int | None]:
        """video_id -> the category it had before our FIRST push to it (rollback target).

        A video pushed once by short UUID and once by UUID is one video: the ids are
        canonical UUIDs here (peertube.urls.canonical_video_id)."""
        originals: dict[str, int | None] = {}
        for row in self._ledger_rows():  # oldest first
            originals.setdefault(canonical_video_id(row.video_id), row.category_before)
        return originals

    # -- what a rollback reads and clears (every document, whatever its source) ------------
    def marked_pushed_count(self) -> int:
        """Documents whose push timestamp is set."""
        return self.conn.execute(
            "SELECT count(*) FROM documents WHERE peertube_category_pushed_at IS NOT NULL"
        ).fetchone()[0]

    def marked_pushed(self, hashes: Iterable[str]) -> list[str]:
        """Those of `hashes` whose push timestamp is set."""
        out: list[str] = []
        for batch in chunks(hashes):
            rows = self.conn.execute(
                "SELECT hash FROM documents WHERE peertube_category_pushed_at IS NOT NULL "
                f"AND hash IN ({marks(len(batch))})",
                batch,
            )
            out.extend(r[0] for r in rows)
        return out

    def clear_push_timestamps(
        self, hashes: Collection[str] | None = None, video_ids: Collection[str] | None = None
    ) -> int:
        """Forget pushes after PeerTube's categories were restored, in one transaction: the
        push timestamps of `hashes` NULL and the ledger rows of `video_ids` marked restored
        (None: every document, every ledger row). Returns the timestamps cleared."""
        stamp = utc_now()
        cleared = 0
        with self.transaction() as conn:
            unset = (
                "UPDATE documents SET peertube_category_pushed_at = NULL "
                "WHERE peertube_category_pushed_at IS NOT NULL"
            )
            restore = f"UPDATE {LEDGER_TABLE} SET restored_at = ? WHERE restored_at IS NULL"
            if hashes is None:
                cleared = conn.execute(unset).rowcount
            for batch in chunks(hashes or ()):
                cur = conn.execute(f"{unset} AND hash IN ({marks(len(batch))})", batch)
                cleared += cur.rowcount
            if video_ids is None:
                conn.execute(restore, (stamp,))
            for batch in chunks(video_ids or ()):
                conn.execute(f"{restore} AND video_id IN ({marks(len(batch))})", [stamp, *batch])
        return cleared

"""Read (and, for rollbacks, write) PeerTube's own PostgreSQL database.

Reads are for verification: the category histogram after a push stage, the uncategorized
count, the categories of a batch of videos. Writes exist only for the category rollback;
their method names start with ``write_`` and each is one transaction. A direct SQL update
does not bump ``"updatedAt"`` and is not federated (PEERTUBE-FACTS "Database"): prefer the
API for writes, this module for reads and bulk verification.

The DSN (``$PEERTUBE_DB_DSN``) may carry a password: it is masked in every message.
"""

from __future__ import annotations

import re
import uuid as uuid_mod
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

import psycopg2
from psycopg2.extras import execute_values

from recon_domains.taxonomy import FIRST_CATEGORY_ID

ENV_DSN = "PEERTUBE_DB_DSN"
DEFAULT_CONNECT_TIMEOUT_S = 5

_URI_PASSWORD = re.compile(r"^(?P<head>[a-z][a-z0-9+.-]*://[^:/@?#]*):(?P<pw>[^@/?#]*)@", re.I)
_KV_PASSWORD = re.compile(r"(?P<key>\bpassword\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|\S+)", re.I)
_QUERY_PASSWORD = re.compile(r"(?P<key>[?&]password=)(?P<pw>[^&#]*)", re.I)


def mask_dsn(dsn: str) -> str:
    """``dsn`` with any password replaced by ``***`` (URI and key=value forms)."""
    masked = _URI_PASSWORD.sub(lambda m: f"{m['head']}:***@" if m["pw"] else m[0], dsn)
    masked = _KV_PASSWORD.sub(lambda m: f"{m['key']}***", masked)
    return _QUERY_PASSWORD.sub(lambda m: f"{m['key']}***", masked)


def _password_of(dsn: str) -> str | None:
    try:
        return psycopg2.extensions.parse_dsn(dsn).get("password") or None
    except psycopg2.Error:
        return None


class PeerTubeDatabaseError(RuntimeError):
    """PeerTube's database cannot be used; the message says what to check."""


class PeerTubeDatabase:
    """PeerTube's PostgreSQL, table ``video`` (camelCase columns need double quotes)."""

    def __init__(self, dsn: str, *, connect_timeout_s: int = DEFAULT_CONNECT_TIMEOUT_S):
        if not dsn:
            raise PeerTubeDatabaseError(
                f"no PeerTube database DSN given; set ${ENV_DSN} "
                "(e.g. postgresql://peertube@127.0.0.1:5432/peertube_prod)"
            )
        self._dsn = dsn
        self._timeout = max(1, int(connect_timeout_s))

    @property
    def masked_dsn(self) -> str:
        """The DSN with its password hidden, for messages."""
        return mask_dsn(self._dsn)

    def _scrub(self, text: str) -> str:
        password = _password_of(self._dsn)
        text = text.strip()
        return text.replace(password, "***") if password else text

    @contextmanager
    def _cursor(self, *, write: bool) -> Iterator[psycopg2.extensions.cursor]:
        try:
            conn = psycopg2.connect(self._dsn, connect_timeout=self._timeout)
        except psycopg2.Error as exc:
            raise PeerTubeDatabaseError(
                f"cannot connect to PeerTube's database at {self.masked_dsn}: "
                f"{self._scrub(str(exc))}. Check ${ENV_DSN} and that PostgreSQL is reachable."
            ) from None
        try:
            # Reads run in read-only transactions: a bug here cannot change PeerTube.
            conn.set_session(readonly=not write)
            with conn, conn.cursor() as cur:
                yield cur
        except psycopg2.errors.UndefinedTable:
            raise PeerTubeDatabaseError(
                f'no table "video" in the database at {self.masked_dsn}: is ${ENV_DSN} '
                "pointing at PeerTube's database (e.g. peertube_prod)?"
            ) from None
        except psycopg2.Error as exc:
            raise PeerTubeDatabaseError(
                f"query on PeerTube's database at {self.masked_dsn} failed: {self._scrub(str(exc))}"
            ) from None
        finally:
            conn.close()

    # reads ---------------------------------------------------------------------------------
    def video_count(self) -> int:
        """Number of rows in ``video``."""
        with self._cursor(write=False) as cur:
            cur.execute("SELECT count(*) FROM video")
            return int(cur.fetchone()[0])

    def category_histogram(self, min_id: int = FIRST_CATEGORY_ID) -> dict[int, int]:
        """``{category: number of videos}`` for categories >= ``min_id`` (the runbook's check)."""
        with self._cursor(write=False) as cur:
            cur.execute(
                "SELECT category, count(*) FROM video WHERE category >= %s "
                "GROUP BY category ORDER BY category",
                (min_id,),
            )
            return {int(c): int(n) for c, n in cur.fetchall()}

    def videos_in_categories(self, first: int, last: int) -> dict[str, int]:
        """``{uuid: category}`` of every video whose category is in ``first``–``last``."""
        with self._cursor(write=False) as cur:
            cur.execute(
                "SELECT uuid::text, category FROM video WHERE category BETWEEN %s AND %s",
                (first, last),
            )
            return {str(u): int(c) for u, c in cur.fetchall()}

    def uncategorized_count(self) -> int:
        """Number of videos whose category is NULL."""
        with self._cursor(write=False) as cur:
            cur.execute("SELECT count(*) FROM video WHERE category IS NULL")
            return int(cur.fetchone()[0])

    def categories_of(self, uuids: Iterable[str]) -> dict[str, int | None]:
        """``{uuid: category}`` for the given video UUIDs, in one query.

        Keys are the strings as given (any case); UUIDs with no video, and strings that are
        not UUIDs at all, are absent from the result, so "missing" differs from "NULL".
        """
        wanted: dict[str, list[str]] = {}
        for given in uuids:
            try:
                canonical = str(uuid_mod.UUID(str(given)))
            except ValueError:
                continue
            wanted.setdefault(canonical, []).append(given)
        if not wanted:
            return {}
        with self._cursor(write=False) as cur:
            cur.execute(
                "SELECT uuid::text, category FROM video WHERE uuid = ANY(%s::uuid[])",
                (list(wanted),),
            )
            rows = cur.fetchall()
        out: dict[str, int | None] = {}
        for found_uuid, category in rows:
            for given in wanted.get(found_uuid, ()):
                out[given] = None if category is None else int(category)
        return out

    # writes (rollback only) --------------------------------------------------------------------
    def write_restore_categories(self, mapping: Mapping[str, int | None]) -> int:
        """Set each video's category (``{uuid: category or None}``) in one transaction.

        Returns the number of videos updated; UUIDs with no video are ignored. Raises
        ValueError (before writing anything) on a key that is not a UUID.
        """
        rows: list[tuple[str, int | None]] = []
        for key, category in mapping.items():
            try:
                canonical = str(uuid_mod.UUID(str(key)))
            except ValueError:
                raise ValueError(f"not a video UUID: {key!r}; nothing was written") from None
            rows.append((canonical, None if category is None else int(category)))
        if not rows:
            return 0
        with self._cursor(write=True) as cur:
            execute_values(
                cur,
                "UPDATE video AS v SET category = d.category "
                "FROM (VALUES %s) AS d(uuid, category) WHERE v.uuid = d.uuid",
                rows,
                template="(%s::uuid, %s::integer)",
                page_size=1000,
            )
            # execute_values pages: rowcount is the last page's only; count explicitly.
            cur.execute(
                "SELECT count(*) FROM video WHERE uuid = ANY(%s::uuid[])", ([u for u, _ in rows],)
            )
            return int(cur.fetchone()[0])

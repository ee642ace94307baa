"""The sandbox PeerTube's PostgreSQL tables, shaped like PeerTube's own.

``video`` has PeerTube's columns (in PeerTube's order, camelCase quoted) and its partial
index ``video_category``; ``"videoChannel"`` is reduced to what we show. ``plugin`` mirrors
PeerTube's plugin table plus two sandbox-only columns (the install path and the categories
its register() added), and ``"oAuthClient"`` holds the one local OAuth client, so a client
id a caller cached stays valid across sandbox restarts.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
import uuid as uuid_mod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2.extras import RealDictCursor, execute_values
from psycopg2.pool import ThreadedConnectionPool

from recon_domains.peertube.urls import parse_watch_url

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS "videoChannel" (
    id serial PRIMARY KEY,
    name varchar(255) NOT NULL UNIQUE,
    description varchar(1000),
    "createdAt" timestamptz NOT NULL DEFAULT now(),
    "updatedAt" timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS video (
    id serial PRIMARY KEY,
    uuid uuid NOT NULL UNIQUE,
    name varchar(255) NOT NULL,
    category integer,
    licence integer,
    language varchar(10),
    privacy integer NOT NULL,
    nsfw boolean NOT NULL,
    description varchar(10000),
    support varchar(1000),
    duration integer NOT NULL DEFAULT 0,
    views integer NOT NULL DEFAULT 0,
    likes integer NOT NULL DEFAULT 0,
    dislikes integer NOT NULL DEFAULT 0,
    remote boolean NOT NULL DEFAULT false,
    "isLive" boolean NOT NULL DEFAULT false,
    url varchar(2000) NOT NULL UNIQUE,
    "commentsPolicy" integer NOT NULL DEFAULT 1,
    "downloadEnabled" boolean NOT NULL DEFAULT true,
    "waitTranscoding" boolean NOT NULL DEFAULT false,
    state integer NOT NULL,
    "publishedAt" timestamptz NOT NULL DEFAULT now(),
    "originallyPublishedAt" timestamptz,
    "channelId" integer NOT NULL REFERENCES "videoChannel"(id) ON DELETE CASCADE,
    "createdAt" timestamptz NOT NULL DEFAULT now(),
    "updatedAt" timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS video_category ON video (category) WHERE category IS NOT NULL;
CREATE INDEX IF NOT EXISTS video_channel_id ON video ("channelId");
CREATE TABLE IF NOT EXISTS plugin (
    id serial PRIMARY KEY,
    name varchar(255) NOT NULL,
    type integer NOT NULL,
    version varchar(255) NOT NULL,
    "latestVersion" varchar(255),
    enabled boolean NOT NULL,
    uninstalled boolean NOT NULL,
    "peertubeEngine" varchar(255) NOT NULL,
    description varchar(255),
    homepage varchar(255) NOT NULL,
    settings json,
    storage json,
    "sandboxPath" text,
    "sandboxCategories" json,
    "createdAt" timestamptz NOT NULL DEFAULT now(),
    "updatedAt" timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, type)
);
CREATE TABLE IF NOT EXISTS "oAuthClient" (
    id serial PRIMARY KEY,
    "clientId" varchar(255) NOT NULL,
    "clientSecret" varchar(255) NOT NULL,
    "createdAt" timestamptz NOT NULL DEFAULT now()
);
"""

# Built-in categories with a prior value when seeding (so a rollback can prove it restores
# them rather than blanking them): Education and Science & Technology.
PRIOR_CATEGORIES = (13, 15)

_UUID_V4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
_VIDEO_COLUMNS = (
    "v.id, v.uuid::text AS uuid, v.name, v.category, v.licence, v.language, v.privacy, v.nsfw,"
    ' v.description, v.support, v.duration, v.views, v.likes, v.dislikes, v.remote, v."isLive",'
    ' v.url, v."commentsPolicy", v."downloadEnabled", v."waitTranscoding", v.state,'
    ' v."publishedAt", v."originallyPublishedAt", v."createdAt", v."updatedAt",'
    ' c.id AS "channelId", c.name AS "channelName", c."createdAt" AS "channelCreatedAt"'
)


def is_uuid_v4(value: str) -> bool:
    """True for a canonical lower-case version-4 UUID (what PeerTube generates and accepts)."""
    return bool(_UUID_V4.match(value))


def channel_handle(display_name: str) -> str:
    """A PeerTube-like channel handle (actor name) derived from a display name."""
    slug = re.sub(r"[^a-z0-9_.]+", "_", display_name.lower()).strip("_.")
    return (slug or "channel")[:50]


@dataclass
class SeedReport:
    """What seed_videos_from_recon did."""

    created: int = 0
    already_present: int = 0
    with_prior_category: int = 0
    skipped_garbage: int = 0
    skipped_not_v4: int = 0
    channels: int = 0
    garbage_examples: list[str] = field(default_factory=list)


class SandboxStore:
    """Connection pool and queries of the sandbox PeerTube (thread-safe)."""

    def __init__(self, dsn: str, *, max_connections: int = 8):
        self.dsn = dsn
        # minconn = maxconn: psycopg2 closes every connection returned above minconn, so a
        # smaller minconn reconnects to PostgreSQL on most requests under concurrency.
        self._pool = ThreadedConnectionPool(
            max_connections, max_connections, dsn, connect_timeout=5
        )
        # The pool raises when empty; the HTTP server has a thread per connection, so
        # requests wait for a free connection instead.
        self._slots = threading.BoundedSemaphore(max_connections)
        self.execute(SCHEMA_SQL)

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.closeall()

    def _run(self, fn: Any) -> Any:
        with self._slots:
            conn = self._pool.getconn()
            broken = False
            try:
                with conn, conn.cursor(cursor_factory=RealDictCursor) as cur:
                    return fn(cur)
            except psycopg2.OperationalError:
                broken = True  # e.g. the server restarted: do not reuse this connection
                raise
            finally:
                self._pool.putconn(conn, close=broken or bool(conn.closed))

    def execute(self, query: str, params: Any = None) -> None:
        """Run one statement (or a script without parameters) in its own transaction."""
        self._run(lambda cur: cur.execute(query, params))

    def fetchall(self, query: str, params: Any = None) -> list[dict[str, Any]]:
        """All rows of a query, as dicts."""

        def go(cur: Any) -> list[dict[str, Any]]:
            cur.execute(query, params)
            return [dict(r) for r in cur.fetchall()]

        return self._run(go)

    def fetchone(self, query: str, params: Any = None) -> dict[str, Any] | None:
        """The first row of a query as a dict, or None."""
        rows = self.fetchall(query, params)
        return rows[0] if rows else None

    # OAuth client -----------------------------------------------------------------------------
    def oauth_client(self, new_id: str, new_secret: str) -> tuple[str, str]:
        """The local OAuth client, created with the given id/secret on first use."""
        row = self.fetchone('SELECT "clientId", "clientSecret" FROM "oAuthClient" ORDER BY id')
        if row is None:
            self.execute(
                'INSERT INTO "oAuthClient" ("clientId", "clientSecret") VALUES (%s, %s)',
                (new_id, new_secret),
            )
            return new_id, new_secret
        return row["clientId"], row["clientSecret"]

    # videos -----------------------------------------------------------------------------------
    def find_video(self, *, video_id: int | str | None = None,
                   uuid: str | None = None) -> dict | None:
        """A video with its channel, by numeric id or UUID.

        A numeric id may be given as the string the client sent: PostgreSQL then reads it
        as PeerTube's query does ('+5' is 5; a number beyond integer range raises
        psycopg2.DataError "value ... is out of range for type integer", which PeerTube
        answers as a 500).
        """
        where, param = ("v.id = %s", video_id) if video_id is not None else ("v.uuid = %s", uuid)
        return self.fetchone(
            f'SELECT {_VIDEO_COLUMNS} FROM video v JOIN "videoChannel" c ON c.id = v."channelId" '
            f"WHERE {where}",
            (param,),
        )

    def update_video(self, video_id: int, changes: dict[str, Any]) -> None:
        """Apply column changes and bump ``"updatedAt"``, changed or not: PeerTube's update
        saves the video, or calls setAsRefreshed when nothing changed
        (server/core/controllers/api/videos/update.ts)."""
        sets = "".join(f'"{col}" = %s, ' for col in changes)
        self.execute(
            f'UPDATE video SET {sets}"updatedAt" = now() WHERE id = %s',
            [*changes.values(), video_id],
        )

    def channel_exists(self, channel_id: int) -> bool:
        """Whether a channel with this id exists."""
        return self.fetchone('SELECT 1 AS one FROM "videoChannel" WHERE id = %s',
                             (channel_id,)) is not None

    def list_videos(
        self, *, where: list[str], params: list[Any], order: str, start: int, count: int,
        with_total: bool,
    ) -> tuple[int | None, list[dict[str, Any]]]:
        """(total, one page) of the videos matching SQL conditions on ``v``."""
        condition = " AND ".join(where) or "TRUE"
        base = f'FROM video v JOIN "videoChannel" c ON c.id = v."channelId" WHERE {condition}'
        total = None
        if with_total:
            row = self.fetchone(f"SELECT count(*) AS n {base}", params)
            total = int(row["n"]) if row else 0
        rows = self.fetchall(
            f"SELECT {_VIDEO_COLUMNS} {base} ORDER BY {order} LIMIT %s OFFSET %s",
            [*params, count, start],
        )
        return total, rows

    def ensure_channel(self, name: str) -> int:
        """The id of the channel with this display name, created if missing."""
        name = name[:255]

        def go(cur: Any) -> int:
            cur.execute(
                'INSERT INTO "videoChannel" (name) VALUES (%s) ON CONFLICT (name) DO NOTHING',
                (name,),
            )
            cur.execute('SELECT id FROM "videoChannel" WHERE name = %s', (name,))
            return int(cur.fetchone()["id"])

        return self._run(go)

    def add_video(
        self,
        name: str,
        *,
        channel: str = "Sandbox",
        category: int | None = None,
        privacy: int = 1,
        uuid: str | None = None,
        host: str = "sandbox.peertube.localhost",
    ) -> dict[str, Any]:
        """Create one video (what an upload would leave behind) and return its row."""
        video_uuid = uuid or str(uuid_mod.uuid4())
        channel_id = self.ensure_channel(channel)
        self.execute(
            "INSERT INTO video (uuid, name, category, privacy, nsfw, url, state, "
            '"channelId") VALUES (%s, %s, %s, %s, false, %s, 1, %s)',
            (
                video_uuid,
                name[:255],
                category,
                privacy,
                f"https://{host}/videos/watch/{video_uuid}",
                channel_id,
            ),
        )
        row = self.find_video(uuid=video_uuid)
        assert row is not None
        return row

    # plugins ----------------------------------------------------------------------------------
    def plugins(
        self,
        *,
        uninstalled: bool,
        plugin_type: int | None,
        order: str = "id ASC",
        start: int = 0,
        count: int | None = None,
    ) -> list[dict[str, Any]]:
        """Rows of ``plugin`` (installed or uninstalled ones) in ``order``, one page."""
        query = "SELECT * FROM plugin WHERE uninstalled = %s"
        params: list[Any] = [uninstalled]
        if plugin_type is not None:
            query += " AND type = %s"
            params.append(plugin_type)
        query += f" ORDER BY {order} OFFSET %s"
        params.append(start)
        if count is not None:
            query += " LIMIT %s"
            params.append(count)
        return self.fetchall(query, params)

    def count_plugins(self, *, uninstalled: bool, plugin_type: int | None) -> int:
        """How many rows ``plugins`` would list without paging."""
        query = "SELECT count(*) AS n FROM plugin WHERE uninstalled = %s"
        params: list[Any] = [uninstalled]
        if plugin_type is not None:
            query += " AND type = %s"
            params.append(plugin_type)
        row = self.fetchone(query, params)
        return int(row["n"]) if row else 0

    def plugin(self, name: str, plugin_type: int) -> dict[str, Any] | None:
        """The ``plugin`` row of a name and type, installed or not."""
        return self.fetchone("SELECT * FROM plugin WHERE name = %s AND type = %s",
                             (name, plugin_type))

    def upsert_plugin(self, row: dict[str, Any]) -> dict[str, Any]:
        """Insert or update a plugin row (keyed by name and type); returns the stored row."""

        def go(cur: Any) -> dict[str, Any]:
            cur.execute(
                'INSERT INTO plugin (name, type, version, "latestVersion", enabled, uninstalled,'
                ' "peertubeEngine", description, homepage, settings, storage, "sandboxPath",'
                ' "sandboxCategories") VALUES (%(name)s, %(type)s, %(version)s, NULL, true,'
                " false, %(peertubeEngine)s, %(description)s, %(homepage)s, NULL, NULL,"
                " %(path)s, %(categories)s) ON CONFLICT (name, type) DO UPDATE SET"
                " version = EXCLUDED.version, enabled = true, uninstalled = false,"
                ' "peertubeEngine" = EXCLUDED."peertubeEngine",'
                " description = EXCLUDED.description, homepage = EXCLUDED.homepage,"
                ' "sandboxPath" = EXCLUDED."sandboxPath",'
                ' "sandboxCategories" = EXCLUDED."sandboxCategories", "updatedAt" = now()'
                " RETURNING *",
                {**row, "categories": json.dumps(row["categories"])},
            )
            return dict(cur.fetchone())

        return self._run(go)

    def mark_uninstalled(self, name: str, plugin_type: int) -> None:
        """Keep the row (PeerTube lists it with uninstalled=true) but disable it."""
        self.execute(
            'UPDATE plugin SET enabled = false, uninstalled = true, "updatedAt" = now() '
            "WHERE name = %s AND type = %s",
            (name, plugin_type),
        )

    # seeding ----------------------------------------------------------------------------------
    def seed_videos_from_recon(
        self,
        recon_db_path: str | Path,
        source: str,
        *,
        prior_category_percent: int = 5,
    ) -> SeedReport:
        """A video for every stream row of a RECON database (``catalogue.source == source``).

        The UUID comes from the watch URL in ``catalogue.path`` (short UUIDs decoded); rows
        whose path is garbage, or whose UUID is not version 4 (PeerTube would answer 400 for
        it), are skipped and counted. Channel = ``catalogue.category``. About
        ``prior_category_percent`` % of the videos (chosen by a hash of the UUID, so the same
        corpus always gives the same set) already carry built-in category 13 or 15.
        Videos already present are left as they are.
        """
        path = Path(recon_db_path)
        if not path.is_file():
            raise FileNotFoundError(f"RECON database {path} does not exist")
        src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = src.execute(
                "SELECT hash, path, category, filename FROM catalogue WHERE source = ? "
                "ORDER BY hash",
                (source,),
            ).fetchall()
        finally:
            src.close()
        report = SeedReport()
        videos: dict[str, tuple[str, str, int | None]] = {}
        for doc_hash, watch_path, channel, filename in rows:
            parsed = parse_watch_url(watch_path)
            if parsed.video_id is None:
                report.skipped_garbage += 1
                if len(report.garbage_examples) < 5:
                    report.garbage_examples.append(f"{doc_hash}: {parsed.reason}")
                continue
            if not is_uuid_v4(parsed.video_id):
                report.skipped_not_v4 += 1
                continue
            digest = int(hashlib.sha256(parsed.video_id.encode()).hexdigest(), 16)
            prior = (
                PRIOR_CATEGORIES[digest % len(PRIOR_CATEGORIES)]
                if (digest // 7) % 100 < prior_category_percent
                else None
            )
            title = (filename or f"RECON {doc_hash[:12]}")[:255]
            videos[parsed.video_id] = (title, (channel or "Unsorted")[:255], prior)
        channel_ids = {name: self.ensure_channel(name) for name in {v[1] for v in videos.values()}}
        report.channels = len(channel_ids)
        now = datetime.now(UTC)

        def go(cur: Any) -> list[Any]:
            return execute_values(
                cur,
                "INSERT INTO video (uuid, name, category, privacy, nsfw, url, state,"
                ' "channelId", "publishedAt", "createdAt", "updatedAt") VALUES %s'
                " ON CONFLICT (uuid) DO NOTHING RETURNING category",
                [
                    (
                        u,
                        name,
                        prior,
                        1,
                        False,
                        f"https://{source}/videos/watch/{u}",
                        1,
                        channel_ids[chan],
                        now,
                        now,
                        now,
                    )
                    for u, (name, chan, prior) in videos.items()
                ],
                template="(%s::uuid, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                page_size=1000,
                fetch=True,
            )

        inserted = self._run(go) if videos else []
        report.created = len(inserted)
        report.already_present = len(videos) - len(inserted)
        report.with_prior_category = sum(1 for r in inserted if r["category"] is not None)
        return report


def seed_videos_from_recon(
    dsn: str, recon_db_path: str | Path, source: str, *, prior_category_percent: int = 5
) -> SeedReport:
    """Seed the sandbox PeerTube database at ``dsn`` (see SandboxStore.seed_videos_from_recon)."""
    store = SandboxStore(dsn, max_connections=2)
    try:
        return store.seed_videos_from_recon(
            recon_db_path, source, prior_category_percent=prior_category_percent
        )
    finally:
        store.close()


def db_error_text(exc: psycopg2.Error) -> str:
    """A one-line description of a database error."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__

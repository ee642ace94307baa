"""`recon-domains rehearse --peertube-url URL`: the rehearsal against a staging PeerTube.

The rehearsal (recon_domains.rehearsal) normally starts a throwaway sandbox PeerTube. With
`--peertube-url` it writes to a PeerTube that exists, so this module holds what that needs:

- the target's settings (`StagingTarget.from_settings`): the admin account
  (PEERTUBE_USERNAME/PEERTUBE_PASSWORD), the plugin folder on that PeerTube's host
  (PEERTUBE_PLUGIN_PATH: the runbook's plugin step installs it through the admin API and
  remove_feature uninstalls it), and a way to take Pre-Deploy 2's dump
  (PEERTUBE_DB_DUMP_COMMAND, else pg_dump over PEERTUBE_DB_DSN). Any missing one is a
  ConfigError before anything is copied or contacted: the rehearsal runs every gate, the
  dump included, or none;
- the preflight (`preflight`), read-only: an administrator, the plugin not installed yet
  (the rehearsal installs it itself and removes it at the end), every video's category
  through the API (the "before" the end is compared with), how many of the copy's videos
  the instance holds (none: refused), and with a DSN, that the database is this PeerTube's;
- the snapshots (`every_video_category`) and their comparison (`compare`): which videos the
  rehearsal changed, which it restored, and which do not end as they began.

The copy's watch URLs stay as RECON stores them: their host is the stream's
(RECON_STREAM_SOURCE / RECON_ACCEPTED_HOSTS, as in production), and the push writes by UUID
to the staging URL. So the staging PeerTube must carry production's videos under their
UUIDs (a restore of production's PeerTube database); a video it lacks answers 404 to the
push, which stops at that stage's verification, as production would.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recon_domains.peertube.client import PeerTubeClient, PeerTubeError
from recon_domains.peertube.urls import parse_watch_url
from recon_domains.recon.store import ReconStore
from recon_domains.settings import ConfigError, Settings
from recon_domains.taxonomy import PLUGIN_NPM_NAME

PAGE_SIZE = 100  # the most GET /api/v1/videos gives per page
LISTING_ATTEMPTS = 3
SHOWN = 10  # video ids named in a message; the report lists them all
TOKEN_CACHE_NAME = "peertube-token.json"

Snapshot = dict[str, int | None]  # {video uuid: category id or None}


class RehearsalRefused(RuntimeError):
    """The rehearsal will not write to that PeerTube (exit 1); nothing was written."""


@dataclass(frozen=True)
class StagingTarget:
    """The PeerTube the rehearsal writes to, and the settings it needs."""

    url: str
    settings: Settings  # the operator's, PEERTUBE_URL replaced by `url`

    @classmethod
    def from_settings(cls, environment: Settings, url: str) -> StagingTarget:
        """The target at `url` with the environment's PeerTube settings; ConfigError naming
        the first one missing (checked before anything is copied or contacted)."""
        pt = environment.peertube
        if pt.password is None:
            raise ConfigError(
                f"PEERTUBE_PASSWORD is not set: rehearse --peertube-url logs in to {url} as "
                f"PEERTUBE_USERNAME ({pt.username}), an administrator of that PeerTube; "
                "export its password",
                variable="PEERTUBE_PASSWORD",
            )
        if not pt.plugin_path:
            raise ConfigError(
                "PEERTUBE_PLUGIN_PATH is not set: the rehearsal installs the plugin on "
                f"{url} through its admin API and removes it at the end; copy "
                "peertube-plugin/peertube-plugin-recon-domains onto that PeerTube's host "
                "and set PEERTUBE_PLUGIN_PATH to that folder as PeerTube sees it",
                variable="PEERTUBE_PLUGIN_PATH",
            )
        if not pt.db_dump_command and pt.db_dsn is None:
            raise ConfigError(
                "neither PEERTUBE_DB_DUMP_COMMAND nor PEERTUBE_DB_DSN is set: the rehearsal "
                f"runs every gate, Pre-Deploy 2's dump of {url}'s database included; set "
                "PEERTUBE_DB_DUMP_COMMAND to a command printing that database's `pg_dump "
                "-Fc` to stdout (e.g. ssh staging 'sudo -u postgres pg_dump -Fc peertube'), "
                "or PEERTUBE_DB_DSN when this machine reaches it",
                variable="PEERTUBE_DB_DUMP_COMMAND",
            )
        return cls(url, dataclasses.replace(
            environment, peertube=dataclasses.replace(pt, url=url)
        ))

    def client(self, workdir: Path) -> PeerTubeClient:
        """A client of the target; its tokens cached in PEERTUBE_TOKEN_CACHE, else in the
        work folder, so the rehearsal's jobs log in once (PeerTube allows 15 logins per
        5 minutes per IP)."""
        return PeerTubeClient.from_settings(
            self.settings.peertube, token_cache=self.token_cache(workdir)
        )

    def token_cache(self, workdir: Path) -> Path:
        return self.settings.peertube.token_cache or workdir / TOKEN_CACHE_NAME

    def run_settings(self, copy: Settings, workdir: Path) -> Settings:
        """The copy's settings (its paths) with this target as PeerTube."""
        return dataclasses.replace(
            copy,
            pg_bin_dir=self.settings.pg_bin_dir,
            peertube=dataclasses.replace(
                self.settings.peertube, token_cache=self.token_cache(workdir)
            ),
        )

    def refusal(self) -> str:
        """The one line said when the writes were not confirmed."""
        return (
            f"refusing to write to the PeerTube at {self.url}: the rehearsal installs "
            f"{PLUGIN_NPM_NAME} there, sets categories on its videos and, with "
            "--then-remove-feature, restores them; nothing was written. Add "
            "--i-understand-this-writes when that instance is a staging copy you may change"
        )


def every_video_category(client: PeerTubeClient) -> Snapshot:
    """{uuid: category id or None} of every video an administrator sees, through the API
    (pages of 100, oldest first); read again when the total changes between pages."""
    totals: list[int] = []
    for _ in range(LISTING_ATTEMPTS):
        seen: Snapshot = {}
        total, page = client.list_videos(count=PAGE_SIZE)
        stable = True
        while page:
            for video in page:
                category = (video.get("category") or {}).get("id")
                seen[str(video["uuid"]).lower()] = None if category is None else int(category)
            if len(seen) >= total:
                break
            again, page = client.list_videos(start=len(seen), count=PAGE_SIZE)
            if again != total:
                stable = False
                break
        if stable and len(seen) == total:
            return dict(sorted(seen.items()))
        totals.append(total)
    raise PeerTubeError(
        f"PeerTube's video list kept changing while it was read ({LISTING_ATTEMPTS} "
        f"attempts, totals {totals}): rehearse when nobody uploads to the staging instance"
    )


def copy_video_ids(store: ReconStore) -> set[str]:
    """The UUIDs the copy's stream rows point at (watch URLs on the stream's hosts)."""
    hashes = [h for members in store.channel_members_map().values() for h in members]
    ids = set()
    for path in store.watch_paths(hashes).values():
        parsed = parse_watch_url(path, store.watch_hosts)
        if parsed.video_id is not None:
            ids.add(parsed.video_id)
    return ids


@dataclass
class Preflight:
    """What the read-only preflight found."""

    before: Snapshot
    copy_videos: int
    present: int
    missing: list[str] = field(default_factory=list)

    def note(self, url: str) -> str:
        text = f"{self.present} of the copy's {self.copy_videos} videos exist on {url}"
        if self.missing:
            text += (
                f"; {len(self.missing)} do not (e.g. {', '.join(self.missing[:3])}): the push "
                "answers them 404 and stage verification stops there, as it would in "
                "production"
            )
        return text + f" ({len(self.before)} videos there in all)."


def preflight(client: PeerTubeClient, target: StagingTarget, copy_ids: set[str]) -> Preflight:
    """Read-only checks before the first write; RehearsalRefused or ConfigError when the
    rehearsal must not go on."""
    client.require_admin()
    if client.find_plugin(PLUGIN_NPM_NAME) is not None:
        raise RehearsalRefused(
            f"{PLUGIN_NPM_NAME} is already installed on {target.url}: the rehearsal installs "
            "it itself and removes it at the end, so it must start without it; uninstall it "
            "there (after restoring what an earlier run pushed) and rehearse again; nothing "
            "was written"
        )
    before = every_video_category(client)
    present = sorted(copy_ids & before.keys())
    missing = sorted(copy_ids - before.keys())
    if not present:
        raise RehearsalRefused(
            f"none of the copy's {len(copy_ids)} videos exist on {target.url} "
            f"({len(before)} videos there): the staging PeerTube must hold RECON's videos "
            "under their UUIDs (restore production's PeerTube database into it); nothing "
            "was written"
        )
    dsn = target.settings.peertube.db_dsn
    if dsn is not None:
        _require_same_videos(dsn.get_secret_value(), before, target.url)
    return Preflight(before, len(copy_ids), len(present), missing)


def _require_same_videos(dsn: str, listed: Mapping[str, int | None], url: str) -> None:
    """PEERTUBE_DB_DSN must be the database of the PeerTube at `url`: it holds every video
    the API lists, with the same category."""
    import psycopg2

    from recon_domains.peertube.database import mask_dsn

    try:
        conn = psycopg2.connect(dsn, connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT uuid::text, category FROM video")
                rows = dict(cur.fetchall())
        finally:
            conn.close()
    except psycopg2.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(
            f"PEERTUBE_DB_DSN ({mask_dsn(dsn)}) cannot be read as {url}'s database: {first}",
            variable="PEERTUBE_DB_DSN",
        ) from None
    differ = [u for u, c in listed.items() if u not in rows or rows[u] != c]
    if differ:
        raise ConfigError(
            f"PEERTUBE_DB_DSN ({mask_dsn(dsn)}) is not the database of {url}: "
            f"{len(differ)} of the {len(listed)} videos its API lists are absent there or "
            f"differ (e.g. {differ[0]}); set it to that PeerTube's database, or unset it to "
            "read categories through the API",
            variable="PEERTUBE_DB_DSN",
        )


@dataclass
class Comparison:
    """The instance's videos before the rehearsal, after the runbook and at the end."""

    changed: dict[str, tuple[int | None, int | None]]  # by the runbook: before, pushed
    restored: list[str]  # changed, and back to before at the end
    differences: dict[str, tuple[int | None, int | None]]  # before, end (any video)
    appeared: list[str]
    gone: list[str]

    @property
    def exact(self) -> bool:
        return not (self.differences or self.appeared or self.gone)

    def as_json(self) -> dict[str, Any]:
        return {
            "changed_by_runbook": {u: {"before": b, "pushed": p}
                                   for u, (b, p) in self.changed.items()},
            "restored": self.restored,
            "differences": {u: {"before": b, "end": e}
                            for u, (b, e) in self.differences.items()},
            "appeared": self.appeared,
            "gone": self.gone,
            "exact": self.exact,
        }

    def problem(self, url: str) -> str | None:
        """Why the instance did not end as it began (None when it did)."""
        if self.exact:
            return None
        parts = []
        if self.differences:
            shown = ", ".join(f"{u} {b} -> {e}" for u, (b, e) in
                              list(self.differences.items())[:SHOWN])
            parts.append(f"{len(self.differences)} video(s) end with another category "
                         f"({shown})")
        if self.appeared:
            parts.append(f"{len(self.appeared)} video(s) appeared")
        if self.gone:
            parts.append(f"{len(self.gone)} video(s) are gone")
        return (f"the PeerTube at {url} does not end as it began: " + "; ".join(parts)
                + " (every one in report.json, peertube.differences)")


def compare(before: Snapshot, mid: Snapshot, end: Snapshot) -> Comparison:
    changed = {u: (c, mid[u]) for u, c in before.items() if u in mid and mid[u] != c}
    return Comparison(
        changed=changed,
        restored=[u for u in changed if u in end and end[u] == before[u]],
        differences={u: (c, end[u]) for u, c in before.items() if u in end and end[u] != c},
        appeared=sorted(end.keys() - before.keys()),
        gone=sorted(before.keys() - end.keys()),
    )


def shown(ids: Iterable[str]) -> str:
    """A few ids and how many more, for a summary line."""
    ids = list(ids)
    more = f" and {len(ids) - SHOWN} more" if len(ids) > SHOWN else ""
    return ", ".join(ids[:SHOWN]) + more

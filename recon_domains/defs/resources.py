"""Dagster resources, built from the one settings model (recon_domains.settings), handing
out core objects.

`resources_from_settings(settings)` gives the Definitions' resources. Secrets and required
paths are `dg.EnvVar`s, resolved when a run starts: the definitions load without them (e.g.
in `dagster definitions validate`) and the UI and run config never show them. Every other
field is a typed value taken from the settings; the fields' defaults are the settings'
defaults, for resources built by hand (tests).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field, PrivateAttr

from recon_domains.progress import Listener, Progress
from recon_domains.settings import (
    DEFAULTS,
    Benchmarks,
    Settings,
    default_backup_dir,
    default_quarantine_dir,
    require,
)

if TYPE_CHECKING:
    from recon_domains.peertube.categories import PeerTubeCategories
    from recon_domains.peertube.client import PeerTubeClient
    from recon_domains.peertube.database import PeerTubeDatabase
    from recon_domains.recon.store import ReconStore


@functools.cache
def loaded_settings() -> Settings:
    """The settings of the environment the definitions are loaded in (`dagster dev` has
    loaded `.env` by then), read once per process: check descriptions state their values."""
    return Settings.from_env()


class ReconResource(dg.ConfigurableResource):
    """RECON: its SQLite database, concept folders, backups and the rollout's knobs."""

    db_path: str = Field(description="recon.db (RECON_DB_PATH)")
    concepts_dir: str = Field(description="concept folders root (RECON_CONCEPTS_DIR)")
    stream_source: str = Field(
        default=DEFAULTS.stream_source,
        description="catalogue.source of PeerTube videos (RECON_STREAM_SOURCE)",
    )
    accepted_hosts: list[str] = Field(
        default=list(DEFAULTS.accepted_hosts),
        description="other host names of our PeerTube that watch URLs may carry; the push "
        "writes only to videos on the stream source or these (RECON_ACCEPTED_HOSTS)",
    )
    backup_dir: str = Field(
        default="", description="pre-deploy backups (RECON_BACKUP_DIR; default: beside recon.db)"
    )
    offsite_concepts_dir: str = Field(
        default="", description="off-site concept mirror (RECON_OFFSITE_CONCEPTS_DIR)"
    )
    quarantine_dir: str = Field(
        default="",
        description="where reprocess moves stale concept folders (RECON_QUARANTINE_DIR; "
        "default: <concepts_dir>.quarantine)",
    )
    skip_channels: list[str] = Field(
        default=sorted(DEFAULTS.skip_channels),
        description="catch-all channels whose ties go to a human (RECON_SKIP_CHANNELS)",
    )
    is_copy: bool = Field(
        default=DEFAULTS.is_copy,
        description="RECON_IS_COPY=1 for a rehearsal copy: it has no workers, so stale "
        "mid-pipeline statuses are reported instead of failing no_active_workers",
    )
    review_url: str = Field(
        default=DEFAULTS.review.url,
        description="the tied-video review page (`recon-domains review`) as operators open it "
        "(RECON_REVIEW_URL)",
    )
    offsite_max_lag_hours: float = Field(
        default=DEFAULTS.offsite_max_lag_hours,
        description="how far the off-site mirror may lag (RECON_OFFSITE_MAX_LAG_HOURS)",
    )
    max_window_file_mb: int = Field(
        default=DEFAULTS.max_window_file_mb,
        description="window files above this many MB are skipped unread "
        "(RECON_MAX_WINDOW_FILE_MB)",
    )
    reassign_max_change_pct: float = Field(
        default=DEFAULTS.reassign_max_change_pct,
        description="the scheduled re-assignment halts above this share (percent) of the "
        "categorized documents changing (RECON_REASSIGN_MAX_CHANGE_PCT)",
    )
    push_stage1_size: int = Field(
        default=DEFAULTS.stage_sizes[0],
        description="runbook Step 5: stage-1 size (RECON_PUSH_STAGE1_SIZE)",
    )
    push_stage2_size: int = Field(
        default=DEFAULTS.stage_sizes[1],
        description="runbook Step 5: stage-2 size (RECON_PUSH_STAGE2_SIZE)",
    )
    lock_timeout_s: float = Field(
        default=DEFAULTS.lock_timeout_s,
        description="how long one write waits for RECON's write lock (RECON_LOCK_TIMEOUT_S)",
    )
    benchmark_assigned_pct: float = Field(
        default=DEFAULTS.benchmarks.assigned, description="RECON_BENCHMARK_ASSIGNED_PCT"
    )
    benchmark_tied_pct: float = Field(
        default=DEFAULTS.benchmarks.tied, description="RECON_BENCHMARK_TIED_PCT"
    )
    benchmark_needs_reprocess_pct: float = Field(
        default=DEFAULTS.benchmarks.needs_reprocess,
        description="RECON_BENCHMARK_NEEDS_REPROCESS_PCT",
    )
    benchmark_tolerance_pp: float = Field(
        default=DEFAULTS.benchmarks.tolerance, description="RECON_BENCHMARK_TOLERANCE_PP"
    )

    @contextmanager
    def store(self, *, migrated: bool = True) -> Iterator[ReconStore]:
        """An open ReconStore, closed afterwards. Unless `migrated=False` (the steps that
        run before the migration or undo it), recon.db must be migrated: a step reading the
        domain columns says so (ReconStoreError naming Step 3), not "no such column"."""
        from recon_domains.recon.store import ReconStore

        # Unset where the definitions loaded (resources_from_settings): say so, in one line.
        store = ReconStore.open(
            Path(require(self.db_path, "RECON_DB_PATH")),
            self.stream_source,
            accepted_hosts=self.accepted_hosts,
            lock_timeout_s=self.lock_timeout_s,
        )
        try:
            if migrated:
                store.require_migrated()
            yield store
        finally:
            store.close()

    @property
    def concepts_root(self) -> Path:
        return Path(require(self.concepts_dir, "RECON_CONCEPTS_DIR"))

    @property
    def backup_root(self) -> Path:
        return Path(self.backup_dir) if self.backup_dir else default_backup_dir(Path(self.db_path))

    @property
    def quarantine_root(self) -> Path:
        if self.quarantine_dir:
            return Path(self.quarantine_dir)
        return default_quarantine_dir(Path(self.concepts_dir))

    @property
    def skip_channel_set(self) -> frozenset[str]:
        return frozenset(self.skip_channels)

    @property
    def push_stage_sizes(self) -> tuple[int, int]:
        """(stage-1, stage-2) sizes; stage-3 is the rest."""
        return (self.push_stage1_size, self.push_stage2_size)

    def benchmarks(self) -> Benchmarks:
        """Runbook Step 4's benchmarks and tolerance."""
        return Benchmarks(
            assigned=self.benchmark_assigned_pct,
            tied=self.benchmark_tied_pct,
            needs_reprocess=self.benchmark_needs_reprocess_pct,
            tolerance=self.benchmark_tolerance_pp,
        )


class PeerTubeResource(dg.ConfigurableResource):
    """PeerTube's HTTP API (admin user)."""

    url: str = Field(description="base URL, e.g. http://192.168.1.170:9000 (PEERTUBE_URL)")
    host_header: str = Field(
        default="", description="Host header override (PEERTUBE_HOST_HEADER; optional)"
    )
    username: str = Field(default=DEFAULTS.peertube.username, description="PEERTUBE_USERNAME")
    password: str = Field(description="PEERTUBE_PASSWORD, always through EnvVar")
    token_cache: str = Field(
        default="", description="token cache file, mode 0600 (PEERTUBE_TOKEN_CACHE; optional)"
    )
    plugin_path: str = Field(
        default="",
        description="PEERTUBE_PLUGIN_PATH: plugin folder on PeerTube's host to install from; "
        "empty = verify an operator-installed plugin",
    )
    node: str = Field(
        default=DEFAULTS.node, description="the node binary that checks the plugin (RECON_NODE)"
    )
    push_max_in_flight: int = Field(
        default=DEFAULTS.peertube.push_max_in_flight,
        description="PEERTUBE_PUSH_MAX_IN_FLIGHT: the most PUTs the push keeps in flight at "
        "once (it keeps the fewest that reach PeerTube's capacity); also the client's "
        "connection pool",
    )
    push_max_rate: float | None = Field(
        default=DEFAULTS.peertube.push_max_rate,
        description="PEERTUBE_PUSH_MAX_RATE: the most requests per second the push sends; "
        "unset = no limit",
    )

    def client(self) -> PeerTubeClient:
        """A new PeerTubeClient (close it, or use it as a context manager)."""
        from recon_domains.peertube.client import PeerTubeClient

        # Unset where the definitions loaded (resources_from_settings): say so, in one line.
        return PeerTubeClient(
            require(self.url, "PEERTUBE_URL"),
            self.username,
            require(self.password, "PEERTUBE_PASSWORD"),
            host_header=self.host_header or None,
            token_cache=self.token_cache or None,
            pool_size=self.push_max_in_flight,
        )


class PeerTubeDbResource(dg.ConfigurableResource):
    """PeerTube's PostgreSQL, optional: the category reads when reachable (else PeerTube's
    API), the rollback's `via: db` writes, and the pre-deploy dump."""

    dsn: str = Field(
        default="", description="PEERTUBE_DB_DSN (optional: without it, reads use the API)"
    )
    dump_command: str = Field(
        default="",
        description="PEERTUBE_DB_DUMP_COMMAND: prints `pg_dump -Fc` to stdout (SSH hop)",
    )
    pg_bin_dir: str = Field(
        default="",
        description="RECON_PG_BIN_DIR: folder of pg_dump / pg_restore; empty = from PATH",
    )

    def database_if_configured(self) -> PeerTubeDatabase | None:
        """The database when PEERTUBE_DB_DSN is set, else None."""
        from recon_domains.peertube.database import PeerTubeDatabase

        return PeerTubeDatabase(self.dsn) if self.dsn else None

    def categories(self, client: PeerTubeClient) -> PeerTubeCategories:
        """How every step reads PeerTube's categories, chosen here once: the database when
        PEERTUBE_DB_DSN is set, else PeerTube's API through `client`."""
        from recon_domains.peertube.categories import peertube_categories

        return peertube_categories(client, self.database_if_configured())


class ProgressResource(dg.ConfigurableResource):
    """Progress of the long loops (pass 1, the tiebreaker, each push stage, reprocess): a
    line in the run's log at the start, every `every_percent` % or `every_s` seconds, and
    at the end, with done/total, rate and ETA (recon_domains.progress). A caller running
    jobs in its own process (the rehearsal) may add a live display with `with_live`."""

    every_percent: float = Field(default=10.0, description="a log line every this many %")
    every_s: float = Field(default=30.0, description="and at least every this many seconds")
    _live: tuple[Listener, ...] = PrivateAttr(default=())
    _lines: tuple[Listener, ...] = PrivateAttr(default=())

    def also_telling(
        self, *, live: Sequence[Listener] = (), lines: Sequence[Listener] = ()
    ) -> ProgressResource:
        """This resource, also telling `live` at every step (a terminal's bars) and `lines`
        at the log lines' cadence (a command's plain output)."""
        copy = self.model_copy()
        copy._live, copy._lines = tuple(live), tuple(lines)
        return copy

    def track(self, log: logging.Logger, task: str, unit: str = "items") -> Progress:
        """A Progress for one loop, whose lines go to `log` (the run's context.log)."""
        return Progress(
            task, unit, lines=[lambda update: log.info(update.line()), *self._lines],
            live=self._live, every_fraction=self.every_percent / 100.0, every_s=self.every_s,
        )


def dg_progress_resource(
    *, live: Sequence[Listener] = (), lines: Sequence[Listener] = ()
) -> dg.ResourceDefinition:
    """The `progress` resource of a caller running jobs in its own process, with its own
    display (see ProgressResource.also_telling; hard-coded: a display is no run config)."""
    return dg.ResourceDefinition.hardcoded_resource(
        ProgressResource().also_telling(live=live, lines=lines)
    )


def resources_from_settings(
    settings: Settings, *, env_vars: bool = True
) -> dict[str, dg.ConfigurableResource]:
    """The resources of the Definitions, configured by `settings`.

    env_vars: secrets and required paths as `dg.EnvVar`s of their variables (the settings
    were read from this environment). False: their values from `settings` too, for a
    Definitions over settings of its own (the rehearsal's copy and throwaway sandbox).
    """
    peertube = settings.peertube
    if env_vars:
        # The DSN may carry a password and the dump command a host: EnvVar keeps both out
        # of the UI and run config. Both are optional: an EnvVar of an unset variable
        # would fail every run at its start. A required variable unset here is "" instead
        # of an EnvVar: the step that uses it fails naming it in one line (client(),
        # store()) rather than every run failing to start with Dagster's traceback.
        def env_var(name: str, value: object | None) -> dg.EnvVar | str:
            return dg.EnvVar(name) if value not in (None, "") else ""

        db_path = env_var("RECON_DB_PATH", settings.db_path)
        concepts_dir = env_var("RECON_CONCEPTS_DIR", settings.concepts_dir)
        url = env_var("PEERTUBE_URL", peertube.url)
        password = env_var("PEERTUBE_PASSWORD", peertube.password)
        dsn = dg.EnvVar("PEERTUBE_DB_DSN") if peertube.db_dsn else ""
        dump_command = dg.EnvVar("PEERTUBE_DB_DUMP_COMMAND") if peertube.db_dump_command else ""
    else:
        db_path = str(require(settings.db_path, "RECON_DB_PATH"))
        concepts_dir = str(require(settings.concepts_dir, "RECON_CONCEPTS_DIR"))
        url = require(peertube.url, "PEERTUBE_URL")
        password = require(peertube.password, "PEERTUBE_PASSWORD").get_secret_value()
        dsn = peertube.db_dsn.get_secret_value() if peertube.db_dsn else ""
        dump_command = peertube.db_dump_command or ""
    return {
        "recon": ReconResource(
            db_path=db_path,
            concepts_dir=concepts_dir,
            stream_source=settings.stream_source,
            accepted_hosts=list(settings.accepted_hosts),
            backup_dir=_text(settings.backup_dir),
            offsite_concepts_dir=_text(settings.offsite_concepts_dir),
            quarantine_dir=_text(settings.quarantine_dir),
            skip_channels=sorted(settings.skip_channels),
            is_copy=settings.is_copy,
            review_url=settings.review.url,
            offsite_max_lag_hours=settings.offsite_max_lag_hours,
            max_window_file_mb=settings.max_window_file_mb,
            reassign_max_change_pct=settings.reassign_max_change_pct,
            push_stage1_size=settings.stage_sizes[0],
            push_stage2_size=settings.stage_sizes[1],
            lock_timeout_s=settings.lock_timeout_s,
            benchmark_assigned_pct=settings.benchmarks.assigned,
            benchmark_tied_pct=settings.benchmarks.tied,
            benchmark_needs_reprocess_pct=settings.benchmarks.needs_reprocess,
            benchmark_tolerance_pp=settings.benchmarks.tolerance,
        ),
        "peertube": PeerTubeResource(
            url=url,
            host_header=_text(peertube.host_header),
            username=peertube.username,
            password=password,
            token_cache=_text(peertube.token_cache),
            plugin_path=_text(peertube.plugin_path),
            node=settings.node,
            push_max_in_flight=peertube.push_max_in_flight,
            push_max_rate=peertube.push_max_rate,
        ),
        "peertube_db": PeerTubeDbResource(
            dsn=dsn, dump_command=dump_command, pg_bin_dir=_text(settings.pg_bin_dir)
        ),
    }


def hardcoded_resources(settings: Settings) -> dict[str, dg.ResourceDefinition]:
    """Resources holding `settings`' values (none from the environment), hard-coded rather
    than configured: a configured resource's values (a sandbox's password among them) would
    be stored with every run's snapshot in the instance. For the rehearsal's copy."""
    return {
        key: dg.ResourceDefinition.hardcoded_resource(resource)
        for key, resource in resources_from_settings(settings, env_vars=False).items()
    }


def _text(value: object | None) -> str:
    """A resource's optional text field: "" when unset."""
    return "" if value is None else str(value)

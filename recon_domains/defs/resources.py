"""Dagster resources: configuration from the environment (DESIGN.md §3), handing out core objects.

Required settings are `dg.EnvVar`s, resolved when a run starts (so the definitions load
without them, e.g. in `dagster definitions validate`); the password is only ever an EnvVar,
so it is never shown in the UI or stored in run config. Optional settings are read at load
time with the project's defaults (`dagster dev` loads `.env` first).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from recon_domains.assignment import DEFAULT_BENCHMARKS, DEFAULT_TOLERANCE
from recon_domains.config import DEFAULT_REVIEW_URL
from recon_domains.taxonomy import DEFAULT_STREAM_SOURCE, parse_skip_channels

if TYPE_CHECKING:
    from recon_domains.peertube.client import PeerTubeClient
    from recon_domains.peertube.database import PeerTubeDatabase
    from recon_domains.recon.store import ReconStore

# SPEC §4 benchmarks (runbook Step 4), in percent, and the halt tolerance in points: the
# core's numbers (recon_domains.assignment), overridable through RECON_BENCHMARK_*.
DEFAULT_BENCHMARK_ASSIGNED_PCT = DEFAULT_BENCHMARKS["assigned"]
DEFAULT_BENCHMARK_TIED_PCT = DEFAULT_BENCHMARKS["tied"]
DEFAULT_BENCHMARK_NEEDS_REPROCESS_PCT = DEFAULT_BENCHMARKS["needs_reprocess"]
DEFAULT_BENCHMARK_TOLERANCE_PP = DEFAULT_TOLERANCE


class ReconResource(dg.ConfigurableResource):
    """RECON: its SQLite database, concept folders, backups and the rollout's knobs."""

    db_path: str = Field(description="recon.db (RECON_DB_PATH)")
    concepts_dir: str = Field(description="concept folders root (RECON_CONCEPTS_DIR)")
    stream_source: str = Field(
        default=DEFAULT_STREAM_SOURCE, description="catalogue.source of PeerTube videos"
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
    skip_channels: str = Field(
        default="", description="comma-separated tiebreaker skip list (RECON_SKIP_CHANNELS)"
    )
    is_copy: bool = Field(
        default=False,
        description="RECON_IS_COPY=1 for a rehearsal copy: it has no workers, so stale "
        "mid-pipeline statuses are reported instead of failing no_active_workers",
    )
    review_url: str = Field(
        default=DEFAULT_REVIEW_URL,
        description="the tied-video review page (`recon-domains review`) as operators open it "
        "(RECON_REVIEW_URL)",
    )
    offsite_max_lag_hours: float = 6.0
    push_stage1_size: int = Field(default=100, description="runbook Step 5: stage-1 size")
    push_stage2_size: int = Field(default=1000, description="runbook Step 5: stage-2 size")
    benchmark_assigned_pct: float = DEFAULT_BENCHMARK_ASSIGNED_PCT
    benchmark_tied_pct: float = DEFAULT_BENCHMARK_TIED_PCT
    benchmark_needs_reprocess_pct: float = DEFAULT_BENCHMARK_NEEDS_REPROCESS_PCT
    benchmark_tolerance_pp: float = DEFAULT_BENCHMARK_TOLERANCE_PP

    @contextmanager
    def store(self) -> Iterator[ReconStore]:
        """An open ReconStore, closed afterwards."""
        from recon_domains.recon.store import ReconStore

        store = ReconStore.open(Path(self.db_path), self.stream_source)
        try:
            yield store
        finally:
            store.close()

    @property
    def concepts_root(self) -> Path:
        return Path(self.concepts_dir)

    @property
    def backup_root(self) -> Path:
        return Path(self.backup_dir) if self.backup_dir else Path(self.db_path).parent / "backups"

    @property
    def quarantine_root(self) -> Path:
        if self.quarantine_dir:
            return Path(self.quarantine_dir)
        concepts = Path(self.concepts_dir)
        return concepts.parent / f"{concepts.name}.quarantine"

    @property
    def skip_channel_set(self) -> frozenset[str]:
        return parse_skip_channels(self.skip_channels or None)

    @property
    def push_stage_sizes(self) -> tuple[int, int]:
        """(stage-1, stage-2) sizes; stage-3 is the rest."""
        return (self.push_stage1_size, self.push_stage2_size)

    def benchmarks(self) -> dict[str, float]:
        """Benchmark percentages keyed like the distribution table rows."""
        return {
            "assigned": self.benchmark_assigned_pct,
            "tied": self.benchmark_tied_pct,
            "needs_reprocess": self.benchmark_needs_reprocess_pct,
        }


class PeerTubeResource(dg.ConfigurableResource):
    """PeerTube's HTTP API (admin user)."""

    url: str = Field(description="base URL, e.g. http://192.168.1.170:9000 (PEERTUBE_URL)")
    host_header: str = Field(default="", description="Host header override (optional)")
    username: str = "root"
    password: str = Field(description="PEERTUBE_PASSWORD, always through EnvVar")
    token_cache: str = Field(default="", description="token cache file, mode 0600 (optional)")
    plugin_path: str = Field(
        default="",
        description="PEERTUBE_PLUGIN_PATH: plugin folder on PeerTube's host to install from; "
        "empty = verify an operator-installed plugin",
    )

    def client(self) -> PeerTubeClient:
        """A new PeerTubeClient (close it, or use it as a context manager)."""
        from recon_domains.peertube.client import PeerTubeClient

        return PeerTubeClient(
            self.url,
            self.username,
            self.password,
            host_header=self.host_header or None,
            token_cache=self.token_cache or None,
        )


class PeerTubeDbResource(dg.ConfigurableResource):
    """PeerTube's PostgreSQL: read-only verification queries and the pre-deploy dump."""

    dsn: str = Field(default="", description="PEERTUBE_DB_DSN")
    dump_command: str = Field(
        default="",
        description="PEERTUBE_DB_DUMP_COMMAND: prints `pg_dump -Fc` to stdout (SSH hop)",
    )

    def database(self) -> PeerTubeDatabase:
        from recon_domains.peertube.database import PeerTubeDatabase

        return PeerTubeDatabase(self.dsn)

    def database_if_configured(self) -> PeerTubeDatabase | None:
        """The database when PEERTUBE_DB_DSN is set, else None (callers fall back to the API)."""
        return self.database() if self.dsn else None


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    text = (env.get(name) or "").strip()
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise ValueError(
            f"{name}={text!r} is not a number; unset it or give e.g. {default}"
        ) from None


def resources_from_env(env: Mapping[str, str] | None = None) -> dict[str, dg.ConfigurableResource]:
    """The resources of the Definitions: required values as EnvVar, optional ones now."""
    env = os.environ if env is None else env

    def opt(name: str, default: str = "") -> str:
        return (env.get(name) or "").strip() or default

    return {
        "recon": ReconResource(
            db_path=dg.EnvVar("RECON_DB_PATH"),
            concepts_dir=dg.EnvVar("RECON_CONCEPTS_DIR"),
            stream_source=opt("RECON_STREAM_SOURCE", DEFAULT_STREAM_SOURCE),
            backup_dir=opt("RECON_BACKUP_DIR"),
            offsite_concepts_dir=opt("RECON_OFFSITE_CONCEPTS_DIR"),
            quarantine_dir=opt("RECON_QUARANTINE_DIR"),
            skip_channels=opt("RECON_SKIP_CHANNELS"),
            is_copy=_flag(env.get("RECON_IS_COPY")),
            review_url=opt("RECON_REVIEW_URL", DEFAULT_REVIEW_URL),
            offsite_max_lag_hours=_float(env, "RECON_OFFSITE_MAX_LAG_HOURS", 6.0),
            push_stage1_size=int(_float(env, "RECON_PUSH_STAGE1_SIZE", 100)),
            push_stage2_size=int(_float(env, "RECON_PUSH_STAGE2_SIZE", 1000)),
            benchmark_assigned_pct=_float(
                env, "RECON_BENCHMARK_ASSIGNED_PCT", DEFAULT_BENCHMARK_ASSIGNED_PCT
            ),
            benchmark_tied_pct=_float(env, "RECON_BENCHMARK_TIED_PCT", DEFAULT_BENCHMARK_TIED_PCT),
            benchmark_needs_reprocess_pct=_float(
                env, "RECON_BENCHMARK_NEEDS_REPROCESS_PCT", DEFAULT_BENCHMARK_NEEDS_REPROCESS_PCT
            ),
            benchmark_tolerance_pp=_float(
                env, "RECON_BENCHMARK_TOLERANCE_PP", DEFAULT_BENCHMARK_TOLERANCE_PP
            ),
        ),
        "peertube": PeerTubeResource(
            url=dg.EnvVar("PEERTUBE_URL"),
            host_header=opt("PEERTUBE_HOST_HEADER"),
            username=opt("PEERTUBE_USERNAME", "root"),
            password=dg.EnvVar("PEERTUBE_PASSWORD"),
            token_cache=opt("PEERTUBE_TOKEN_CACHE"),
            plugin_path=opt("PEERTUBE_PLUGIN_PATH"),
        ),
        # The DSN may carry a password and the dump command a host: EnvVar keeps both out of
        # the UI and run config.
        "peertube_db": PeerTubeDbResource(
            dsn=dg.EnvVar("PEERTUBE_DB_DSN"),
            dump_command=dg.EnvVar("PEERTUBE_DB_DUMP_COMMAND")
            if opt("PEERTUBE_DB_DUMP_COMMAND")
            else "",
        ),
    }

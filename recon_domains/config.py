"""Configuration from the environment (DESIGN.md §3), for the CLI and the plain core.

The Dagster layer reads the same variables through its resources (`dg.EnvVar`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from recon_domains.taxonomy import DEFAULT_STREAM_SOURCE, parse_skip_channels

# Where operators open the tied-video review page: `recon-domains review`'s default bind.
# RECON_REVIEW_URL overrides it when the page is reached another way (tunnel, proxy).
DEFAULT_REVIEW_URL = "http://127.0.0.1:8765/"


class ConfigError(RuntimeError):
    """A missing or invalid setting; the message names the variable and what to set."""


@dataclass(frozen=True)
class Settings:
    recon_db_path: Path | None
    recon_concepts_dir: Path | None
    stream_source: str
    backup_dir: Path | None
    offsite_concepts_dir: Path | None
    skip_channels: frozenset[str]
    peertube_url: str | None
    peertube_host_header: str | None
    peertube_username: str
    peertube_db_dsn: str | None
    review_url: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def path(name: str) -> Path | None:
            value = env.get(name, "").strip()
            return Path(value).expanduser() if value else None

        def text(name: str, default: str | None = None) -> str | None:
            value = env.get(name, "").strip()
            return value or default

        return cls(
            recon_db_path=path("RECON_DB_PATH"),
            recon_concepts_dir=path("RECON_CONCEPTS_DIR"),
            stream_source=text("RECON_STREAM_SOURCE", DEFAULT_STREAM_SOURCE) or "",
            backup_dir=path("RECON_BACKUP_DIR"),
            offsite_concepts_dir=path("RECON_OFFSITE_CONCEPTS_DIR"),
            skip_channels=parse_skip_channels(env.get("RECON_SKIP_CHANNELS")),
            peertube_url=text("PEERTUBE_URL"),
            peertube_host_header=text("PEERTUBE_HOST_HEADER"),
            peertube_username=text("PEERTUBE_USERNAME", "root") or "root",
            peertube_db_dsn=text("PEERTUBE_DB_DSN"),
            review_url=text("RECON_REVIEW_URL", DEFAULT_REVIEW_URL) or DEFAULT_REVIEW_URL,
        )

    def require(self, attribute: str, variable: str) -> object:
        """The setting's value, or a ConfigError naming the variable to set."""
        value = getattr(self, attribute)
        if value in (None, ""):
            raise ConfigError(f"{variable} is not set. Set it in the environment or in .env.")
        return value

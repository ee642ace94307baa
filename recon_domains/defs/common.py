"""Shared bits of the Dagster layer: blast-radius tags, the writers' pool, metadata helpers."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import dagster as dg

from recon_domains.taxonomy import Status

# Partitioned asset checks (stage_verified, requeued) are a 1.13 preview feature, used
# deliberately (DESIGN.md §4); the warning would repeat on every code-location load.
warnings.filterwarnings(
    "ignore",
    message="Specifying a partitions_def on an AssetCheckSpec",
    category=dg.PreviewWarning,
)

# Every writing asset takes a slot of this pool; dagster.yaml gives pools a limit of 1 (op
# granularity), so two runs never write at once (also for CLI-launched runs).
WRITES_POOL = "recon_writes"

TIER_TAG = "blast_radius"
READ_ONLY = "read-only"
RECON_DB_REVERSIBLE = "recon-db-reversible"
EXTERNAL_WRITE = "external-write"
DESTRUCTIVE = "destructive"
TIERS = (READ_ONLY, RECON_DB_REVERSIBLE, EXTERNAL_WRITE, DESTRUCTIVE)


def tier(value: str) -> dict[str, str]:
    """Asset tags carrying the blast-radius tier (runbook deploy-blast-radius)."""
    assert value in TIERS, value
    return {TIER_TAG: value}


@contextmanager
def operator_errors(step: str) -> Iterator[None]:
    """Turn the core's operator-readable errors into a clean dg.Failure (no traceback noise).

    The core raises RuntimeError/ValueError subclasses whose message says what to do; any
    exception defined in the recon_domains package counts as one.
    """
    try:
        yield
    except dg.Failure:
        raise
    except Exception as exc:
        if type(exc).__module__.startswith("recon_domains"):
            raise dg.Failure(description=f"{step} failed: {exc}", allow_retries=False) from exc
        raise


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table (for MetadataValue.md)."""

    def cell(v: Any) -> str:
        return str("" if v is None else v).replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def counts_table(counts: Mapping[str, int], key: str = "status") -> str:
    rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return md_table([key, "count"], rows)


def review_metadata(status_counts: Mapping[str, int], review_url: str) -> dict[str, Any]:
    """How many tied videos await a human and where to review them (the review page)."""
    awaiting = status_counts.get(Status.TIED_MANUAL, 0)
    return {
        "awaiting_review": awaiting,
        "review_url": dg.MetadataValue.url(review_url),
        "review_next_step": (
            f"{awaiting} tied video(s) await review: run `recon-domains review` and open "
            f"{review_url} to assign them."
            if awaiting
            else "No tied videos await review."
        ),
    }


def link(url: str | None, text: str | None = None) -> str:
    """A Markdown link when the url looks like one, else the text."""
    if url and url.startswith(("http://", "https://")):
        return f"[{text or url}]({url})"
    return text or (url or "")


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def fmt_top(counts: Sequence[tuple[str, int]]) -> str:
    return ", ".join(f"{d} {n}" for d, n in counts)

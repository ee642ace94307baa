"""Shared bits of the Dagster layer: the runbook table turned into asset and check
decorators, blast-radius tags, the writers' pool, and the core's verdicts and tables turned
into Dagster metadata."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg

from recon_domains.runbook import TIERS, step
from recon_domains.taxonomy import Status
from recon_domains.verdicts import Cell, Table, Verdict

# Every writing asset takes a slot of this pool; dagster.yaml gives pools a limit of 1 (op
# granularity), so two runs never write at once (also for CLI-launched runs).
WRITES_POOL = "recon_writes"
TIER_TAG = "blast_radius"


def tier(value: str) -> dict[str, str]:
    """Asset tags carrying the blast-radius tier (runbook deploy-blast-radius)."""
    assert value in TIERS, value
    return {TIER_TAG: value}


@functools.cache
def partitions_def(name: str) -> dg.StaticPartitionsDefinition | None:
    """The partitions of a runbook step (None when it has none)."""
    keys = step(name).partition_keys
    return dg.StaticPartitionsDefinition(list(keys)) if keys else None


def step_asset(name: str, **kwargs: Any) -> Callable[..., dg.AssetsDefinition]:
    """`@dg.asset` for the runbook step `name`: its key, group, deps, partitions and tier
    tag from the runbook table; a writing step takes the writers' pool."""
    s = step(name)
    return dg.asset(
        name=name,
        group_name=s.group,
        deps=list(s.deps),
        partitions_def=partitions_def(name),
        tags=tier(s.tier),
        pool=WRITES_POOL if s.writes else None,
        **kwargs,
    )


def step_check(name: str, *, description: str) -> Callable[..., dg.AssetChecksDefinition]:
    """`@dg.asset_check` for the gate of runbook step `name` (blocking, its partitions)."""
    s = step(name)
    assert s.check is not None, f"{name} has no gate"
    return dg.asset_check(
        asset=dg.AssetKey(name),
        name=s.check,
        partitions_def=partitions_def(name),
        blocking=True,
        description=description,
    )


@contextmanager
def operator_errors(step_name: str) -> Iterator[None]:
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
            # `from None`: the message says it all; the core error's own stack would only
            # double what Dagster prints around a failure.
            raise dg.Failure(
                description=f"{step_name} failed: {exc}", allow_retries=False
            ) from None
        raise


# -- core values -> Dagster metadata ----------------------------------------------------------
def _column_type(values: Sequence[Cell]) -> str:
    kinds = {type(v) for v in values if v is not None}
    if kinds == {bool}:
        return "bool"
    if kinds and kinds <= {int}:
        return "int"
    if kinds and kinds <= {int, float}:
        return "float"
    return "string"


def table(t: Table) -> dg.TableMetadataValue:
    """A native Dagster table: one record per row, a schema typed from the cells."""
    columns = [
        dg.TableColumn(name, _column_type([row[i] for row in t.rows]))
        for i, name in enumerate(t.columns)
    ]
    return dg.MetadataValue.table(
        records=[dg.TableRecord(r) for r in t.records()], schema=dg.TableSchema(columns=columns)
    )


def metadata(values: Mapping[str, Any]) -> dict[str, Any]:
    """The core's metadata as Dagster's: Tables as tables, paths as paths, lists and dicts as
    JSON; numbers, text and Dagster values as they are."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Table):
            out[key] = table(value)
        elif isinstance(value, Path):
            out[key] = dg.MetadataValue.path(str(value))
        elif isinstance(value, list | tuple | dict):
            out[key] = dg.MetadataValue.json(value)
        else:
            out[key] = value
    return out


def check_result(verdict: Verdict) -> dg.AssetCheckResult:
    """A gate's core verdict as the check's result."""
    return dg.AssetCheckResult(
        passed=verdict.passed,
        description=verdict.description,
        metadata=metadata(verdict.metadata),
    )


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

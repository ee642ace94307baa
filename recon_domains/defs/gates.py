"""The one place that reads gate state (asset check evaluations) back from the Dagster instance.

Why this exists (DESIGN.md §4): a blocking asset check only blocks *within one run*. A later
run that selects only a downstream asset is not stopped by Dagster. So every asset that
writes starts with `require_gates(context, <its own name>)`, which looks up in the runbook
table (recon_domains.runbook) the gates it needs, reads the latest evaluation of each from
`context.instance` and refuses (`dg.Failure`) when a gate failed, never ran, or was evaluated
against an older materialization than the current one — or, first of all, when the instance
is a throwaway one that cannot hold the gates' history (DAGSTER_HOME unset).

Storage independence: everything here goes through `DagsterInstance` methods that every
event-log storage implements (SQLite, PostgreSQL, ...). Freshness is decided by comparing
event-log storage ids (same index table for materializations and check evaluations in every
SQL storage), falling back to event timestamps (floats written by the run, not by the
database) only when an evaluation carries no target materialization. The single non-public
call (`event_log_storage.get_asset_check_execution_history`) is wrapped in
`_check_executions` so an API move touches one function.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from recon_domains.defs.common import partitions_def
from recon_domains.runbook import Gate, required_gates, required_partitions, step

# How many recent executions to scan for the latest *completed* one (planned rows of runs
# that were skipped or crashed sit above it).
_HISTORY_SCAN = 50
# The folder Dagster's CLI (and `dagster dev`) makes for a throwaway instance when
# DAGSTER_HOME is unset (dagster._cli.utils.TMP_DAGSTER_HOME_PREFIX); it is deleted on exit.
_THROWAWAY_HOME_PREFIX = ".tmp_dagster_home_"
_DAGSTER_HOME_HINT = (
    "set DAGSTER_HOME to the instance the migration ran against, e.g. "
    "/opt/recon_domains/dagster_home; without it Dagster uses a throwaway instance and every "
    "gate looks never-run"
)


def _check_key(gate: Gate) -> dg.AssetCheckKey:
    return dg.AssetCheckKey(dg.AssetKey(gate.asset), gate.check)


@dataclass(frozen=True)
class GateState:
    """What the instance says about one gate right now."""

    gate: Gate
    ok: bool
    reason: str  # operator-readable: why it is (not) open


def _check_executions(instance: dg.DagsterInstance, gate: Gate) -> Sequence[Any]:
    """Recent executions of one check (newest first), for one partition or unpartitioned.

    The only non-public Dagster call of the project (1.13: EventLogStorage method, implemented
    by the SQL base class shared by the SQLite and PostgreSQL storages).
    """
    from dagster._core.event_api import PartitionKeyFilter

    return instance.event_log_storage.get_asset_check_execution_history(
        _check_key(gate),
        limit=_HISTORY_SCAN,
        partition_filter=PartitionKeyFilter(key=gate.partition),
    )


def latest_materialization(
    instance: dg.DagsterInstance, asset: str, partition: str | None = None
) -> dg.EventLogRecord | None:
    """The newest materialization record of an asset (of one partition when given)."""
    records_filter = dg.AssetRecordsFilter(
        asset_key=dg.AssetKey(asset),
        asset_partitions=[partition] if partition is not None else None,
    )
    result = instance.fetch_materializations(records_filter, limit=1)
    return result.records[0] if result.records else None


def materialization_metadata(
    instance: dg.DagsterInstance, asset: str, partition: str | None = None
) -> dict[str, Any]:
    """The metadata of an asset's newest materialization as plain values ({} when none).

    Checks use this to find what the asset produced (a backup path, the dry-run counts);
    JSON entries come back decoded (dicts and lists).
    """
    record = latest_materialization(instance, asset, partition)
    mat = record.asset_materialization if record is not None else None
    if mat is None:
        return {}
    return {name: getattr(value, "value", value) for name, value in mat.metadata.items()}


def gate_state(instance: dg.DagsterInstance, gate: Gate) -> GateState:
    """Read one gate: open only when its newest completed evaluation passed against the
    upstream asset's current materialization (of the gate's partition)."""
    from dagster._core.storage.asset_check_execution_record import (
        AssetCheckExecutionRecordStatus as Status,
    )

    mat = latest_materialization(instance, gate.asset, gate.partition)
    target = f"{gate.asset}" + (f" partition {gate.partition}" if gate.partition else "")
    if mat is None:
        return GateState(gate, False, f"{target} has never been materialized")

    completed = [
        r
        for r in _check_executions(instance, gate)
        if r.status in (Status.SUCCEEDED, Status.FAILED)
    ]
    if not completed:
        return GateState(gate, False, f"check {gate.check} has never been evaluated for {target}")
    rec = completed[0]
    evaluation = rec.evaluation
    evaluated_at = rec.event.timestamp if rec.event is not None else rec.create_timestamp
    target_data = evaluation.target_materialization_data if evaluation is not None else None
    if target_data is not None:
        current = target_data.storage_id == mat.storage_id
    else:
        # No recorded target: the evaluation counts only if it came after the materialization.
        current = evaluated_at >= mat.timestamp
    if not current:
        return GateState(
            gate,
            False,
            f"check {gate.check} was last evaluated (run {rec.run_id[:8]}) against an older "
            f"materialization of {target}; the current one (run {mat.run_id[:8]}) is unchecked",
        )

    if rec.status == Status.FAILED:
        detail = (evaluation.description or "") if evaluation is not None else ""
        return GateState(
            gate,
            False,
            f"check {gate.check} FAILED on the current materialization of {target} "
            f"(run {rec.run_id[:8]})" + (f": {detail}" if detail else ""),
        )
    return GateState(gate, True, f"check {gate.check} passed on {target}")


def require_persistent_instance(instance: dg.DagsterInstance, what: str) -> None:
    """Refuse at once when the instance cannot hold gate history: an ephemeral one, or the
    throwaway one Dagster makes when DAGSTER_HOME is unset (every gate would look never-run,
    sending the operator to re-run steps that passed)."""
    throwaway = os.path.basename(instance.root_directory).startswith(_THROWAWAY_HOME_PREFIX)
    if not (instance.is_ephemeral or throwaway):
        return
    home = os.environ.get("DAGSTER_HOME")
    found = f"DAGSTER_HOME is {home!r} but" if home else "DAGSTER_HOME is not set, so"
    raise dg.Failure(
        description=f"Refusing {what}: {found} this run has a throwaway Dagster instance "
        f"without the migration's gate history.\n  What to do: {_DAGSTER_HOME_HINT}.",
        allow_retries=False,
    )


def require_open(
    context: dg.AssetExecutionContext | dg.OpExecutionContext,
    gates: Iterable[Gate],
    *,
    step: str,
) -> list[GateState]:
    """Refuse (raise dg.Failure) unless every gate is open; return their states otherwise.

    `step` names what is being refused (e.g. "pass1_assignments (Step 4: pass 1)").
    """
    instance = context.instance
    states = [gate_state(instance, g) for g in gates]
    closed = [s for s in states if not s.ok]
    # A refusal says every closed gate itself: the operator's message first, and once.
    for s in states:
        context.log.log(
            logging.DEBUG if closed else logging.INFO,
            f"gate {s.gate.label}: {'open' if s.ok else 'CLOSED'} ({s.reason})",
        )
    if closed:
        lines = [f"Refusing {step}: {len(closed)} upstream gate(s) not passed."]
        for s in closed:
            lines.append(f"- gate {s.gate.label}: {s.reason}.")
            if s.gate.remedy:
                lines.append(f"  What to do: {s.gate.remedy}")
        raise dg.Failure(
            description="\n".join(lines),
            metadata={"closed_gates": ", ".join(s.gate.label for s in closed)},
            allow_retries=False,
        )
    return states


def require_gates(
    context: dg.AssetExecutionContext | dg.OpExecutionContext, name: str
) -> list[GateState]:
    """The guard of runbook step `name` (of the run's partition): refuse unless the
    instance keeps gate history, every partition it needs is materialized, and every gate
    the runbook table says it needs is open.

    Called first thing by every writing asset, so the refusal also happens in a separate,
    later run that skipped the checks.
    """
    partition = context.partition_key if context.has_partition_key else None
    what = step(name).refusal_name(partition)
    require_persistent_instance(context.instance, what)
    for needed in required_partitions(name, partition):
        _require_materialized(context.instance, needed, what)
    return require_open(context, required_gates(name, partition), step=what)


def _require_materialized(instance: dg.DagsterInstance, gate: Gate, what: str) -> None:
    """Refuse unless the gate's partition of its asset is MATERIALIZED (public instance API)."""
    from dagster._core.storage.partition_status_cache import AssetPartitionStatus

    assert gate.partition is not None
    statuses: Mapping[str, Any] = (
        instance.get_status_by_partition(
            dg.AssetKey(gate.asset), [gate.partition], partitions_def(gate.asset)
        )
        or {}
    )
    status = statuses.get(gate.partition)
    if status != AssetPartitionStatus.MATERIALIZED:
        found = status.value.lower() if status is not None else "never materialized"
        raise dg.Failure(
            description=(
                f"Refusing {what}: {gate.asset} partition {gate.partition} must be materialized "
                f"and verified first (found: {found}).\n  What to do: {gate.remedy}"
            ),
            allow_retries=False,
        )

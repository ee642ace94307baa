"""The runbook's "Rollback Procedures" as jobs, thin over recon_domains.rollback.

Every job is a dry run unless its config says `confirm: true`; the dry run logs and records
what it would do (counts, a sample) and changes nothing. Every call, dry or not, appends to
the audit trail `$RECON_BACKUP_DIR/recon_domains-audit.jsonl` (a file, because the schema
rollback drops our tables). Launch from the UI's Launchpad or from cron, e.g.:

    dg launch --job rollback_peertube_categories -m recon_domains.definitions \
        -c rollback.yaml      # ops: {rollback_peertube_categories_step: {config: {confirm: true}}}

Each dry run ends by saying exactly how to confirm it: the same job and config with
`confirm: true`, as a `dg launch` command and as the Launchpad's run config (its last log
line and its `confirm_command` / `confirm_run_config` metadata).
"""

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import dagster as dg

from recon_domains.defs.common import WRITES_POOL, operator_errors, table, tier
from recon_domains.defs.resources import PeerTubeDbResource, PeerTubeResource, ReconResource
from recon_domains.defs.rollback.config import (
    RemoveFeatureConfig,
    RestoreConceptsConfig,
    RollbackAssignmentsConfig,
    RollbackCategoriesConfig,
    RollbackPluginConfig,
    RollbackSchemaConfig,
)
from recon_domains.runbook import DESTRUCTIVE, EXTERNAL_WRITE, RECON_DB_REVERSIBLE
from recon_domains.taxonomy import CATEGORY_ID_RANGE
from recon_domains.verdicts import Table

# Videos changed in PeerTube since our push, named in the log and shown in the metadata
# (all of them are in the op's output and the audit trail).
DRIFTED_LOGGED, DRIFTED_SHOWN = 50, 500


def _audit(recon: ReconResource):
    from recon_domains.rollback import audit_log_for

    return audit_log_for(recon.backup_root)


def _sample_table(sample: list[dict[str, Any]]) -> Table:
    headers = sorted({k for row in sample for k in row})
    return Table.of(headers, [[row.get(h) for h in headers] for row in sample])


def confirm_run_config(op_name: str, config: dg.Config) -> dict[str, Any]:
    """The run config that confirms a dry run given `config`: the same values (those not
    at their default), and `confirm: true`."""
    values = {**config.model_dump(exclude_defaults=True), "confirm": True}
    return {"ops": {op_name: {"config": values}}}


def dg_program() -> str:
    """The `dg` beside the running Python (this installation's), else `dg` on PATH."""
    beside = Path(sys.executable).with_name("dg")
    return str(beside) if beside.exists() else "dg"


def confirm_command(job_name: str, run_config: dict[str, Any]) -> str:
    """The shell command that launches `job_name` with `run_config` (from the folder whose
    `.env` the dry run's settings came from)."""
    return (
        f"{dg_program()} launch --job {job_name} -m recon_domains.definitions "
        f"--config-json {shlex.quote(json.dumps(run_config, separators=(', ', ': ')))}"
    )


def report_output(
    context: dg.OpExecutionContext, report, audit=None, config: dg.Config | None = None
) -> dg.Output[dict]:
    """Log a RollbackReport and return it as the op's output, with metadata the UI shows;
    a confirmed run with problems fails (after recording what it did). A dry run (given its
    `config`) ends with the command that would confirm it, in the log and the metadata."""
    context.log.info(report.summary())
    for s in report.steps:
        context.log.info(s)
    for p in report.problems:
        context.log.warning(p)
    for d in report.drifted[:DRIFTED_LOGGED]:
        context.log.warning(
            f"changed in PeerTube since our push: video {d['video_id']} now {d['now']} (we "
            f"pushed {d['we_pushed']}, originally {d['original']}): {d['action']}"
        )
    metadata = {
        "dry_run": report.dry_run,
        "acted": report.acted,
        "counts": dg.MetadataValue.json(report.counts),
        "sample": table(_sample_table(report.sample)),
        "drifted_videos": table(_sample_table(report.drifted[:DRIFTED_SHOWN])),
        "steps": dg.MetadataValue.md("\n".join(f"- {s}" for s in report.steps) or "(none)"),
        "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in report.problems) or "none"),
    }
    if audit is not None and audit.path is not None:
        metadata["audit_file"] = dg.MetadataValue.path(str(audit.path))
    if report.problems and not report.dry_run:
        raise dg.Failure(
            description=f"{report.action}: " + "; ".join(report.problems),
            metadata=metadata,
            allow_retries=False,
        )
    if report.dry_run and config is not None:
        run_config = confirm_run_config(context.op_def.name, config)
        command = confirm_command(context.job_name, run_config)
        metadata["confirm_command"] = dg.MetadataValue.text(command)
        metadata["confirm_run_config"] = dg.MetadataValue.json(run_config)
        context.log.info(
            f"dry run: nothing changed. To do it, run {command} (or launch {context.job_name} "
            f"from the Launchpad with {json.dumps(run_config)})"
        )
    # The audit entries can hold every cleared row (kept in the audit file): not the output.
    value = {k: v for k, v in report.as_dict().items() if k not in ("audit", "parts")}
    value["parts"] = [p.action for p in report.parts]
    return dg.Output(value, metadata=metadata)


# --- ops -------------------------------------------------------------------------------------


@dg.op(tags=tier(EXTERNAL_WRITE), pool=WRITES_POOL)
def rollback_plugin_step(
    context: dg.OpExecutionContext,
    config: RollbackPluginConfig,
    recon: ReconResource,
    peertube: PeerTubeResource,
) -> dg.Output[dict]:
    """Runbook "Plugin install fails": uninstall the plugin (or state the manual steps) and
    verify PeerTube's categories show only 1–18 (plus other plugins')."""
    from recon_domains.rollback import rollback_plugin

    audit = _audit(recon)
    with operator_errors("rollback_plugin"), peertube.client() as client:
        report = rollback_plugin(
            client, manual=config.manual, dry_run=not config.confirm, audit=audit
        )
    return report_output(context, report, audit, config)


@dg.op(tags=tier(RECON_DB_REVERSIBLE), pool=WRITES_POOL)
def rollback_schema_step(
    context: dg.OpExecutionContext,
    config: RollbackSchemaConfig,
    recon: ReconResource,
    peertube: PeerTubeResource,
    peertube_db: PeerTubeDbResource,
) -> dg.Output[dict]:
    """Runbook "Schema migration revert": drop the four columns, the index and our tables
    (SQLite >= 3.35); refuses while PeerTube still carries pushed categories unless force."""
    from recon_domains.rollback import RollbackRefused, rollback_schema

    audit = _audit(recon)
    with (
        operator_errors("rollback_schema"),
        recon.store(migrated=False) as store,
        peertube.client() as client,
    ):
        try:
            report = rollback_schema(
                store,
                peertube_db.categories(client),
                config.force,
                dry_run=not config.confirm,
                audit=audit,
            )
        except RollbackRefused as exc:
            raise dg.Failure(description=f"rollback_schema refused: {exc}") from exc
    return report_output(context, report, audit, config)


@dg.op(tags=tier(RECON_DB_REVERSIBLE), pool=WRITES_POOL)
def rollback_assignments_step(
    context: dg.OpExecutionContext, config: RollbackAssignmentsConfig, recon: ReconResource
) -> dg.Output[dict]:
    """Runbook "Clear wrong backfill assignments": mode all or tiebreaker_only."""
    from recon_domains.rollback import rollback_assignments

    audit = _audit(recon)
    with operator_errors("rollback_assignments"), recon.store(migrated=False) as store:
        report = rollback_assignments(store, config.mode, dry_run=not config.confirm, audit=audit)
    return report_output(context, report, audit, config)


@dg.op(tags=tier(EXTERNAL_WRITE), pool=WRITES_POOL)
def rollback_peertube_categories_step(
    context: dg.OpExecutionContext,
    config: RollbackCategoriesConfig,
    recon: ReconResource,
    peertube: PeerTubeResource,
    peertube_db: PeerTubeDbResource,
) -> dg.Output[dict]:
    """Runbook "Clear wrong PeerTube categories", done exactly: every pushed video back to
    the category it had before our first push (NULL only where nothing was recorded), then
    the push timestamps cleared so a later push can retry; a video a human changed in
    PeerTube since is left as they set it unless `drifted: restore`."""
    from recon_domains.rollback import rollback_peertube_categories

    audit = _audit(recon)
    with (
        operator_errors("rollback_peertube_categories"),
        recon.store(migrated=False) as store,
        peertube.client() as client,
    ):
        report = rollback_peertube_categories(
            store,
            peertube_db.categories(client),
            client,
            peertube_db.database_if_configured(),
            via=config.via,
            drifted=config.drifted,
            force=config.force,
            concurrency=peertube.push_max_in_flight,
            dry_run=not config.confirm,
            audit=audit,
        )
    return report_output(context, report, audit, config)


@dg.op(tags=tier(DESTRUCTIVE), pool=WRITES_POOL)
def restore_concepts_step(
    context: dg.OpExecutionContext, config: RestoreConceptsConfig, recon: ReconResource
) -> dg.Output[dict]:
    """Runbook "Restore concepts after failed --reprocess-missing": quarantined folders back
    (or copied from the off-site mirror); an existing folder is never overwritten without
    force."""
    from recon_domains.rollback import restore_concepts

    audit = _audit(recon)
    with operator_errors("restore_concepts"), recon.store(migrated=False) as store:
        report = restore_concepts(
            store,
            recon.concepts_root,
            recon.quarantine_root,
            recon.offsite_concepts_dir or None,
            list(config.hashes) or None,
            config.force,
            restore_documents=config.restore_documents,
            dry_run=not config.confirm,
            audit=audit,
        )
    return report_output(context, report, audit, config)


@dg.op(tags=tier(DESTRUCTIVE), pool=WRITES_POOL)
def remove_feature_step(
    context: dg.OpExecutionContext,
    config: RemoveFeatureConfig,
    recon: ReconResource,
    peertube: PeerTubeResource,
    peertube_db: PeerTubeDbResource,
) -> dg.Output[dict]:
    """Runbook "Fully remove feature", in a safe order: PeerTube categories restored →
    plugin uninstalled → quarantined concepts restored → assignments cleared → schema
    reverted. Stops at the first step that needs an operator; re-run after fixing it."""
    from recon_domains.rollback import remove_feature

    audit = _audit(recon)
    with (
        operator_errors("remove_feature"),
        recon.store(migrated=False) as store,
        peertube.client() as client,
    ):
        report = remove_feature(
            store,
            client,
            recon.concepts_root,
            recon.quarantine_root,
            recon.offsite_concepts_dir or None,
            peertube_db.database_if_configured(),
            categories=peertube_db.categories(client),
            manual_plugin=config.manual_plugin,
            restore_concept_folders=config.restore_concepts,
            via=config.via,
            drifted=config.drifted,
            force=config.force,
            concurrency=peertube.push_max_in_flight,
            dry_run=not config.confirm,
            audit=audit,
        )
    return report_output(context, report, audit, config)


# --- jobs ------------------------------------------------------------------------------------


def _job(name: str, op_def: dg.OpDefinition, tier_value: str, description: str) -> dg.JobDefinition:
    @dg.job(
        name=name,
        description=description + " Dry run unless `confirm: true`; a dry run ends with "
        "the command (and the run config) that would confirm it.",
        tags={**tier(tier_value), "runbook": "Rollback Procedures"},
    )
    def _the_job() -> None:
        op_def()

    return _the_job


# One line per rollback: (job name, op, tier, description).
jobs = [
    _job(
        "rollback_plugin",
        rollback_plugin_step,
        EXTERNAL_WRITE,
        "Uninstall peertube-plugin-recon-domains through the admin API (or, manual: true, "
        f"state the manual steps) and verify categories {CATEGORY_ID_RANGE} are gone.",
    ),
    _job(
        "rollback_schema",
        rollback_schema_step,
        RECON_DB_REVERSIBLE,
        "Drop the domain columns, the index and our tables from recon.db (SQLite >= 3.35); "
        "refuses while PeerTube still carries pushed categories unless force: true.",
    ),
    _job(
        "rollback_assignments",
        rollback_assignments_step,
        RECON_DB_REVERSIBLE,
        "Clear assignments: mode all (every domain column) or tiebreaker_only (back to "
        "tied_pass_1).",
    ),
    _job(
        "rollback_peertube_categories",
        rollback_peertube_categories_step,
        EXTERNAL_WRITE,
        "Restore every pushed video's PeerTube category from the push ledger and clear the "
        "push timestamps; videos changed in PeerTube since our push are left as set there "
        "(drifted: leave) or restored too (drifted: restore), and listed either way.",
    ),
    _job(
        "restore_concepts",
        restore_concepts_step,
        DESTRUCTIVE,
        "Move quarantined concept folders back (or copy them from the off-site mirror).",
    ),
    _job(
        "remove_feature",
        remove_feature_step,
        DESTRUCTIVE,
        "Fully remove the feature in a safe order (categories, plugin, concepts, "
        "assignments, schema).",
    ),
]

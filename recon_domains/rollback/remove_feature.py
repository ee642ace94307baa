"""Runbook "Fully remove feature": every rollback, in the one safe order."""

from __future__ import annotations

import os
from typing import Any, Literal

from recon_domains.peertube.categories import PeerTubeCategories
from recon_domains.recon.store import ReconStore
from recon_domains.rollback.assignments import rollback_assignments
from recon_domains.rollback.audit import AuditLog, RollbackRefused, RollbackReport, recorded
from recon_domains.rollback.categories import Drifted, rollback_peertube_categories
from recon_domains.rollback.concepts import restore_concepts
from recon_domains.rollback.plugin import rollback_plugin
from recon_domains.rollback.schema import rollback_schema
from recon_domains.settings import DEFAULTS
from recon_domains.taxonomy import PLUGIN_NPM_NAME


def remove_feature(
    store: ReconStore,
    client: Any,
    concepts_root: str | os.PathLike[str],
    quarantine_root: str | os.PathLike[str],
    offsite_dir: str | os.PathLike[str] | None = None,
    pt_db: Any = None,
    *,
    categories: PeerTubeCategories,
    npm_name: str = PLUGIN_NPM_NAME,
    manual_plugin: bool = False,
    restore_concept_folders: bool = True,
    via: Literal["auto", "api", "db"] = "auto",
    drifted: Drifted = "leave",
    force: bool = False,
    concurrency: int = DEFAULTS.peertube.push_max_in_flight,
    dry_run: bool = True,
    audit: AuditLog | None = None,
) -> RollbackReport:
    """The runbook's "Fully remove feature", in a safe order, stopping at the first step that
    needs an operator (re-run after fixing it: finished steps report nothing to do):

    1. restore PeerTube's categories from the push ledger — first, while the ledger exists
       and while the plugin still registers 100–117 (a recorded original may itself be one);
       videos changed in PeerTube since our push are left as set there (`drifted="leave"`,
       the default) or restored too (`"restore"`, or `force`), and listed either way;
    2. uninstall the plugin — after 1, so no video is left on an orphaned category id;
    3. restore quarantined concept folders (and the rows of documents RECON has not
       re-processed yet) — before 4 and 5, which drop the audit rows and the status it puts
       back; documents RECON already re-processed keep their fresh folders (never
       overwritten), so this undoes exactly the part of the reprocess still undoable;
    4. clear every assignment — so a failing step 5 (old SQLite) still leaves no domain data;
    5. revert the schema — last: its refusal check proves step 1 finished.

    Reverting RECON's code and restarting RECON (runbook items 3–4) are outside this job.
    Categories are read through `categories` (PeerTube's database or API); step 1 writes
    through `client` or `pt_db` (`via`), keeping `concurrency` API requests in flight.
    """
    report = RollbackReport("remove_feature", dry_run)

    def step(part: RollbackReport) -> bool:
        report.parts.append(part)
        for k, v in part.counts.items():
            report.counts[f"{part.action}.{k}"] = v
        report.steps.extend(f"[{part.action}] {s}" for s in part.steps)
        report.drifted.extend(part.drifted)
        report.acted = report.acted or part.acted
        if part.problems:
            report.problems.extend(f"[{part.action}] {p}" for p in part.problems)
            return dry_run  # a dry run shows every step; a real run stops here
        return True

    try:
        go = step(
            rollback_peertube_categories(
                store,
                categories,
                client,
                pt_db,
                via=via,
                drifted=drifted,
                force=force,
                concurrency=concurrency,
                dry_run=dry_run,
                audit=audit,
            )
        )
        if go and client is not None:
            go = step(
                rollback_plugin(client, npm_name, manual_plugin, dry_run=dry_run, audit=audit)
            )
        elif go:
            report.steps.append("[rollback_plugin] no API client given: plugin left as it is")
        if go and restore_concept_folders:
            go = step(
                restore_concepts(
                    store,
                    concepts_root,
                    quarantine_root,
                    offsite_dir,
                    None,
                    False,
                    dry_run=dry_run,
                    audit=audit,
                )
            )
        if go:
            go = step(rollback_assignments(store, "all", dry_run=dry_run, audit=audit))
        if go:
            # In a dry run step 1 has not happened yet: assume it will, and say so.
            step(
                rollback_schema(
                    store,
                    categories,
                    force or dry_run,
                    dry_run=dry_run,
                    audit=audit,
                )
            )
            if dry_run:
                report.steps.append(
                    "[rollback_schema] (dry run: assumes step 1 restored the categories)"
                )
    except RollbackRefused as exc:
        report.problems.append(str(exc))
    return recorded(audit, report, parts=[p.action for p in report.parts], drifted=report.drifted)

"""The scheduled re-assignment: the dry run (read-only) and the apply (writers' pool). Their
gates are in checks.py; the core is recon_domains.reassignment."""

import dagster as dg

from recon_domains.defs.common import metadata, operator_errors, step_asset, table
from recon_domains.defs.gates import require_gates
from recon_domains.defs.resources import PeerTubeDbResource, PeerTubeResource, ReconResource
from recon_domains.runbook import step
from recon_domains.verdicts import Table


def _plan(recon: ReconResource, store):
    from recon_domains.reassignment import plan_reassignment, require_sources

    require_sources(store)
    return plan_reassignment(
        store, recon.concepts_root, recon.skip_channel_set,
        max_window_file_mb=recon.max_window_file_mb,
    )


@step_asset(
    "reassignment_dry_run",
    kinds={"sqlite"},
    description="After the migration (runbook: scheduled re-assignment runs): every decided "
    "stream document whose concept files changed since its decision (their names, sizes and "
    "modification times, recorded with the decision) decided again with pass 1, then the "
    "tiebreaker rules; every tied_manual document of a channel not on RECON_SKIP_CHANNELS "
    "retries the tiebreaker. manual_assigned is never decided again. Writes nothing. "
    "Metadata: the changes by domain pair (from → to), a sample linked to PeerTube, what is "
    "held and why.",
)
def reassignment_dry_run(
    context: dg.AssetExecutionContext, recon: ReconResource
) -> dg.MaterializeResult:
    from recon_domains.verdicts.reassignment import plan_metadata

    require_gates(context, "reassignment_dry_run")
    with operator_errors(step("reassignment_dry_run").refusal_name()), recon.store() as store:
        plan = _plan(recon, store)
    context.log.info(
        f"re-assignment dry run: {plan.decided} decided document(s), {plan.files_changed} "
        f"with changed files, {plan.ties_retried} tie(s) retried: {len(plan.changes)} "
        f"change(s) ({len(plan.applicable)} to apply, {len(plan.held)} held), "
        f"{len(plan.baselines)} decided before fingerprints (fingerprinted as of now)"
    )
    return dg.MaterializeResult(
        metadata=metadata(plan_metadata(plan, recon.reassign_max_change_pct))
    )


def _drift_table(entries: list[dict]) -> Table:
    return Table.of(
        ["hash", "video", "we pushed", "PeerTube now", "RECON from", "RECON would be"],
        [
            (e["hash"][:12], e["video_id"], e["pushed_label"], e["now_label"],
             e.get("recon_from"), e.get("recon_to"))
            for e in entries
        ],
    )


@step_asset(
    "reassignment",
    kinds={"sqlite", "peertube"},
    description="After the migration: writes the re-assignment's new decisions (each only "
    "while the document still holds the decision it was re-decided from) and pushes the "
    "changed categories through the push engine with its ledger (stage reassignment), so "
    "rollback_peertube_categories restores the original exactly. Refuses unless "
    "reassignment_within_threshold passed on the current dry run, and re-checks the share "
    "itself before writing. A video whose category was changed in PeerTube since our push "
    "is held and reported, never overwritten.",
)
def reassignment(
    context: dg.AssetExecutionContext,
    recon: ReconResource,
    peertube: PeerTubeResource,
    peertube_db: PeerTubeDbResource,
) -> dg.MaterializeResult:
    from recon_domains.reassignment import apply_reassignment
    from recon_domains.verdicts.reassignment import pairs_table, within_threshold

    require_gates(context, "reassignment")
    name = step("reassignment").refusal_name()
    with operator_errors(name), recon.store() as store, peertube.client() as client:
        plan = _plan(recon, store)
        # The files may have changed since the dry run: the share is checked again here.
        verdict = within_threshold(
            len(plan.changes), plan.categorized, recon.reassign_max_change_pct
        )
        if not verdict.passed:
            raise dg.Failure(
                description=f"Refusing {name}: since the dry run, {verdict.description}",
                allow_retries=False,
            )
        result = apply_reassignment(
            store,
            plan,
            client,
            peertube_db.categories(client),
            workers=peertube.push_max_in_flight,
            max_rate=peertube.push_max_rate,
        )
    push = result.push
    for d in result.drifted:
        context.log.warning(
            f"held (drift): video {d['video_id']} (hash {d['hash'][:12]}): we pushed "
            f"{d['pushed_label']}, PeerTube now shows {d['now_label']}: not overwritten; "
            f"RECON would be {d['recon_to']}"
        )
    held = plan.held
    meta = {
        "written": len(result.written),
        "to_push": len(result.to_push),
        "pushed": len(result.pushed),
        "push_failed": len(push.failed) if push is not None else 0,
        "held": len(held) + len(result.drifted),
        "drifted_videos": table(_drift_table(result.drifted)),
        "held_sample": table(
            Table.of(
                ["hash", "from", "would be", "why held"],
                [(c.hash[:12], f"{c.old_status}: {c.old_domain}", f"{c.status}: {c.domain}",
                  c.held) for c in held[:20]],
            )
        ),
        "changes_by_domain": table(pairs_table(plan)),
        "fingerprints_refreshed": result.refreshed,
        "fingerprinted_as_of_now": result.baselined,
        "push_summary": push.summary() if push is not None else "nothing to push",
        "pushed_hashes": dg.MetadataValue.json(result.pushed),
    }
    context.log.info(
        f"re-assignment: {len(result.written)} decision(s) written, {len(result.pushed)} of "
        f"{len(result.to_push)} changed categories pushed, {len(result.drifted)} held for "
        f"drift, {len(held)} held (see held_sample), {result.baselined} fingerprinted as of "
        "now"
    )
    if push is not None and (push.aborted or push.failed):
        raise dg.Failure(
            description=f"{name}: the decisions are written, but the push "
            + (f"ABORTED: {push.abort_reason}" if push.aborted
               else f"failed for {len(push.failed)} video(s) (e.g. {push.failed[0][1]})")
            + f". {len(push.succeeded)} pushed; the others are unpushed in RECON, so the "
            "steady state's push (or the next reassignment_job) retries them.",
            metadata=meta,
            allow_retries=False,
        )
    return dg.MaterializeResult(metadata=meta)

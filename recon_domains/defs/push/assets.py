"""Runbook Step 5: the staged push of categories to PeerTube, and its plan before any
write (the gate, stage_verified, is in checks.py)."""

from collections import Counter

import dagster as dg

from recon_domains.defs.common import operator_errors, step_asset, table
from recon_domains.defs.gates import require_gates
from recon_domains.defs.resources import (
    PeerTubeDbResource,
    PeerTubeResource,
    ProgressResource,
    ReconResource,
    loaded_settings,
)
from recon_domains.push import STAGES
from recon_domains.runbook import step as runbook_step
from recon_domains.taxonomy import DOMAIN_IDS
from recon_domains.verdicts import Table, fmt_top

PLAN_SAMPLE = 5
_stage1, _stage2 = loaded_settings().stage_sizes  # the configured values a description states


@step_asset(
    "push_plan",
    kinds={"sqlite"},
    description="Runbook Step 5, `--push-pending --dry-run`: what each stage would push "
    f"(stage-1 = first {_stage1:,} categorized by assignment time, stage-2 = next {_stage2:,}, "
    "stage-3 = the rest; RECON_PUSH_STAGE*_SIZE), with a sample per stage. Writes nothing; "
    "only assigned, tied_pass_2 and manual_assigned documents are pushed (tied_manual waits "
    "for a human).",
)
def push_plan(context: dg.AssetExecutionContext, recon: ReconResource) -> dg.MaterializeResult:
    from recon_domains.push import plan_stages
    from recon_domains.verdicts.push import split_unpushable

    with operator_errors("push_plan"), recon.store() as store:
        plan = plan_stages(store, recon.push_stage_sizes)
        status = store.status_counts()
        _, unpushable = split_unpushable(store, (c for s in STAGES for c in plan.get(s, [])))
    rows = []
    sample_rows = []
    for stage in STAGES:
        items = plan.get(stage, [])
        domains = Counter(c.domain for c in items)
        rows.append((stage, len(items), fmt_top(domains.most_common(3))))
        for c in items[:PLAN_SAMPLE]:
            sample_rows.append(
                (
                    stage,
                    c.hash[:12],
                    c.domain,
                    DOMAIN_IDS.get(c.domain),
                    c.status,
                    c.assigned_at,
                    c.path,
                )
            )
    return dg.MaterializeResult(
        metadata={
            **{f"{s}_count": len(plan.get(s, [])) for s in STAGES},
            "unpushed_total": sum(len(v) for v in plan.values()),
            "tied_manual_not_pushed": status.get("tied_manual", 0),
            # Skipped by every push, and not holding stage verification: the reason says why.
            "unpushable": len(unpushable),
            "unpushable_items": table(
                Table.of(["hash", "catalogue.path", "why"], unpushable[:20])
            ),
            "plan": table(Table.of(["stage", "items", "top domains"], rows)),
            "sample": table(
                Table.of(
                    ["stage", "hash", "domain", "category", "status", "assigned_at", "PeerTube"],
                    sample_rows,
                )
            ),
        }
    )


@step_asset(
    "peertube_category_push",
    kinds={"peertube"},
    description="Runbook Step 5, `--push-pending --limit …`: PUT each categorized document's "
    "domain as its PeerTube video category, one stage per partition. The category before is "
    "recorded in the push ledger first (exact rollback); each success is marked at once, so "
    "an interrupted stage resumes. Refuses unless the tiebreaker spot check and the plugin "
    "categories passed, and stage N−1 is materialized and verified. Aborts when the first "
    "5 attempts all fail (plugin missing, auth broken). External write: Rollback 'Clear "
    "wrong PeerTube categories' restores from the ledger.",
)
def peertube_category_push(
    context: dg.AssetExecutionContext,
    recon: ReconResource,
    peertube: PeerTubeResource,
    peertube_db: PeerTubeDbResource,
    progress: ProgressResource,
) -> dg.MaterializeResult:
    from recon_domains.push import push_items, select_stage_items

    stage = context.partition_key
    step = runbook_step("peertube_category_push").refusal_name(stage)
    require_gates(context, "peertube_category_push")

    with operator_errors(step), recon.store() as store, peertube.client() as client:
        items = select_stage_items(store, stage, recon.push_stage_sizes)
        context.log.info(f"{stage}: {len(items)} item(s) to push (unpushable ones are skipped "
                         "and counted as done)")
        categories = peertube_db.categories(client)
        tracker = progress.track(context.log, f"push {stage}", "items")
        result = push_items(
            store,
            client,
            items,
            stage=stage,
            database=categories,
            workers=peertube.push_max_in_flight,
            max_rate=peertube.push_max_rate,
            on_progress=tracker.callback,
        )
        tracker.finish()
        remaining = len(select_stage_items(store, stage, recon.push_stage_sizes))
    context.log.info(result.summary())
    if result.aborted:
        raise dg.Failure(
            # abort_reason is one or more sentences (ReconLocked's ends with its own period).
            description=f"{step} ABORTED: {(result.abort_reason or '').rstrip('.')}. "
            f"{len(result.succeeded)} "
            f"item(s) pushed before the abort (marked in RECON), {result.not_attempted} not "
            "attempted. Fix the cause, then run the same stage again: it resumes.",
            metadata={
                "summary": result.summary(),
                "put_requests": result.put_count,
                "pushed_before_abort": len(result.succeeded),
                # in PeerTube, not yet marked in RECON: the next run's resume check marks them
                "pushed_not_marked": len(result.unmarked),
                "failed": len(result.failed),
                "not_attempted": result.not_attempted,
                "retried_after_500": result.retried_after_500,
            },
            allow_retries=False,
        )
    return dg.MaterializeResult(
        metadata={
            "selected": result.total,
            "pushed": len(result.succeeded),
            "already_in_place": len(result.already_in_place),
            "failed": len(result.failed),
            "skipped": len(result.skipped),
            "remaining_in_stage": remaining,
            "put_requests": result.put_count,
            "retried_after_500": result.retried_after_500,
            "items_per_second": round(result.items_per_second, 1),
            **result.flow_metadata(),
            "summary": result.summary(),
            "failures": table(
                Table.of(["hash", "reason"], [(h[:12], r) for h, r in result.failed[:20]])
            ),
            "skipped_items": table(
                Table.of(["hash", "reason"], [(h[:12], r) for h, r in result.skipped[:20]])
            ),
        }
    )

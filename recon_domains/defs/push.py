"""Runbook Step 5: the staged push of categories to PeerTube (and its plan, before any write)."""

import random
from collections import Counter

import dagster as dg

from recon_domains.defs.assignment import TIEBREAK_GATE
from recon_domains.defs.common import (
    EXTERNAL_WRITE,
    READ_ONLY,
    WRITES_POOL,
    link,
    md_table,
    operator_errors,
    tier,
)
from recon_domains.defs.gates import Gate, require_gates, require_partition_materialized
from recon_domains.defs.plugin import PLUGIN_GATE
from recon_domains.defs.resources import (
    PeerTubeDbResource,
    PeerTubeResource,
    ReconResource,
    loaded_settings,
)
from recon_domains.peertube.urls import parse_watch_url
from recon_domains.taxonomy import DOMAIN_BY_ID, DOMAIN_IDS

GROUP = "push"
STAGES = ("stage-1", "stage-2", "stage-3")
stage_partitions = dg.StaticPartitionsDefinition(list(STAGES))
API_SAMPLE = 20  # later stages: videos checked through the API
PLAN_SAMPLE = 5
_stage1, _stage2 = loaded_settings().stage_sizes  # the configured values a description states


def stage_gate(stage: str) -> Gate:
    return Gate(
        "peertube_category_push",
        "stage_verified",
        partition=stage,
        remedy=f"push {stage} (push_job --partition {stage}) and pass its stage_verified "
        "check first; fix what the check reports",
    )


def previous_stage(stage: str) -> str | None:
    i = STAGES.index(stage)
    return STAGES[i - 1] if i > 0 else None


def category_table(peertube: dict[int, int], recon: dict[int, int]) -> str:
    ids = sorted(set(peertube) | set(recon))
    return md_table(
        ["id", "domain", "PeerTube videos", "RECON pushed", "agree"],
        [
            (
                i,
                DOMAIN_BY_ID.get(i, "(not a RECON domain)"),
                peertube.get(i, 0),
                recon.get(i, 0),
                "yes" if peertube.get(i, 0) == recon.get(i, 0) else "NO",
            )
            for i in ids
        ],
    )


@dg.asset(
    group_name=GROUP,
    deps=["tiebreaker_assignments"],
    tags=tier(READ_ONLY),
    kinds={"sqlite"},
    description="Runbook Step 5, `--push-pending --dry-run`: what each stage would push "
    f"(stage-1 = first {_stage1:,} categorized by assignment time, stage-2 = next {_stage2:,}, "
    "stage-3 = the rest; RECON_PUSH_STAGE*_SIZE), with a sample per stage. Writes nothing; "
    "only assigned, tied_pass_2 and manual_assigned documents are pushed (tied_manual waits "
    "for a human).",
)
def push_plan(context: dg.AssetExecutionContext, recon: ReconResource) -> dg.MaterializeResult:
    from recon_domains.push import plan_stages

    with operator_errors("push_plan"), recon.store() as store:
        plan = plan_stages(store, recon.push_stage_sizes)
        status = store.status_counts()
    rows = []
    sample_rows = []
    for stage in STAGES:
        items = plan.get(stage, [])
        domains = Counter(c.domain for c in items)
        rows.append((stage, len(items), ", ".join(f"{d} {n}" for d, n in domains.most_common(3))))
        for c in items[:PLAN_SAMPLE]:
            sample_rows.append(
                (
                    stage,
                    c.hash[:12],
                    c.domain,
                    DOMAIN_IDS.get(c.domain),
                    c.status,
                    c.assigned_at,
                    link(c.path, "watch"),
                )
            )
    return dg.MaterializeResult(
        metadata={
            **{f"{s}_count": len(plan.get(s, [])) for s in STAGES},
            "unpushed_total": sum(len(v) for v in plan.values()),
            "tied_manual_not_pushed": status.get("tied_manual", 0),
            "plan": dg.MetadataValue.md(md_table(["stage", "items", "top domains"], rows)),
            "sample": dg.MetadataValue.md(
                md_table(
                    ["stage", "hash", "domain", "category", "status", "assigned_at", "PeerTube"],
                    sample_rows,
                )
            ),
        }
    )


@dg.asset(
    group_name=GROUP,
    deps=["tiebreaker_assignments", push_plan],
    partitions_def=stage_partitions,
    tags=tier(EXTERNAL_WRITE),
    pool=WRITES_POOL,
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
) -> dg.MaterializeResult:
    from recon_domains.push import push_items, select_stage_items

    stage = context.partition_key
    step = f"peertube_category_push {stage} (runbook Step 5)"
    gates = [TIEBREAK_GATE, PLUGIN_GATE]
    prev = previous_stage(stage)
    if prev is not None:
        require_partition_materialized(
            context,
            "peertube_category_push",
            stage_partitions,
            prev,
            step=step,
            remedy=f"run push_job for {prev} and let its stage_verified check pass",
        )
        gates.append(stage_gate(prev))
    require_gates(context, gates, step=step)

    with operator_errors(step), recon.store() as store, peertube.client() as client:
        items = select_stage_items(store, stage, recon.push_stage_sizes)
        context.log.info(f"{stage}: {len(items)} item(s) to push")
        database = peertube_db.database_if_configured()
        step_pct = max(1, len(items) // 10)

        def progress(done: int, total: int) -> None:
            if done % step_pct == 0 or done == total:
                context.log.info(f"{stage}: {done}/{total}")

        result = push_items(
            store,
            client,
            items,
            stage=stage,
            database=database,
            workers=peertube.push_max_in_flight,
            max_rate=peertube.push_max_rate,
            on_progress=progress,
        )
        remaining = len(select_stage_items(store, stage, recon.push_stage_sizes))
    context.log.info(result.summary())
    if result.aborted:
        raise dg.Failure(
            description=f"{step} ABORTED: {result.abort_reason}. {len(result.succeeded)} "
            f"item(s) pushed before the abort (marked in RECON), {result.not_attempted} not "
            "attempted. Fix the cause, then run the same stage again: it resumes.",
            metadata={
                "summary": result.summary(),
                "put_requests": result.put_count,
                "pushed_before_abort": len(result.succeeded),
                "failed": len(result.failed),
                "not_attempted": result.not_attempted,
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
            "items_per_second": round(result.items_per_second, 1),
            **result.flow_metadata(),
            "summary": result.summary(),
            "failures": dg.MetadataValue.md(
                md_table(["hash", "reason"], [(h[:12], r) for h, r in result.failed[:20]])
                if result.failed
                else "none"
            ),
            "skipped_items": dg.MetadataValue.md(
                md_table(["hash", "reason"], [(h[:12], r) for h, r in result.skipped[:20]])
                if result.skipped
                else "none"
            ),
        }
    )


@dg.asset_check(
    asset=peertube_category_push,
    partitions_def=stage_partitions,
    blocking=True,
    description="Runbook Step 5 STOP: stage-1 — every pushed video read back through the API; "
    "later stages — a sample through the API and PeerTube's DB category histogram equal to "
    "RECON's pushed distribution. Fails while items of the stage are left unpushed.",
)
def stage_verified(
    context: dg.AssetCheckExecutionContext,
    recon: ReconResource,
    peertube: PeerTubeResource,
    peertube_db: PeerTubeDbResource,
) -> dg.AssetCheckResult:
    from recon_domains.push import select_stage_items

    stage = context.partition_key
    problems: list[str] = []
    with operator_errors(f"stage_verified {stage}"), recon.store() as store:
        rows = store.pushed_ledger(stage)
        # stage-1: every video; later stages: a sample (plus the histogram below).
        sample = rows if stage == STAGES[0] else random.sample(rows, min(API_SAMPLE, len(rows)))
        paths = store.watch_paths(r.hash for r in sample)
        leftovers = select_stage_items(store, stage, recon.push_stage_sizes)
        recon_hist = store.pushed_category_histogram()
    checked = []
    with operator_errors(f"stage_verified {stage}"), peertube.client() as client:
        for r in sample:
            try:
                got = client.video_category(r.video_id)
            except Exception as exc:  # one unreadable video is a finding, not a crash
                got = f"error: {exc}"
            ok = got == r.category_after
            checked.append(
                (
                    r.hash[:12],
                    r.video_id,
                    r.category_after,
                    got,
                    ok,
                    link(paths.get(r.hash), "watch"),
                )
            )
            if not ok:
                problems.append(f"video {r.video_id}: expected {r.category_after}, found {got}")
    histogram_md = "not compared (stage-1 checks every video through the API)"
    if stage != STAGES[0]:
        with operator_errors(f"stage_verified {stage}"):
            pt_hist = peertube_db.database().category_histogram()
        histogram_md = category_table(pt_hist, recon_hist)
        if pt_hist != recon_hist:
            problems.append("PeerTube's category histogram differs from RECON's pushed counts")
    # An item without a video id in its watch URL can never be pushed: report it, but it
    # must not hold the rollout forever. Anything else left over is a failed push to retry.
    unpushable = []  # (hash, catalogue.path, why) of items no push can reach
    retryable = []
    for c in leftovers:
        parsed = parse_watch_url(c.path)
        if parsed.ok:
            retryable.append(c)
        else:
            unpushable.append((c.hash[:12], c.path, parsed.reason))
    if retryable:
        problems.append(
            f"{len(retryable)} item(s) of {stage} are still unpushed (their push failed): run "
            f"push_job for {stage} again to retry them"
        )
    table = md_table(
        ["hash", "video", "expected", "PeerTube", "ok", "link"],
        [(h, v, e, g, "yes" if ok else "NO", lk) for h, v, e, g, ok, lk in checked],
    )
    return dg.AssetCheckResult(
        passed=not problems,
        description=(
            f"{stage} verified: {len(checked)} of {len(rows)} pushed video(s) read back through "
            "the API with the expected category"
            + ("" if stage == STAGES[0] else "; PeerTube's histogram equals RECON's")
            + "."
            if not problems
            else f"{stage} NOT verified: "
            + "; ".join(problems[:5])
            + ". Do not push the next stage. If categories are wrong, restore them (Rollback: "
            "'Clear wrong PeerTube categories')."
        ),
        metadata={
            "pushed_in_stage": len(rows),
            "checked_via_api": len(checked),
            "mismatches": sum(1 for c in checked if not c[4]),
            "unpushed_retryable": len(retryable),
            "unpushable_bad_url": len(unpushable),
            "unpushable": dg.MetadataValue.md(
                md_table(["hash", "catalogue.path", "why"], unpushable[:20])
                if unpushable
                else "none"
            ),
            "api_sample": dg.MetadataValue.md(table),
            "histogram": dg.MetadataValue.md(histogram_md),
        },
    )


assets = [push_plan, peertube_category_push]
asset_checks = [stage_verified]

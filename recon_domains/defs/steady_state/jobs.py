"""The steady state after the migration (SPEC §9): its job, and the drift check's.

- `steady_state_assignment`: pass 1 for stream documents completed since the last run
  (including those back from reprocessing) → tiebreaker → push of everything categorized and
  unpushed (no stages; the same systemic-failure abort) → verification of what was pushed.
  Refuses unless the migration's final gate (`rollout_verification:peertube_matches_recon`)
  passed.
- `peertube_drift_check`: videos whose PeerTube category no longer matches what was pushed
  are reported with samples and never overwritten.

Both run from cron with `dg launch --job <job> -m recon_domains.definitions`.
"""

import dagster as dg
from pydantic import Field

from recon_domains.defs.common import WRITES_POOL, operator_errors, review_metadata, table, tier
from recon_domains.defs.gates import require_gates
from recon_domains.defs.resources import PeerTubeDbResource, PeerTubeResource, ReconResource
from recon_domains.runbook import EXTERNAL_WRITE, READ_ONLY, RECON_DB_REVERSIBLE, STEADY_STATE
from recon_domains.verdicts import Table, counts_table

STEP = STEADY_STATE.asset


# --- the job ---------------------------------------------------------------------------------


@dg.op(tags=tier(RECON_DB_REVERSIBLE), pool=WRITES_POOL, out=dg.Out(list))
def steady_state_pass1(context: dg.OpExecutionContext, recon: ReconResource) -> list:
    """Pass 1 for every complete stream document without a domain (new, or re-processed)."""
    from recon_domains.assignment import run_pass1

    require_gates(context, STEP)
    with operator_errors(f"{STEP} pass 1"), recon.store() as store:
        result = run_pass1(store, recon.concepts_root, max_window_file_mb=recon.max_window_file_mb)
    counts = result.status_counts
    context.log.info(f"pass 1: {result.candidates} new document(s): {counts}")
    context.add_output_metadata(
        {
            "candidates": result.candidates,
            "written": result.written,
            "errors": len(result.errors),
            "status_counts": table(counts_table(counts)),
        }
    )
    return [d.hash for d in result.decisions]


@dg.op(
    tags=tier(RECON_DB_REVERSIBLE),
    pool=WRITES_POOL,
    ins={"new_documents": dg.In(list)},
    out=dg.Out(dict),
)
def steady_state_tiebreaker(
    context: dg.OpExecutionContext, recon: ReconResource, new_documents: list
) -> dict:
    """Pass 2/3 over every tied_pass_1 document (the new ties, and any left earlier)."""
    from recon_domains.assignment import run_tiebreaker

    with operator_errors(f"{STEP} tiebreaker"), recon.store() as store:
        result = run_tiebreaker(
            store,
            recon.concepts_root,
            recon.skip_channel_set,
            max_window_file_mb=recon.max_window_file_mb,
        )
        status = store.status_counts()
    review = review_metadata(status, recon.review_url)
    context.log.info(
        f"tiebreaker: {result.tied_documents} tied document(s): {result.status_counts}. "
        + review["review_next_step"]
    )
    context.add_output_metadata(
        {
            "tied_documents": result.tied_documents,
            "written": result.written,
            "errors": len(result.errors),
            "decided": dg.MetadataValue.json(result.status_counts),
            "status_breakdown": table(counts_table(status)),
            **review,
        }
    )
    return {"new": len(new_documents), "tied": result.tied_documents}


@dg.op(
    tags=tier(EXTERNAL_WRITE),
    pool=WRITES_POOL,
    ins={"assigned": dg.In(dict)},
    out=dg.Out(list),
)
def steady_state_push(
    context: dg.OpExecutionContext,
    recon: ReconResource,
    peertube: PeerTubeResource,
    peertube_db: PeerTubeDbResource,
    assigned: dict,
) -> list:
    """Push every categorized, unpushed document (no stages), with the push engine's
    systemic-failure abort; returns the hashes pushed by this run."""
    from recon_domains.push import push_items

    require_gates(context, STEP)
    with operator_errors(f"{STEP} push"), recon.store() as store, peertube.client() as client:
        items = store.unpushed_categorized()
        context.log.info(f"push: {len(items)} categorized item(s) not yet in PeerTube")
        result = push_items(
            store,
            client,
            items,
            stage="steady-state",
            database=peertube_db.categories(client),
            workers=peertube.push_max_in_flight,
            max_rate=peertube.push_max_rate,
        )
    context.log.info(result.summary())
    metadata = {
        "selected": result.total,
        "pushed": len(result.succeeded),
        "failed": len(result.failed),
        "skipped": len(result.skipped),
        "pushed_not_marked": len(result.unmarked),
        "retried_after_500": result.retried_after_500,
        "summary": result.summary(),
        "failures": table(
            Table.of(["hash", "reason"], [(h[:12], r) for h, r in result.failed[:20]])
        ),
    }
    if result.aborted or result.failed:
        raise dg.Failure(
            description=f"{STEP} push: "
            + (
                f"ABORTED: {result.abort_reason}"
                if result.aborted
                else f"{len(result.failed)} item(s) failed (e.g. {result.failed[0][1]})"
            )
            + f". {len(result.succeeded)} pushed and marked; the next run retries the rest.",
            metadata=metadata,
            allow_retries=False,
        )
    context.add_output_metadata(metadata)
    return list(result.succeeded)


@dg.op(tags=tier(READ_ONLY), ins={"pushed": dg.In(list)})
def steady_state_verify(
    context: dg.OpExecutionContext,
    recon: ReconResource,
    peertube: PeerTubeResource,
    peertube_db: PeerTubeDbResource,
    pushed: list,
) -> None:
    """Read back every pushed video: what this run pushed must show its category; earlier
    pushes that no longer do are the known drift, counted (never overwritten)."""
    from recon_domains.steady_state import drift_report

    with operator_errors(f"{STEP} verify"), recon.store() as store, peertube.client() as client:
        report = drift_report(store, peertube_db.categories(client), base_url=peertube.url)
    wrong, known = report.split(set(pushed))
    context.add_output_metadata(
        {
            "checked": len(pushed),
            "mismatched": len(wrong),
            "mismatches": table(_drift_table(wrong[:20])),
            "known_drift": len(known),
            "known_drift_sample": table(_drift_table(known[:20])),
        }
    )
    drift_line = (
        f"known drift: {len(known)} earlier pushed video(s) no longer show the category we "
        "pushed (changed or deleted in PeerTube; never overwritten: see peertube_drift_check)"
        if known
        else "known drift: none (every earlier pushed video shows the category we pushed)"
    )
    context.log.info(drift_line)
    if wrong:
        e = wrong[0]
        raise dg.Failure(
            description=f"{STEP} verify: {len(wrong)} of {len(pushed)} pushed video(s) do not "
            f"show the pushed category in PeerTube (e.g. video {e['video_id']}: pushed "
            f"{e['pushed_label']}, PeerTube has {e['now_label']}). "
            "Check the plugin is installed and nobody edits them; run peertube_drift_check. "
            f"Also {drift_line}.",
            allow_retries=False,
        )
    context.log.info(f"verified: {len(pushed)} pushed video(s) show their category")


def _drift_table(entries: list[dict]) -> Table:
    """Drift entries of steady_state.DriftReport as a table, categories by label."""
    return Table.of(
        ["hash", "video", "pushed", "PeerTube now"],
        [
            (
                e["hash"][:12],
                e["url"] or e["video_id"],
                e["pushed_label"],
                e["now_label"],
            )
            for e in entries
        ],
    )


@dg.job(
    name="steady_state_assignment",
    description="SPEC §9 steady state: pass 1 for newly completed stream documents, the "
    "tiebreaker, a push of everything categorized and unpushed (same systemic abort), and a "
    "read-back verification. Refuses until the migration's rollout_verification gate passed.",
    tags=tier(EXTERNAL_WRITE),
)
def steady_state_assignment() -> None:
    steady_state_verify(steady_state_push(steady_state_tiebreaker(steady_state_pass1())))


# --- drift -----------------------------------------------------------------------------------


class DriftCheckConfig(dg.Config):
    fail_on_drift: bool = Field(
        default=True,
        description="fail the run when drift is found (so cron and alerts notice); the videos "
        "are never changed either way",
    )
    sample: int = Field(default=20, description="how many drifted videos to show")


@dg.op(tags=tier(READ_ONLY))
def peertube_drift_check_step(
    context: dg.OpExecutionContext,
    config: DriftCheckConfig,
    recon: ReconResource,
    peertube: PeerTubeResource,
    peertube_db: PeerTubeDbResource,
) -> dg.Output[dict]:
    """Compare every pushed video's PeerTube category with what we pushed; report, never
    overwrite."""
    from recon_domains.steady_state import drift_report

    with (
        operator_errors("peertube_drift_check"),
        recon.store() as store,
        peertube.client() as client,
    ):
        report = drift_report(store, peertube_db.categories(client), base_url=peertube.url)
    sample = report.sample(config.sample)
    metadata = {
        "checked": report.checked,
        "matching": report.matching,
        "drifted": len(report.drifted),
        "video_missing": len(report.missing),
        "unparsable_urls": report.unparsable,
        "outside_recon": report.outside,
        "drift_sample": table(_drift_table(sample)),
        "missing_sample": table(_drift_table(report.missing[: config.sample])),
    }
    context.log.info(
        f"drift check: {report.checked} pushed video(s), {report.matching} match, "
        f"{len(report.drifted)} changed in PeerTube, {len(report.missing)} missing; "
        f"{report.outside} video(s) RECON did not push carry a RECON category (not drift)"
    )
    for d in sample:
        context.log.warning(
            f"drift: video {d['video_id']} (hash {d['hash'][:12]}) pushed {d['pushed_label']}, "
            f"PeerTube now {d['now_label']}"
        )
    if report.drifted and config.fail_on_drift:
        raise dg.Failure(
            description=f"{len(report.drifted)} pushed video(s) no longer show the category we "
            f"pushed (changed in PeerTube; e.g. video {report.drifted[0]['video_id']}: pushed "
            f"{report.drifted[0]['pushed_label']}, now {report.drifted[0]['now_label']}). "
            "Nothing was "
            "overwritten. Review the sample; to "
            "re-apply RECON's domain, clear their push timestamps and let the steady state push.",
            metadata=metadata,
            allow_retries=False,
        )
    return dg.Output(
        {"checked": report.checked, "drifted": report.drifted, "missing": report.missing},
        metadata=metadata,
    )


@dg.job(
    name="peertube_drift_check",
    description="Report videos whose PeerTube category no longer matches what was pushed "
    "(with samples); never overwrites. Fails when drift is found unless fail_on_drift: false.",
    tags=tier(READ_ONLY),
)
def peertube_drift_check() -> None:
    peertube_drift_check_step()

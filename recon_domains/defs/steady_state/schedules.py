"""The steady state's schedules, off by default (they tick only under `dagster-daemon` or
`dagster dev`): hourly steady_state_assignment, nightly peertube_drift_check."""

import dagster as dg

from recon_domains.defs.resources import ReconResource
from recon_domains.defs.steady_state.jobs import peertube_drift_check, steady_state_assignment


@dg.schedule(
    name="steady_state_hourly",
    cron_schedule="0 * * * *",
    job=steady_state_assignment,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    execution_timezone="UTC",
    description="Hourly steady_state_assignment when there is work (new documents, ties, or "
    "unpushed categorized documents, e.g. after a failed push). Off by default.",
)
def steady_state_hourly(context: dg.ScheduleEvaluationContext, recon: ReconResource):
    from recon_domains.steady_state import ReconBusy, pending_work

    try:
        work = pending_work(
            recon.db_path, recon.stream_source, accepted_hosts=recon.accepted_hosts
        )
    except ReconBusy:
        # The job itself waits on the busy timeout: better run than lose an hour.
        return dg.RunRequest()
    except ValueError as exc:
        return dg.SkipReason(f"not migrated yet: {exc}")
    if not work.any:
        return dg.SkipReason("nothing new, no ties, nothing unpushed")
    return dg.RunRequest()


peertube_drift_nightly = dg.ScheduleDefinition(
    name="peertube_drift_nightly",
    cron_schedule="30 3 * * *",
    job=peertube_drift_check,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Nightly peertube_drift_check (03:30 UTC). Off by default.",
)

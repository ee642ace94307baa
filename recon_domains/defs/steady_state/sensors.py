"""`steady_state_sensor`: watches RECON's database for new work (off by default; ticks only
under `dagster-daemon` or `dagster dev`)."""

import dagster as dg

from recon_domains.defs.resources import ReconResource
from recon_domains.defs.steady_state.jobs import steady_state_assignment


@dg.sensor(
    name="steady_state_sensor",
    job=steady_state_assignment,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Watches RECON's database (read-only) for newly completed stream documents "
    "without a domain and requests one steady_state_assignment run per new set (cursor = "
    "the set's fingerprint). A locked or missing database skips the tick, cursor kept. A "
    "run that fails before pass 1 writes leaves the set unchanged: the hourly schedule (or a "
    "manual launch) retries it.",
)
def steady_state_sensor(context: dg.SensorEvaluationContext, recon: ReconResource):
    from recon_domains.steady_state import ReconBusy, pending_work

    try:
        work = pending_work(
            recon.db_path, recon.stream_source, accepted_hosts=recon.accepted_hosts
        )
    except ReconBusy as exc:
        return dg.SkipReason(str(exc))
    except ValueError as exc:
        return dg.SkipReason(f"not migrated yet: {exc}")
    if not work.hashes:
        context.update_cursor("")
        return dg.SkipReason("no newly completed stream documents")
    if work.fingerprint == context.cursor:
        return dg.SkipReason(
            f"{len(work.hashes)} new document(s) already requested (run key {work.fingerprint})"
        )
    context.update_cursor(work.fingerprint)
    return dg.RunRequest(
        run_key=work.fingerprint,
        tags={"recon_domains/new_documents": str(len(work.hashes))},
    )

"""`reassignment_job`: the dry run, its gate, the apply and its verification in one run,
from the UI or cron (`dg launch --job reassignment_job -m recon_domains.definitions`), and
`reassignment_nightly`, its schedule (off by default; ticks only under dagster-daemon)."""

import dagster as dg

from recon_domains.runbook import AFTER_MIGRATION

reassignment_job = dg.define_asset_job(
    "reassignment_job",
    selection=dg.AssetSelection.assets(*(s.asset for s in AFTER_MIGRATION)),
    description="The scheduled re-assignment: reassignment_dry_run (documents whose concept "
    "files changed since their decision, decided again; tied_manual ties retried), the "
    "blocking gate reassignment_within_threshold (RECON_REASSIGN_MAX_CHANGE_PCT of the "
    "categorized documents), reassignment (writes, pushes with the ledger; drifted videos "
    "held) and reassignment_verified. Refuses until the migration's rollout_verification "
    "gate passed.",
)

reassignment_nightly = dg.ScheduleDefinition(
    name="reassignment_nightly",
    cron_schedule="50 2 * * *",
    job=reassignment_job,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Nightly reassignment_job (02:50 UTC). Off by default. It takes the writers' "
    "pool like the steady state, so the two never write at once.",
)

"""One job per runbook step, each with its gate checks (blocking), for the UI and for cron:

    dagster job execute -m recon_domains.definitions -j pass1_job
    dagster job execute -m recon_domains.definitions -j push_job \
        --tags '{"dagster/partition": "stage-2"}'
    dagster asset materialize -m recon_domains.definitions \
        --select peertube_category_push --partition stage-2

(`asset materialize --select K` also runs K's checks.) DAGSTER_HOME must be set, or the gates
have no history to read and every gated step refuses.

Selecting an asset selects its checks, so each job runs the step and then its STOP-point
check; the writing assets additionally read their upstream gates from the instance.
"""

from __future__ import annotations

import dagster as dg


def _job(name: str, keys: list[str], description: str) -> dg.UnresolvedAssetJobDefinition:
    # Partitioned jobs (push_job, reprocess_job) take the partitions of their asset.
    return dg.define_asset_job(
        name, selection=dg.AssetSelection.assets(*keys), description=description
    )


predeploy_job = dg.define_asset_job(
    "predeploy_job",
    selection=dg.AssetSelection.groups("predeploy"),
    description="Runbook Pre-Deploy 1–4: both backups, the off-site freshness and RECON's "
    "idleness, with backup_verified, dump_verified, backup_fresh, no_active_workers.",
)
plugin_job = _job(
    "plugin_job",
    ["peertube_plugin"],
    "Runbook Steps 1–2: install/verify the plugin, then categories_registered.",
)
schema_job = _job(
    "schema_job", ["recon_schema"], "Runbook Step 3: migrate recon.db, then schema_verified."
)
pass1_dry_run_job = _job(
    "pass1_dry_run_job",
    ["pass1_dry_run"],
    "Runbook Step 4 dry run, then distribution_within_benchmarks (writes nothing).",
)
pass1_job = _job(
    "pass1_job", ["pass1_assignments"], "Runbook Step 4 pass 1, then assigned_spot_check."
)
tiebreaker_job = _job(
    "tiebreaker_job",
    ["tiebreaker_assignments"],
    "Runbook Step 4 tiebreaker, then tiebreaker_spot_check.",
)
push_plan_job = _job(
    "push_plan_job",
    ["push_plan"],
    "Runbook Step 5 dry run: counts per stage and a sample; writes nothing.",
)
push_job = _job(
    "push_job",
    ["peertube_category_push"],
    "Runbook Step 5, one stage per run (partition stage-1/2/3), then stage_verified.",
)
verify_job = _job(
    "verify_job", ["rollout_verification"], "Runbook Step 6, then peertube_matches_recon."
)
reprocess_job = _job(
    "reprocess_job",
    ["reprocess_batch"],
    "Runbook Step 7, one partition per run (dry-run, batch-10, batch-100, all), then requeued.",
)

jobs = [
    predeploy_job,
    plugin_job,
    schema_job,
    pass1_dry_run_job,
    pass1_job,
    tiebreaker_job,
    push_plan_job,
    push_job,
    verify_job,
    reprocess_job,
]

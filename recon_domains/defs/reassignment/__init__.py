"""After the migration: the scheduled re-assignment (reassignment_dry_run, its gate,
reassignment and its verification), its job and its nightly schedule (off by default)."""

import dagster as dg

from recon_domains.defs.reassignment import assets, checks, jobs

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([assets]),
    asset_checks=dg.load_asset_checks_from_modules([checks]),
    jobs=[jobs.reassignment_job],
    schedules=[jobs.reassignment_nightly],
)

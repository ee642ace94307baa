"""Runbook "Pre-Deploy Backups" 1–4: both backups, the off-site mirror, RECON idle."""

import dagster as dg

from recon_domains.defs.predeploy import assets, checks

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([assets]),
    asset_checks=dg.load_asset_checks_from_modules([checks]),
)

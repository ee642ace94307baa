"""Runbook Step 5: the push plan and the staged push, verified stage by stage."""

import dagster as dg

from recon_domains.defs.push import assets, checks

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([assets]),
    asset_checks=dg.load_asset_checks_from_modules([checks]),
)

"""Runbook Step 4: the dry run, pass 1, the tiebreaker and their STOP points."""

import dagster as dg

from recon_domains.defs.assignment import assets, checks

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([assets]),
    asset_checks=dg.load_asset_checks_from_modules([checks]),
)

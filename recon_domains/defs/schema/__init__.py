"""Runbook Step 3: the schema migration and its verification."""

import dagster as dg

from recon_domains.defs.schema import assets, checks

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([assets]),
    asset_checks=dg.load_asset_checks_from_modules([checks]),
)

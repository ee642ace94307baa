"""Runbook Step 7: reprocess, partition by partition, each batch verified."""

import dagster as dg

from recon_domains.defs.reprocess import assets, checks

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([assets]),
    asset_checks=dg.load_asset_checks_from_modules([checks]),
)

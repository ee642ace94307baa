"""Runbook Step 6: the rollout verified against PeerTube."""

import dagster as dg

from recon_domains.defs.verify import assets, checks

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([assets]),
    asset_checks=dg.load_asset_checks_from_modules([checks]),
)

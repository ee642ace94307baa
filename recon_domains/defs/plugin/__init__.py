"""Runbook Steps 1–2: the PeerTube plugin and its categories."""

import dagster as dg

from recon_domains.defs.plugin import assets, checks

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([assets]),
    asset_checks=dg.load_asset_checks_from_modules([checks]),
)

"""Runbook Steps 1–2: deploy the PeerTube plugin (its gate, categories_registered, is in
checks.py)."""

from pathlib import Path

import dagster as dg

from recon_domains.defs.common import operator_errors, step_asset
from recon_domains.defs.gates import require_gates
from recon_domains.defs.resources import PeerTubeResource
from recon_domains.peertube.categories import recon_categories
from recon_domains.runbook import step as runbook_step
from recon_domains.taxonomy import CATEGORY_ID_RANGE, PLUGIN_NPM_NAME


@step_asset(
    "peertube_plugin",
    kinds={"peertube"},
    description="Runbook Steps 1–2: the peertube-plugin-recon-domains plugin in PeerTube. With "
    "PEERTUBE_PLUGIN_PATH set it is installed through the admin API (after every pre-deploy "
    "gate passed); otherwise an operator-installed plugin is verified. Rollback: uninstall it.",
)
def peertube_plugin(
    context: dg.AssetExecutionContext, peertube: PeerTubeResource
) -> dg.MaterializeResult:
    step = runbook_step("peertube_plugin").refusal_name()
    action = "verified operator-installed plugin"
    with operator_errors(step), peertube.client() as client:
        found = client.find_plugin(PLUGIN_NPM_NAME)
        if peertube.plugin_path:
            if found is None:
                # Installing writes to PeerTube: the backups must exist first.
                require_gates(context, "peertube_plugin")
                local = Path(peertube.plugin_path)
                if local.is_dir():
                    from recon_domains.peertube.plugin_check import require_valid_plugin

                    require_valid_plugin(local, node=peertube.node)
                client.install_plugin(peertube.plugin_path)
                action = f"installed from {peertube.plugin_path}"
                found = client.find_plugin(PLUGIN_NPM_NAME)
            else:
                action = "already installed; not reinstalled"
        categories = client.categories()
    ours = recon_categories(categories)
    if found is None and not ours:
        raise dg.Failure(
            description=f"Refusing to continue: {PLUGIN_NPM_NAME} is not installed in PeerTube "
            f"and no category {CATEGORY_ID_RANGE} is registered. Set PEERTUBE_PLUGIN_PATH to the "
            "plugin folder on PeerTube's host (or install it in the admin UI), then run "
            "plugin_job.",
            allow_retries=False,
        )
    context.log.info(f"plugin: {action}; {len(ours)} RECON categories registered")
    return dg.MaterializeResult(
        metadata={
            "action": action,
            "plugin": PLUGIN_NPM_NAME,
            "version": str((found or {}).get("version") or "unknown"),
            "recon_categories_registered": len(ours),
        }
    )

"""Runbook Steps 1–2: deploy the PeerTube plugin and verify its categories."""

from pathlib import Path

import dagster as dg

from recon_domains.defs.common import (
    EXTERNAL_WRITE,
    WRITES_POOL,
    md_table,
    operator_errors,
    tier,
)
from recon_domains.defs.gates import Gate, require_gates
from recon_domains.defs.predeploy import PREDEPLOY_GATES
from recon_domains.defs.resources import PeerTubeResource
from recon_domains.peertube.categories import category_problems, recon_categories
from recon_domains.taxonomy import CATEGORY_ID_RANGE, DOMAIN_BY_ID, PLUGIN_NPM_NAME

GROUP = "plugin"

PLUGIN_GATE = Gate(
    "peertube_plugin",
    "categories_registered",
    remedy="install the plugin (set PEERTUBE_PLUGIN_PATH and run plugin_job, or install it "
    "in PeerTube's admin UI and run plugin_job), until all "
    f"{len(DOMAIN_BY_ID)} categories {CATEGORY_ID_RANGE} show",
)


@dg.asset(
    group_name=GROUP,
    deps=["recon_db_backup", "peertube_db_backup", "offsite_concept_backup", "recon_idle"],
    tags=tier(EXTERNAL_WRITE),
    pool=WRITES_POOL,
    kinds={"peertube"},
    description="Runbook Steps 1–2: the peertube-plugin-recon-domains plugin in PeerTube. With "
    "PEERTUBE_PLUGIN_PATH set it is installed through the admin API (after every pre-deploy "
    "gate passed); otherwise an operator-installed plugin is verified. Rollback: uninstall it.",
)
def peertube_plugin(
    context: dg.AssetExecutionContext, peertube: PeerTubeResource
) -> dg.MaterializeResult:
    step = "peertube_plugin (runbook Step 1)"
    action = "verified operator-installed plugin"
    with operator_errors(step), peertube.client() as client:
        found = client.find_plugin(PLUGIN_NPM_NAME)
        if peertube.plugin_path:
            if found is None:
                # Installing writes to PeerTube: the backups must exist first.
                require_gates(context, PREDEPLOY_GATES, step=step)
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


@dg.asset_check(
    asset=peertube_plugin,
    blocking=True,
    description=f"Runbook Step 2: GET /api/v1/videos/categories shows all {len(DOMAIN_BY_ID)} ids "
    f"{CATEGORY_ID_RANGE} with exactly the taxonomy's labels.",
)
def categories_registered(
    context: dg.AssetCheckExecutionContext, peertube: PeerTubeResource
) -> dg.AssetCheckResult:
    with operator_errors("categories_registered"), peertube.client() as client:
        categories = client.categories()
    problems = category_problems(categories)
    rows = []
    for cid, label in sorted(DOMAIN_BY_ID.items()):
        got = categories.get(cid, "(missing)")
        rows.append((cid, label, got, "yes" if got == label else "NO"))
    return dg.AssetCheckResult(
        passed=not problems,
        description=(
            f"All {len(DOMAIN_BY_ID)} RECON categories registered with exact labels."
            if not problems
            else f"{len(problems)} RECON categor(ies) wrong: {'; '.join(problems[:6])}. Do not "
            "proceed: check PeerTube's log for plugin errors, fix or reinstall the plugin "
            "(Rollback: 'Plugin install fails'), then run plugin_job again."
        ),
        metadata={
            "categories": dg.MetadataValue.md(md_table(["id", "expected", "PeerTube", "ok"], rows))
        },
    )


assets = [peertube_plugin]
asset_checks = [categories_registered]

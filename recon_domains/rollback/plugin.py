"""Runbook "Plugin install fails or breaks PeerTube": uninstall the plugin and verify that
PeerTube's categories no longer include RECON's (taxonomy.CATEGORY_ID_RANGE)."""

from __future__ import annotations

from typing import Any

from recon_domains.peertube.categories import recon_categories
from recon_domains.rollback.audit import SAMPLE_SIZE, AuditLog, RollbackReport, recorded
from recon_domains.taxonomy import CATEGORY_ID_RANGE, PLUGIN_NPM_NAME

MANUAL_PLUGIN_STEPS = (
    "On PeerTube's host, disable the plugin without uninstalling it: move "
    "storage/plugins/node_modules/{npm} to {npm}.disabled, then `systemctl restart peertube` "
    "(runbook: Plugin install fails or breaks PeerTube).",
    "Or remove it fully: PeerTube admin UI → Plugins/Themes → Installed → {npm} → Uninstall, "
    "then restart PeerTube.",
    f"Then re-run this job: it verifies that categories {CATEGORY_ID_RANGE} are gone.",
)

VERIFIED_GONE = f"verified: PeerTube's categories no longer include {CATEGORY_ID_RANGE}"


def rollback_plugin(
    client: Any,
    npm_name: str = PLUGIN_NPM_NAME,
    manual: bool = False,
    *,
    dry_run: bool = True,
    audit: AuditLog | None = None,
) -> RollbackReport:
    """Uninstall the plugin through the admin API (or, `manual=True`, state the manual steps)
    and verify PeerTube's categories no longer include RECON's.

    Videos keep their category ids after an uninstall (shown as "Unknown"): restore the
    categories first (rollback_peertube_categories / remove_feature do).
    """
    report = RollbackReport("rollback_plugin", dry_run)
    ours = recon_categories(client.categories())
    installed = False if manual else client.find_plugin(npm_name) is not None
    report.counts = {"recon_categories_registered": len(ours), "plugin_installed": int(installed)}
    report.sample = [{"id": i, "label": label} for i, label in sorted(ours.items())][:SAMPLE_SIZE]
    if manual:
        report.steps = [s.format(npm=npm_name) for s in MANUAL_PLUGIN_STEPS]
        if ours:
            report.problems.append(
                f"{len(ours)} RECON categories ({CATEGORY_ID_RANGE}) are still registered: do "
                "the manual steps above, then run this again to verify"
            )
        else:
            report.steps.append(VERIFIED_GONE)
        return recorded(audit, report, npm_name=npm_name, manual=True)
    if not installed:
        report.steps.append(f"{npm_name} is not installed: nothing to uninstall")
        if ours:
            report.problems.append(
                f"categories {CATEGORY_ID_RANGE} are registered although {npm_name} is not "
                "listed as installed (installed by hand, or PeerTube's reinstall quirk): restart "
                "PeerTube, or follow the manual steps (manual: true)"
            )
        return recorded(audit, report, npm_name=npm_name)
    if dry_run:
        report.steps.append(
            f"would uninstall {npm_name} (POST /api/v1/plugins/uninstall) and check that "
            f"the {len(ours)} categories {CATEGORY_ID_RANGE} disappear"
        )
        return recorded(audit, report, npm_name=npm_name)
    client.uninstall_plugin(npm_name)
    report.acted = True
    left = recon_categories(client.categories())
    report.counts["recon_categories_left"] = len(left)
    report.steps.append(f"uninstalled {npm_name}")
    if left:
        report.problems.append(
            f"{len(left)} categories {CATEGORY_ID_RANGE} are still registered after the uninstall "
            "(PeerTube keeps them when the plugin had been installed twice): restart PeerTube, "
            "then run this again to verify"
        )
    else:
        report.steps.append(VERIFIED_GONE)
    return recorded(audit, report, npm_name=npm_name)

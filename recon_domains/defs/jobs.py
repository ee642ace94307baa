"""One job per runbook step, each with its gate checks (blocking), for the UI and for cron,
derived from the runbook table (recon_domains.runbook):

    dg launch --job pass1_job -m recon_domains.definitions
    dg launch --job push_job --partition stage-2 -m recon_domains.definitions
    dg launch --assets peertube_category_push --partition stage-2 -m recon_domains.definitions

(`dg launch --assets K` also runs K's checks.) DAGSTER_HOME must be set, or the gates
have no history to read and every gated step refuses.

Selecting an asset selects its checks, so each job runs the step and then its STOP-point
check; the writing assets additionally read their upstream gates from the instance.
"""

from __future__ import annotations

import dagster as dg

from recon_domains.defs.console import DEFAULT_RUN_CONFIG
from recon_domains.runbook import Step, job_label, jobs


def _description(steps: tuple[Step, ...]) -> str:
    assets = ", ".join(s.asset for s in steps)
    checks = ", ".join(s.check for s in steps if s.check)
    text = f"Runbook {job_label(steps)}: {assets}"
    text += f", then the blocking gate(s) {checks}." if checks else " (no gate)."
    if steps[0].partitions:
        text += " One partition per run: " + ", ".join(steps[0].partition_keys) + "."
    return text


def _job(name: str, steps: tuple[Step, ...]) -> dg.UnresolvedAssetJobDefinition:
    # A partitioned job (push_job, reprocess_job) takes the partitions of its asset.
    return dg.define_asset_job(
        name,
        selection=dg.AssetSelection.assets(*(s.asset for s in steps)),
        description=_description(steps),
        # The operator's console by default (defs/console.py): messages without stack traces.
        config=DEFAULT_RUN_CONFIG,
    )


defs = dg.Definitions(jobs=[_job(name, steps) for name, steps in jobs().items()])

"""Dagster layer: thin assets, checks, jobs and automation over the plain core.

One package per area of the runbook (predeploy, plugin, schema, assignment, push, verify,
reprocess; rollback and steady_state after it), each with `assets.py` / `checks.py` (or
`jobs.py`, `schedules.py`, `sensors.py`) and a small `defs` (a `dg.Definitions`);
`jobs.py` holds the migration's jobs, derived from the runbook table. They are merged, with
the resources, in `recon_domains.definitions`.

The project's warning filters live here, the one place: every module of the Dagster layer
imports this package first.
"""

import warnings

import dagster as dg

# (message, category) of each warning silenced, and why that is safe. pytest applies the
# same list (recon_domains_tests/conftest.py), since it resets filters around each test.
SILENCED_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    # Partitioned asset checks (stage_verified, requeued) are a 1.13 preview feature, used
    # deliberately (DESIGN.md §4): one check per push stage and reprocess batch is what the
    # runbook's gates are. The warning would repeat on every code-location load.
    ("Specifying a partitions_def on an AssetCheckSpec", dg.PreviewWarning),
    # Dagster 1.13 passes `owners` itself whenever it copies a sensor definition (e.g. when
    # it binds resources): a warning about a beta parameter this project never sets.
    ("Parameter `owners`", dg.BetaWarning),
)
for _message, _category in SILENCED_WARNINGS:
    warnings.filterwarnings("ignore", message=_message, category=_category)

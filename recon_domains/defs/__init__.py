"""Dagster layer: thin assets, checks, jobs and automation over the plain core.

One package per area of the runbook (predeploy, plugin, schema, assignment, push, verify,
reprocess; rollback and steady_state after it), each with `assets.py` / `checks.py` (or
`jobs.py`, `schedules.py`, `sensors.py`) and a small `defs` (a `dg.Definitions`);
`jobs.py` holds the migration's jobs, derived from the runbook table. They are merged, with
the resources, in `recon_domains.definitions`.
"""

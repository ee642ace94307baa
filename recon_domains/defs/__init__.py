"""Dagster layer: thin assets, checks, jobs and automation over the plain core.

One module per runbook phase (predeploy, plugin, schema, assignment, push, verify,
reprocess), each exposing `assets` and `asset_checks` lists; `jobs.py` bundles each step with
its gate checks for cron. Further areas (rollback/, steady_state/) plug in by exposing any of
`assets`, `asset_checks`, `jobs`, `schedules`, `sensors` in their package: list them in
`AREA_MODULES` and `build_definitions()` merges them.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import dagster as dg

# Runbook order; their groups appear in the UI in this order.
PHASE_MODULES: tuple[str, ...] = (
    "recon_domains.defs.predeploy",
    "recon_domains.defs.plugin",
    "recon_domains.defs.schema",
    "recon_domains.defs.assignment",
    "recon_domains.defs.push",
    "recon_domains.defs.verify",
    "recon_domains.defs.reprocess",
    "recon_domains.defs.jobs",
)
# Areas added by other work (issue 5); skipped while they do not exist yet.
AREA_MODULES: tuple[str, ...] = (
    "recon_domains.defs.rollback",
    "recon_domains.defs.steady_state",
)
_KINDS = ("assets", "asset_checks", "jobs", "schedules", "sensors")


def _import_optional(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:  # the area itself is absent; a broken import inside it is not
            return None
        raise


def collect(modules: tuple[str, ...] = PHASE_MODULES + AREA_MODULES) -> dict[str, list[Any]]:
    """Every module's `assets`, `asset_checks`, `jobs`, `schedules`, `sensors`, in order."""
    out: dict[str, list[Any]] = {k: [] for k in _KINDS}
    for name in modules:
        module = _import_optional(name)
        if module is None:
            continue
        for kind in _KINDS:
            out[kind].extend(getattr(module, kind, []) or [])
    return out


def build_definitions(
    resources: Mapping[str, Any] | None = None,
    modules: tuple[str, ...] = PHASE_MODULES + AREA_MODULES,
) -> dg.Definitions:
    """The project's Definitions; resources default to the settings of the environment
    (resources_from_settings), read when this is called.

    `modules` narrows what is loaded (tests of the migration graph pass PHASE_MODULES).
    """
    from recon_domains.defs.resources import resources_from_settings
    from recon_domains.settings import Settings

    parts = collect(modules)
    return dg.Definitions(
        assets=parts["assets"],
        asset_checks=parts["asset_checks"],
        jobs=parts["jobs"],
        schedules=parts["schedules"],
        sensors=parts["sensors"],
        resources=dict(resources)
        if resources is not None
        else resources_from_settings(Settings.from_env()),
    )

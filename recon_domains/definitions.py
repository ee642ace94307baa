"""The project's Dagster Definitions: every area's, merged, with the resources bound once
(workspace.yaml, `dg` and `-m recon_domains.definitions` load `defs`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from recon_domains.defs import (
    assignment,
    jobs,
    plugin,
    predeploy,
    push,
    reassignment,
    reprocess,
    rollback,
    schema,
    steady_state,
    verify,
)
from recon_domains.defs.console import LOGGERS
from recon_domains.defs.resources import ProgressResource, resources_from_settings
from recon_domains.settings import Settings

# The migration's graph, in runbook order, and its jobs.
MIGRATION: tuple[dg.Definitions, ...] = (
    predeploy.defs,
    plugin.defs,
    schema.defs,
    assignment.defs,
    push.defs,
    verify.defs,
    reprocess.defs,
    jobs.defs,
)
# After it: the way out, the steady state and the scheduled re-assignment.
AREAS: tuple[dg.Definitions, ...] = (
    *MIGRATION, rollback.defs, steady_state.defs, reassignment.defs
)


def build_definitions(
    resources: Mapping[str, Any] | None = None, areas: Sequence[dg.Definitions] = AREAS
) -> dg.Definitions:
    """The given areas (default: all) merged, with `resources` (default: the settings of
    the environment, read now; see resources_from_settings). `progress` (the long loops'
    progress lines) is the default ProgressResource unless given."""
    if resources is None:
        resources = resources_from_settings(Settings.from_env())
    resources = {"progress": ProgressResource(), **resources}
    # Every job runs its steps one after another in the run's own process, as the
    # rehearsal and the tests run them (execute_in_process), instead of Dagster's default
    # of one new Python process per step (each importing these definitions again: most of
    # a CLI run's time). The writers' pool still holds: the in-process executor claims
    # its slots too.
    return dg.Definitions.merge(
        *areas,
        dg.Definitions(resources=resources, loggers=LOGGERS, executor=dg.in_process_executor),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()

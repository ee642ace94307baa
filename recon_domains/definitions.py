"""The one Dagster Definitions object of the project (workspace.yaml and [tool.dagster] load it)."""

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    from recon_domains.defs import build_definitions

    return build_definitions()

"""Dagster layer: thin assets, checks, jobs and automation over the plain core."""

import dagster as dg


def build_definitions() -> dg.Definitions:
    return dg.Definitions()

"""The runbook's "Rollback Procedures": one job each (jobs.py), dry run unless confirmed."""

import dagster as dg

from recon_domains.defs.rollback.jobs import jobs

defs = dg.Definitions(jobs=jobs)

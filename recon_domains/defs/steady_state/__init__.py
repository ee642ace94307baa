"""The steady state after the migration (SPEC §9): its job and the drift check (jobs.py),
an hourly and a nightly schedule (schedules.py), a sensor on RECON's database (sensors.py)."""

import dagster as dg

from recon_domains.defs.steady_state import jobs, schedules, sensors

defs = dg.Definitions(
    jobs=[jobs.steady_state_assignment, jobs.peertube_drift_check],
    schedules=[schedules.steady_state_hourly, schedules.peertube_drift_nightly],
    sensors=[sensors.steady_state_sensor],
)

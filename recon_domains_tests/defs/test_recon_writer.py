"""pass1_job next to a RECON writer that never lets go of recon.db's write lock: the run
fails with the store's one readable message, not a traceback, and resumes once RECON
pauses."""

from __future__ import annotations

import dagster as dg
import pytest

from recon_domains.defs.resources import ReconResource
from recon_domains.runbook import step
from recon_domains.taxonomy import Status
from recon_domains_tests.defs.conftest import failure_text

pytestmark = pytest.mark.slow


def _step_failure_description(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data is not None:
            data = event.step_failure_data.user_failure_data
            assert data is not None, failure_text(result)  # a dg.Failure, not a crash
            return data.description or ""
    raise AssertionError("no step failed")


def test_pass1_job_fails_readably_while_recon_holds_the_lock_then_resumes(
    rollout_factory, recon_writer
) -> None:
    r = rollout_factory(docs=200)
    r.through("predeploy_job", "plugin_job", "schema_job", "pass1_dry_run_job")
    fields = {name: getattr(r.recon, name) for name in ReconResource.model_fields}
    short_deadline = dg.Definitions(
        assets=r.defs.assets,
        asset_checks=r.defs.asset_checks,
        jobs=r.defs.jobs,
        resources={**r.defs.resources, "recon": ReconResource(**{**fields,
                                                                 "lock_timeout_s": 1.0})},
    )
    pass1_job = short_deadline.resolve_job_def("pass1_job")

    writer = recon_writer(r.corpus.recon_db, hold_s=60, gap_s=0)
    result = pass1_job.execute_in_process(instance=r.instance, raise_on_error=False)
    writer.stop()
    assert not result.success
    description = _step_failure_description(result)
    assert description.startswith(
        f"{step('pass1_assignments').refusal_name()} failed: recon.db stayed locked for 1 s: "
        "a RECON process is writing continuously — "
    )
    assert "the pass stopped with 0 decisions written" in description
    assert "RECON_LOCK_TIMEOUT_S" in description
    for noise in ("Traceback", "OperationalError", "database is locked"):
        assert noise not in description
    assert set(r.status_counts()) == {"unassigned"}

    again = pass1_job.execute_in_process(instance=r.instance, raise_on_error=False)
    assert again.success, failure_text(again)
    counts = r.status_counts()
    assert counts[Status.ASSIGNED] == r.corpus.expected_assigned
    assert counts[Status.TIED_PASS_1] == r.corpus.expected_tied

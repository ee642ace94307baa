"""Runbook Step 3's gate: the migration verified."""

from __future__ import annotations

from recon_domains.recon.schema import MigrationCheck
from recon_domains.verdicts import Table, Verdict


def schema_verified(check: MigrationCheck) -> Verdict:
    """`check`: the store's verify_migration()."""
    return Verdict(
        check.ok,
        "Migration verified: all columns present, no existing column dropped."
        if check.ok
        else "Migration NOT verified: "
        + "; ".join(check.problems)
        + ". Do not proceed: if an existing column is missing, restore the pre-deploy "
        "backup; otherwise run schema_job again.",
        {"problems": Table.of(["problem"], [(p,) for p in check.problems])},
    )
